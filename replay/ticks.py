"""Exact decimal strings to fixed-point integers, with a scale chosen from the data.

Venues send prices and sizes as decimal strings, and Gemini warns that treating
them as floats is dangerous (gemini.md section 4). ARCHITECTURE section 2.4
asks that no rounding may merge, split or change a price level. So every
decimal string becomes an ``int64`` count of ``10**-scale`` units.

The scale is a pure function of the strings of one partition: the largest
number of significant decimals seen (trailing zeros do not count, so ``"1.00"``
and ``"1"`` are the same level). Prices and sizes get separate scales. Sizes
may carry more decimals than the venue's increment (gemini.md section 4), so
the scale is read from the data, never from symbol details.

A value that does not fit ``int64`` at that scale raises
:class:`~tickrec.errors.DatasetError` naming the value, instead of wrapping
around.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation

import numpy as np
import numpy.typing as npt

from tickrec.errors import DatasetError

__all__ = ["INT64_MAX", "StringTable", "decimals_of", "format_units", "scale_of", "to_units"]

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


class StringTable:
    """Interns decimal strings: each distinct string is parsed once.

    Decoders store the small integer :meth:`index` of each price or size
    string; after the whole partition is read, :meth:`units` converts every
    distinct string once at the partition's scale. Books repeat the same few
    prices near the touch, so this is both faster and smaller than parsing
    every occurrence.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self.strings: list[str] = []

    def index(self, text: str) -> int:
        """The id of *text*, adding it if new."""
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self.strings)
            self.strings.append(text)
        return i

    def scale(self, ids: npt.NDArray[np.int64]) -> int:
        """The scale needed by the strings whose ids occur in *ids*."""
        used = np.unique(ids)
        return max((decimals_of(self.strings[int(i)]) for i in used), default=0)

    def units(self, ids: npt.NDArray[np.int64], scale: int) -> npt.NDArray[np.int64]:
        """The values of the strings *ids* at *scale* (see :func:`to_units`)."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.int64)
        used = np.unique(ids)
        table = np.zeros(len(self.strings), dtype=np.int64)
        table[used] = to_units([self.strings[int(i)] for i in used], scale)
        return table[ids]
