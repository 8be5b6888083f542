"""Checks of single values in recorded messages: exact decimals within explicit limits.

The replayer and the importer both use them, so a value the importer refuses is
one the replayer would have reported as a bad message.
"""

from __future__ import annotations

import re

__all__ = ["MAX_DECIMALS", "MAX_DIGITS", "BadValue", "check_level", "decimal_pair"]

#: Significant digits of a mantissa: 18 always fit a signed 64-bit integer.
MAX_DIGITS = 18
#: Decimals a value may carry: more than any venue quotes (Gemini: 10, Binance: 8),
#: and few enough that a price or size up to 9.2 million still fits int64 at that scale.
MAX_DECIMALS = 12

# Plain decimal text: optional minus, digits, optional fraction. No exponent,
# no NaN or infinity, no sign but a leading minus.
_PLAIN = re.compile(r"-?[0-9]+(?:\.[0-9]*)?")


class BadValue(ValueError):
    """A value in a message that no exact fixed-point column can hold; ``str()`` says why."""


def decimal_pair(text: object) -> tuple[int, int]:
    """``(mantissa, decimals)`` of a plain decimal string: ``"101.50"`` → ``(1015, 1)``.

    Trailing zeros of the fraction are dropped. Raises :class:`BadValue` for
    anything but a string of plain decimal digits (an exponent, ``NaN``,
    ``Infinity``, a number where a string is expected), more than
    :data:`MAX_DECIMALS` decimals or more than
    :data:`MAX_DIGITS` significant digits. The digits are counted before any
    conversion, so a 10,000-digit value costs no more than its length.
    """
    if not isinstance(text, str):
        raise BadValue(f"not a decimal string: {_short(text)}")
    if _PLAIN.fullmatch(text) is None:
        raise BadValue(f"not a plain decimal number: {_short(text)}")
    body = text[1:] if text.startswith("-") else text
    whole, _, frac = body.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > MAX_DECIMALS:
        raise BadValue(f"more than {MAX_DECIMALS} decimals: {_short(text)}")
    digits = (whole + frac).lstrip("0")
    if len(digits) > MAX_DIGITS:
        raise BadValue(f"more than {MAX_DIGITS} significant digits: {_short(text)}")
    mantissa = int(digits) if digits else 0
    return (-mantissa if body is not text else mantissa), len(frac)


def check_level(
    price: tuple[int, int], size: tuple[int, int], price_text: object, size_text: object
) -> None:
    """Raise :class:`BadValue` unless a book level's or trade's price is positive and its size
    is not negative (both given as :func:`decimal_pair` pairs, with their text for the message).
    """
    if price[0] <= 0:
        raise BadValue(f"price not positive: {_short(price_text)}")
    if size[0] < 0:
        raise BadValue(f"negative size: {_short(size_text)}")


def _short(value: object, limit: int = 40) -> str:
    """*value* as ``repr``, cut to *limit* characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}…({len(text)} chars)"
