"""The compiled kernels: where numba caches them, and compiling them ahead of their use.

Cache. numba keys a cached kernel to its own source file only, not to the
helpers it inlines or calls from other files (the scanners are built from
:mod:`tickrec.json_bytes`), nor to the constants it reads from them.
So the cache lives in a directory named by a hash of every file the kernels
are compiled from: :data:`KERNEL_MODULES` and the project modules they
import (:mod:`replay.sources`). After an edit to any of them the hash names
a new, empty directory and every kernel is compiled afresh. The directory
is ``numba-<hash>`` in ``replay/__pycache__``, or, where that cannot be
written (an installed package), in ``$XDG_CACHE_HOME/tickrec/numba``
(default ``~/.cache``), or in ``$NUMBA_CACHE_DIR`` if the user set it. Each
place keeps its three most recently used such directories and deletes
older ones. numba picks a kernel's cache when the kernel is defined, so
:func:`use_cache_dir` runs before any kernel module is imported (the
``replay`` package calls it first).

First run. Compiling every kernel takes about 25 s on one core, once per
version of the sources. When numba compiles (rather than loads) a kernel
that Python calls, a line on stderr says so, once per process, with an
estimate. :func:`warm` compiles them ahead of use by replaying a small
made-up partition, so that what the first real replay needs is then in the
cache; ``tickrec demo`` runs it in a second process while it records.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from replay import sources
from tickrec.venues import VENUES

__all__ = [
    "KERNELS",
    "KERNEL_MODULES",
    "announce_compiles",
    "cache_dir",
    "use_cache_dir",
    "warm",
]

#: The kernels Python calls (the others are compiled with them), with about how
#: many seconds each takes to compile on one core of the development machine:
#: the engine's own, and each venue's (:attr:`tickrec.venues.base.Venue.kernels`).
KERNELS = {
    "replay.book._run": 7,
    "replay.ticks._rescale": 1,
    **{name: s for v in VENUES.values() for name, s in v.kernels.items()},
}
#: The modules that define compiled kernels.
KERNEL_MODULES = tuple(
    sorted({"tickrec.json_bytes", *(name.rpartition(".")[0] for name in KERNELS)})
)
_KEEP = 3  # cache directories kept in one place, the one in use included
_PREFIX = "numba-"
_DEFAULT_MESSAGE = "compiling replay kernels (first run only, about {seconds} s)..."


@functools.cache
def _sources_hash() -> str:
    return sources.digest(sources.closure(KERNEL_MODULES))[:16]


def _places() -> list[Path]:
    """Where hash-named cache directories go, in order of preference."""
    user = os.environ.get("NUMBA_CACHE_DIR")
    if user:
        return [Path(user)]
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return [Path(__file__).resolve().parent / "__pycache__", Path(xdg) / "tickrec" / "numba"]


def _writable(place: Path) -> bool:
    try:
        place.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(place, os.W_OK | os.X_OK)


def cache_dir() -> Path:
    """The directory numba caches the kernels in, named by the hash of their sources."""
    name = _PREFIX + _sources_hash()
    for place in _places():
        if _writable(place):
            return place / name
    return _places()[0] / name  # nothing writable: numba then caches nothing


def _prune(current: Path) -> None:
    """Delete all but the most recently used hash directories beside *current*."""
    try:
        siblings = [p for p in current.parent.iterdir() if p.name.startswith(_PREFIX)]
        siblings.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in [p for p in siblings if p != current][_KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


@functools.cache
def use_cache_dir() -> Path:
    """Point numba's cache at :func:`cache_dir` (before any kernel is defined); return it.

    Also installs the first-compile notice (:func:`announce_compiles`).
    """
    from numba.core import config

    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.utime(path)  # the most recently used
    except OSError:
        pass
    else:
        _prune(path)
    # Not in the environment: another process finds the same directory itself. (numba
    # reads its settings again when a NUMBA_ variable changes, but by then the
    # kernels, all defined when replay is imported, have their caches.)
    config.CACHE_DIR = str(path)  # type: ignore[attr-defined]
    announce_compiles()
    return path


def _missing_seconds() -> int:
    """The estimates of the kernels (:data:`KERNELS`) that have no entry in the cache."""
    total = 0
    for name, seconds in KERNELS.items():
        module, _, qualname = name.rpartition(".")
        kernel = getattr(sys.modules.get(module), qualname, None)
        cache = getattr(kernel, "_cache", None)
        path = getattr(cache, "cache_path", None)
        stem = f"{module.rpartition('.')[2]}.{qualname}-"
        if path is None or not any(Path(path).glob(stem + "*.nbi")):
            total += seconds
    return total


class _Notice:
    """Writes *message* to stderr when numba first compiles one of :data:`KERNELS`."""

    def __init__(self) -> None:
        self.message = _DEFAULT_MESSAGE
        self.shown = False

    def __call__(self, kernel: Any) -> None:
        func = getattr(kernel, "py_func", None)
        if self.shown or func is None or f"{func.__module__}.{func.__qualname__}" not in KERNELS:
            return
        self.shown = True
        seconds = max(_missing_seconds(), KERNELS[f"{func.__module__}.{func.__qualname__}"])
        sys.stderr.write(self.message.format(seconds=seconds) + "\n")
        sys.stderr.flush()


_notice = _Notice()


@functools.cache
def _listen() -> None:
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            _notice(ev.data.get("dispatcher"))

        def on_end(self, ev: Any) -> None:
            pass

    # numba signals only compilations: a kernel loaded from the cache says nothing.
    event.register("numba:compile", Listener())


def announce_compiles(message: str | None = None) -> None:
    """Say on stderr, once per process, when a kernel is compiled rather than loaded.

    *message* may hold ``{seconds}``, the estimate.
    """
    if message is not None:
        _notice.message = message
    _listen()


def _sample(protocols: Sequence[str]) -> Any:
    """A small partition in contract form: REST books, and v1 messages if asked for."""
    import json

    from tickrec.contract import Row, rows_to_table

    t0 = 1_768_435_200_000_000_000
    book = '{"bids":[{"price":"100.5","amount":"2","timestamp":"1"}],"asks":[]}'
    v1 = [
        '{"type":"update","eventId":1,"socket_sequence":0,"events":['
        '{"type":"change","reason":"initial","side":"bid","price":"100.50","remaining":"2",'
        '"delta":"2"},{"type":"change","reason":"initial","side":"ask","price":"101",'
        '"remaining":"0.5","delta":"0.5"}]}',
        '{"type":"update","eventId":2,"timestamp":1768435201,"timestampms":1768435201002,'
        '"socket_sequence":1,"events":[{"type":"trade","tid":77,"price":"100.5",'
        '"amount":"0.1","makerSide":"bid"},{"type":"change","side":"bid","price":"100.4",'
        '"remaining":"1.25","delta":"1.25","reason":"place"}]}',
        '{"type":"heartbeat","socket_sequence":2}',
    ]
    connect = json.dumps({"event": "connect"})
    rows = [Row(t0, 0, "run", 1, "gemini.v1", "event", connect)]
    messages = v1 if "gemini.v1" in protocols else []
    for k in range(max(len(messages), 1)):
        ts = t0 + (2 * k + 1) * 10**8
        rows.append(Row(ts, len(rows), "run", 1, "gemini.rest", "rest", book))
        if k < len(messages):
            rows.append(Row(ts + 10**8, len(rows), "run", 1, "gemini.v1", "ws", messages[k]))
    return rows_to_table(rows)


def warm(protocols: Sequence[str] = ("gemini.v1",)) -> None:
    """Compile (or load) the kernels that replaying *protocols* needs.

    A small made-up partition is decoded and replayed as :func:`replay.open`
    would (the book with its status and REST checks, snapshots on a grid and
    per message), so the kernels are compiled for the same types.
    """
    from replay.api import Day

    day = Day(_sample(protocols), date="2026-01-15", symbol="BTCUSD")
    day.summary()
    day.snapshot_table(depth=10, every="1s")
    day.timeline  # noqa: B018 (computes the per-message rows)
