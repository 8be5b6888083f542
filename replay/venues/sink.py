"""The interface between venue decoders and the partition decoder.

A venue stream (one per connection) reads parsed messages and reports what
they mean through an :class:`EventSink`; the sink knows the current row's
receive time and index, so decoders stay free of bookkeeping.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["EventSink", "VenueStream"]


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

    def seq_break(self, prev_ts: int, expected: int, got: int) -> None:
        """The current message breaks the venue's sequence (it was not *expected*)."""

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
