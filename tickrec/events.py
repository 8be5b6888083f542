"""The normalized event contract: what a venue's replay stream says about a book.

This is the shared layer between the venues and the replay engine. A venue
stream (one per connection, :class:`VenueStream`) reads parsed messages and
reports what they mean through an :class:`EventSink`: set a level
(``OP_SET``), or a control operation, ``OP_CLEAR`` (forget the book: new
connection, lost connection, start of a snapshot), ``OP_INVALID`` (the book
can no longer be trusted: a sequence break) and ``OP_VALID`` (a snapshot is
complete, or a stream proved continuous again); trades; and sequence
breaks. The sink knows the current row's receive time and index, so
decoders stay free of bookkeeping. A venue imports this module, never the
replay engine.

A stream may also be a :class:`RunDecoder`: it then decodes whole runs of
received rows straight from the payload column's buffers (:class:`RawRows`)
and appends the events to the sink's :class:`Columns` itself, declining any
message it is not sure of; the partition decoder takes that message on the
general path and carries on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "ASK",
    "BID",
    "BREAK_COLUMNS",
    "CARRIED",
    "NO_ID",
    "NO_TS",
    "OP_CLEAR",
    "OP_COLUMNS",
    "OP_INVALID",
    "OP_SET",
    "OP_TYPES",
    "OP_VALID",
    "TRADE_COLUMNS",
    "TRADE_TYPES",
    "BookPairs",
    "Columns",
    "EventSink",
    "Levels",
    "RawRows",
    "RunDecoder",
    "RunSink",
    "SyncedStream",
    "VenueStream",
]

I64 = npt.NDArray[np.int64]

#: Book operations (the ``op`` column).
OP_SET = 0
OP_CLEAR = 1
OP_INVALID = 2
OP_VALID = 3

#: Sides (the ``side`` column of book operations).
BID = 0
ASK = 1

#: ``grp`` of the book carried in from the previous date: before every row.
CARRIED = -1

#: Null marker for an absent exchange time.
NO_TS = int(np.iinfo(np.int64).min)
#: Null marker for an absent trade id.
NO_ID = int(np.iinfo(np.int64).min)

#: Columns of book operations. Prices and sizes are exact ``(mantissa,
#: decimals)`` pairs: ``px / 10**px_dec``.
OP_COLUMNS = ("ts", "grp", "op", "side", "px", "px_dec", "sz", "sz_dec", "exch", "snap")
#: Their types. Flags, sides and decimal counts are ``int8``: no value has more
#: than :data:`tickrec.values.MAX_DECIMALS` decimals.
OP_TYPES = ("q", "q", "b", "b", "q", "b", "q", "b", "q", "b")
#: Columns of trades.
TRADE_COLUMNS = ("ts", "grp", "exch", "px", "px_dec", "sz", "sz_dec", "side", "tid", "hist")
#: Their types (as :data:`OP_TYPES`).
TRADE_TYPES = ("q", "q", "q", "q", "b", "q", "b", "b", "q", "b")
#: Columns of sequence breaks, all ``int64``.
BREAK_COLUMNS = ("prev_ts", "ts", "grp", "expected", "got")


#: A REST book reply's ``(bids, asks)``, each a list of ``(price, size)`` strings as sent,
#: best first: what a venue's ``parse_book`` gives.
Levels = tuple[list[tuple[str, str]], list[tuple[str, str]]]


class BookPairs(NamedTuple):
    """The levels of one REST book reply as exact ``(mantissa, decimals)`` pairs: bids, then
    asks, best first; what a venue's compiled ``scan_book`` gives."""

    px: I64
    px_dec: I64
    sz: I64
    sz_dec: I64
    n_bids: int


class Columns:
    """Typed columns of equal length, appended to row by row or in blocks.

    :attr:`arrays` are the columns at their full capacity; rows ``[:n]`` are
    filled, and a compiled decoder may write the rows past them directly
    (after :meth:`reserve`) and then advance :attr:`n`. Growing allocates new
    arrays (``np.empty``: for large ones numpy asks the kernel for huge
    pages, much faster to touch first) and copies only the filled rows;
    capacity that is never written is never touched, so it costs no memory.

    Rows may also be copied in on another thread (:meth:`extend_later`);
    the arrays are not replaced nor handed out before that copy is done.
    """

    def __init__(self, names: Sequence[str], codes: Sequence[str], capacity: int = 1 << 16) -> None:
        """*codes* are the columns' array typecodes (``"q"`` int64, ``"i"`` int32, ``"b"`` int8)."""
        self.names = tuple(names)
        self.arrays = tuple(np.empty(capacity, np.dtype(c)) for c in codes)
        self.n = 0
        self._copying: Future[None] | None = None

    @property
    def capacity(self) -> int:
        return len(self.arrays[0])

    def reserve(self, m: int) -> None:
        """Make room for at least *m* more rows (at least doubling the capacity if it grows)."""
        need = self.n + m
        if need > self.capacity:
            self.set_capacity(max(need, 2 * self.capacity))

    def set_capacity(self, capacity: int) -> None:
        """Grow or shrink the capacity to *capacity* rows (at least the filled rows)."""
        cap = max(capacity, self.n)
        if cap != self.capacity:
            self._settle()
            grown = tuple(np.empty(cap, col.dtype) for col in self.arrays)
            for new, old in zip(grown, self.arrays, strict=True):
                new[: self.n] = old[: self.n]
            self.arrays = grown

    def append(self, *values: int) -> None:
        """Append one row."""
        self.reserve(1)
        n = self.n
        for col, value in zip(self.arrays, values, strict=True):
            col[n] = value
        self.n = n + 1

    def extend(self, m: int, *values: Any) -> None:
        """Append *m* rows; each value is a column block of *m* rows or one value for all."""
        self.reserve(m)
        n = self.n
        for col, value in zip(self.arrays, values, strict=True):
            col[n : n + m] = value
        self.n = n + m

    def extend_later(self, other: Columns, submit: Callable[..., Future[None]]) -> None:
        """Append the filled rows of *other* (columns of the same types), copied on another thread.

        ``submit(fn)`` runs ``fn()`` there (``Executor.submit``). The rows
        count as appended at once; *other* must stay as it is until the copy
        has run (on a one-thread executor: until the next task). The copy
        touches the rows' memory for the first time, which is slow, so it is
        worth doing beside other work.
        """
        m = other.n
        self.reserve(m)
        at = self.n
        self.n = at + m
        targets, sources = self.arrays, other.arrays

        def copy() -> None:
            for dst, src in zip(targets, sources, strict=True):
                dst[at : at + m] = src[:m]

        self._settle()
        self._copying = submit(copy)

    def take(self) -> dict[str, npt.NDArray[Any]]:
        """Each column as one array, trimmed to its length; the columns start over, empty."""
        self._settle()
        out = {}
        for name, col in zip(self.names, self.arrays, strict=True):
            # A realloc: shrinking a large array gives back the unused pages, without a copy.
            col.resize(self.n, refcheck=False)
            out[name] = col
        self.arrays = tuple(np.empty(1 << 16, col.dtype) for col in self.arrays)
        self.n = 0
        return out

    def _settle(self) -> None:
        """Wait for rows being copied in on another thread."""
        if self._copying is not None:
            copying, self._copying = self._copying, None
            copying.result()


