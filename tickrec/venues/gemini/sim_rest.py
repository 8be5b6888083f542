"""Gemini REST market data (docs/venues/gemini.md section 4): book, trades, symbols, symbol details.

:func:`handle` answers one GET from the market's current state. It is pure:
the caller passes the time and turns the reply into HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tickrec.sim.feed import Reject, Reply, dumps, integer, lookup
from tickrec.sim.market import Market, SymbolSpec, Trade

__all__ = ["handle", "matches", "rate_limited", "server_error"]

# Gemini caps one trades reply at 500 records (docs/venues/gemini.md section 4).
_MAX_TRADES = 500
_ROUTES = {
    "book": re.compile(r"^/v1/book/([^/]+)/?$"),
    "trades": re.compile(r"^/v1/trades/([^/]+)/?$"),
    "symbols": re.compile(r"^/v1/symbols/?$"),
    "details": re.compile(r"^/v1/symbols/details/([^/]+)/?$"),
}


def matches(path: str) -> bool:
    """Whether *path* is one of the REST routes."""
    return any(r.match(path) for r in _ROUTES.values())


def _book(market: Market, spec: SymbolSpec, query: Mapping[str, str], now_ns: int) -> Any:
    book = market.books[spec.symbol]
    # The per-level timestamp is a dummy kept for compatibility ("DO NOT USE"):
    # seconds, as a string.
    stamp = str(now_ns // 1_000_000_000)

    def side(levels: list[tuple[int, int]]) -> list[dict[str, str]]:
        return [
            {"price": spec.price(p), "amount": spec.size(q), "timestamp": stamp} for p, q in levels
        ]

    # 0 means the whole side (docs/venues/gemini.md section 4).
    limit_bids = integer(query, "limit_bids", 50, 0, 1 << 31)
    limit_asks = integer(query, "limit_asks", 50, 0, 1 << 31)
    return {
        "bids": side(book.levels("bid", limit_bids)),
        "asks": side(book.levels("ask", limit_asks)),
    }


def _trades(market: Market, spec: SymbolSpec, query: Mapping[str, str]) -> Any:
    limit = integer(query, "limit_trades", 50, 1, _MAX_TRADES)
    history: list[Trade] = list(market.trades[spec.symbol])
    if "since_tid" in query:
        # since_tid overrides timestamp; 0 gives the earliest trade kept.
        since_tid = integer(query, "since_tid", 0, 0, 1 << 63)
        history = [t for t in history if t.tid > since_tid]
        history = history[:limit]
    else:
        since = query.get("timestamp", query.get("since"))
        if since is not None:
            name = "timestamp" if "timestamp" in query else "since"
            stamp = integer(query, name, 0, 0, 1 << 63)
            # Seconds or milliseconds; ms are recommended. Below 1e11 it cannot be ms after 1973.
            since_ms = stamp if stamp >= 100_000_000_000 else stamp * 1000
            history = [t for t in history if t.time_ns // 1_000_000 > since_ms]
        history = history[-limit:]
    return [
        {
            "timestamp": t.time_ns // 1_000_000_000,
            "timestampms": t.time_ns // 1_000_000,
            "tid": t.tid,
            "price": spec.price(t.price),
            "amount": spec.size(t.amount),
            "exchange": "gemini",
            "type": t.taker_side,
        }
        for t in reversed(history)
    ]


def _details(spec: SymbolSpec) -> Any:
    # Key order and types as in the real capture (tests/data/real/gemini_v2/GEMINI.0),
    # extended with the fields docs/venues/gemini.md section 4 lists.
    return {
        "symbol": spec.symbol,
        "base_currency": spec.base,
        "quote_currency": spec.quote,
        "tick_size": spec.tick_size,
        "quote_increment": spec.quote_increment,
        "min_order_size": spec.min_order_size,
        "status": "open",
        "wrap_enabled": False,
        "product_type": "spot",
        "contract_type": "vanilla",
        "contract_price_currency": spec.quote,
    }


def rate_limited(retry_after: str) -> Reply:
    """Gemini's rate-limit reply (docs/venues/gemini.md section 4, "Rate limits")."""
    body = Reject(429, "RateLimit", "Requests were made too frequently").body()
    return Reply(429, body, {"Retry-After": retry_after})


def server_error() -> Reply:
    """Gemini's internal error reply."""
    return Reply(500, Reject(500, "ServerError", "An internal error occurred").body())


def handle(market: Market, path: str, query: Mapping[str, str], now_ns: int) -> Reply:
    """Answer ``GET path?query``; unknown symbols are 400, unknown paths 404."""
    try:
        if m := _ROUTES["book"].match(path):
            body = _book(market, lookup(market, m.group(1)), query, now_ns)
        elif m := _ROUTES["trades"].match(path):
            body = _trades(market, lookup(market, m.group(1)), query)
        elif _ROUTES["symbols"].match(path):
            body = [s.lower() for s in market.specs]
        elif m := _ROUTES["details"].match(path):
            body = _details(lookup(market, m.group(1)))
        else:
            raise Reject(404, "NotFound", f"no such endpoint: {path}")
    except Reject as exc:
        return Reply(exc.status, exc.body())
    return Reply(200, dumps(body))
