"""Gemini market data v1 (docs/venues/gemini.md section 1): one symbol per connection.

Every frame carries ``socket_sequence``, a per-connection counter that starts
at 0 and goes up by exactly one on every message, heartbeats included; a
break means messages were lost and the client must reconnect (docs/venues/gemini.md
section 1, "Sequencing and gaps"). ``timestampms`` is the exchange time of an
update; the first (initial) update may lack it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import msgspec
import orjson

from tickrec.venues._json import INT64_MAX, as_int64, ms_to_ns
from tickrec.venues.base import Gap, Header

__all__ = [
    "PROTOCOL",
    "SequenceTracker",
    "header",
    "initial_update",
    "levels",
    "renumbered",
    "stream_url",
]

PROTOCOL = "gemini.v1"

_KINDS = frozenset({"update", "heartbeat"})


def stream_url(base: str, symbol: str) -> str:
    """The v1 market data URL of *symbol*, with 5 s heartbeats (docs/venues/gemini.md section 1)."""
    return f"{base.rstrip('/')}/v1/marketdata/{symbol}?heartbeat=true"


class _Frame(msgspec.Struct):
    """The top-level fields of a well-formed v1 frame that its header needs.

    The decoder checks that the whole frame is one JSON object and that these
    fields have their documented types, but builds no objects for the rest
    (the events): the recorder reads a header per message, and v1 carries
    every engine event, so this is its hottest path.
    """

    type: str
    socket_sequence: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
    timestampms: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX // 1_000_000)] | None = None


class _AnyFrame(msgspec.Struct):
    """The same fields, of any type: read to say what is wrong with a frame."""

    type: Any = None
    socket_sequence: Any = None
    timestampms: Any = None


_read_frame = msgspec.json.Decoder(_Frame).decode
_read_any = msgspec.json.Decoder(_AnyFrame).decode


def header(payload: str | bytes) -> Header:
    """Read kind, ``timestampms`` (as ns) and ``socket_sequence`` of a v1 frame."""
    try:
        frame = _read_frame(payload)
    except ValueError:  # msgspec.DecodeError, or a str holding a lone surrogate
        return _problem(payload)
    if frame.type not in _KINDS:
        return _problem(payload)
    ms = frame.timestampms
    return Header(frame.type, None if ms is None else ms * 1_000_000, frame.socket_sequence)


def _problem(payload: str | bytes) -> Header:
    """The header of a frame that is not a well-formed v1 frame, with what is wrong."""
    try:
        frame = _read_any(payload)
    except ValueError as exc:
        return Header(kind="", problem=f"not a JSON object: {exc}")
    kind = frame.type
    seq = as_int64(frame.socket_sequence)
    exch_ns = ms_to_ns(frame.timestampms)
    if not isinstance(kind, str) or kind not in _KINDS:
        return Header(
            kind=str(kind),
            exch_ns=exch_ns,
            venue_seq=seq,
            problem=f"unexpected message type {kind!r}",
        )
    if seq is None:
        return Header(kind=kind, exch_ns=exch_ns, problem="no int64 socket_sequence")
    return Header(kind=kind, exch_ns=exch_ns, venue_seq=seq)  # only timestampms was off


def levels(msg: Any) -> Iterator[tuple[object, object]]:
    """``(price, size)`` of each change on a side and each trade of an ``update``."""
    if not isinstance(msg, dict) or msg.get("type") != "update":
        return
    for e in msg.get("events") or ():
        kind = e.get("type")
        if kind == "change" and e.get("side") in ("bid", "ask"):
            yield e.get("price"), e.get("remaining")
        elif kind == "trade":
            yield e.get("price"), e.get("amount")


class SequenceTracker:
    """The v1 sync rule: each message's ``socket_sequence`` is the one after the last.

    The counter starts at 0 on every connection (docs/venues/gemini.md
    section 1), so a recording connection makes a tracker that expects 0. A
    replay may start inside a connection (a day carried over midnight, a
    part that starts mid-connection): its tracker expects ``None``, and the
    first number seen starts the count. The recorder's session and the
    replayer's stream both call it; the replayer's compiled scanner
    (:mod:`tickrec.venues.gemini.v1_scan`) is the same rule over many rows.
    """

    __slots__ = ("expected",)

    def __init__(self, expected: int | None = 0) -> None:
        self.expected = expected

    def check(self, venue_seq: int) -> Gap | None:
        """Record *venue_seq*; return the gap if it is not the one expected."""
        expected, self.expected = self.expected, venue_seq + 1
        return None if expected is None or venue_seq == expected else Gap(expected, venue_seq)


Levels = Sequence[tuple[str, str]]
_SEQUENCE = re.compile(rb'"socket_sequence":-?[0-9]+')


def initial_update(
    bids: Levels, asks: Levels, event_id: int | None, time_ms: int | None, sequence: int = 0
) -> bytes:
    """The first frame of a connection: the whole book as ``change`` events with reason
    ``initial`` (*bids* and *asks* as ``(price, size)`` texts, best first), key order as
    in the real capture."""
    events = [
        {
            "type": "change",
            "side": side,
            "price": p,
            "remaining": q,
            "delta": q,
            "reason": "initial",
        }
        for side, levels in (("bid", bids), ("ask", asks))
        for p, q in levels
    ]
    head: dict[str, object] = {"type": "update", "eventId": event_id}
    if time_ms is not None:
        head |= {"timestamp": time_ms // 1000, "timestampms": time_ms}
    return orjson.dumps({**head, "socket_sequence": sequence, "events": events})


def renumbered(payload: bytes, sequence: int) -> bytes:
    """*payload* with its ``socket_sequence`` set to *sequence*, every other byte kept."""
    return _SEQUENCE.sub(b'"socket_sequence":%d' % sequence, payload, count=1)
