"""Configuration of a simulator run, checked when it is made."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tickrec.errors import UsageError
from tickrec.sim.faults import FaultConfig
from tickrec.sim.market import (
    DEFAULT_SYMBOLS,
    FIRST_UPDATE_ID,
    MIN_LEVELS,
    SymbolSpec,
    spec_for,
)

__all__ = ["SimConfig", "check_loopback"]

# Update ids are int64 on the wire (docs/venues/gemini.md section 3.3); leave room for 2**40 events.
_MAX_UPDATE_ID_BASE = 2**63 - 2**40


def check_loopback(host: str) -> str:
    """*host* as an address to bind, if it is loopback (127.0.0.0/8 or ::1); else UsageError.

    The simulator must never be reachable from, or send traffic to, another
    machine. ``localhost`` means 127.0.0.1.
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"host {host!r}: give a loopback IP address such as 127.0.0.1") from None
    if not address.is_loopback:
        raise UsageError(f"host {host!r}: the simulator binds loopback only (127.0.0.0/8 or ::1)")
    return str(address)


@dataclass(frozen=True)
class SimConfig:
    """Everything a simulator run needs.

    - ``host``/``port``: where to listen; loopback only, port 0 picks a free one;
    - ``symbols``: symbols listed and traded (any case; stored upper case);
    - ``rate``: engine events per second over all symbols; each event is one
      update per v1 connection on its symbol, one or more frames on v2;
    - ``seed``: seeds the order flow and the fault choices;
    - ``depth``: levels per side in the initial books;
    - ``heartbeat_s``: heartbeat interval (Gemini: 5 s);
    - ``warmup``: events applied before serving, so trade history exists;
    - ``tick_s``: how often the engine runs a batch of events;
    - ``update_id_base``: first update id of each book in the current API
      (``U``/``u``, docs/venues/gemini.md section 3.4); set it above 2**53 to check that
      clients keep ids exact;
    - ``faults``: what to inject (none by default);
    - ``truth_dir``: where to write ground-truth JSONL, or None;
    - ``clock``: wall-clock time in ns, for exchange times and truth times
      (``time.time_ns``; a test that shifts the recorder's clock, say to just
      before midnight, gives the simulator the same one, so the two agree).
    """

    host: str = "127.0.0.1"
    port: int = 0
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    rate: float = 50.0
    seed: int = 0
    depth: int = 50
    heartbeat_s: float = 5.0
    warmup: int = 200
    tick_s: float = 0.005
    update_id_base: int = FIRST_UPDATE_ID
    faults: FaultConfig = field(default_factory=FaultConfig)
    truth_dir: Path | None = None
    clock: Callable[[], int] = field(default=time.time_ns, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Normalized values are set on the frozen instance once, here.
        object.__setattr__(self, "host", check_loopback(self.host))
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port: must be 0..65535, not {self.port}")
        if isinstance(self.symbols, str):
            raise UsageError("symbols: give a sequence of symbols, not one string")
        names = tuple(dict.fromkeys(s.strip().upper() for s in self.symbols if s.strip()))
        if not names:
            raise UsageError("symbols: at least one symbol is needed")
        for name in names:
            try:
                spec_for(name)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        object.__setattr__(self, "symbols", names)
        if not self.rate > 0:
            raise UsageError(f"rate: must be positive, not {self.rate}")
        if self.depth < MIN_LEVELS:
            raise UsageError(f"depth: must be at least {MIN_LEVELS}")
        if not self.heartbeat_s > 0:
            raise UsageError("heartbeat_s: must be positive")
        if self.warmup < 0:
            raise UsageError("warmup: must not be negative")
        if not 0 < self.tick_s <= 1:
            raise UsageError("tick_s: must be in (0, 1] seconds")
        if not 0 < self.update_id_base < _MAX_UPDATE_ID_BASE:
            raise UsageError(f"update_id_base: must be in 1..{_MAX_UPDATE_ID_BASE - 1}")
        if self.truth_dir is not None:
            object.__setattr__(self, "truth_dir", Path(self.truth_dir))

    @property
    def specs(self) -> list[SymbolSpec]:
        """The spec of each symbol."""
        return [spec_for(s) for s in self.symbols]
