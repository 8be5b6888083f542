"""Gemini REST market data (gemini.md section 4): the order book snapshot request.

The reply carries no sequence number and its per-level ``timestamp`` is a
dummy ("DO NOT USE"), so a stored snapshot has neither ``exch_ts`` nor
``venue_seq``; its time is bracketed by the request's sent and received times.
"""

from __future__ import annotations

__all__ = ["PROTOCOL", "book_url", "retry_after_seconds"]

PROTOCOL = "gemini.rest"


def book_url(base: str, symbol: str, depth: int) -> str:
    """``GET /v1/book/{symbol}`` with *depth* levels a side; 0 asks for the whole book."""
    return f"{base.rstrip('/')}/v1/book/{symbol}?limit_bids={depth}&limit_asks={depth}"


def retry_after_seconds(value: str | None, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta seconds), else *default*.

    Gemini's 429 example sends ``Retry-After: 3`` (gemini.md section 4); an
    HTTP date or garbage falls back to *default*.
    """
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        return default
    return seconds if seconds >= 0 else default
