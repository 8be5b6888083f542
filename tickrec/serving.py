"""What a venue's ``tickrec serve`` routes provide, and what the replay server gives them.

A venue's serve module (:attr:`tickrec.venues.base.Venue.serve`) declares
:data:`ROUTES`-style tuples of :class:`HttpRoute` and :class:`WsRoute`. Like a
simulator feed it is pure: the server (:mod:`replay.serve`) reads the stored
rows, keeps the replay clock, counts the venue's limits, paces and writes
frames; a route only says what a request is answered with and which stored
rows a client gets, through the :class:`Store` it is handed.

A websocket route opens one :class:`Client` per client connection, of one of
three kinds, each driven by its own loop in the server:

- :class:`Whole`: every stored row of the connection, in order (Gemini market
  data v1, v2), with the opening a connection open at ``--from`` starts with;
- :class:`Streams`: the rows of the streams the client asked for, the set
  changed by its requests while the replay runs (Binance's combined and raw
  streams);
- :class:`Dialogue`: stored replies matched to the client's own requests,
  stream rows by its subscriptions (the current Gemini API).

A venue whose messages tardis-machine replays declares its channels too
(:class:`TardisFacts`, as ``TARDIS``).

A route refuses a request by raising :class:`Refused` (an HTTP reply) while
the connection opens, and :class:`~tickrec.sim.feed.Close` once it is open.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tickrec.sim.feed import Reply

__all__ = [
    "Book",
    "BookAsk",
    "Dialogue",
    "HttpRoute",
    "Priced",
    "Refused",
    "RowKind",
    "Rows",
    "Store",
    "Streams",
    "TardisFacts",
    "Whole",
    "WsRoute",
]

#: A book as sent: ``(bids, asks)``, each ``(price, size)`` texts best first, prices
#: with the stream's decimals (``"60000.10"``).
Book = tuple[list[tuple[str, str]], list[tuple[str, str]]]


class Rows(Protocol):
    """One stored connection's rows, in recorded order (what a route reads of it)."""

    @property
    def recv_ns(self) -> npt.NDArray[np.int64]: ...

    @property
    def payloads(self) -> list[bytes]: ...

    @property
    def sent(self) -> npt.NDArray[np.bool_]:
        """The rows the recording client sent (``ws_sent``)."""
        ...

    @property
    def lead(self) -> int:
        """The rows before ``--from``: they rebuild the opening book and are not sent."""
        ...


class Store(Protocol):
    """What the server gives a venue's routes: the stored data and the replay clock."""

    @property
    def clock_ns(self) -> int:
        """The receive time of the last frame sent on any connection (before any: the
        start of the replay)."""
        ...

    @property
    def start_ns(self) -> int | None:
        """``--from``, if given."""
        ...

    @property
    def sent(self) -> int:
        """Frames sent so far, on every connection."""
        ...

    @property
    def max_symbols(self) -> int:
        """The symbols one subscription may hold, at most."""
        ...

    def symbols(self, venue: str) -> Sequence[str]:
        """The symbols stored for *venue*, sorted."""
        ...

    def rest_reply(self, venue: str, protocol: str, symbol: str) -> tuple[int, str] | None:
        """The receive time and body of the last REST reply of *protocol* stored for
        *symbol* at or before the replay clock (the first one, when none is)."""
        ...

    def book(
        self, conn: Rows, upto: int, symbol: str, protocol: str, depth: int | None
    ) -> Book | None:
        """*symbol*'s book on the stored *protocol* connection *conn* after its first
        *upto* rows, as the replay engine rebuilds it; None where it is not valid."""
        ...

    def book_by(
        self, venue: str, protocols: tuple[str, str], symbol: str, at_ns: int, depth: int
    ) -> tuple[list[bytes], Book | None] | None:
        """The rows received up to *at_ns* of the ``(websocket, REST)`` *protocols* of the
        connection that received *symbol*'s last websocket row by then, in recorded
        order, and the book they rebuild (None where it is not valid); None before any."""
        ...


class Refused(Exception):
    """A request refused as the connection opens: the server answers with *reply*."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.status}: {reply.body}")
        self.reply = reply


@dataclass(frozen=True)
class Priced:
    """A REST answer that weighs *weight* against the venue's minute: the server counts
    it and calls *answer* only when the minute's weight allows."""

    weight: int
    answer: Callable[[], Reply]


@dataclass(frozen=True)
class HttpRoute:
    """A REST path and its handler ``(store, match, query) -> Reply | Priced``."""

    pattern: re.Pattern[str]
    answer: Callable[[Store, re.Match[str], str], Reply | Priced]


