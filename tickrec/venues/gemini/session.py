"""Recording connections of Gemini, as the venue sees them: one session per protocol.

Each is a :class:`tickrec.venues.base.Session`: it reads the header of every
message the connection stores and answers with the actions the connection
carries out.

- :class:`V1Session`: one symbol per connection; the first ``update`` after
  the connect holds the initial book. A ``socket_sequence`` break means lost
  messages: a ``gap`` and a successor for a fresh book (docs/venues/gemini.md
  section 1, "Sequencing and gaps").
- :class:`V2Session`: the ``l2`` subscribe of every symbol; its first
  ``l2_updates`` of a symbol is the book. v2 has no sequence (section 2), so
  a frame that cannot be decoded at all may have been a book update nothing
  later could show: a successor.
- :class:`WsSession`: the current API. A subscribe per symbol (diffs and
  trades) and a ``depth`` request per symbol (section 3.4, recipe B; the
  replay uses the reply when the connection's own snapshot is missing), a
  ``ping`` request when the connection is quiet (the server sends no
  heartbeats, section 3.5), and fresh ``depth`` requests right after
  midnight. A diff with ``U > last u + 1`` is a gap (:class:`.ws.UpdateTracker`,
  the rule the replay applies); an error reply to one of its requests (a
  refused subscription) fails the run, since it would be refused again.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from tickrec.venues.base import Action, Fail, GapAt, Header, Resync, Send
from tickrec.venues.gemini import v2, ws
from tickrec.venues.gemini.v1 import SequenceTracker

__all__ = ["WS_DEPTH_LIMIT", "V1Session", "V2Session", "WsSession"]

#: Levels asked of each side by the current API's ``depth`` request: the whole book
#: (docs/venues/gemini.md section 3.2).
WS_DEPTH_LIMIT = 5000


class _Books:
    """Which symbols of a connection have their book: those a book message was for."""

    def __init__(self, symbols: tuple[str, ...], kind: str) -> None:
        self.symbols, self._kind = symbols, kind
        self._by_upper = {s.upper(): s for s in symbols}
        self.booked: set[str] = set()

    def named(self, header: Header) -> tuple[str, ...]:
        """The symbols a message is for: the one it names if we asked for it, else every
        symbol when it names none, else none."""
        if header.symbol is None:
            return self.symbols
        symbol = self._by_upper.get(header.symbol.upper())
        return () if symbol is None else (symbol,)

    def see(self, header: Header) -> None:
        if header.kind == self._kind:
            self.booked.update(self.named(header))


class _Session:
    """What every Gemini session shares: books from the stream, no REST syncs, no
    keepalives of its own (v1 and v2 servers send heartbeats), and fresh books right
    after midnight only from a new connection (``Recording.refreshes`` is False)."""

    def __init__(self, symbols: tuple[str, ...], book_kind: str) -> None:
        self._books = _Books(symbols, book_kind)

    def opening(self) -> Sequence[Action]:
        return []

    def refresh(self) -> Sequence[Action]:
        return []

    def idle(self) -> Sequence[Action]:
        return []

    def book(self, symbol: str, body: str) -> Sequence[Action]:
        return []

    @property
    def booked(self) -> frozenset[str]:
        return frozenset(self._books.booked)


class V1Session(_Session):
    """A v1 connection of one symbol (:class:`tickrec.venues.base.Session`): the URL names
    the symbol, and the book comes on connect."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        super().__init__(symbols, "update")
        self._sequence = SequenceTracker()

    def message(self, header: Header, payload: str | bytes) -> Sequence[Action]:
        self._books.see(header)
        if header.venue_seq is None:
            return []
        gap = self._sequence.check(header.venue_seq)
        return [] if gap is None else [GapAt(None, gap), Resync("sequence gap")]


class V2Session(_Session):
    """A v2 connection of every symbol (:class:`tickrec.venues.base.Session`)."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        super().__init__(symbols, "l2_updates")

    def opening(self) -> Sequence[Action]:
        return [Send((v2.subscribe_message(self._books.symbols),))]

    def message(self, header: Header, payload: str | bytes) -> Sequence[Action]:
        self._books.see(header)
        return [] if header.kind else [Resync("undecodable frame")]


class WsSession(_Session):
    """A current-API connection of every symbol (:class:`tickrec.venues.base.Session`)."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        super().__init__(symbols, "depthUpdate")
        self._updates = ws.UpdateTracker()
        # Requests of its own (keepalives, depth after midnight) count from 1 000 000,
        # above the opening ones.
        self._ids = itertools.count(1_000_000)

    def _send(self, messages: Iterable[str]) -> Send:
        sent = tuple(messages)
        for text in sent:
            self._updates.expect(text)  # before it goes out, so its reply moves the books
        return Send(sent)

    def _depth(self, ids: Iterable[int]) -> Iterable[str]:
        return (
            ws.request(i, "depth", {"symbol": s.lower(), "limit": WS_DEPTH_LIMIT})
            for i, s in zip(ids, self._books.symbols, strict=True)
        )

    def opening(self) -> Sequence[Action]:
        symbols = self._books.symbols
        n = len(symbols)
        subscribes = (
            ws.request(i + 1, "subscribe", [ws.depth_stream(s), ws.trade_stream(s)])
            for i, s in enumerate(symbols)
        )
        return [self._send((*subscribes, *self._depth(range(n + 1, 2 * n + 1))))]

    def refresh(self) -> Sequence[Action]:
        return [self._send(self._depth(next(self._ids) for _ in self._books.symbols))]

    def idle(self) -> Sequence[Action]:
        return [Send((ws.ping(next(self._ids)),))]

    def message(self, header: Header, payload: str | bytes) -> Sequence[Action]:
        self._books.see(header)
        if header.kind == "reply":
            reply = ws.parse_reply(payload)
            if reply is None:
                return []
            self._updates.reply(reply)
            if reply.error is None:
                return []
            code, msg = reply.error
            error = (
                f"the exchange refused request {reply.id!r} "
                f"(status {reply.status}, code {code}): {msg}"
            )
            detail = {"request_id": reply.id, "status": reply.status, "code": code, "msg": msg}
            return [Fail("request refused", error, detail)]
        if header.first_seq is None or header.venue_seq is None or header.symbol is None:
            return []
        named = self._books.named(header)
        if not named:
            return []  # a symbol we did not ask for: noted as malformed by the connection
        gap = self._updates.check(named[0], header.first_seq, header.venue_seq)
        return [] if gap is None else [GapAt(named[0], gap), Resync("sequence gap")]
