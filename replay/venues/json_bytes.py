"""Compiled primitives that read a strict subset of JSON straight from bytes.

The venue scanners (:mod:`replay.venues.gemini_v1_scan`,
:mod:`replay.venues.gemini_rest`) are built from these. Each primitive
takes the bytes, a position and the end of the message, and returns where
it stopped, or -1 (a decimal: status :data:`BAD`) for anything outside the
subset it accepts: escapes, control characters and non-ASCII bytes in
strings, exponents, numbers of more than 18 digits. A scanner that meets -1
declines the message, and the caller decodes it with ``orjson`` instead, so
what these accept is always read exactly as ``orjson`` reads it.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "ABSENT",
    "BAD",
    "MAX_DIGITS",
    "OK",
    "at",
    "decimal",
    "decimal_value",
    "eq",
    "integer",
    "lit",
    "next_item",
    "number",
    "scalar",
    "skip_ws",
    "string",
]

MAX_DIGITS = 18  # any 18-digit integer fits int64

#: Parse results of a decimal string field.
ABSENT, OK, BAD = 0, 1, 2


def lit(text: bytes) -> npt.NDArray[np.uint8]:
    """*text* as a byte array, for comparing with :func:`eq` and :func:`at` in compiled code."""
    return np.frombuffer(text, dtype=np.uint8).copy()


_TRUE = lit(b"true")
_FALSE = lit(b"false")
_NULL = lit(b"null")


@numba.njit(cache=True, inline="always")
def eq(data: Any, s: int, e: int, lit: Any) -> bool:
    """Whether ``data[s:e]`` is exactly the bytes of *lit*."""
    if e - s != lit.shape[0]:
        return False
    k = 0
    while k < lit.shape[0] and data[s + k] == lit[k]:
        k += 1
    return k == lit.shape[0]


@numba.njit(cache=True, inline="always")
def skip_ws(data: Any, p: int, end: int) -> int:
    """The first position at or after ``p`` that is not JSON whitespace."""
    if p < end and data[p] > 32:  # compact JSON: nothing to skip
        return p
    while p < end:
        c = data[p]
        if c != 32 and c != 9 and c != 10 and c != 13:
            break
        p += 1
    return p


@numba.njit(cache=True, inline="always")
def string(data: Any, p: int, end: int) -> tuple[int, int]:
    """``data[p]`` is an opening quote: ``(end of contents, position after)``, or ``(-1, -1)``.

    Escapes, control characters and non-ASCII bytes are declined, so the
    contents are exactly the bytes between the quotes.
    """
    q = p + 1
    while q < end:
        c = data[q]
        if c == 34:
            return q, q + 1
        if c == 92 or c < 32 or c >= 128:
            return -1, -1
        q += 1
    return -1, -1


@numba.njit(cache=True, inline="always")
def integer(data: Any, p: int, end: int) -> tuple[int, int]:
    """A JSON integer at ``p`` (not a fraction): ``(value, position after)``, or ``(0, -1)``."""
    neg = p < end and data[p] == 45
    q = p + 1 if neg else p
    start = q
    v = 0
    while q < end and 48 <= data[q] <= 57:
        v = v * 10 + (data[q] - 48)
        q += 1
    n = q - start
    if n == 0 or n > MAX_DIGITS or (n > 1 and data[start] == 48):
        return 0, -1
    if q < end and (data[q] == 46 or data[q] == 101 or data[q] == 69):
        return 0, -1
    return (-v if neg else v), q


@numba.njit(cache=True, inline="always")
def decimal(data: Any, s: int, e: int) -> tuple[int, int, int]:
    """``(mantissa, decimals, status)`` of the plain decimal text ``data[s:e]``.

    The same canonical form as :func:`replay.ticks.decimals_of`: trailing
    zeros of the fraction do not count. Status ``BAD`` for anything but
    ``-?[0-9]+(\\.[0-9]*)?`` with at most 18 significant digits.
    """
    p = s
    neg = p < e and data[p] == 45
    if neg:
        p += 1
    m = 0
    sig = 0
    digits = 0
    while p < e and 48 <= data[p] <= 57:
        d = data[p] - 48
        if m != 0 or d != 0:
            sig += 1
        m = m * 10 + d
        digits += 1
        p += 1
    if digits == 0 or sig > MAX_DIGITS:
        return 0, 0, BAD
    dec = 0
    if p < e and data[p] == 46:
        p += 1
        zeros = 0
        while p < e and 48 <= data[p] <= 57:
            d = data[p] - 48
            if d == 0:
                zeros += 1
            else:
                if m != 0:
                    sig += zeros
                sig += 1
                if sig > MAX_DIGITS:
                    return 0, 0, BAD
                for _ in range(zeros):
                    m *= 10
                m = m * 10 + d
                dec += zeros + 1
                zeros = 0
            p += 1
    if p != e:
        return 0, 0, BAD
    return (-m if neg else m), dec, OK


@numba.njit(cache=True, inline="always")
def number(data: Any, p: int, end: int) -> int:
    """Skip a JSON number without exponent and with at most 18 digits; -1 to decline."""
    q = p + 1 if data[p] == 45 else p
    start = q
    while q < end and 48 <= data[q] <= 57:
        q += 1
    n = q - start
    if n == 0 or (n > 1 and data[start] == 48):
        return -1
    if q < end and data[q] == 46:
        q += 1
        f = q
        while q < end and 48 <= data[q] <= 57:
            q += 1
        if q == f:
            return -1
        n += q - f
    if n > MAX_DIGITS or (q < end and (data[q] == 101 or data[q] == 69)):
        return -1
    return q


@numba.njit(cache=True, inline="always")
def scalar(data: Any, p: int, end: int) -> int:
    """Skip a string, number, ``true``, ``false`` or ``null`` at ``p``; -1 to decline."""
    if p >= end:
        return -1
    c = data[p]
    if c == 34:
        return string(data, p, end)[1]
    if c == 45 or 48 <= c <= 57:
        return number(data, p, end)
    if eq(data, p, min(p + 4, end), _TRUE) or eq(data, p, min(p + 4, end), _NULL):
        return p + 4
    if eq(data, p, min(p + 5, end), _FALSE):
        return p + 5
    return -1


@numba.njit(cache=True, inline="always")
def at(data: Any, p: int, end: int, lit: Any) -> int:
    """Position after *lit* if the bytes at ``p`` are *lit*, else -1."""
    n = lit.shape[0]
    if p + n > end or not eq(data, p, p + n, lit):
        return -1
    return p + n


@numba.njit(cache=True, inline="always")
def decimal_value(data: Any, p: int, end: int) -> tuple[int, int, int, int]:
    """A decimal string value at ``p``: ``(mantissa, decimals, status, position after)``."""
    if p < 0 or p >= end or data[p] != 34:
        return 0, 0, BAD, -1
    e, q = string(data, p, end)
    if e < 0:
        return 0, 0, BAD, -1
    m, d, st = decimal(data, p + 1, e)
    return m, d, st, q


@numba.njit(cache=True, inline="always")
def next_item(data: Any, p: int, end: int, close: int) -> tuple[int, bool]:
    """After a value inside an array or object whose closing byte is *close*.

    ``(p, True)``: a comma, *p* at the next item; ``(p, False)``: the
    container closed, *p* just past it; ``(-1, False)``: anything else.
    """
    p = skip_ws(data, p, end)
    if p < end and data[p] == 44:
        return skip_ws(data, p + 1, end), True
    if p < end and data[p] == close:
        return p + 1, False
    return -1, False
