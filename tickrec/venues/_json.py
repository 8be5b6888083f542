"""Shared JSON reading for the codecs: a payload becomes a dict or a problem string."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["INT64_MAX", "as_int", "as_int64", "epoch_ns", "load_object", "ms_to_ns"]

#: The largest value of the int64 columns (``venue_seq``, ``exch_ts``;
#: docs/architecture.md section 2.2).
INT64_MAX = 2**63 - 1


def load_object(payload: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """``(object, None)`` if *payload* is a JSON object, else ``(None, problem)``."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"not a JSON object but {type(value).__name__}"
    return value, None


def as_int(value: object) -> int | None:
    """*value* if it is a JSON integer (not a bool, not a float), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_int64(value: object) -> int | None:
    """*value* if it is a JSON integer that an int64 column holds, from 0 up, else ``None``."""
    n = as_int(value)
    return n if n is not None and 0 <= n <= INT64_MAX else None


def ms_to_ns(value: object) -> int | None:
    """Epoch milliseconds as int64 nanoseconds, or ``None`` if *value* is not such a time."""
    ms = as_int64(value)
    return ms * 1_000_000 if ms is not None and ms <= INT64_MAX // 1_000_000 else None


def epoch_ns(value: int) -> int:
    """Nanoseconds since the epoch from an epoch time in s, ms, µs or ns, by its digit count.

    Present-day times have 10 digits in seconds, 13 in ms, 16 in µs and 19 in
    ns; the cut-offs sit between those, so any time from 2001 to 2286 is read
    right (docs/venues/gemini.md section 3.4: "infer the unit from digit count";
    Binance's ``timeUnit=MICROSECOND``).
    """
    digits = len(str(abs(value)))
    if digits >= 18:
        return value
    if digits >= 15:
        return value * 1_000
    if digits >= 12:
        return value * 1_000_000
    return value * 1_000_000_000
