"""tickrec itself, measured through its replay API on the same jobs as the peers.

- :func:`decode`: raw rows to normalized book operations
  (:func:`replay.decode.decode`), timed as messages per second;
- :func:`load_cache`: the same operations read back from the normalized
  cache (:mod:`replay.cache`), which the rebuilds then start from;
- :func:`rebuild_grid`: the compiled book kernel (:class:`replay.book.BookEngine`)
  over already decoded operations, emitting the top 10 levels on a 1 s grid;
- :func:`rebuild_bbo`: the same kernel reading the best bid and ask after
  every change. The engine's own per-message mode emits one row per message
  (the state between two changes of one message never existed at the
  venue), so here every operation is given its own group number to get a
  row after each change, and the rows are folded into the check chunk by chunk.

Checks are the ones the peers compute (:mod:`bench.changes`), after scaling
tickrec's data-derived fixed point to the bench's 0.01 / 1e-8 grid.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from bench.changes import BBO_MOD, DEPTH, PRICE_SCALE, SIZE_SCALE, bbo_check, grid_check
from replay import cache
from replay.book import BookEngine
from replay.decode import decode as replay_decode
from replay.events import BookOps, Decoded
from tickrec import contract
from tickrec.events import BID, OP_SET

__all__ = ["Timed", "decode", "load_cache", "rebuild_bbo", "rebuild_grid", "warm_up"]

I64 = npt.NDArray[np.int64]
_CHUNK = 1 << 20


class Timed(NamedTuple):
    """A timed run: items processed (messages or changes), seconds, and a check (or "")."""

    items: int
    seconds: float
    check: str


def _factors(dec: Decoded) -> tuple[int, int]:
    if dec.price_scale > PRICE_SCALE or dec.size_scale > SIZE_SCALE:
        raise ValueError(
            f"tickrec scales 10^-{dec.price_scale}/10^-{dec.size_scale} are finer than the "
            f"bench grid 10^-{PRICE_SCALE}/10^-{SIZE_SCALE}"
        )
    return 10 ** (PRICE_SCALE - dec.price_scale), 10 ** (SIZE_SCALE - dec.size_scale)


def decode(table: pa.Table, symbol: str) -> tuple[Decoded, Timed]:
    """Decode *table*; the timing counts websocket messages."""
    t0 = time.perf_counter()
    dec = replay_decode(table, symbol)
    seconds = time.perf_counter() - t0
    return dec, Timed(dec.counts.get("messages", 0), seconds, "")


def load_cache(root: Path, venue: str, date: str, symbol: str) -> tuple[Decoded, Timed]:
    """Decode once into the normalized cache, then time reading it back (counts changes)."""
    cache.decode_partition(root, venue, date, symbol)
    parts = contract.partition_parts(root, venue, date, symbol)
    t0 = time.perf_counter()
    dec = cache.load(cache.cache_dir(root, venue, date, symbol), cache.key_of(parts))
    seconds = time.perf_counter() - t0
    if dec is None:
        raise RuntimeError("the normalized cache was not written")
    return dec, Timed(_n_changes(dec.ops), seconds, "")


def _n_changes(ops: BookOps) -> int:
    return int(np.count_nonzero(ops.op == OP_SET))


def rebuild_grid(dec: Decoded, grid: I64) -> Timed:
    """Apply every operation and emit top-10 rows at each *grid* time."""
    ops = dec.ops
    t0 = time.perf_counter()
    rows = BookEngine(depth=DEPTH, grid=grid).feed(ops, final=True)
    seconds = time.perf_counter() - t0
    pf, sf = _factors(dec)
    return Timed(_n_changes(ops), seconds, grid_check(rows.ts, rows.px * pf, rows.sz * sf))


def rebuild_bbo(dec: Decoded) -> Timed:
    """Apply every operation and read the best bid and ask after each change."""
    ops = dec.ops
    n = len(ops)
    each = BookOps(
        ops.ts,
        np.arange(n, dtype=np.int64),
        ops.op,
        ops.side,
        ops.price,
        ops.size,
        ops.exch,
        ops.snapshot,
    )
    is_set = ops.op == OP_SET
    sums = np.zeros(4, np.int64)
    t0 = time.perf_counter()
    engine = BookEngine(depth=1, grid=None)
    done = 0  # rows so far; row k is the book after operation k
    for start in range(0, max(n, 1), _CHUNK):
        stop = min(start + _CHUNK, n)
        rows = engine.feed(each.slice(start, stop), final=stop >= n)
        m = len(rows)
        keep = is_set[done : done + m]
        for j, a in enumerate((rows.px[:, BID, 0], rows.sz[:, BID, 0])):
            sums[j] = (sums[j] + int((a[keep] % BBO_MOD).sum())) % BBO_MOD
        for j, a in enumerate((rows.px[:, 1 - BID, 0], rows.sz[:, 1 - BID, 0])):
            sums[2 + j] = (sums[2 + j] + int((a[keep] % BBO_MOD).sum())) % BBO_MOD
        done += m
    seconds = time.perf_counter() - t0
    pf, sf = _factors(dec)
    # Scaling commutes with the modular sums: (f * x) mod P == f * (x mod P) mod P.
    check = bbo_check(
        int(is_set.sum()),
        int(sums[0]) * pf,
        int(sums[1]) * sf,
        int(sums[2]) * pf,
        int(sums[3]) * sf,
    )
    return Timed(int(is_set.sum()), seconds, check)


def warm_up(dec: Decoded, grid: I64) -> None:
    """Load the compiled kernels (numba) on a small slice, so no timing includes it."""
    small: Any = Decoded(**{**dec.__dict__, "ops": dec.ops.slice(0, min(len(dec.ops), 1000))})
    rebuild_grid(small, grid[:5])
    rebuild_bbo(small)
