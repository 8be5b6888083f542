"""Binance spot REST: ``/api/v3/depth`` snapshots and the ``/api/v3/exchangeInfo`` symbol list.

A depth reply is ``{"lastUpdateId": n, "bids": [[price, qty], ...], "asks": ...}``
with prices and quantities as decimal strings; ``lastUpdateId`` names the
state of the book it shows, so a diff stream lines up with it exactly
(:mod:`tickrec.venues.binance.rules`).

Request weights count against 6,000 a minute per IP: a depth request weighs
5 up to 100 levels, 25 up to 500, 50 up to 1,000 and 250 up to 5,000, and
``exchangeInfo`` 20. Past the limit the venue answers 429 with
:data:`RATE_LIMITED` and ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import urlencode

from tickrec.values import BadValue, check_level, decimal_pair
from tickrec.venues._json import as_int64, load_object
from tickrec.venues.binance.spot import unwrap

__all__ = [
    "INFO_WEIGHT",
    "MAX_DEPTH",
    "PROTOCOL",
    "RATE_LIMITED",
    "WEIGHT_HEADER",
    "WEIGHT_PER_MINUTE",
    "Depth",
    "depth_url",
    "depth_weight",
    "exchange_info_url",
    "levels",
    "parse_depth",
    "parse_symbols",
]

#: The ``protocol`` of stored REST rows.
PROTOCOL = "binance.rest"
#: The deepest snapshot ``/api/v3/depth`` gives.
MAX_DEPTH = 5000
#: The request weight a client may spend per minute.
WEIGHT_PER_MINUTE = 6000

#: The request weight of ``/api/v3/exchangeInfo``.
INFO_WEIGHT = 20
#: The header of every reply that gives the weight spent in the current minute.
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
#: Binance's 429 body: too much request weight.
RATE_LIMITED = {"code": -1003, "msg": "Too much request weight used; please use WebSocket."}

_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (MAX_DEPTH, 250))

#: An exact level: ``((price mantissa, decimals), (size mantissa, decimals))``.
Level = tuple[tuple[int, int], tuple[int, int]]


class Depth(NamedTuple):
    """A depth snapshot: the update id it shows, and its levels, best first."""

    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


def depth_weight(limit: int) -> int:
    """The request weight of a depth request for *limit* levels (1 to :data:`MAX_DEPTH`)."""
    for top, weight in _WEIGHTS:
        if 1 <= limit <= top:
            return weight
    raise ValueError(f"depth limit {limit}: use 1 to {MAX_DEPTH}")


def depth_url(base: str, symbol: str, limit: int = MAX_DEPTH) -> str:
    """``{base}/api/v3/depth?symbol=BTCUSDT&limit=N``: symbols are upper case on REST."""
    depth_weight(limit)
    query = urlencode({"symbol": symbol.strip().upper(), "limit": limit})
    return f"{base.rstrip('/')}/api/v3/depth?{query}"


def exchange_info_url(base: str) -> str:
    """``{base}/api/v3/exchangeInfo``: every symbol and its status."""
    return f"{base.rstrip('/')}/api/v3/exchangeInfo"


def _levels(rows: object, side: str) -> tuple[Level, ...]:
    if not isinstance(rows, list):
        raise BadValue(f"{side}: not a list")
    out = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 2:
            raise BadValue(f"{side}: a level is not [price, quantity]")
        price, size = decimal_pair(row[0]), decimal_pair(row[1])
        check_level(price, size, row[0], row[1])
        out.append((price, size))
    return tuple(out)


def levels(msg: Any) -> Iterator[tuple[object, object]]:
    """``(price, size)`` of each level of a depth reply (or of a stream's
    ``depthSnapshot`` frame that wraps one), as sent."""
    if not isinstance(msg, dict):
        return
    msg = unwrap(msg)
    for key in ("bids", "asks"):
        for price, size, *_ in msg.get(key) or ():
            yield price, size


def parse_depth(body: str | bytes) -> Depth:
    """The snapshot in a depth reply; :class:`~tickrec.values.BadValue` if it is not one."""
    obj, problem = load_object(body)
    if obj is None:
        raise BadValue(f"depth reply: {problem}")
    last = as_int64(obj.get("lastUpdateId"))
    if last is None:
        raise BadValue("depth reply: no int64 lastUpdateId")
    return Depth(last, _levels(obj.get("bids"), "bids"), _levels(obj.get("asks"), "asks"))


def parse_symbols(body: str | bytes) -> dict[str, str]:
    """``{symbol: status}`` of an exchangeInfo reply (``"TRADING"``, ``"BREAK"``...)."""
    obj, problem = load_object(body)
    if obj is None or not isinstance(obj.get("symbols"), list):
        raise BadValue(f"exchangeInfo reply: {problem or 'no symbols list'}")
    out = {}
    for entry in obj["symbols"]:
        if isinstance(entry, dict) and isinstance(entry.get("symbol"), str):
            out[entry["symbol"].upper()] = str(entry.get("status", ""))
    return out
