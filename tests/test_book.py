"""The book kernel against a plain-Python reference, with property tests.

:class:`RefBook` is the independent reference: one dict per side, sorted()
to read the top, emission rules written out longhand from docs/architecture.md
section 3. It is deliberately naive.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.book import BookEngine, Rows, Windows
from replay.events import BookOps
from tickrec.events import ASK, BID, OP_CLEAR, OP_INVALID, OP_SET, OP_VALID

Op = tuple[int, int, int, int, int, int]  # ts, grp, op, side, price, size


class RefBook:
    """Plain dict-per-side L2 book (the reference the kernel must equal)."""

    def __init__(self) -> None:
        self.sides: list[dict[int, int]] = [{}, {}]
        self.valid = False

    def apply(self, op: int, side: int, price: int, size: int) -> None:
        if op == OP_SET:
            if size == 0:
                self.sides[side].pop(price, None)
            else:
                self.sides[side][price] = size
        elif op == OP_CLEAR:
            self.sides = [{}, {}]
            self.valid = False
        elif op == OP_INVALID:
            self.valid = False
        else:
            self.valid = True

    def top(self, side: int, depth: int) -> list[tuple[int, int]]:
        levels = sorted(self.sides[side].items(), reverse=(side == BID))
        return levels[:depth]

    def row(self, depth: int) -> tuple[bool, list[list[tuple[int, int]]]]:
        return self.valid, [self.top(BID, depth), self.top(ASK, depth)]


def ref_rows(ops: Sequence[Op], depth: int, grid: Sequence[int] | None) -> list[tuple]:
    """Reference emission: per message, or at grid times (book after all ts <= T)."""
    book = RefBook()
    out: list[tuple] = []
    if grid is None:
        for k, (ts, grp, op, side, px, sz) in enumerate(ops):
            book.apply(op, side, px, sz)
            if k + 1 == len(ops) or ops[k + 1][1] != grp:
                out.append((ts, *book.row(depth)))
        return out
    k = 0
    for t in grid:
        while k < len(ops) and ops[k][0] <= t:
            _, _, op, side, px, sz = ops[k]
            book.apply(op, side, px, sz)
            k += 1
        out.append((t, *book.row(depth)))
    return out


def ref_status(ops: Sequence[Op]) -> list[tuple]:
    """Reference status rows: the per-message top-1 rows where (valid, crossed) changes."""
    out, shown = [], None
    for ts, valid, (bids, asks) in ref_rows(ops, 1, None):
        state = (valid, valid and bool(bids) and bool(asks) and bids[0][0] >= asks[0][0])
        if state != shown:
            out.append((ts, valid, [bids, asks]))
            shown = state
    return out


def kernel_rows(rows: Rows) -> list[tuple]:
    out = []
    for r in range(len(rows)):
        sides = []
        for s in (BID, ASK):
            sides.append(
                [(int(p), int(z)) for p, z in zip(rows.px[r, s], rows.sz[r, s], strict=True) if z]
            )
        out.append((int(rows.ts[r]), bool(rows.valid[r]), sides))
    return out


def to_ops(ops: Sequence[Op]) -> BookOps:
    cols = list(zip(*ops, strict=True)) if ops else [[]] * 6
    n = len(ops)
    return BookOps(
        ts=np.array(cols[0], np.int64),
        grp=np.array(cols[1], np.int64),
        op=np.array(cols[2], np.int8),
        side=np.array(cols[3], np.int8),
        price=np.array(cols[4], np.int64),
        size=np.array(cols[5], np.int64),
        exch=np.zeros(n, np.int64),
        snapshot=np.zeros(n, bool),
    )


def run_kernel(
    ops: BookOps, depth: int, grid: np.ndarray | None, cuts: Sequence[int] = (), capacity: int = 2
) -> Rows:
    engine = BookEngine(depth=depth, grid=grid, capacity=capacity)
    bounds = [0, *sorted(set(cuts)), len(ops)]
    parts = [
        engine.feed(ops.slice(a, b), final=(b == len(ops) and i == len(bounds) - 2))
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    return Rows.concat(parts, depth)


# --- streams ------------------------------------------------------------------------

op_codes = st.sampled_from([OP_SET] * 12 + [OP_CLEAR, OP_INVALID, OP_VALID])


@st.composite
def any_stream(draw: st.DrawFn) -> list[Op]:
    """Arbitrary operations: prices anywhere (including far outliers), sizes incl. 0."""
    n = draw(st.integers(0, 120))
    ops: list[Op] = []
    ts, grp = 0, 0
    for _ in range(n):
        if draw(st.booleans()):
            grp += 1
            ts += draw(st.integers(0, 3))
        code = draw(op_codes)
        price = draw(st.one_of(st.integers(90, 110), st.integers(1, 10**12)))
        size = draw(st.sampled_from([0, 0, 1, 2, 5, 10**15]))
        ops.append((ts, grp, code, draw(st.sampled_from([BID, ASK])), price, size))
    return ops


@st.composite
def valid_stream(draw: st.DrawFn) -> tuple[list[Op], list[Op], dict[int, int], dict[int, int]]:
    """A snapshot, then deltas that keep the book uncrossed, as an exchange would send.

    Returns ``(snapshot ops, delta ops, final bids, final asks)``; a delta that
    would cross first removes the opposite levels it crosses, in the same message.
    """
    mid = 1000
    bids = {mid - i: draw(st.integers(1, 9)) for i in range(1, draw(st.integers(1, 6)) + 1)}
    asks = {mid + i: draw(st.integers(1, 9)) for i in range(1, draw(st.integers(1, 6)) + 1)}
    snap: list[Op] = [(0, 0, OP_CLEAR, 0, 0, 0)]
    snap += [(0, 0, OP_SET, BID, p, z) for p, z in bids.items()]
    snap += [(0, 0, OP_SET, ASK, p, z) for p, z in asks.items()]
    snap.append((0, 0, OP_VALID, 0, 0, 0))
    deltas: list[Op] = []
    for grp in range(1, draw(st.integers(0, 60)) + 1):
        ts = grp * 7
        side = draw(st.sampled_from([BID, ASK]))
        price = draw(st.integers(mid - 12, mid + 12))
        size = draw(st.sampled_from([0, 1, 3, 8]))
        book, other = (bids, asks) if side == BID else (asks, bids)
        if size:
            crossing = [p for p in other if (p <= price if side == BID else p >= price)]
            for p in sorted(crossing):
                deltas.append((ts, grp, OP_SET, 1 - side, p, 0))
                del other[p]
            book[price] = size
        else:
            book.pop(price, None)
        deltas.append((ts, grp, OP_SET, side, price, size))
    return snap, deltas, bids, asks


# --- properties ---------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(any_stream(), st.integers(1, 6), st.booleans(), st.data())
def test_kernel_equals_reference(ops: list[Op], depth: int, on_grid: bool, data: st.DataObject):
    grid = None
    if on_grid:
        grid = sorted(set(data.draw(st.lists(st.integers(-1, 400), max_size=30))))
    expected = ref_rows(ops, depth, grid)
    got = kernel_rows(run_kernel(to_ops(ops), depth, None if grid is None else np.array(grid)))
    assert got == [(t, v, s) for t, v, s in expected]


@settings(max_examples=100, deadline=None)
@given(any_stream(), st.booleans(), st.data())
def test_output_independent_of_chunking(ops: list[Op], on_grid: bool, data: st.DataObject):
    grid = np.arange(-1, 200, 3, dtype=np.int64) if on_grid else None
    cuts = data.draw(st.lists(st.integers(0, len(ops)), max_size=6))
    whole = run_kernel(to_ops(ops), 4, grid)
    chunked = run_kernel(to_ops(ops), 4, grid, cuts)
    for a, b in zip(
        (whole.ts, whole.valid, whole.px, whole.sz),
        (chunked.ts, chunked.valid, chunked.px, chunked.sz),
        strict=True,
    ):
        assert np.array_equal(a, b)


@settings(max_examples=100, deadline=None)
@given(valid_stream())
def test_snapshot_plus_deltas_equals_next_snapshot(stream):
    snap, deltas, bids, asks = stream
    engine = BookEngine(depth=0, capacity=1)
    engine.feed(to_ops(snap + deltas), final=True)
    # the "next snapshot" is what an exchange would send now: the true book
    for side, truth in ((BID, bids), (ASK, asks)):
        px, sz = engine.levels(side)
        want = sorted(truth.items(), reverse=(side == BID))
        assert list(zip(px.tolist(), sz.tolist(), strict=True)) == want
    assert engine.valid


@settings(max_examples=100, deadline=None)
@given(valid_stream())
def test_never_crossed_and_no_zero_level_after_valid_stream(stream):
    snap, deltas, _, _ = stream
    rows = run_kernel(to_ops(snap + deltas), 5, None)
    assert rows.valid.all()
    for r in range(len(rows)):
        bid_sz, ask_sz = rows.sz[r, BID], rows.sz[r, ASK]
        if bid_sz[0] and ask_sz[0]:
            assert rows.px[r, BID, 0] < rows.px[r, ASK, 0]
        for sizes, prices in ((bid_sz, rows.px[r, BID]), (ask_sz, rows.px[r, ASK])):
            present = sizes > 0
            # levels are packed best first: once a level is absent, all after it are
            assert not (present[1:] & ~present[:-1]).any()
            assert (prices[~present] == 0).all()


@settings(max_examples=60, deadline=None)
@given(any_stream())
def test_no_zero_size_level_is_ever_stored(ops: list[Op]):
    engine = BookEngine(depth=0, capacity=1)
    engine.feed(to_ops(ops), final=True)
    ref = RefBook()
    for _, _, op, side, px, sz in ops:
        ref.apply(op, side, px, sz)
    for side in (BID, ASK):
        px, sz = engine.levels(side)
        assert (sz > 0).all()
        assert list(zip(px.tolist(), sz.tolist(), strict=True)) == ref.top(side, 10**9)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_deep_snapshot_in_any_order_and_chunking(data: st.DataObject):
    # A snapshot far deeper than the arrays' first capacity, its levels best first
    # (as Binance's REST depth reply sends them, the kernel's fast path), worst
    # first or shuffled, with repeats and removals among them, over a book kept or
    # cleared: after every chunk, cut anywhere, the book is the reference's.
    depth = data.draw(st.integers(1, 300))
    before: list[Op] = [
        (0, 0, OP_SET, BID, 1000 + i, 1) for i in range(data.draw(st.integers(0, 3)))
    ]
    before += [(0, 0, OP_SET, ASK, 1010 - i, 1) for i in range(data.draw(st.integers(0, 3)))]
    levels = [(BID, 1005 - i) for i in range(depth)] + [(ASK, 1006 + i) for i in range(depth)]
    order = data.draw(st.sampled_from(["best first", "worst first", "shuffled"]))
    if order == "worst first":
        levels.reverse()
    elif order == "shuffled":
        levels = data.draw(st.permutations(levels))
    snap: list[Op] = [(1, 1, OP_CLEAR, 0, 0, 0)] if data.draw(st.booleans()) else []
    for side, px in levels:
        snap.append((1, 1, OP_SET, side, px, data.draw(st.sampled_from([0, 1, 2, 3, 3]))))
        if data.draw(st.integers(0, 20)) == 0:  # the level again (or removed)
            snap.append((1, 1, OP_SET, side, px, data.draw(st.sampled_from([0, 4]))))
    snap.append((1, 1, OP_VALID, 0, 0, 0))
    after: list[Op] = [(2, 2, OP_SET, BID, 1005 - depth - 1, 7), (3, 3, OP_SET, ASK, 1006, 0)]
    ops = before + snap + after
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(ops)), max_size=4))))
    grid = np.arange(-1, 5, dtype=np.int64)
    engine = BookEngine(depth=5, grid=grid, capacity=1)
    ref = RefBook()
    parts = []
    for i, (a, b) in enumerate(itertools.pairwise([0, *cuts, len(ops)])):
        parts.append(engine.feed(to_ops(ops).slice(a, b), final=(i == len(cuts))))
        for _, _, op, side, px, sz in ops[a:b]:
            ref.apply(op, side, px, sz)
        for side in (BID, ASK):
            px, sz = engine.levels(side)
            assert list(zip(px.tolist(), sz.tolist(), strict=True)) == ref.top(side, 10**9)
    assert kernel_rows(Rows.concat(parts, 5)) == ref_rows(ops, 5, grid.tolist())


def test_far_outlier_price_costs_one_slot():
    # a bid at 1.00 beside a 6,500.00 touch (real v1 data has one): cents as ticks
    ops = [
        (0, 0, OP_SET, BID, 650_000, 1),
        (0, 0, OP_SET, BID, 100, 5666),
        (0, 0, OP_SET, ASK, 650_100, 2),
        (0, 0, OP_VALID, 0, 0, 0),
    ]
    engine = BookEngine(depth=3, capacity=1)
    rows = engine.feed(to_ops(ops), final=True)
    assert rows.px[0, BID].tolist() == [650_000, 100, 0]
    assert engine._keys.shape[1] <= 4


def test_grid_row_at_t_includes_messages_at_t():
    ops = [(10, 0, OP_SET, BID, 5, 1), (10, 0, OP_VALID, 0, 0, 0), (20, 1, OP_SET, BID, 6, 1)]
    rows = run_kernel(to_ops(ops), 1, np.array([9, 10, 19, 20, 21]))
    assert rows.px[:, BID, 0].tolist() == [0, 5, 5, 6, 6]
    assert rows.valid.tolist() == [False, True, True, True, True]


def rest_min_diff(ops: BookOps, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    engine = BookEngine(depth=0, windows=windows)
    engine.feed(ops, final=True)
    return engine.rest_diff


def test_rest_compare_takes_best_state_in_window():
    ops = [
        (10, 0, OP_SET, BID, 100, 1),
        (10, 0, OP_SET, ASK, 101, 1),
        (10, 0, OP_VALID, 0, 0, 0),
        (20, 1, OP_SET, BID, 100, 2),
        (30, 2, OP_SET, BID, 100, 3),
    ]
    b = [np.array([100], np.int64)]
    a = [np.array([101], np.int64)]
    one = [np.array([1], np.int64)]
    # bid size 2 existed only in [20, 30): a window covering it matches
    best, states = rest_min_diff(
        to_ops(ops),
        Windows.of(np.array([15]), np.array([25]), b, [np.array([2], np.int64)], a, one),
    )
    assert best.tolist() == [0] and states.tolist() == [2]
    # a window entirely after it does not; one level differs
    best, _ = rest_min_diff(
        to_ops(ops),
        Windows.of(np.array([31]), np.array([40]), b, [np.array([2], np.int64)], a, one),
    )
    assert best.tolist() == [1]
    # levels beyond the reply's worst price are not compared; a missing one counts
    best, _ = rest_min_diff(
        to_ops(ops),
        Windows.of(
            np.array([31]),
            np.array([40]),
            [np.array([100, 99], np.int64)],
            [np.array([3, 4], np.int64)],
            a,
            one,
        ),
    )
    assert best.tolist() == [1]


def ref_rest_diff(
    ops: Sequence[Op], sent: int, end: int, bids: dict, asks: dict
) -> tuple[int, int]:
    """Reference REST comparison of one window: ``(fewest differing levels or -1, states)``.

    The states are the book after every message with ``ts <= sent``, then
    after each message with ``ts`` in ``(sent, end]``; only valid ones count.
    Each side is compared over the reply's price range (all of it if empty).
    """
    book = RefBook()
    diffs: list[int] = []

    def diff() -> int:
        d = 0
        for side, reply in ((BID, bids), (ASK, asks)):
            have = book.sides[side]
            if reply:
                worst = min(reply) if side == BID else max(reply)
                keep = (lambda p: p >= worst) if side == BID else (lambda p: p <= worst)  # noqa: B023
                have = {p: z for p, z in have.items() if keep(p)}
            d += sum(1 for p in set(have) | set(reply) if have.get(p) != reply.get(p))
        return d

    started = False
    for k, (ts, grp, op, side, px, sz) in enumerate(ops):
        if not started and ts > sent:
            started = True
            if book.valid:
                diffs.append(diff())
        book.apply(op, side, px, sz)
        message_done = k + 1 == len(ops) or ops[k + 1][1] != grp
        if message_done and started and ts <= end and book.valid:
            diffs.append(diff())
    if not started and book.valid:
        diffs.append(diff())
    return (min(diffs) if diffs else -1), len(diffs)


@settings(max_examples=150, deadline=None)
@given(any_stream(), st.booleans(), st.data())
def test_one_pass_gives_rows_status_and_rest_diff(
    ops: list[Op], on_grid: bool, data: st.DataObject
):
    grid = np.arange(-1, 400, 5, dtype=np.int64) if on_grid else None
    levels = st.dictionaries(st.integers(88, 112), st.sampled_from([1, 2, 5]), max_size=4)
    replies = data.draw(
        st.lists(st.tuples(st.integers(-1, 400), st.integers(0, 30), levels, levels), max_size=5)
    )
    replies.sort(key=lambda r: r[0])
    windows = Windows.of(
        np.array([r[0] for r in replies], np.int64),
        np.array([r[0] + r[1] for r in replies], np.int64),
        *(
            [np.array(list(r[k].keys() if col == 0 else r[k].values()), np.int64) for r in replies]
            for k, col in ((2, 0), (2, 1), (3, 0), (3, 1))
        ),
    )
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(ops)), max_size=5))))
    engine = BookEngine(depth=3, grid=grid, capacity=2, status=True, windows=windows)
    parts = [
        engine.feed(to_ops(ops).slice(a, b), final=(i == len(cuts)))
        for i, (a, b) in enumerate(itertools.pairwise([0, *cuts, len(ops)]))
    ]
    assert kernel_rows(Rows.concat(parts, 3)) == kernel_rows(run_kernel(to_ops(ops), 3, grid))
    assert kernel_rows(engine.status) == ref_status(ops)
    best, states = engine.rest_diff
    want = [ref_rest_diff(ops, s, s + d, b, a) for s, d, b, a in replies]
    assert list(zip(best.tolist(), states.tolist(), strict=True)) == want
