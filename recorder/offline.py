"""How long each symbol of a run has been without a connection: ``record --max-offline``.

A symbol is offline while none of the run's websocket connections that
serve it is open; it is offline from the run's start until its first
connection opens. The run's watchdog samples the connections about ten
times a second (:meth:`OfflineWatch.update`), so the figures are good to
about 0.1 s. A stretch longer than the threshold is logged when it crosses
it, and makes the run end with exit code 1 (:attr:`OfflineWatch.over`),
while recording goes on meanwhile: the data of a flaky night is still kept.
The metrics show the current stretch (:meth:`OfflineWatch.offline_s`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["OfflineStretch", "OfflineWatch"]

log = logging.getLogger("tickrec.recorder")


@dataclass(frozen=True)
class OfflineStretch:
    """A stretch without a connection for one symbol; ``end_ns`` None while it lasts."""

    symbol: str
    start_ns: int
    end_ns: int | None

    def seconds(self, now_ns: int) -> float:
        """Its length so far."""
        return ((self.end_ns if self.end_ns is not None else now_ns) - self.start_ns) / 1e9


class OfflineWatch:
    """The stretches without a connection of every symbol, and which passed *max_offline* s.

    *max_offline* 0 means no threshold: stretches are still tracked for the metrics.
    """

    def __init__(self, symbols: Iterable[str], start_ns: int, max_offline: float) -> None:
        self.max_ns = int(max_offline * 1e9)
        self._since: dict[str, int | None] = {s: start_ns for s in symbols}
        self.connected_ever: dict[str, bool] = dict.fromkeys(self._since, False)
        #: The first stretch of each symbol that passed the threshold.
        self.over: dict[str, OfflineStretch] = {}

    def update(self, now_ns: int, open_symbols: set[str]) -> None:
        """Note which symbols have an open connection at *now_ns*."""
        for symbol, since in self._since.items():
            if symbol in open_symbols:
                if since is not None:
                    self._check(symbol, since, now_ns, ended=True)
                    self._since[symbol] = None
                self.connected_ever[symbol] = True
            elif since is None:
                self._since[symbol] = now_ns
            else:
                self._check(symbol, since, now_ns, ended=False)

    def _check(self, symbol: str, since: int, now_ns: int, ended: bool) -> None:
        """Note the stretch from *since* if it passed the threshold (the first one only)."""
        if not self.max_ns or now_ns - since <= self.max_ns:
            return
        over = self.over.get(symbol)
        if over is None:
            self.over[symbol] = OfflineStretch(symbol, since, now_ns if ended else None)
            log.error(
                "%s: no connection for %.1f s, longer than --max-offline %g s",
                symbol,
                (now_ns - since) / 1e9,
                self.max_ns / 1e9,
            )
        elif ended and over.start_ns == since:
            self.over[symbol] = OfflineStretch(symbol, since, now_ns)

    def offline_s(self, symbol: str, now_ns: int) -> float:
        """Seconds the symbol has been without a connection (0 while it has one)."""
        since = self._since[symbol]
        return 0.0 if since is None else max(0, now_ns - since) / 1e9

    def finish(self, now_ns: int) -> None:
        """Close the stretches still open at the end of the run."""
        for symbol, since in self._since.items():
            if since is not None:
                self._check(symbol, since, now_ns, ended=True)
