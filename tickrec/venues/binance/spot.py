"""The ``binance.spot`` protocol: one combined-stream connection for many symbols.

A connection to ``/stream?streams=btcusdt@depth@100ms/btcusdt@trade/...``
(stream names are lower case) receives every frame wrapped as
``{"stream": name, "data": event}``; a raw ``/ws/<stream>`` connection
receives the bare events. The events read here:

- ``depthUpdate``: a diff, ``U`` the first update id it covers, ``u`` the last;
- ``trade`` and ``aggTrade``: trades, ``p`` and ``q``;
- ``bookTicker`` (no ``e``; ``u``, ``b``, ``B``, ``a``, ``A``): the best
  levels at update id ``u``;
- ``serverShutdown``: maintenance is coming, reconnect at once;
- a reply to a live request, ``{"result": ..., "id": n}``.

``E`` is in milliseconds (microseconds on a ``timeUnit=MICROSECOND``
connection: the unit is read from the digit count). Update ids are exact
Python ints (orjson reads JSON integers exactly).

A client may send at most :data:`MAX_INCOMING_PER_S` messages a second on a
connection (``SUBSCRIBE`` and the like); Binance closes a connection that
sends more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tickrec.venues._json import INT64_MAX, as_int64, epoch_ns, load_object
from tickrec.venues.base import Header

__all__ = [
    "MAX_INCOMING_PER_S",
    "PROTOCOL",
    "depth_stream",
    "header",
    "kind_of",
    "levels",
    "stream_url",
    "trade_stream",
    "unwrap",
]

PROTOCOL = "binance.spot"
#: Client messages a second a connection may send.
MAX_INCOMING_PER_S = 5


def depth_stream(symbol: str) -> str:
    """``{symbol}@depth@100ms``: the diffs of one symbol, every 100 ms."""
    return f"{symbol.strip().lower()}@depth@100ms"


def trade_stream(symbol: str) -> str:
    """``{symbol}@trade``: every trade of one symbol."""
    return f"{symbol.strip().lower()}@trade"


def stream_url(base: str, symbols: Sequence[str]) -> str:
    """The combined stream of the diffs and trades of *symbols*."""
    streams = "/".join(f"{depth_stream(s)}/{trade_stream(s)}" for s in symbols)
    return f"{base.rstrip('/')}/stream?streams={streams}"


def unwrap(obj: dict[str, Any]) -> dict[str, Any]:
    """The event of a combined-stream frame (``data``), or the frame itself if bare."""
    data = obj.get("data")
    return data if isinstance(data, dict) and isinstance(obj.get("stream"), str) else obj


def kind_of(event: dict[str, Any]) -> str:
    """The kind of an (unwrapped) event by its keys; ``""`` if none fits."""
    e = event.get("e")
    if isinstance(e, str):
        return e
    if "id" in event and "result" in event:
        return "reply"
    if "u" in event and "b" in event and "a" in event:
        return "bookTicker"
    return ""


_KNOWN = frozenset({"depthUpdate", "trade", "aggTrade", "bookTicker", "serverShutdown", "reply"})


def header(payload: str | bytes) -> Header:
    """Read kind, ``E`` (as ns), ``U``/``u`` and ``s`` of a frame."""
    obj, problem = load_object(payload)
    if obj is None:
        return Header(kind="", problem=problem)
    event = unwrap(obj)
    stream = obj.get("stream")
    if isinstance(stream, str) and stream.endswith("@depthSnapshot") and event is not obj:
        # A REST depth snapshot given in the stream (Tardis's generated frames): the book.
        last = as_int64(event.get("lastUpdateId"))
        if last is None:
            return Header(kind="snapshot", problem="depthSnapshot without an int64 lastUpdateId")
        return Header(kind="snapshot", venue_seq=last, symbol=stream.partition("@")[0].upper())
    kind = kind_of(event)
    if kind in ("reply", "serverShutdown"):
        return Header(kind=kind)
    e = as_int64(event.get("E"))
    exch_ns = None if e is None or epoch_ns(e) > INT64_MAX else epoch_ns(e)
    s = event.get("s")
    symbol = s.upper() if isinstance(s, str) and s else None
    if kind not in _KNOWN:
        return Header(kind=kind, exch_ns=exch_ns, symbol=symbol, problem="unknown message")
    if symbol is None:
        return Header(kind=kind, exch_ns=exch_ns, problem=f"{kind} without a symbol")
    last = as_int64(event.get("u"))
    if kind == "bookTicker":
        return Header(kind=kind, exch_ns=exch_ns, venue_seq=last, symbol=symbol)
    if kind != "depthUpdate":
        return Header(kind=kind, exch_ns=exch_ns, symbol=symbol)
    first = as_int64(event.get("U"))
    if first is None or last is None or first > last:
        return Header(
            kind=kind, exch_ns=exch_ns, symbol=symbol, problem="no int64 update ids U <= u"
        )
    return Header(kind=kind, exch_ns=exch_ns, venue_seq=last, symbol=symbol, first_seq=first)


def levels(msg: Any) -> Iterator[tuple[object, object]]:
    """``(price, size)`` of each level of a diff, and of a trade, as sent."""
    if not isinstance(msg, dict):
        return
    event = unwrap(msg)
    kind = kind_of(event)
    if kind in ("trade", "aggTrade"):
        yield event.get("p"), event.get("q")
    elif kind == "depthUpdate":
        for key in ("b", "a"):
            for price, size in event.get(key) or ():  # noqa: UP028 (unpacking checks the shape)
                yield price, size
