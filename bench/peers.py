"""Baselines and peers: other ways to keep an L2 book, fed the same changes as tickrec.

Each peer does the same two jobs on :class:`~bench.changes.Changes`:

- ``grid``: apply every change and emit the top 10 levels per side at each
  1 s grid time (:func:`bench.changes.grid_check`);
- ``bbo``: apply every change and read the best bid and ask after each one
  (:func:`bench.changes.bbo_check`).

The peers:

- ``naive``: the simplest book one would write. It reads the raw payloads itself
  (``json.loads`` per message), keeps a ``dict`` per side keyed by the price
  string, and calls ``sorted()`` to read the top. Its timing includes that
  decoding. It is slow, so the harness runs it on a prefix of the day.
- ``sortedcontainers``: a ``SortedDict`` per side keyed by integer ticks.
- ``order-book``: the C extension cryptofeed uses (``order_book.OrderBook``),
  keyed by integer ticks.
- ``tardis-dev``: the ``OrderBook`` of the tardis-dev npm package, run by
  ``node/peer.js`` under node on the changes written to binary files.

Integer keys are the most favourable choice for the Python peers: no
``Decimal`` or float conversion happens inside their timed loops. The node
peer gets its levels as JavaScript numbers (exact for these integers) and
one reused ``book_change`` object per side, so it allocates nothing per change.

A peer that cannot run here (a missing module, no node, no ``npm install``)
raises :class:`Unavailable` with the reason, for the report to show.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import pyarrow as pa

from bench.changes import (
    BBO_MOD,
    DEPTH,
    PRICE_SCALE,
    SET,
    SIZE_SCALE,
    Changes,
    bbo_check,
    grid_check,
    units,
)

__all__ = ["MODES", "PEERS", "NaiveInput", "Result", "Unavailable", "run_node", "run_peer"]

#: The two jobs every peer does.
MODES = ("grid", "bbo")
NODE_DIR = Path(__file__).with_name("node")

_Top = list[tuple[int, int]]
_Rows = list[tuple[_Top, _Top]]
_Sums = tuple[int, int, int, int]


class Unavailable(Exception):
    """A peer cannot run in this environment; the message says why."""


class Result(NamedTuple):
    """One timed run: changes applied, seconds spent, and the checksum of what was read."""

    changes: int
    seconds: float
    check: str


# --- shared helpers -----------------------------------------------------------------------


def _module(name: str, dist: str | None = None) -> Any:
    """Import an optional peer module, or raise :class:`Unavailable` saying how to get it."""
    if importlib.util.find_spec(name) is None:
        raise Unavailable(f"module {name} not installed (pip install {dist or name})")
    return importlib.import_module(name)


def _rows_check(grid: Sequence[int], rows: _Rows) -> str:
    """:func:`grid_check` of rows given as (bids, asks) lists of (price, size), best first."""
    px = np.zeros((len(rows), 2, DEPTH), np.int64)
    sz = np.zeros((len(rows), 2, DEPTH), np.int64)
    for r, sides in enumerate(rows):
        for s, levels in enumerate(sides):
            for i, (p, q) in enumerate(levels):
                px[r, s, i] = p
                sz[r, s, i] = q
    return grid_check(np.asarray(grid[: len(rows)], np.int64), px, sz)


@dataclass(frozen=True)
class _Flat:
    """Changes as Python lists, made once before any timing."""

    ts: list[int]
    op: list[int]
    side: list[int]
    px: list[int]
    sz: list[int]
    n_changes: int

    @staticmethod
    def of(changes: Changes) -> _Flat:
        return _Flat(
            changes.ts.tolist(),
            changes.op.tolist(),
            changes.side.tolist(),
            changes.px.tolist(),
            changes.sz.tolist(),
            changes.n_changes,
        )


# --- sortedcontainers ---------------------------------------------------------------------


def _sorted_grid(c: _Flat, grid: list[int]) -> _Rows:
    sorted_dict = _module("sortedcontainers").SortedDict
    bids = sorted_dict()
    asks = sorted_dict()
    rows: _Rows = []
    gi, ng = 0, len(grid)
    for t, o, s, p, q in zip(c.ts, c.op, c.side, c.px, c.sz, strict=True):
        while gi < ng and grid[gi] < t:
            rows.append((list(reversed(bids.items()[-DEPTH:])), list(asks.items()[:DEPTH])))
            gi += 1
        if o == SET:
            book = asks if s else bids
            if q:
                book[p] = q
            else:
                book.pop(p, None)
        else:
            bids.clear()
            asks.clear()
    while gi < ng:
        rows.append((list(reversed(bids.items()[-DEPTH:])), list(asks.items()[:DEPTH])))
        gi += 1
    return rows


def _sorted_bbo(c: _Flat) -> _Sums:
    sorted_dict = _module("sortedcontainers").SortedDict
    bids = sorted_dict()
    asks = sorted_dict()
    bp = bs = ap = as_ = 0
    for o, s, p, q in zip(c.op, c.side, c.px, c.sz, strict=True):
        if o != SET:
            bids.clear()
            asks.clear()
            continue
        book = asks if s else bids
        if q:
            book[p] = q
        else:
            book.pop(p, None)
        if bids:
            k, v = bids.peekitem(-1)
            bp += k
            bs += v
        if asks:
            k, v = asks.peekitem(0)
            ap += k
            as_ += v
    return bp, bs, ap, as_


# --- order-book (cryptofeed's C extension) -----------------------------------------------


def _order_book() -> Any:
    return _module("order_book", "order-book").OrderBook()


def _ob_top(side: Any) -> _Top:
    return [side.index(i) for i in range(min(DEPTH, len(side)))]


def _ob_grid(c: _Flat, grid: list[int]) -> _Rows:
    ob = _order_book()
    bids, asks = ob.bids, ob.asks
    rows: _Rows = []
    gi, ng = 0, len(grid)
    for t, o, s, p, q in zip(c.ts, c.op, c.side, c.px, c.sz, strict=True):
        while gi < ng and grid[gi] < t:
            rows.append((_ob_top(bids), _ob_top(asks)))
            gi += 1
        if o == SET:
            book = asks if s else bids
            if q:
                book[p] = q
            elif p in book:
                del book[p]
        else:
            ob = _order_book()
            bids, asks = ob.bids, ob.asks
    while gi < ng:
        rows.append((_ob_top(bids), _ob_top(asks)))
        gi += 1
    return rows


def _ob_bbo(c: _Flat) -> _Sums:
    ob = _order_book()
    bids, asks = ob.bids, ob.asks
    bp = bs = ap = as_ = 0
    for o, s, p, q in zip(c.op, c.side, c.px, c.sz, strict=True):
        if o != SET:
            ob = _order_book()
            bids, asks = ob.bids, ob.asks
            continue
        book = asks if s else bids
        if q:
            book[p] = q
        elif p in book:
            del book[p]
        if len(bids):
            k, v = bids.index(0)
            bp += k
            bs += v
        if len(asks):
            k, v = asks.index(0)
            ap += k
            as_ += v
    return bp, bs, ap, as_


# --- naive --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NaiveInput:
    """What the naive baseline reads: the raw rows, as a recorder stored them."""

    recv: list[int]
    source: list[str]
    conn: list[int]
    payload: list[str]
    n_changes: int

    @staticmethod
    def of(table: pa.Table, changes: Changes) -> NaiveInput:
        """The first rows of *table* that *changes* (a prefix of the day's) come from."""
        rows = int(changes.row[-1]) + 1 if len(changes) else 0
        t = table.slice(0, rows)
        recv = np.maximum.accumulate(t.column("recv_ts").cast(pa.int64()).to_numpy())
        return NaiveInput(
            recv.tolist(),
            t.column("source").cast(pa.string()).to_pylist(),
            t.column("conn_id").to_pylist(),
            t.column("payload").to_pylist(),
            changes.n_changes,
        )


def _naive_top(book: dict[str, str], n: int, best_high: bool) -> list[tuple[str, str]]:
    """The naive way to read the top: sort the whole side."""
    return sorted(book.items(), key=lambda kv: float(kv[0]), reverse=best_high)[:n]


def _exact(levels: list[tuple[str, str]]) -> _Top:
    return [(units(p, PRICE_SCALE), units(q, SIZE_SCALE)) for p, q in levels]


def _naive(inp: NaiveInput, grid: list[int] | None) -> _Rows | _Sums:
    """Returns the grid rows (price and size strings) or the BBO sums."""
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    rows: list[Any] = []
    bp = bs = ap = as_ = 0
    gi, ng = 0, len(grid or ())
    cur = None
    for t, src, conn, text in zip(inp.recv, inp.source, inp.conn, inp.payload, strict=True):
        if grid is not None:
            while gi < ng and grid[gi] < t:
                rows.append((_naive_top(bids, DEPTH, True), _naive_top(asks, DEPTH, False)))
                gi += 1
        if src == "event":
            if conn == cur and json.loads(text).get("event") == "disconnect":
                bids.clear()
                asks.clear()
                cur = None
            continue
        if src != "ws":
            continue
        if conn != cur:
            cur = conn
            bids.clear()
            asks.clear()
        msg = json.loads(text)
        if msg["type"] != "update":
            continue
        if any(e.get("reason") == "initial" for e in msg["events"]):
            bids.clear()
            asks.clear()
        for e in msg["events"]:
            if e["type"] != "change":
                continue
            book = bids if e["side"] == "bid" else asks
            if float(e["remaining"]) == 0:
                book.pop(e["price"], None)
            else:
                book[e["price"]] = e["remaining"]
            if grid is None:
                for p, q in _exact(_naive_top(bids, 1, True)):
                    bp += p
                    bs += q
                for p, q in _exact(_naive_top(asks, 1, False)):
                    ap += p
                    as_ += q
    if grid is None:
        return bp, bs, ap, as_
    while gi < ng:
        rows.append((_naive_top(bids, DEPTH, True), _naive_top(asks, DEPTH, False)))
        gi += 1
    return [(_exact(b), _exact(a)) for b, a in rows]


# --- node (tardis-dev) --------------------------------------------------------------------


def write_node_input(changes: Changes, grid: np.ndarray[Any, Any], directory: Path) -> None:
    """Write *changes* and *grid* as the flat binary files ``node/peer.js`` reads.

    Times are sent relative to the grid's first point, so they stay exact as
    JavaScript numbers; the base goes in ``meta.json``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    base = int(grid[0]) if len(grid) else 0
    (changes.ts - base).astype("<f8").tofile(directory / "ts.f64")
    changes.px.astype("<f8").tofile(directory / "px.f64")
    changes.sz.astype("<f8").tofile(directory / "sz.f64")
    changes.op.astype("i1").tofile(directory / "op.i8")
    changes.side.astype("i1").tofile(directory / "side.i8")
    (np.asarray(grid, np.int64) - base).astype("<f8").tofile(directory / "grid.f64")
    meta = {"base_ns": str(base), "changes": changes.n_changes, "depth": DEPTH, "mod": BBO_MOD}
    (directory / "meta.json").write_text(json.dumps(meta))


def run_node(directory: Path, mode: str, reps: int, timeout: float = 3600.0) -> list[Result]:
    """Run the tardis-dev peer *reps* times on the files in *directory*."""
    node = shutil.which("node")
    if node is None:
        raise Unavailable("node not found on PATH")
    if not (NODE_DIR / "node_modules" / "tardis-dev").is_dir():
        raise Unavailable(f"tardis-dev not installed: run npm install in {NODE_DIR}")
    proc = subprocess.run(
        [node, str(NODE_DIR / "peer.js"), str(directory), mode, str(reps)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"node peer failed: {tail}")
    out = []
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        out.append(Result(int(rec["changes"]), float(rec["seconds"]), str(rec["check"])))
    return out


# --- running ------------------------------------------------------------------------------

_PyPeer = Callable[[Any, list[int] | None], "_Rows | _Sums"]


def _py_sorted(c: _Flat, grid: list[int] | None) -> _Rows | _Sums:
    return _sorted_bbo(c) if grid is None else _sorted_grid(c, grid)


def _py_ob(c: _Flat, grid: list[int] | None) -> _Rows | _Sums:
    _order_book()
    return _ob_bbo(c) if grid is None else _ob_grid(c, grid)


#: Python peers by name (the node peer runs through :func:`run_node`).
PEERS: dict[str, _PyPeer] = {
    "naive": _naive,
    "sortedcontainers": _py_sorted,
    "order-book": _py_ob,
}


def run_peer(
    name: str,
    changes: Changes,
    mode: str,
    grid: np.ndarray[Any, Any],
    reps: int,
    naive_input: NaiveInput | None = None,
) -> list[Result]:
    """Run Python peer *name* on *changes* in *mode* (``grid`` or ``bbo``), *reps* times.

    The naive peer reads ``naive_input`` (the raw rows *changes* come from).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if name == "sortedcontainers":
        _module(name)
    fn = PEERS[name]
    if name == "naive":
        if naive_input is None:
            raise ValueError("the naive peer needs naive_input")
        data: Any = naive_input
    else:
        data = _Flat.of(changes)
    g = [int(x) for x in grid] if mode == "grid" else None
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        got = fn(data, g)
        seconds = time.perf_counter() - t0
        if g is None:
            bp, bs, ap, as_ = cast(_Sums, got)
            check = bbo_check(changes.n_changes, bp, bs, ap, as_)
        else:
            check = _rows_check(g, cast(_Rows, got))
        out.append(Result(changes.n_changes, seconds, check))
    return out
