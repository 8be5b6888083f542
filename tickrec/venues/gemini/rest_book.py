"""Gemini REST ``GET /v1/book/{symbol}`` replies (docs/venues/gemini.md section 4).

The reply is ``{"bids": [{"price", "amount", "timestamp"}, ...], "asks": [...]}``
with exact decimal strings; the per-level ``timestamp`` is a dummy and is
ignored. An error body (``{"result": "error", ...}``) or anything else that is
not a book gives ``None``.

Two readers give the same levels: :func:`parse_book` over a reply parsed by
``orjson``, and :func:`scan_book`, a compiled scanner over the reply's bytes
(built from :mod:`tickrec.json_bytes`) that turns each decimal string
into an exact ``(mantissa, decimals)`` pair. The scanner accepts only
replies in that shape whose top-level values other than ``bids`` and
``asks`` are plain scalars, and whose levels are flat objects with string
``price`` and ``amount``; it declines anything else (``None``), and the
caller then parses the reply with ``orjson`` and :func:`parse_book`.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from tickrec.events import BookPairs, Levels
from tickrec.json_bytes import (
    OK,
    address,
    decimal_value,
    eq,
    lit,
    next_item,
    scalar,
    skip_ws,
    string,
)

__all__ = ["DECODER_VERSION", "parse_book", "scan_book"]

#: Raised whenever what this protocol decodes to changes, so that the normalized cache
#: (:mod:`replay.cache`) rebuilds even where its sources alone would not show it.
DECODER_VERSION = 1

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


_K_BIDS = lit(b"bids")
_K_ASKS = lit(b"asks")
_K_PRICE = lit(b"price")
_K_AMOUNT = lit(b"amount")


@numba.njit(cache=True)
def _levels(data: Any, p: int, end: int, out: Any, n: int) -> tuple[int, int]:
    """A JSON array of levels at ``p`` into ``out[:, n:]``: ``(position after, count)``."""
    if p >= end or data[p] != 91:
        return -1, 0
    p = skip_ws(data, p + 1, end)
    if p < end and data[p] == 93:
        return p + 1, 0
    k = n
    while True:
        if p >= end or data[p] != 123:
            return -1, 0
        p = skip_ws(data, p + 1, end)
        seen = 0
        while True:
            if p >= end or data[p] != 34:
                return -1, 0
            ks = p + 1
            ke, p = string(data, p, end)
            if ke < 0:
                return -1, 0
            p = skip_ws(data, p, end)
            if p >= end or data[p] != 58:
                return -1, 0
            p = skip_ws(data, p + 1, end)
            bit = 1 if eq(data, ks, ke, _K_PRICE) else (2 if eq(data, ks, ke, _K_AMOUNT) else 0)
            if bit == 0:
                p = scalar(data, p, end)
            elif seen & bit:
                return -1, 0
            else:
                m, d, st, p = decimal_value(data, p, end)
                if st != OK:
                    return -1, 0
                row = 0 if bit == 1 else 2
                out[row, k] = m
                out[row + 1, k] = d
                seen |= bit
            if p < 0:
                return -1, 0
            p, more = next_item(data, p, end, 125)
            if p < 0:
                return -1, 0
            if not more:
                break
        if seen != 3:
            return -1, 0
        k += 1
        p, more = next_item(data, p, end, 93)
        if p < 0:
            return -1, 0
        if not more:
            return p, k - n


@numba.njit(cache=True)
def _scan_book(payload: Any, p: int, end: int, out: Any) -> tuple[int, int, bool]:
    """``(bids, asks, bids first)``: level counts in *out*, in reply order; -1 to decline."""
    data = address(payload)
    p = skip_ws(data, p, end)
    if p >= end or data[p] != 123:
        return -1, -1, False
    p = skip_ws(data, p + 1, end)
    bids = asks = -1
    n = 0
    bids_first = False
    while True:
        if p >= end or data[p] != 34:
            return -1, -1, False
        ks = p + 1
        ke, p = string(data, p, end)
        if ke < 0:
            return -1, -1, False
        p = skip_ws(data, p, end)
        if p >= end or data[p] != 58:
            return -1, -1, False
        p = skip_ws(data, p + 1, end)
        is_bids = eq(data, ks, ke, _K_BIDS)
        if is_bids or eq(data, ks, ke, _K_ASKS):
            if (bids if is_bids else asks) >= 0:
                return -1, -1, False
            p, count = _levels(data, p, end, out, n)
            if is_bids:
                bids = count
                bids_first = asks < 0
            else:
                asks = count
            n += count
        else:
            p = scalar(data, p, end)
        if p < 0:
            return -1, -1, False
        p, more = next_item(data, p, end, 125)
        if p < 0:
            return -1, -1, False
        if not more:
            break
    if bids < 0 or asks < 0 or skip_ws(data, p, end) != end:
        return -1, -1, False
    return bids, asks, bids_first


def scan_book(data: npt.NDArray[np.uint8], start: int, end: int) -> BookPairs | None:
    """The levels of the reply ``data[start:end]``, or ``None`` if the scanner declines it."""
    # A level takes more than 16 bytes: {"price":"1","amount":"1"} and a comma.
    out = np.empty((4, (end - start) // 16 + 1), np.int64)
    bids, asks, bids_first = _scan_book(data, start, end, out)
    if bids < 0:
        return None
    n = bids + asks
    levels = out[:, :n] if bids_first else np.roll(out[:, :n], bids, axis=1)
    return BookPairs(levels[0], levels[1], levels[2], levels[3], bids)
