"""What every venue declares (:class:`Venue`, :class:`Wire`), and the header of a raw message.

A :class:`Header` is what a recorder needs to know about a message before it
stores it, read without interpreting the book: the exchange time, the venue
sequence number, the symbol, the message kind, and whether the message was
well formed. A message that cannot be read still gets a header (with
``problem`` set), because a malformed message is data and is stored raw.

A venue is one folder under :mod:`tickrec.venues` whose ``__init__`` holds
a :class:`Venue`: its name, its wire protocols and how captured URLs map to
them. The engines look a protocol up by the ``protocol`` column's value
(:data:`tickrec.venues.WIRES`) and never name a venue. A replay stream is
named by module and class (``"pkg.mod:Class"``) and loaded only when a
replay asks for it, so reading the registry compiles nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

__all__ = [
    "Action",
    "Classify",
    "Fail",
    "FetchBook",
    "Gap",
    "GapAt",
    "Header",
    "Levels",
    "Recording",
    "Resync",
    "Send",
    "Session",
    "Venue",
    "Wire",
]


class Header(NamedTuple):
    """What a codec reads from one payload.

    ``symbol`` is set only when the message itself names the one symbol it
    belongs to (Gemini v2 ``l2_updates`` and ``trade``); ``None`` means the
    message belongs to the connection as a whole (docs/architecture.md section 2.1: it goes to
    every symbol partition the connection serves). ``problem`` is ``None`` for
    a well-formed, expected message, else a short description of what is wrong.
    ``first_seq`` is the first sequence number a message covers when it
    covers a range ending at ``venue_seq`` (the current API's ``U``); it is
    read for gap checks and not stored.
    """

    kind: str
    exch_ns: int | None = None
    venue_seq: int | None = None
    symbol: str | None = None
    problem: str | None = None
    first_seq: int | None = None


class Gap(NamedTuple):
    """A break in a venue's sequence numbers or update ids: *expected* was due, *got* arrived."""

    expected: int
    got: int


#: A protocol's reader of the ``(price, size)`` values a parsed message gives the book
#: (levels and trades), as sent: the values the replayer turns into exact pairs.
Levels = Callable[[Any], Iterable[tuple[object, object]]]

#: A venue's reader of a captured URL: ``(protocol, symbol or None)`` from the URL's path
#: segments (already checked to be plain) and its query, or None when the venue has no
#: such endpoint.
Classify = Callable[[Sequence[str], str], "tuple[str, str | None] | None"]


@dataclass(frozen=True)
class Wire:
    """One wire protocol of a venue: the value of the contract's ``protocol`` column.

    A websocket protocol has a :attr:`header` codec and a replay :attr:`stream`
    (``"module:Class"``, a :class:`tickrec.events.VenueStream`). A REST book
    protocol has a :attr:`book` reader instead: a module with
    ``parse_book(obj)`` and, optionally, a compiled ``scan_book(data, start, end)``.
    """

    name: str
    header: Callable[[str | bytes], Header] | None = None
    levels: Levels | None = None
    stream: str | None = None
    book: str | None = None
    syncs: str | None = None
    """For a REST protocol whose replies are the source of a book: the websocket protocol
    whose stream a sync snapshot (a ``rest`` row with the ``conn_id`` of its connection)
    goes to."""
    conflated: bool = False
    """Diffs are conflated per interval: the rebuilt book skips the states between two
    frames, so a REST check taken in between matches none of them and is not compared."""

    names_symbol: bool = True
    """Its messages name their symbol (Gemini v1's do not: the URL does)."""

    @property
    def short(self) -> str:
        """The name without the venue (``v1`` of ``gemini.v1``), as ``--protocol`` takes it."""
        return self.name.partition(".")[2]

    @property
    def decoder(self) -> str | None:
        """The module whose ``DECODER_VERSION`` keys the normalized cache for this protocol."""
        spec = self.stream or self.book
        return None if spec is None else spec.partition(":")[0]


class FetchBook(NamedTuple):
    """Take a REST book snapshot of *symbol* for this connection (a sync snapshot)."""

    symbol: str


class GapAt(NamedTuple):
    """The book of *symbol* (None: of every symbol of the connection) broke at *gap*:
    record a ``gap`` event."""

    symbol: str | None
    gap: Gap


class Resync(NamedTuple):
    """The connection must be replaced: open a successor, then retire this one."""

    why: str


class Send(NamedTuple):
    """Send these text messages on the connection, in order (each stored as ``ws_sent``)."""

    messages: tuple[str, ...]


class Fail(NamedTuple):
    """The venue refused what the run needs: record an ``error`` event with *detail*,
    close the connection with *why*, and stop the run with *error*; no retry helps."""

    why: str
    error: str
    detail: Mapping[str, object]


#: What a :class:`Session` asks its connection to do; the connection decides nothing.
Action = FetchBook | GapAt | Resync | Send | Fail


class Session(Protocol):
    """A venue's view of one websocket connection of a recording, from connect to close.

    Pure: it reads headers and REST bodies and answers with :data:`Action` values,
    which the recorder's connection carries out.
    """

    def opening(self) -> Sequence[Action]:
        """What to do right after connecting."""
        ...

    def message(self, header: Header, payload: str | bytes) -> Sequence[Action]:
        """What a received message (its header, and the payload as stored) asks for."""
        ...

    def idle(self) -> Sequence[Action]:
        """The connection has been quiet for a while: a keepalive, if the venue wants one."""
        ...

    def book(self, symbol: str, body: str) -> Sequence[Action]:
        """A sync snapshot of *symbol* arrived (stored already); what now."""
        ...

    def refresh(self) -> Sequence[Action]:
        """Take a fresh book of every symbol (right after midnight)."""
        ...

    @property
    def booked(self) -> frozenset[str]:
        """The symbols whose book is whole now."""
        ...


@dataclass(frozen=True)
class Recording:
    """How a venue's websocket protocol is recorded: each connection's life is a
    :class:`Session`, and REST books are taken beside it."""

    protocol: str
    """The websocket protocol recorded (``--protocol`` takes its short name)."""
    url: str
    """The websocket base URL."""
    rest_url: str
    """The REST base URL."""
    stream_url: Callable[[str, Sequence[str]], str]
    """The URL of the stream of some symbols, from the base URL."""
    session: Callable[[tuple[str, ...]], Session]
    """A new :class:`Session` for a connection of these symbols."""
    rest_protocol: str
    """The ``protocol`` of its stored REST rows."""
    book_url: Callable[[str, str, int], str]
    """``(base, symbol, depth)``: the URL of a book snapshot; *depth* 0 is the deepest."""
    book_weight: Callable[[int], int]
    """The request weight of a snapshot of *depth* levels (0: the deepest)."""
    symbols_url: Callable[[str], str]
    """The URL of the list of symbols, from the REST base URL."""
    parse_symbols: Callable[[bytes], Iterable[str] | None]
    """The symbols a list reply names (None, or ``ValueError``, if it is not one)."""
    weight_per_minute: int | None
    """The REST request weight the venue allows a client per minute (None: no budget)."""
    rest_min_gap: float
    """Seconds between two REST requests, at least (the weight paces them too)."""
    symbols_weight: int = 0
    """The request weight of the list of symbols."""
    weight_header: str | None = None
    """The reply header that gives the weight spent in the current minute, if any."""
    weight_refusal: Mapping[str, object] | None = None
    """The body of the venue's 429 past the minute's weight."""
    messages_per_s: int = 0
    """Client messages a second a connection may send (0: no limit); more closes it."""
    lifetime: float = 0.0
    """Seconds a websocket connection may live before the venue closes it (0: no limit)."""
    per_symbol: bool = False
    """One connection per symbol (its URL names it), instead of one for all."""
    book_on_connect: bool = False
    """The book comes with the connect itself: a successor held for a handover waits
    to connect until it is released."""
    refreshes: bool = True
    """Right after midnight the open connection takes fresh books (:meth:`Session.refresh`);
    False: new connections take over at midnight (make-before-break)."""

    @property
    def short(self) -> str:
        """The protocol's name without the venue, as ``--protocol`` takes it."""
        return self.protocol.partition(".")[2]


@dataclass(frozen=True)
class Venue:
    """A venue's facts, as the engines ask for them."""

    name: str
    wires: tuple[Wire, ...]
    hosts: frozenset[str]
    """Hosts of captured URLs that are this venue, exact lower-case names."""
    classify: Classify
    sim: str | None = None
    """The module of its simulator routes (``WS_ROUTES`` and ``REST``), loaded by the
    simulator only."""
    serve: str | None = None
    """The module of its ``tickrec serve`` routes (``WS_ROUTES``, ``HTTP`` and ``ROUTES``,
    :mod:`tickrec.serving`), loaded by the replay server only."""
    kernels: Mapping[str, int] = field(default_factory=dict)
    """The compiled (numba) kernels that Python calls, as ``module.function``, with
    about how many seconds each takes to compile on one core."""

    recordings: tuple[Recording, ...] = ()
    """How ``tickrec record`` records each protocol it can, the default first."""

    @property
    def streams(self) -> tuple[Wire, ...]:
        """The websocket protocols (those with a replay stream), the default first."""
        return tuple(w for w in self.wires if w.stream is not None)

    def recording(self, short: str = "") -> Recording | None:
        """How protocol *short* is recorded (default: the first), or None."""
        if not short:
            return self.recordings[0] if self.recordings else None
        return next((r for r in self.recordings if r.short == short), None)

    def wire(self, short: str) -> Wire | None:
        """The protocol called *short* (``v1``), or None."""
        return next((w for w in self.wires if w.short == short), None)
