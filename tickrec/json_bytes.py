"""Compiled primitives that read a strict subset of JSON straight from bytes.

The venue scanners (:mod:`tickrec.venues.gemini.v1_scan`,
:mod:`tickrec.venues.gemini.rest_book`) are built from these. Each primitive
takes the bytes (the :func:`address` of a byte array), a position and the
end of the message, and returns where
it stopped, or -1 (a decimal: status :data:`BAD`) for anything outside the
subset it accepts: escapes, control characters and non-ASCII bytes in
strings, exponents, numbers of more than 18 digits. A scanner that meets -1
declines the message, and the caller decodes it with ``orjson`` instead, so
what these accept is always read exactly as ``orjson`` reads it.

Compiling. Only :func:`eq` and :func:`at` are inlined by numba
(``inline="always"``): their *lit* is a compile-time constant, and each
constant would otherwise be a compiled variant of its own. The others are
plain calls, which LLVM still inlines where it pays; inlining them in
numba's IR too made the scanners take three times as long to compile and
ran no faster.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = [
    "ABSENT",
    "BAD",
    "MAX_DIGITS",
    "OK",
    "address",
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


def lit(text: bytes) -> tuple[int, ...]:
    """*text* in the form :func:`eq` and :func:`at` compare with, in compiled code.

    A tuple of integers (a compile-time constant): the length, then the bytes
    as 8-byte little-endian words, the last one ending with the text (it may
    overlap the one before), or as one number if there are fewer than eight.
    """
    n = len(text)
    if n < 8:
        return n, int.from_bytes(text, "little")
    chunks = [text[k : k + 8] for k in range(0, n - 8, 8)] + [text[n - 8 :]]
    return (n, *(int.from_bytes(chunk, "little", signed=True) for chunk in chunks))


_TRUE = lit(b"true")
_FALSE = lit(b"false")
_NULL = lit(b"null")


def _address(typingctx: Any, data: Any) -> Any:
    """A pointer to the bytes of a byte array, for the primitives here to read.

    Reads through it are plain loads: no reference counting at every call,
    and no wrapping of negative positions (there are none: every position
    is checked against the message's end first). The array must outlive it.
    """

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return context.make_array(sig.args[0])(context, builder, args[0]).data

    return types.CPointer(types.uint8)(data), codegen


def _word(typingctx: Any, data: Any, p: Any) -> Any:
    """The 8 bytes ``data[p:p + 8]`` at an :func:`address` as one little-endian ``int64``.

    One unaligned load instead of eight (numba runs only on little-endian
    machines); callers keep ``p`` and ``p + 8`` within the array.
    """

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = builder.gep(args[0], [args[1]])
        word = context.get_value_type(types.int64).as_pointer()
        return builder.load(builder.bitcast(ptr, word), align=1)

    if not isinstance(data, types.CPointer):
        return None
    return types.int64(data, p), codegen


# The intrinsics, typed Any for mypy: only compiled code calls them.
address: Any = intrinsic(_address)
_word_at: Any = intrinsic(_word)


@numba.njit(cache=True)
def eq(data: Any, s: int, e: int, lit: Any) -> bool:
    """Whether ``data[s:e]`` is exactly the text of *lit* (made by :func:`lit`)."""
    n = lit[0]
    if e - s != n:
        return False
    if n < 8:
        v = np.int64(0)
        for k in range(n):
            v |= np.int64(data[s + k]) << (8 * k)
        return v == lit[1]
    # Eight bytes at a time; the last word may overlap the one before.
    k = 0
    i = 1
    while k + 8 < n:
        if _word_at(data, s + k) != lit[i]:
            return False
        k += 8
        i += 1
    return _word_at(data, e - 8) == lit[i]


@numba.njit(cache=True)
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


# What a string scan stops at: the closing quote (1), or a byte the scanners
# decline (2): a backslash (an escape), a control character, a non-ASCII byte.
_STRING_STOP = np.zeros(256, np.uint8)
_STRING_STOP[:32] = 2
_STRING_STOP[128:] = 2
_STRING_STOP[92] = 2
_STRING_STOP[34] = 1


def _bytes_of(byte: int) -> np.int64:
    """*byte* in each of the 8 bytes of a word."""
    return np.uint64(byte * 0x0101010101010101).astype(np.int64)


_ONES, _HIGH = _bytes_of(0x01), _bytes_of(0x80)
_QUOTES, _BACKSLASHES, _SPACES = _bytes_of(34), _bytes_of(92), _bytes_of(32)


def _trailing_zeros_impl(typingctx: Any, x: Any) -> Any:
    """The number of trailing zero bits of a nonzero ``int64``."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.cttz(args[0], context.get_constant(types.boolean, True))

    return types.int64(types.int64), codegen


_trailing_zeros: Any = intrinsic(_trailing_zeros_impl)


@numba.njit(cache=True)
def string(data: Any, p: int, end: int) -> tuple[int, int]:
    """``data[p]`` is an opening quote: ``(end of contents, position after)``, or ``(-1, -1)``.

    Escapes, control characters and non-ASCII bytes are declined, so the
    contents are exactly the bytes between the quotes. Eight bytes are
    looked at a time while eight are left: a byte is flagged if it is a
    quote, a backslash, below a space or above 127 (bytes above a flagged
    one may be flagged wrongly, but only the first flagged one counts).
    """
    q = p + 1
    while q + 8 <= end:
        w = _word_at(data, q)
        quote = w ^ _QUOTES
        backslash = w ^ _BACKSLASHES
        flags = (
            ((quote - _ONES) & ~quote)
            | ((backslash - _ONES) & ~backslash)
            | ((w - _SPACES) & ~w)
            | w
        ) & _HIGH
        if flags:
            q += _trailing_zeros(flags) >> 3
            return (q, q + 1) if data[q] == 34 else (-1, -1)
        q += 8
    while q < end:
        stop = _STRING_STOP[data[q]]
        if stop:
            return (q, q + 1) if stop == 1 else (-1, -1)
        q += 1
    return -1, -1


@numba.njit(cache=True)
def integer(data: Any, p: int, end: int) -> tuple[int, int]:
    """A JSON integer at ``p`` (not a fraction): ``(value, position after)``, or ``(0, -1)``."""
    if p < 0:
        return 0, -1
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


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def number(data: Any, p: int, end: int) -> int:
    """Skip a JSON number without exponent and with at most 18 digits; -1 to decline."""
    if p < 0 or p >= end:
        return -1
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


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def at(data: Any, p: int, end: int, lit: Any) -> int:
    """Position after *lit* if the bytes at ``p`` are *lit*, else -1."""
    n = lit[0]
    if p < 0 or p + n > end or not eq(data, p, p + n, lit):
        return -1
    return p + n


@numba.njit(cache=True)
def decimal_value(data: Any, p: int, end: int) -> tuple[int, int, int, int]:
    """A decimal string value at ``p``: ``(mantissa, decimals, OK, position after)``.

    ``(0, 0, BAD, -1)`` if it is not a string of what :func:`decimal` accepts.
    A value of at most :data:`MAX_DIGITS` digits, the common case, is read in
    one pass (it cannot overflow); a longer one, which may still have few
    significant digits, is left to :func:`decimal`.
    """
    if p < 0 or p >= end or data[p] != 34:
        return 0, 0, BAD, -1
    q = p + 1
    neg = q < end and data[q] == 45
    if neg:
        q += 1
    first = q
    m = 0
    while q < end and 48 <= data[q] <= 57:
        m = m * 10 + (data[q] - 48)
        q += 1
    digits = q - first
    if digits == 0:
        return 0, 0, BAD, -1
    # Up to the last nonzero decimal: trailing zeros do not count.
    value = m
    dec = 0
    if q < end and data[q] == 46:
        q += 1
        frac = q
        while q < end and 48 <= data[q] <= 57:
            m = m * 10 + (data[q] - 48)
            q += 1
            if data[q - 1] != 48:
                value = m
                dec = q - frac
        digits += q - frac
    if q >= end or data[q] != 34:
        return 0, 0, BAD, -1
    if digits > MAX_DIGITS:
        value, dec, status = decimal(data, p + 1, q)
        return (value, dec, OK, q + 1) if status == OK else (0, 0, BAD, -1)
    return (-value if neg else value), dec, OK, q + 1


@numba.njit(cache=True)
def next_item(data: Any, p: int, end: int, close: int) -> tuple[int, bool]:
    """After a value inside an array or object whose closing byte is *close*.

    ``(p, True)``: a comma, *p* at the next item; ``(p, False)``: the
    container closed, *p* just past it; ``(-1, False)``: anything else.
    """
    if p < 0:
        return -1, False
    p = skip_ws(data, p, end)
    if p < end and data[p] == 44:
        return skip_ws(data, p + 1, end), True
    if p < end and data[p] == close:
        return p + 1, False
    return -1, False
