"""Gemini REST market data: the symbol list and order book snapshots.

The endpoints are in docs/venues/gemini.md section 4.

A book reply carries no sequence number and its per-level ``timestamp`` is a
dummy ("DO NOT USE"), so a stored snapshot has neither ``exch_ts`` nor
``venue_seq``; its time is bracketed by the request's sent and received times.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

__all__ = [
    "PROTOCOL",
    "book_url",
    "levels",
    "parse_symbols",
    "symbols_url",
]

PROTOCOL = "gemini.rest"


def symbols_url(base: str) -> str:
    """``GET /v1/symbols``: every symbol the exchange serves, as a JSON list of strings."""
    return f"{base.rstrip('/')}/v1/symbols"


def parse_symbols(body: bytes | str) -> list[str] | None:
    """The symbols of a ``/v1/symbols`` reply, or None if it is not a non-empty list of strings."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        return None
    return value


def book_url(base: str, symbol: str, depth: int) -> str:
    """``GET /v1/book/{symbol}`` with *depth* levels a side; 0 asks for the whole book."""
    return f"{base.rstrip('/')}/v1/book/{symbol}?limit_bids={depth}&limit_asks={depth}"


def levels(msg: Any) -> Iterator[tuple[object, object]]:
    """``(price, amount)`` of each level of a ``/v1/book`` reply."""
    if not isinstance(msg, dict):
        return
    for key in ("bids", "asks"):
        for level in msg.get(key) or ():
            yield level.get("price"), level.get("amount")


