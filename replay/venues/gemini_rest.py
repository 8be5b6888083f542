"""Gemini REST ``GET /v1/book/{symbol}`` replies (gemini.md section 4).

The reply is ``{"bids": [{"price", "amount", "timestamp"}, ...], "asks": [...]}``
with exact decimal strings; the per-level ``timestamp`` is a dummy and is
ignored. An error body (``{"result": "error", ...}``) or anything else that is
not a book gives ``None``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Levels", "parse_book"]

#: ``(bids, asks)``, each a list of ``(price, amount)`` strings as sent.
Levels = tuple[list[tuple[str, str]], list[tuple[str, str]]]


def _side(levels: Any) -> list[tuple[str, str]] | None:
    if not isinstance(levels, list):
        return None
    out = []
    for level in levels:
        if not isinstance(level, dict):
            return None
        price, amount = level.get("price"), level.get("amount")
        if not isinstance(price, str) or not isinstance(amount, str):
            return None
        out.append((price, amount))
    return out


def parse_book(msg: Any) -> Levels | None:
    """The levels of a parsed ``/v1/book`` reply, or ``None`` if it is not one."""
    if not isinstance(msg, dict):
        return None
    bids, asks = _side(msg.get("bids")), _side(msg.get("asks"))
    if bids is None or asks is None:
        return None
    return bids, asks