class EventSink(Protocol):
    """Where a venue stream writes the events of the current row."""

    def change(self, side: int, price: str, size: str, exch: int | None, snapshot: bool) -> None:
        """Set level *price* on *side* to the absolute *size* (``"0"`` removes it)."""

    def control(self, op: int) -> None:
        """A control operation (``OP_CLEAR``, ``OP_INVALID``, ``OP_VALID``)."""

    def trade(
        self,
        price: str,
        size: str,
        side: int,
        tid: int | None,
        exch: int | None,
        historical: bool,
    ) -> None:
        """A trade; *side* is the taker side (+1 buy, -1 sell, 0 unknown)."""

    def seq_break(self, prev_ts: int, expected: int, got: int, sequence: str) -> None:
        """The current message breaks the venue's sequence (it was not *expected*).

        *sequence* names the venue's number that broke (``socket_sequence``, ``U``).
        """

    @property
    def ts(self) -> int:
        """Receive time (ns) of the current row."""
        ...


class VenueStream(Protocol):
    """Decoder state of one connection of one protocol."""

    def __init__(self, symbol: str) -> None: ...

    def on_message(self, out: EventSink, msg: Any, venue_seq: int | None) -> str:
        """Decode one received message; return its kind for the counts."""
        ...

    def on_sent(self, out: EventSink, msg: Any) -> None:
        """Note a message the recorder sent on this connection."""
        ...

    def on_undecodable(self) -> str:
        """Note a received message that could not be parsed.

        The partition decoder marks the book invalid there; the stream
        decides when it may be trusted again. Returns the gap detail saying
        so in the venue's terms.
        """
        ...

    def sync_state(self) -> dict[str, int] | None:
        """What the stream needs to go on with its book on the next date (integers only),
        or None when it is not in sync (docs/architecture.md section 2.5)."""
        ...

    def resume(self, state: dict[str, int]) -> None:
        """Go on from a :meth:`sync_state` of the same connection on the previous date."""
        ...


@runtime_checkable
class SyncedStream(VenueStream, Protocol):
    """A stream whose book is built *from* REST snapshots (docs/architecture.md section 2.6)."""

    def on_rest(self, out: EventSink, msg: Any) -> str:
        """A sync snapshot of this connection (a ``rest`` row with its ``conn_id``), parsed;
        return its kind for the counts (``"bad_rest"`` for a reply that is no snapshot)."""
        ...


class RawRows(NamedTuple):
    """Rows of one record batch, as a :class:`RunDecoder` reads them (no copies)."""

    data: npt.NDArray[np.uint8]
    """The payload column's bytes; row ``r`` is ``data[offsets[r]:offsets[r + 1]]``."""
    offsets: npt.NDArray[Any]
    recv: I64
    """Replay time of each row (the running maximum of ``recv_ts``)."""
    venue_seq: I64
    venue_seq_ok: npt.NDArray[np.bool_]
    """False where ``venue_seq`` is null."""
    received: npt.NDArray[np.bool_]
    """True for received messages; a run may have others among them (REST replies), skipped."""
    grp0: int
    """Partition row index of row 0."""


class RunSink(EventSink, Protocol):
    """An :class:`EventSink` whose columns a :class:`RunDecoder` appends to directly."""

    ops: Columns
    """Book operations (:data:`OP_COLUMNS`)."""
    trades: Columns
    """Trades (:data:`TRADE_COLUMNS`)."""

    def add_run(self, breaks: Columns, counts: dict[str, int], sequence: str) -> None:
        """Note the sequence breaks (:data:`BREAK_COLUMNS`) and message counts of a decoded run.

        *sequence* names the venue's number that broke (as in :meth:`EventSink.seq_break`).
        """


@runtime_checkable
class RunDecoder(Protocol):
    """A stream that can decode runs of received rows without parsing each into objects."""

    def decode_run(self, out: RunSink, rows: RawRows, start: int, stop: int) -> int:
        """Decode the received rows among ``start:stop`` (:attr:`RawRows.received`), in order.

        They are all of this connection. Return the first row not decoded:
        *stop*, or a row the caller must decode on the general path
        (``on_message``) before calling again from the row after it. The
        result must equal ``on_message`` row by row.
        """
        ...
