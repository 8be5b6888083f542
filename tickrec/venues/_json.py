"""Shared JSON reading for the codecs: a payload becomes a dict or a problem string."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["INT64_MAX", "as_int", "as_int64", "load_object", "ms_to_ns"]

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
