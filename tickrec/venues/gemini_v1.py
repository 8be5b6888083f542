"""Gemini market data v1 (gemini.md section 1): one symbol per connection.

Every frame carries ``socket_sequence``, a per-connection counter that starts
at 0 and goes up by exactly one on every message, heartbeats included; a
break means messages were lost and the client must reconnect (gemini.md
section 1, "Sequencing and gaps"). ``timestampms`` is the exchange time of an
update; the first (initial) update may lack it.
"""

from __future__ import annotations

from typing import NamedTuple

from tickrec.venues._json import as_int, load_object
from tickrec.venues.base import Header, register

__all__ = ["PROTOCOL", "Gap", "SequenceTracker", "header", "stream_url"]

PROTOCOL = "gemini.v1"

_KINDS = frozenset({"update", "heartbeat"})


def stream_url(base: str, symbol: str) -> str:
    """The v1 market data URL of *symbol*, with 5 s heartbeats (gemini.md section 1)."""
    return f"{base.rstrip('/')}/v1/marketdata/{symbol}?heartbeat=true"


def header(payload: str | bytes) -> Header:
    """Read kind, ``timestampms`` (as ns) and ``socket_sequence`` of a v1 frame."""
    obj, problem = load_object(payload)
    if obj is None:
        return Header(kind="", problem=problem)
    kind = obj.get("type")
    seq = as_int(obj.get("socket_sequence"))
    ms = as_int(obj.get("timestampms"))
    exch_ns = ms * 1_000_000 if ms is not None else None
    if not isinstance(kind, str) or kind not in _KINDS:
        return Header(
            kind=str(kind),
            exch_ns=exch_ns,
            venue_seq=seq,
            problem=f"unexpected message type {kind!r}",
        )
    if seq is None:
        return Header(kind=kind, exch_ns=exch_ns, problem="no integer socket_sequence")
    return Header(kind=kind, exch_ns=exch_ns, venue_seq=seq)


register(PROTOCOL, header)


class Gap(NamedTuple):
    """A break in ``socket_sequence``: *expected* was due, *got* arrived."""

    expected: int
    got: int


class SequenceTracker:
    """Checks v1 ``socket_sequence`` continuity for one connection.

    Create a new tracker for every connection: the counter starts again at 0
    on every reconnect (gemini.md section 1).
    """

    __slots__ = ("expected",)

    def __init__(self) -> None:
        self.expected = 0

    def check(self, venue_seq: int) -> Gap | None:
        """Record *venue_seq*; return the gap if it is not the one expected."""
        expected, self.expected = self.expected, venue_seq + 1
        return None if venue_seq == expected else Gap(expected, venue_seq)
