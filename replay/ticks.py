"""Exact decimal strings to fixed-point integers, with a scale chosen from the data.

Venues send prices and sizes as decimal strings, and Gemini warns that treating
them as floats is dangerous (docs/venues/gemini.md section 4). docs/architecture.md section 2.4
asks that no rounding may merge, split or change a price level. So every
decimal string becomes an ``int64`` count of ``10**-scale`` units.

The scale is a pure function of the strings of one partition: the largest
number of significant decimals seen (trailing zeros do not count, so ``"1.00"``
and ``"1"`` are the same level). Prices and sizes get separate scales. Sizes
may carry more decimals than the venue's increment (docs/venues/gemini.md section 4), so
the scale is read from the data, never from symbol details.

A value that does not fit ``int64`` at that scale raises
:class:`~tickrec.errors.DatasetError` naming the value, instead of wrapping
around.

Decoders keep each value as an exact ``(mantissa, decimals)`` pair
(:func:`pair_of`, or the compiled v1 scanner) until the whole partition is
read; :func:`rescale` then brings every pair to the partition's scale at
once, with the same checks as :func:`to_units`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from tickrec.errors import DatasetError

__all__ = [
    "INT64_MAX",
    "decimals_of",
    "format_units",
    "pair_of",
    "rescale",
    "scale_of",
    "to_units",
]

INT64_MAX = 2**63 - 1

# The plain form Gemini uses: optional minus, digits, optional fraction.
_PLAIN = re.compile(r"^-?[0-9]+(\.[0-9]*)?$")


def _canonical(text: str) -> tuple[int, int]:
    """``(digits as int, number of decimals)`` of a decimal string, trailing zeros dropped."""
    if _PLAIN.match(text):
        whole, _, frac = text.partition(".")
        frac = frac.rstrip("0")
        return int(whole + frac) if frac else int(whole), len(frac)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise DatasetError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise DatasetError(f"not a finite decimal number: {text!r}")
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if exponent >= 0:
        return mantissa * 10**exponent, 0
    return mantissa, -exponent


def pair_of(text: str) -> tuple[int, int]:
    """``(mantissa, decimals)`` of a decimal string: ``"101.50"`` → ``(1015, 1)``.

    Raises :class:`DatasetError` if it is not a decimal or the mantissa does
    not fit ``int64`` (then no scale could hold it); decimals are kept as
    ``int32``.
    """
    mantissa, decimals = _canonical(text)
    if not -INT64_MAX <= mantissa <= INT64_MAX or decimals >= 2**31:
        raise DatasetError(f"{text!r} does not fit a 64-bit integer at any scale")
    return mantissa, decimals


def decimals_of(text: str) -> int:
    """Significant decimals of a decimal string: ``"0.10"`` → 1, ``"5"`` → 0, ``"1e-8"`` → 8."""
    return _canonical(text)[1]


def scale_of(texts: Iterable[str]) -> int:
    """The smallest scale that represents every string exactly (0 for none)."""
    return max((decimals_of(t) for t in texts), default=0)


def to_units(texts: Sequence[str], scale: int) -> npt.NDArray[np.int64]:
    """Each decimal string as an exact ``int64`` count of ``10**-scale``.

    Raises :class:`DatasetError` if a string has more decimals than *scale* or
    does not fit in ``int64``.
    """
    out = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        mantissa, decimals = _canonical(text)
        if decimals > scale:
            raise DatasetError(f"{text!r} has more than {scale} decimals")
        value = mantissa * 10 ** (scale - decimals)
        if not -INT64_MAX <= value <= INT64_MAX:
            raise DatasetError(
                f"{text!r} does not fit a 64-bit integer at scale 10^-{scale}; "
                "the partition mixes values too large and too precise for fixed point"
            )
        out[i] = value
    return out


def format_units(value: int, scale: int) -> str:
    """The exact decimal text of *value* units of ``10**-scale``: ``(10150, 2)`` → ``"101.5"``."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**scale)
    text = f"{whole}.{frac:0{scale}d}".rstrip("0").rstrip(".") if scale else str(whole)
    return sign + text


_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)
# The largest mantissa that still fits int64 after a shift by k decimals; past 18
# (10**19 does not fit int64) only a zero mantissa survives.
_LIMIT = np.array([INT64_MAX // 10**k for k in range(19)], dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _rescale(mantissa: Any, decimals: Any, scale: int) -> int:
    """:func:`rescale` in one pass, up to the first value that does not fit: its index, or -1.

    ``-2`` if a value has more decimals than *scale*.
    """
    for i in range(len(mantissa)):
        shift = scale - decimals[i]
        m = mantissa[i]
        if shift < 0:
            return -2
        if shift > 18:
            if m != 0:
                return i
        elif abs(m) > _LIMIT[shift]:
            return i
        else:
            mantissa[i] = m * _POW10[shift]
    return -1


def rescale(
    mantissa: npt.NDArray[np.int64], decimals: npt.NDArray[Any], scale: int
) -> npt.NDArray[np.int64]:
    """Exact ``int64`` counts of ``10**-scale`` of the pairs ``mantissa / 10**decimals``.

    Works in place: *mantissa* is overwritten with the result and returned.
    Every decimal count must be at most *scale* (the partition's scale is
    their maximum). Raises :class:`DatasetError` naming the first value that
    does not fit ``int64`` at *scale*, like :func:`to_units`.
    """
    if len(mantissa) != len(decimals):
        raise ValueError("rescale: mantissas and decimal counts differ in length")
    k = _rescale(mantissa, decimals, scale)
    if k == -2:
        raise ValueError("rescale: a value has more decimals than the scale")
    if k >= 0:
        text = format_units(int(mantissa[k]), int(decimals[k]))
        raise DatasetError(
            f"{text!r} does not fit a 64-bit integer at scale 10^-{scale}; "
            "the partition mixes values too large and too precise for fixed point"
        )
    return mantissa
