"""A recording connection of Binance spot, as the venue sees it (:class:`SpotSession`).

Binance's procedure, per symbol on one connection: open the stream, hold
the diffs, ``GET /api/v3/depth``, drop the held diffs the snapshot already
shows, and go on from the first one that follows it. The session asks for a
sync snapshot of every symbol on connect (:class:`~tickrec.venues.base.FetchBook`),
and again for a symbol when:

- a diff skips update ids (``U > u + 1`` of the one before): a
  :class:`~tickrec.venues.base.GapAt`, then a new snapshot on the same
  connection, with no reconnect;
- the snapshot is older than the diffs held (the first one kept does not
  cover ``lastUpdateId + 1``), or cannot be read.

``serverShutdown`` (maintenance is coming) asks for a successor connection
at once (:class:`~tickrec.venues.base.Resync`). The verdicts come from
:class:`~tickrec.venues.binance.rules.UpdateIdSync`, the rule the replay
applies to the same rows, holding at most as many diffs as the replay does,
so a book the recorder counts as whole is one the replay rebuilds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from tickrec.values import BadValue
from tickrec.venues.base import Action, FetchBook, Gap, GapAt, Header, Resync
from tickrec.venues.binance.rest import parse_depth
from tickrec.venues.binance.rules import APPLY, MAX_HELD, UpdateIdSync

__all__ = ["SpotSession"]


class SpotSession:
    """The sync state of every symbol of one connection (:class:`tickrec.venues.base.Session`)."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self.symbols = symbols
        self._sync = {s: UpdateIdSync() for s in symbols}
        self._held: dict[str, deque[tuple[int, int]]] = {s: deque(maxlen=MAX_HELD) for s in symbols}
        #: Symbols with an undecodable frame since their last diff: it may have been theirs.
        self._unsure: set[str] = set()

    def opening(self) -> Sequence[Action]:
        return [FetchBook(s) for s in self.symbols]

    def refresh(self) -> Sequence[Action]:
        return [FetchBook(s) for s in self.symbols]

    def idle(self) -> Sequence[Action]:
        return []  # the server pings; the connection answers at the frame level

    def message(self, header: Header, payload: str | bytes) -> Sequence[Action]:
        if header.kind == "serverShutdown":
            return [Resync("serverShutdown")]
        if not header.kind:
            self._unsure.update(self.symbols)
            return []
        symbol = header.symbol
        if (
            header.kind != "depthUpdate"
            or header.problem is not None
            or symbol not in self._sync
            or header.first_seq is None
            or header.venue_seq is None
        ):
            return []
        sync = self._sync[symbol]
        if not sync.synced:
            self._held[symbol].append((header.first_seq, header.venue_seq))
            return []
        verdict = sync.diff(header.first_seq, header.venue_seq)
        if isinstance(verdict, Gap):
            self._held[symbol].append((header.first_seq, header.venue_seq))
            return [GapAt(symbol, verdict), FetchBook(symbol)]
        if verdict == APPLY:
            self._unsure.discard(symbol)
        return []

    def book(self, symbol: str, body: str) -> Sequence[Action]:
        sync, held = self._sync[symbol], self._held[symbol]
        try:
            last = parse_depth(body).last_update_id
        except BadValue:
            return [] if sync.synced else [FetchBook(symbol)]
        if sync.synced and symbol not in self._unsure and last <= (sync.last or 0):
            return []  # older than the book: the replay leaves it out too
        sync.snapshot(last)
        self._unsure.discard(symbol)
        while held:
            first, final = held.popleft()
            if isinstance(sync.diff(first, final), Gap):
                # Older than the diffs held: the ids between are gone; ask again.
                held.appendleft((first, final))
                return [FetchBook(symbol)]
        return []

    @property
    def booked(self) -> frozenset[str]:
        return frozenset(s for s, sync in self._sync.items() if sync.synced)