@dataclass
class Client:
    """One client connection of a websocket route.

    ``protocol`` and ``symbols`` pick the stored connections it replays, and
    ``key`` tells apart routes that replay the same ones differently (each
    has its own next connection). ``symbols`` may be left None until the
    client's first requests say them (:meth:`first`).
    """

    protocol: str
    symbols: tuple[str, ...] | None
    key: Hashable = None

    def first(self, text: str | bytes) -> list[str]:
        """A client message before ``symbols`` are known: the replies to it (it may set
        ``symbols``, or raise :class:`~tickrec.sim.feed.Close`)."""
        raise NotImplementedError(f"{self.protocol} takes its symbols from its path")


@dataclass
class Whole(Client):
    """Every stored row of the connection, client messages unread once it runs."""

    def opening(self, store: Store, conn: Rows) -> tuple[list[bytes], list[bytes]] | None:
        """For a connection open at ``--from``: the frames it opens with (the book its
        rows before rebuild) and the stored frames after, as sent; None: as stored."""
        return None


@dataclass
class Streams(Client):
    """The rows of the client's :attr:`streams` (and those of no stream), the set
    changed by its requests while the replay runs."""

    streams: frozenset[str] = frozenset()

    def stream_of(self, payload: bytes) -> str | None:
        """The stream a stored row belongs to; None: the connection's own."""
        raise NotImplementedError

    def as_sent(self, payload: bytes, stream: str) -> bytes:
        """A stored row of *stream*, as this route sends it (by default, as stored)."""
        return payload

    def request(self, text: str | bytes, recorded: frozenset[str]) -> str:
        """The reply to a client request while the replay runs; it may change
        :attr:`streams`, within *recorded* (the stored connection's streams)."""
        raise NotImplementedError


#: What a stored received row of a :class:`Dialogue` is: ``("reply", request id)``,
#: ``("stream", stream key)`` or ``("other", None)``.
RowKind = tuple[str, Any]


@dataclass(frozen=True)
class BookAsk:
    """A request answered from the book rebuilt where it was asked."""

    rid: object
    symbol: str
    limit: int


@dataclass
class Dialogue(Client):
    """Stored replies answering the client's requests, stream rows by its subscriptions.

    The server keeps the conversation's time: which stored reply answers
    which client request, the wait for a request, the pacing. The venue reads
    the messages and keeps the subscriptions.
    """

    def sent_request(self, payload: bytes) -> tuple[object, Hashable, list[str]] | None:
        """A stored sent row: its request ``(id, key, stream names it subscribes)``, or
        None if it is not a request."""
        raise NotImplementedError

    def kind(self, payload: bytes) -> RowKind:
        """What a stored received row is."""
        raise NotImplementedError

    def request(self, text: str | bytes) -> tuple[Hashable | None, Any]:
        """A client message: the key a stored reply to it has (None: none can), and the
        request as read, for :meth:`claimed` or :meth:`unanswered`."""
        raise NotImplementedError

    def claimed(self, request: Any, payload: bytes) -> bytes:
        """The stored reply *payload* as sent to the client's *request* (its id); a
        subscription it confirms holds from now."""
        raise NotImplementedError

    def unanswered(self, request: Any, recorded: frozenset[str], clock_ns: int) -> bytes | BookAsk:
        """The reply to a request no stored reply answers; *recorded*: the stream names
        the stored connection subscribed to."""
        raise NotImplementedError

    def book_reply(self, store: Store, conn: Rows, upto: int, ask: BookAsk) -> bytes:
        """The reply to *ask* from the book of the stored connection's first *upto* rows
        (called off the event loop)."""
        raise NotImplementedError

    def wants(self, key: Hashable) -> bool:
        """The client is subscribed to stream rows of *key* now."""
        raise NotImplementedError

    @property
    def subscribed_any(self) -> bool:
        """The client is subscribed to some stream now."""
        raise NotImplementedError


@dataclass(frozen=True)
class TardisFacts:
    """How tardis-machine's exchange-native endpoints (``/replay``, ``/ws-replay``) name
    a venue's stored messages; the venue is the ``exchange`` they take."""

    channels: Mapping[str, Mapping[str, str]]
    """Per websocket protocol, the tardis channel of each message kind (the header's
    ``kind``); a kind not listed is never sent."""
    subscriptions: Callable[[str | bytes], Iterable[tuple[str, object]]]
    """The ``(channel, symbols)`` a ``/ws-replay`` client's message subscribes to."""


@dataclass(frozen=True)
class WsRoute:
    """A websocket path and the :class:`Client` of each client ``(store, match, query)``;
    it may raise :class:`Refused`."""

    pattern: re.Pattern[str]
    open: Callable[[Store, re.Match[str], str], Client]
