"""Binance spot REST on the simulator: ``/api/v3/depth`` and ``/api/v3/exchangeInfo``.

A depth reply is ``{"lastUpdateId", "bids", "asks"}``: the top ``limit``
levels (default 100, at most 5000) as ``[price, quantity]`` strings, and the
symbol's last update id, the one its diff stream's ``u`` reached. Every
reply carries ``X-MBX-USED-WEIGHT-1M``, the weight spent in the current
minute (depth 5 to 250 by limit, exchangeInfo 20); past 6,000 the reply is
429 with ``Retry-After``, Binance's ``{"code": -1003, "msg": ...}``. Errors
are Binance's ``{"code", "msg"}`` bodies (-1121 invalid symbol, -1100 bad
parameter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tickrec.sim.feed import Reply, dumps
from tickrec.sim.market import Market
from tickrec.venues.binance.rest import (
    INFO_WEIGHT,
    RATE_LIMITED,
    WEIGHT_HEADER,
    WEIGHT_PER_MINUTE,
    depth_weight,
)
from tickrec.venues.limits import WeightWindow

__all__ = ["handle", "matches", "rate_limited", "server_error"]

_DEPTH = re.compile(r"^/api/v3/depth/?$")
_INFO = re.compile(r"^/api/v3/exchangeInfo/?$")
#: Request weight spent in the current minute, on this simulator.
_WEIGHT = WeightWindow(WEIGHT_PER_MINUTE)


def matches(path: str) -> bool:
    """Whether *path* is one of these REST routes."""
    return bool(_DEPTH.match(path) or _INFO.match(path))


def _error(status: int, code: int, msg: str) -> Reply:
    return Reply(status, dumps({"code": code, "msg": msg}))


def rate_limited(retry_after: str) -> Reply:
    """Binance's 429: too much request weight."""
    return Reply(429, dumps(RATE_LIMITED), {"Retry-After": retry_after})


def server_error() -> Reply:
    """Binance's internal error reply."""
    return _error(500, -1000, "An unknown error occurred while processing the request.")


def _spend(weight: int, now_ns: int) -> Reply | None:
    retry_after = _WEIGHT.spend(weight, now_ns)
    return None if retry_after is None else rate_limited(str(retry_after))


def handle(market: Market, path: str, query: Mapping[str, str], now_ns: int) -> Reply:
    """Answer ``GET path?query``."""
    if _INFO.match(path):
        limited = _spend(INFO_WEIGHT, now_ns)
        if limited is not None:
            return limited
        symbols = [
            {"symbol": s.symbol, "status": "TRADING", "baseAsset": s.base, "quoteAsset": s.quote}
            for s in market.specs.values()
        ]
        return _used(Reply(200, dumps({"timezone": "UTC", "symbols": symbols})))
    name = query.get("symbol", "")
    spec = market.specs.get(name)  # Binance wants the symbol in upper case
    if spec is None:
        return _error(400, -1121, "Invalid symbol.")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        return _error(400, -1100, "Illegal characters found in parameter 'limit'.")
    if not 1 <= limit <= 5000:
        return _error(400, -1100, "Parameter 'limit' is out of range.")
    limited = _spend(depth_weight(limit), now_ns)
    if limited is not None:
        return limited
    book = market.books[spec.symbol]
    body = {
        "lastUpdateId": market.update_ids[spec.symbol],
        "bids": [[spec.price(p), spec.size(q)] for p, q in book.levels("bid", limit)],
        "asks": [[spec.price(p), spec.size(q)] for p, q in book.levels("ask", limit)],
    }
    return _used(Reply(200, dumps(body)))


def _used(reply: Reply) -> Reply:
    return Reply(reply.status, reply.body, {WEIGHT_HEADER: str(_WEIGHT.used)})
