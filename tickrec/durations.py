"""Durations written as text (``100ms``, ``30s``, ``15m``, ``1h``), read exactly.

One parser serves every option that takes a duration, on both sides: the
recorder's intervals and the replayer's snapshot grid. The value is parsed as
a decimal, so ``0.1s`` is exactly 100,000,000 ns.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from tickrec.errors import UsageError

__all__ = ["parse_duration", "parse_duration_ns"]

_UNITS = {
    "ns": 1,
    "us": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86_400 * 10**9,
}


def parse_duration_ns(text: str | float, option: str) -> int:
    """Whole nanoseconds in *text*: a number with a unit (ns, us, ms, s, m, h, d) or seconds.

    *option* names the option in the error message.
    """
    t = str(text).strip().lower()
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(suffix):
            number, scale = t[: -len(suffix)], _UNITS[suffix]
            break
    else:
        number, scale = t, _UNITS["s"]
    try:
        value = Decimal(number.strip()) * scale
    except InvalidOperation:
        raise UsageError(
            f"{option}: cannot read duration {text!r} (try 100ms, 30s, 15m, 1h)"
        ) from None
    if not value.is_finite() or value < 0:
        raise UsageError(f"{option}: duration must be a non-negative number, not {text!r}")
    if value != value.to_integral_value():
        raise UsageError(f"{option}: {text!r} is not a whole number of nanoseconds")
    return int(value)


def parse_duration(text: str | float, option: str) -> float:
    """Seconds in *text*, as :func:`parse_duration_ns` reads it."""
    return parse_duration_ns(text, option) / 1e9
