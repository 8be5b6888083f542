"""Shared JSON reading for the codecs: a payload becomes a dict or a problem string."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["as_int", "load_object"]


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
