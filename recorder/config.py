"""Recording options from a TOML file and the command line, into a :class:`RecordConfig`.

A config file holds the same options as the command line (``-`` or ``_`` in
names), at the top level, plus per-venue tables that apply when that venue is
recorded::

    symbols = ["BTCUSD", "ETHUSD", "SOLUSD"]
    protocol = "v2"
    snapshot-every = "60s"
    rotate = "15m"
    data = "/srv/tickdata"

    [venues.gemini]
    url = "wss://api.gemini.com"
    rest-url = "https://api.gemini.com"
    stale-after = "20s"

Precedence: the top level, then the venue table, then command-line flags.
Durations are numbers of seconds or strings like ``100ms``, ``30s``, ``15m``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recorder.record import RecordConfig
from tickrec.durations import parse_duration
from tickrec.errors import UsageError

__all__ = ["DURATIONS", "build_config", "parse_until"]

#: Options given as durations.
DURATIONS = frozenset(
    {
        "snapshot_every",
        "rotate",
        "fsync_interval",
        "duration",
        "stale_after",
        "rest_min_gap",
        "rest_timeout",
        "status_every",
        "backoff_base",
        "backoff_cap",
        "disk_timeout",
        "max_offline",
        "lifetime",
    }
)
_INTS = frozenset({"snapshot_depth", "sync_depth"})
_FLOATS = frozenset({"connects_per_minute"})
_STRINGS = frozenset(
    {"venue", "protocol", "data", "journal", "url", "rest_url", "run_id", "metrics"}
)
# Internal: set in code (tests), not from a file or the command line.
_FIELDS = {f.name for f in dataclasses.fields(RecordConfig)} - {"extra", "clock", "handover_lead"}


def parse_until(text: str) -> dt.time:
    """A UTC wall-clock time ``HH:MM`` (or ``HH:MM:SS``)."""
    try:
        at = dt.time.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"until: cannot read {text!r} as a UTC time HH:MM") from None
    if at.tzinfo is not None:
        raise UsageError(f"until: {text!r} has a UTC offset; give the time in UTC, as HH:MM")
    return at


def _value(name: str, value: Any, where: str) -> Any:
    if name not in _FIELDS:
        raise UsageError(f"{where}: unknown option {name.replace('_', '-')!r}")
    if name == "symbols":
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        if isinstance(value, list) and all(isinstance(s, str) for s in value):
            return tuple(value)
        raise UsageError(f"{where}: symbols must be a list of strings or 'A,B'")
    if name == "until":
        return value if isinstance(value, dt.time) else parse_until(str(value))
    if name in DURATIONS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return parse_duration(value, name.replace("_", "-"))
    elif name in _INTS and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif name in _FLOATS and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif name in _STRINGS and isinstance(value, str):
        return value
    raise UsageError(f"{where}: bad value {value!r} for {name.replace('_', '-')}")


def _options(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    return {
        k.replace("-", "_"): _value(k.replace("-", "_"), v, where)
        for k, v in table.items()
        if k != "venues"
    }


def build_config(config_file: str | Path | None, flags: Mapping[str, Any]) -> RecordConfig:
    """The run's config: *config_file* (TOML) if given, overridden by *flags* (None = not given)."""
    values: dict[str, Any] = {}
    venues: Mapping[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise UsageError(f"--config: cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"--config: {path} is not valid TOML: {exc}") from None
        values.update(_options(doc, str(path)))
        venues = doc.get("venues", {})
        if not isinstance(venues, dict):
            raise UsageError(f"{path}: 'venues' must be a table of per-venue tables")
    given = {k: v for k, v in flags.items() if v is not None}
    venue = given.get("venue", values.get("venue", "gemini"))
    table = venues.get(venue, {})
    if not isinstance(table, dict):
        raise UsageError(f"{config_file}: [venues.{venue}] must be a table")
    values.update(_options(table, f"{config_file} [venues.{venue}]"))
    values.update(_options(given, "command line"))
    if "symbols" not in values:
        raise UsageError("symbols: give --symbols BTCUSD,ETHUSD or 'symbols' in the config file")
    return RecordConfig(**values)
