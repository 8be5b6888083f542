"""The interface between venue decoders and the partition decoder.

A venue stream (one per connection) reads parsed messages and reports what
they mean through an :class:`EventSink`; the sink knows the current row's
receive time and index, so decoders stay free of bookkeeping.

A stream may also be a :class:`RunDecoder`: it then decodes whole runs of
received rows straight from the payload column's buffers (:class:`RawRows`)
and hands over columnar :class:`Batch` blocks, declining any message it is
not sure of; the partition decoder takes that message on the general path
and carries on.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "BREAK_ROWS",
    "OP_ROWS",
    "TRADE_ROWS",
    "Batch",
    "EventSink",
    "RawRows",
    "RunDecoder",
    "RunSink",
    "VenueStream",
]

I64 = npt.NDArray[np.int64]

#: Row layout of :attr:`Batch.ops`, one column per operation. Prices and
#: sizes are exact ``(mantissa, decimals)`` pairs: ``px / 10**px_dec``.
OP_ROWS = ("ts", "grp", "op", "side", "px", "px_dec", "sz", "sz_dec", "exch", "snap")
#: Row layout of :attr:`Batch.trades`, one column per trade.
TRADE_ROWS = ("ts", "grp", "exch", "px", "px_dec", "sz", "sz_dec", "side", "tid", "hist")
#: Row layout of :attr:`Batch.breaks`, one column per sequence break.
BREAK_ROWS = ("prev_ts", "ts", "grp", "expected", "got")


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
    grp0: int
    """Partition row index of row 0."""


class Batch(NamedTuple):
    """Decoded events of consecutive rows in columns (layouts :data:`OP_ROWS` and others)."""

    ops: I64
    trades: I64
    breaks: I64
    counts: dict[str, int]
    """Messages by kind, as :meth:`VenueStream.on_message` would have returned them."""
    sequence: str
    """The venue's number that ``breaks`` are breaks of (as in :meth:`EventSink.seq_break`)."""


class RunSink(EventSink, Protocol):
    """An :class:`EventSink` that also takes decoded blocks."""

    def extend(self, batch: Batch) -> None:
        """Append the events of a block of rows of the current connection."""


@runtime_checkable
class RunDecoder(Protocol):
    """A stream that can decode runs of received rows without parsing each into objects."""

    def decode_run(self, out: RunSink, rows: RawRows, start: int, stop: int) -> int:
        """Decode the received rows ``start:stop`` of this connection, in order.

        Return the first row not decoded: *stop*, or a row the caller must
        decode on the general path (``on_message``) before calling again from
        the row after it. The result must equal ``on_message`` row by row.
        """
        ...
