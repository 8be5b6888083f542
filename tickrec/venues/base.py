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
from typing import Any, NamedTuple

__all__ = ["Classify", "Gap", "Header", "Levels", "Venue", "Wire"]


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
    kernels: Mapping[str, int] = field(default_factory=dict)
    """The compiled (numba) kernels that Python calls, as ``module.function``, with
    about how many seconds each takes to compile on one core."""

    @property
    def streams(self) -> tuple[Wire, ...]:
        """The websocket protocols (those with a replay stream), the default first."""
        return tuple(w for w in self.wires if w.stream is not None)

    def wire(self, short: str) -> Wire | None:
        """The protocol called *short* (``v1``), or None."""
        return next((w for w in self.wires if w.short == short), None)
