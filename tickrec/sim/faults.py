"""Fault injection: what can go wrong on purpose, and the seeded decisions of when.

Websocket faults, per connection:

- ``drop``: a fraction of frames is never sent. On v1 the dropped frame has
  already taken its ``socket_sequence``, so the client sees a skip (docs/venues/gemini.md
  section 1, "Sequencing and gaps");
- ``malformed``: a fraction of frames is cut short, so it is not valid JSON;
- ``close_every``: the server closes the connection that many seconds after it
  opened, with a close frame (code 1000), or, with ``abrupt``, by aborting the
  TCP connection without one; with ``close_conns`` only the connections of
  those numbers are closed (1 is the first the server accepts; empty: all);
  with ``shutdown_notice``, the venue's maintenance notice (Binance's
  ``serverShutdown``) goes out first and the close follows that many seconds
  later;
- ``stall_for``/``stall_every``: every ``stall_every`` seconds the server stops
  sending on the connection for ``stall_for`` seconds (heartbeats included);
  frames due meanwhile are held and sent late, as after a network stall.

REST faults, per request, at most one each: ``rest_429`` answers 429 with a
``Retry-After`` header and the venue's rate-limit body, ``rest_500`` answers
500, ``rest_slow`` builds the normal reply and sends it ``rest_slow_for``
seconds later, stale by then.

The choices come from :class:`random.Random` instances seeded from the
simulator seed (and the connection number), so a run with the same seed and
the same connections makes the same choices. The timers run on the clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from tickrec.errors import UsageError

__all__ = ["FaultConfig", "FrameFaults", "Injected", "RestFault", "RestFaults", "malform"]

RestFault = Literal["429", "500", "slow"]


@dataclass(frozen=True)
class FaultConfig:
    """Which faults to inject; the default injects none.

    Fractions are probabilities per frame (``drop``, ``malformed``) or per
    REST request (``rest_429``, ``rest_500``, ``rest_slow``); durations are
    seconds, 0 meaning off.
    """

    drop: float = 0.0
    malformed: float = 0.0
    close_every: float = 0.0
    abrupt: bool = False
    close_conns: tuple[int, ...] = ()
    shutdown_notice: float = 0.0
    stall_for: float = 0.0
    stall_every: float = 0.0
    rest_429: float = 0.0
    rest_500: float = 0.0
    rest_slow: float = 0.0
    rest_slow_for: float = 0.0
    retry_after: int = 1

    def __post_init__(self) -> None:
        for name in ("drop", "malformed", "rest_429", "rest_500", "rest_slow"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"{_option(name)}: a fraction between 0 and 1, not {value}")
        if self.drop + self.malformed > 1.0:
            raise UsageError("--drop and --malformed: together at most 1")
        if self.rest_429 + self.rest_500 + self.rest_slow > 1.0:
            raise UsageError("--rest-429, --rest-500 and --rest-slow: together at most 1")
        for name in ("close_every", "shutdown_notice", "stall_for", "stall_every", "rest_slow_for"):
            if getattr(self, name) < 0:
                raise UsageError(f"{_option(name)}: must not be negative")
        if (self.stall_for > 0) != (self.stall_every > 0):
            raise UsageError("--stall: give both FOR and EVERY, as in 5s/60s")
        if self.abrupt and not self.close_every:
            raise UsageError("--abrupt needs --close-every")
        if any(n < 1 for n in self.close_conns):
            raise UsageError("close_conns: connection numbers start at 1")
        if self.shutdown_notice and not self.close_every:
            raise UsageError("--shutdown-notice needs --close-every")
        if self.close_conns and not self.close_every:
            raise UsageError("close_conns needs --close-every")
        if self.rest_slow and not self.rest_slow_for:
            raise UsageError("--rest-slow: give both DELAY and FRACTION, as in 2s/0.1")
        if self.retry_after < 0:
            raise UsageError("--retry-after: must not be negative")

    def describe(self) -> list[str]:
        """What the websocket faults do, one phrase each, read from the fields.

        Timers run per connection from the moment it opens, so a connection
        that ends sooner for another reason (a drop the client answers with a
        reconnect, say) starts them again; the phrases say so.
        """
        which = "connections " + ", ".join(map(str, self.close_conns)) if self.close_conns else ""
        said = []
        if self.stall_every:
            said.append(
                f"every connection stops sending for {self.stall_for:g} s, "
                f"{self.stall_every:g} s after it opens and every {self.stall_every:g} s after"
            )
        if self.close_every:
            how = "aborted (TCP cut, no close frame)" if self.abrupt else "closed (code 1000)"
            who = which or "every connection"
            said.append(f"{who} {how} {self.close_every:g} s after it opens")
        for name, what in (("drop", "dropped"), ("malformed", "cut short")):
            if getattr(self, name):
                said.append(f"{getattr(self, name):.2%} of frames {what}, at random")
        return said


def _option(field: str) -> str:
    """The ``tickrec sim`` option that sets a :class:`Faults` field, for messages."""
    if field.startswith("stall_"):
        return "--stall"
    if field == "rest_slow_for":
        return "--rest-slow"
    return "--" + field.replace("_", "-")


@dataclass(frozen=True, slots=True)
class Injected:
    """One frame fault: ``drop`` or ``malformed``, and the frame as it was meant to be sent."""

    kind: Literal["drop", "malformed"]
    frame: str


def malform(text: str) -> str:
    """The first half of a JSON object's text: an object cut short never parses."""
    return text[: max(1, len(text) // 2)]


class FrameFaults:
    """Seeded drop and malform decisions for the frames of one connection."""

    def __init__(self, config: FaultConfig, seed: int, conn_id: int) -> None:
        self._drop = config.drop
        self._bad = config.drop + config.malformed
        self._rng = random.Random(f"{seed}/frames/{conn_id}")

    def apply(self, frames: list[str]) -> tuple[list[str], list[Injected]]:
        """The frames to send, and the faults injected into them."""
        if not self._bad:
            return frames, []
        out: list[str] = []
        injected: list[Injected] = []
        rand = self._rng.random
        for frame in frames:
            r = rand()
            if r < self._drop:
                injected.append(Injected("drop", frame))
            elif r < self._bad:
                injected.append(Injected("malformed", frame))
                out.append(malform(frame))
            else:
                out.append(frame)
        return out, injected


class RestFaults:
    """Seeded choice of the fault, if any, for each REST request."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self._limits: list[tuple[float, RestFault]] = []
        total = 0.0
        for rate, kind in (
            (config.rest_429, "429"),
            (config.rest_500, "500"),
            (config.rest_slow, "slow"),
        ):
            if rate:
                total += rate
                self._limits.append((total, kind))  # type: ignore[arg-type]
        self._rng = random.Random(f"{seed}/rest")

    def pick(self) -> RestFault | None:
        """The fault for the next request, or None."""
        if not self._limits:
            return None
        r = self._rng.random()
        for limit, kind in self._limits:
            if r < limit:
                return kind
        return None
