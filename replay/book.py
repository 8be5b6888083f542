"""The L2 book engine: a compiled kernel over integer ticks.

Data structure. Each side is a sorted ``int64`` array of keys with a parallel
array of sizes, sorted so that the *best* level is at the *end*: bids by
price ascending, asks by negated price ascending. Almost every change lands
near the touch, so inserting or deleting there shifts only the few levels
between it and the end of the array, and the top N are the last N entries.
A level is found by probing the last few entries, then by binary search, so
a stray bid at 1.00 far from a 6,500 touch (as in real v1 data) costs one
array slot, not a dense range of empty ticks. The one change far from the
touch that comes in bulk is a snapshot sent best first (Binance's REST depth
reply): each of its levels is worse than all of its side, so inserted one by
one they would shift the whole side each time; a run of such levels in one
message is written below the side with one shift instead (``_prepend``).
Arrays double when less than a quarter of them is free, checked between
spans of operations too short to fill them. No Python object exists per
level; the hot loop is compiled with numba.

Semantics (docs/architecture.md section 3). Operations come from
:class:`~replay.events.BookOps`: ``OP_SET`` sets a level to an absolute size
(0 removes it; a level of size 0 is never stored), ``OP_CLEAR`` empties the
book and makes it invalid, ``OP_INVALID`` keeps the levels but marks them
untrusted, ``OP_VALID`` marks the book valid (end of a snapshot).

Emission. With a time grid, the row at grid time ``T`` is the book after
every operation with ``ts <= T``; it is written when the first operation with
``ts > T`` arrives, or at the end. Without a grid (``per_message``), one row
is written after the last operation of each message (``grp``), because the
book between two changes of one message never existed at the venue. Both
rules look only at the operations themselves, so feeding the stream in any
chunks gives the same rows.

One pass. Besides its rows, the same pass can record the book's status
(invalid, valid, or valid but crossed) with the top level of each side,
after every message that changes it, and compare the book with stored REST
book replies (:class:`Windows`), so a replay applies each operation once
for all three. The status rows are all that gap analysis needs, and far
fewer than the messages.

Rows hold ticks and units; levels beyond the book's depth have size 0.

Compiling. The helpers applied to every operation or row (``_set`` and
what it calls, ``_control``, ``_emit``, ``_status``) are inlined by numba;
those run once per message or REST window, or seldom (``_prepend``,
``_grow``), are plain calls, as inlining them in numba's IR mostly made the
kernel slower to compile. numba's reference counts of arrays are atomic and
cost more than an operation, so the kernel keeps them out of its loop: the
window helpers, whose calls count every array passed, are called only when
they have work; the loop over operations (``_span``) gets arrays it never
replaces, as numba counts a replaceable array variable around each inlined
use, and ``_run`` grows them between spans; ``_status`` reads ``keys``
unconditionally, as a conditional read in an inlined helper was counted too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from replay.events import BookOps
from tickrec.events import BID, OP_CLEAR, OP_INVALID, OP_SET

__all__ = ["BookEngine", "Rows", "Windows"]

I64 = npt.NDArray[np.int64]

# Slots of the small int64 state vector that carries a stream across chunks.
_VALID, _GRID_I, _PENDING, _PENDING_GRP, _PENDING_TS, _STARTED, _LO, _SHOWN = range(8)
# Book status (_SHOWN: the last one recorded, -1 before the first).
_INVALID, _UNCROSSED, _CROSSED = range(3)
_PROBE = 8  # linear probe from the touch before binary search


@numba.njit(cache=True, inline="always")
def _lower_bound(keys: Any, n: int, key: int) -> int:
    """First index in ``keys[:n]`` (ascending) whose key is ``>= key``."""
    j = n
    stop = n - _PROBE if n > _PROBE else 0
    while j > stop and keys[j - 1] >= key:
        j -= 1
    if j > stop or j == 0:
        return j
    lo, hi = 0, j
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _grow(keys: Any, sizes: Any) -> tuple[Any, Any]:
    cap = keys.shape[1]
    k2 = np.zeros((2, cap * 2), dtype=np.int64)
    s2 = np.zeros((2, cap * 2), dtype=np.int64)
    # Loops rather than slice assignment, whose shape check alone (the error
    # message it could raise) takes seconds to compile.
    for s in range(2):
        for i in range(cap):
            k2[s, i] = keys[s, i]
            s2[s, i] = sizes[s, i]
    return k2, s2


@numba.njit(cache=True, inline="always")
def _set(keys: Any, sizes: Any, n: Any, s: int, key: int, size: int) -> None:
    cnt = n[s]
    k = keys[s]
    z = sizes[s]
    pos = _lower_bound(k, cnt, key)
    if pos < cnt and k[pos] == key:
        if size == 0:
            for i in range(pos, cnt - 1):
                k[i] = k[i + 1]
                z[i] = z[i + 1]
            n[s] = cnt - 1
        else:
            z[pos] = size
    elif size != 0:
        for i in range(cnt, pos, -1):
            k[i] = k[i - 1]
            z[i] = z[i - 1]
        k[pos] = key
        z[pos] = size
        n[s] = cnt + 1


@numba.njit(cache=True, inline="always")
def _emit(keys: Any, sizes: Any, n: Any, valid: int, t: int, r: int, depth: int, out: Any) -> None:
    """Write row *r* of *out* ``(ts, valid, px, sz)``: the top *depth* levels at time *t*."""
    out_ts, out_valid, out_px, out_sz = out
    out_ts[r] = t
    out_valid[r] = valid
    for s in range(2):
        cnt = n[s]
        sign = 1 if s == BID else -1
        for i in range(depth):
            if i < cnt:
                out_px[r, s, i] = sign * keys[s, cnt - 1 - i]
                out_sz[r, s, i] = sizes[s, cnt - 1 - i]
            else:
                out_px[r, s, i] = 0
                out_sz[r, s, i] = 0


@numba.njit(cache=True)
def _prepend(keys: Any, sizes: Any, n: Any, ops: Any, i: int, stop: int) -> int:
    """Apply operation *i*, which adds a level worse than every level of its side, with
    the operations after it (before *stop*) that do the same in the same message.

    That is how a snapshot sent best first (a Binance REST depth reply) reads:
    one by one, each of its levels would shift the whole side, so a snapshot
    of *m* levels would move about m²/2 entries; here the side moves once.
    Returns the index after the last operation applied.
    """
    ts, grp, op, side, px, sz = ops
    s = side[i]
    sign = 1 if s == BID else -1
    last = sign * px[i]
    e = i + 1
    while (
        e < stop
        and op[e] == OP_SET
        and side[e] == s
        and grp[e] == grp[i]
        and ts[e] == ts[i]
        and sz[e] != 0
        and sign * px[e] < last
    ):
        last = sign * px[e]
        e += 1
    m = e - i
    cnt = n[s]
    for j in range(cnt - 1, -1, -1):
        keys[s, j + m] = keys[s, j]
        sizes[s, j + m] = sizes[s, j]
    for r in range(m):
        keys[s, m - 1 - r] = sign * px[i + r]
        sizes[s, m - 1 - r] = sz[i + r]
    n[s] = cnt + m
    return e


@numba.njit(cache=True, inline="always")
def _control(n: Any, valid: int, o: int) -> int:
    """Apply a control operation (``OP_CLEAR``, ``OP_INVALID``, ``OP_VALID``); the new ``valid``."""
    if o == OP_CLEAR:
        n[0] = 0
        n[1] = 0
        return 0
    if o == OP_INVALID:
        return 0
    return 1


@numba.njit(cache=True)
def _diff(keys: Any, sizes: Any, n: Any, s: int, rk: Any, rz: Any, a: int, b: int) -> int:
    """Levels of side *s* that differ from REST levels ``rk[a:b]`` (keys best first)."""
    lo_key = rk[b - 1] if b > a else -(2**63) + 1
    i = n[s] - 1
    j = a
    d = 0
    while True:
        bk_ok = i >= 0 and keys[s, i] >= lo_key
        rk_ok = j < b
        if not bk_ok and not rk_ok:
            break
        if bk_ok and rk_ok and keys[s, i] == rk[j]:
            if sizes[s, i] != rz[j]:
                d += 1
            i -= 1
            j += 1
        elif bk_ok and (not rk_ok or keys[s, i] > rk[j]):
            d += 1
            i -= 1
        else:
            d += 1
            j += 1
    return d


@numba.njit(cache=True)
def _compare(keys: Any, sizes: Any, n: Any, win: Any, w: int) -> int:
    """Levels of the book that differ from REST window *w* (both sides)."""
    _, _, off, rk, rz = win
    d = _diff(keys, sizes, n, 0, rk, rz, off[w, 0], off[w, 1])
    return d + _diff(keys, sizes, n, 1, rk, rz, off[w, 1], off[w, 2])


@numba.njit(cache=True)
def _start_windows(
    keys: Any, sizes: Any, n: Any, valid: int, t: int, started: int, win: Any, res: Any
) -> int:
    """Start every window sent before *t*, comparing the book as it is; the new count."""
    sent = win[0]
    best, states = res
    while started < sent.shape[0] and sent[started] < t:
        if valid:
            best[started] = _compare(keys, sizes, n, win, started)
            states[started] = 1
        started += 1
    return started


@numba.njit(cache=True, inline="always")
def _status(keys: Any, n: Any, valid: int) -> int:
    """``_INVALID``, ``_UNCROSSED`` or ``_CROSSED`` (valid, best bid >= best ask)."""
    nb = n[0]
    na = n[1]
    # Both reads are unconditional (slot 0 of an empty side is read and ignored):
    # a read under the condition made numba count a reference to keys per call.
    bid = keys[0, max(nb - 1, 0)]
    ask = -keys[1, max(na - 1, 0)]
    if not valid:
        return _INVALID
    return _CROSSED if nb > 0 and na > 0 and bid >= ask else _UNCROSSED


@numba.njit(cache=True)
def _after_message(
    keys: Any, sizes: Any, n: Any, valid: int, t: int, lo: int, started: int, win: Any, res: Any
) -> int:
    """Compare the book after a message at *t* with every open window; the new ``lo``."""
    end = win[1]
    best, states = res
    while lo < started and end[lo] < t:
        lo += 1
    if valid:
        for w in range(lo, started):
            if end[w] >= t:
                d = _compare(keys, sizes, n, win, w)
                if best[w] < 0 or d < best[w]:
                    best[w] = d
                states[w] += 1
    return lo


@numba.njit(cache=True)
def _span(
    keys: Any,
    sizes: Any,
    n: Any,
    st: Any,
    ops: Any,
    start: int,
    stop: int,
    grid: Any,
    depth: int,
    per_message: bool,
    status: bool,
    final: bool,
    out: Any,
    rows: int,
    sv: Any,
    sv_rows: int,
    win: Any,
    res: Any,
) -> tuple[int, int]:
    """Apply operations ``start:stop`` of *ops*, emitting rows into *out* from row *rows*
    and status rows into *sv* from row *sv_rows*, comparing REST windows; if *final*,
    complete everything after them. Neither side may fill up (see :func:`_run`).

    Returns the new ``(rows, sv_rows)``.
    """
    ts, grp, op, side, px, sz = ops
    valid = st[_VALID]
    gi = st[_GRID_I]
    pending = st[_PENDING]
    pgrp = st[_PENDING_GRP]
    pts = st[_PENDING_TS]
    started = st[_STARTED]
    lo = st[_LO]
    shown = st[_SHOWN]
    ngrid = grid.shape[0]
    sent = win[0]
    nwin = sent.shape[0]
    # Only these outputs need to know where a message ends.
    messages = per_message or status or nwin > 0
    i = start
    while i < stop:
        t = ts[i]
        if messages and pending and grp[i] != pgrp:
            # The previous message is complete: the book as it left it existed.
            if per_message:
                _emit(keys, sizes, n, valid, pts, rows, depth, out)
                rows += 1
            if status:
                now = _status(keys, n, valid)
                if now != shown:
                    shown = now
                    _emit(keys, sizes, n, valid, pts, sv_rows, 1, sv)
                    sv_rows += 1
            # Window helpers only when they have work (Compiling, module docstring).
            if lo < started:
                lo = _after_message(keys, sizes, n, valid, pts, lo, started, win, res)
            pending = 0
        if messages and not pending and started < nwin and sent[started] < t:
            started = _start_windows(keys, sizes, n, valid, t, started, win, res)
        if not per_message:
            while gi < ngrid and grid[gi] < t:
                _emit(keys, sizes, n, valid, grid[gi], rows, depth, out)
                rows += 1
                gi += 1
        o = op[i]
        if o == OP_SET:
            sd = side[i]
            key = px[i] if sd == BID else -px[i]
            if sz[i] != 0 and (n[sd] == 0 or key < keys[sd, 0]):
                # A new worst level. The operations _prepend applies with it are of
                # the same message and time, so nothing above runs between them.
                i = _prepend(keys, sizes, n, ops, i, stop) - 1
            else:
                _set(keys, sizes, n, sd, key, sz[i])
        else:
            valid = _control(n, valid, o)
        pending = 1
        pgrp = grp[i]
        pts = t
        i += 1
    if final:
        if pending:
            if per_message:
                _emit(keys, sizes, n, valid, pts, rows, depth, out)
                rows += 1
            if status:
                now = _status(keys, n, valid)
                if now != shown:
                    shown = now
                    _emit(keys, sizes, n, valid, pts, sv_rows, 1, sv)
                    sv_rows += 1
            lo = _after_message(keys, sizes, n, valid, pts, lo, started, win, res)
            pending = 0
        started = _start_windows(keys, sizes, n, valid, np.iinfo(np.int64).max, started, win, res)
        if not per_message:
            while gi < ngrid:
                _emit(keys, sizes, n, valid, grid[gi], rows, depth, out)
                rows += 1
                gi += 1
    st[_VALID] = valid
    st[_GRID_I] = gi
    st[_PENDING] = pending
    st[_PENDING_GRP] = pgrp
    st[_PENDING_TS] = pts
    st[_STARTED] = started
    st[_LO] = lo
    st[_SHOWN] = shown
    return rows, sv_rows


@numba.njit(cache=True)
def _run(
    keys: Any,
    sizes: Any,
    n: Any,
    st: Any,
    ops: Any,
    grid: Any,
    depth: int,
    per_message: bool,
    status: bool,
    final: bool,
    out: Any,
    sv: Any,
    win: Any,
    res: Any,
) -> tuple[Any, Any, int, int]:
    """Apply *ops*, emitting rows into *out* and status rows into *sv*, comparing REST windows.

    Returns ``(keys, sizes, rows written to out, rows written to sv)``.
    """
    nops = ops[0].shape[0]
    # Not literal zeros: numba would compile _span for literal arguments too while
    # it infers the loop's types (twice the compile time). Any: numpy's, for mypy.
    zero: Any = numba.int64(0)
    rows = sv_rows = start = zero
    while True:
        # Spans of operations in which neither side can fill up (an OP_SET adds at
        # most one level), the arrays grown ahead of a span if less than a quarter
        # is free: _span checks no capacity and never replaces the arrays, which
        # keeps numba from counting references to them per operation (module
        # docstring, Compiling).
        cap = keys.shape[1]
        if cap - max(n[0], n[1]) < max(cap >> 2, 1):
            keys, sizes = _grow(keys, sizes)
        stop = min(nops, start + keys.shape[1] - max(n[0], n[1]))
        last = stop == nops
        rows, sv_rows = _span(
            keys,
            sizes,
            n,
            st,
            ops,
            start,
            stop,
            grid,
            depth,
            per_message,
            status,
            final and last,
            out,
            rows,
            sv,
            sv_rows,
            win,
            res,
        )
        if last:
            return keys, sizes, rows, sv_rows
        start = stop


@dataclass(frozen=True)
class Rows:
    """Book rows from the kernel: ``px``/``sz`` have shape ``(rows, 2, depth)``.

    Index 1 is the side (``BID`` = 0, ``ASK`` = 1), index 2 the level, best
    first. Prices are ticks, sizes units; an absent level has size 0 (and
    price 0). ``valid`` is the book's own validity flag (snapshot seen and no
    break since); crossing and gap intervals are applied by the caller.
    """

    ts: I64
    valid: npt.NDArray[np.bool_]
    px: I64
    sz: I64

    def __len__(self) -> int:
        return len(self.ts)

    def head(self, rows: int, depth: int) -> Rows:
        """The first *rows* rows, *depth* levels each (views)."""
        return Rows(
            self.ts[:rows], self.valid[:rows], self.px[:rows, :, :depth], self.sz[:rows, :, :depth]
        )

    def tail(self, start: int) -> Rows:
        """The rows from *start* on (views)."""
        return Rows(self.ts[start:], self.valid[start:], self.px[start:], self.sz[start:])

    @staticmethod
    def concat(parts: list[Rows], depth: int) -> Rows:
        """Rows of several chunks, in order."""
        if not parts:
            e = np.zeros((0, 2, depth), np.int64)
            return Rows(np.zeros(0, np.int64), np.zeros(0, bool), e, e.copy())
        return Rows(
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.valid for p in parts]),
            np.concatenate([p.px for p in parts]),
            np.concatenate([p.sz for p in parts]),
        )


@dataclass(frozen=True)
class Windows:
    """REST book replies to compare with the book, in order of sent time.

    Window *w* is compared with the book after every message with
    ``ts <= sent[w]`` and after each message with ``ts`` in
    ``(sent[w], end[w]]``: the reply was taken at an unknown moment in that
    window (docs/architecture.md section 3; :mod:`replay.gaps` says how far ``end``
    reaches). Each side is compared over the price range the reply covers
    (its best to its worst level; an empty side covers the whole side).
    ``off[w]`` delimits the window's bid keys, then ask keys, in ``keys``
    (book keys: bid prices, negated ask prices; best first) and ``sizes``.
    """

    sent: I64
    end: I64
    off: I64
    keys: I64
    sizes: I64

    def __len__(self) -> int:
        return len(self.sent)

    @staticmethod
    def of(
        sent: I64,
        end: I64,
        bid_px: Sequence[I64],
        bid_sz: Sequence[I64],
        ask_px: Sequence[I64],
        ask_sz: Sequence[I64],
    ) -> Windows:
        """Windows of replies given by their times and levels (*sent* must be sorted)."""
        if np.any(np.diff(sent) < 0):
            raise ValueError("REST windows must be sorted by sent time")
        nw = len(sent)
        off = np.zeros((nw, 3), np.int64)
        keys: list[I64] = []
        sizes: list[I64] = []
        pos = 0
        for w in range(nw):
            bo = np.argsort(-bid_px[w], kind="stable")
            ao = np.argsort(ask_px[w], kind="stable")
            keys += [bid_px[w][bo], -ask_px[w][ao]]
            sizes += [bid_sz[w][bo], ask_sz[w][ao]]
            off[w] = (pos, pos + len(bo), pos + len(bo) + len(ao))
            pos += len(bo) + len(ao)
        return Windows(
            np.ascontiguousarray(sent, np.int64),
            np.ascontiguousarray(end, np.int64),
            off,
            np.concatenate(keys) if keys else np.zeros(0, np.int64),
            np.concatenate(sizes) if sizes else np.zeros(0, np.int64),
        )


_NO_WINDOWS = Windows.of(np.zeros(0, np.int64), np.zeros(0, np.int64), [], [], [], [])


class BookEngine:
    """A book fed with :class:`BookOps` in chunks, emitting top-``depth`` rows.

    ``grid`` (sorted ns times) selects grid emission; ``grid=None`` gives one
    row per message. ``depth=0`` emits nothing (use :meth:`levels`).

    In the same pass over the operations the engine can also record the
    book's :attr:`status` (module docstring) and compare the book with REST
    *windows* (:attr:`rest_diff`), so that a replay applies each operation
    once for all three.
    """

    def __init__(
        self,
        depth: int = 10,
        grid: I64 | None = None,
        capacity: int = 256,
        *,
        status: bool = False,
        windows: Windows | None = None,
    ) -> None:
        if depth < 0:
            raise ValueError("depth must be >= 0")
        self.depth = depth
        self.grid = np.ascontiguousarray(grid if grid is not None else np.zeros(0), np.int64)
        self.per_message = grid is None
        self.windows = windows if windows is not None else _NO_WINDOWS
        self._keep_status = status
        self._status_parts: list[Rows] = []
        self._best = np.full(len(self.windows), -1, np.int64)
        self._seen = np.zeros(len(self.windows), np.int64)
        self._keys = np.zeros((2, max(capacity, 1)), np.int64)
        self._sizes = np.zeros((2, max(capacity, 1)), np.int64)
        self._n = np.zeros(2, np.int64)
        self._st = np.zeros(8, np.int64)
        self._st[_SHOWN] = -1
        self._done = False

    @property
    def valid(self) -> bool:
        """The book's own validity flag after everything fed so far."""
        return bool(self._st[_VALID])

    @property
    def status(self) -> Rows:
        """Top of book (depth 1) after each message fed so far that changed the book's
        status (invalid, valid, or valid but crossed: best bid >= best ask), if asked for.

        The first message always gives a row. Between two rows the status is
        that of the first, so these rows decide validity at any time.
        """
        if not self._keep_status:
            raise RuntimeError("this engine was not asked for status rows")
        if len(self._status_parts) != 1:
            self._status_parts = [Rows.concat(self._status_parts, 1)]
        return self._status_parts[0]

    @property
    def rest_diff(self) -> tuple[I64, I64]:
        """Per window: the fewest levels that differ from any valid book state in it
        (-1 if the book was never valid there), and how many valid states it saw.

        Complete once the engine is fed its final chunk.
        """
        return self._best, self._seen

    @staticmethod
    def _messages(ops: BookOps) -> int:
        """At most how many messages *ops* completes."""
        if len(ops) == 0:
            return 1
        return int(np.count_nonzero(ops.grp[1:] != ops.grp[:-1])) + 2

    def _bound(self, ops: BookOps, final: bool) -> int:
        if self.depth == 0:
            return 0
        if self.per_message:
            return self._messages(ops)
        gi = int(self._st[_GRID_I])
        if final:
            return len(self.grid) - gi
        if len(ops) == 0:
            return 0
        return max(int(np.searchsorted(self.grid, ops.ts[-1], "left")) - gi, 0)

    @staticmethod
    def _buffers(m: int, depth: int) -> Rows:
        depth = max(depth, 1)
        return Rows(
            np.zeros(m, np.int64),
            np.zeros(m, np.bool_),
            np.zeros((m, 2, depth), np.int64),
            np.zeros((m, 2, depth), np.int64),
        )

    def _feed_into(self, ops: BookOps, final: bool, out: Rows, sv: Rows) -> tuple[int, int]:
        """Apply *ops*, writing completed rows from the start of *out* and *sv*; how many."""
        if self._done:
            raise RuntimeError("BookEngine already finished")
        emits = self.depth > 0
        w = self.windows
        self._keys, self._sizes, rows, sv_rows = _run(
            self._keys,
            self._sizes,
            self._n,
            self._st,
            (ops.ts, ops.grp, ops.op, ops.side, ops.price, ops.size),
            self.grid if emits else self.grid[:0],
            self.depth,
            self.per_message and emits,
            self._keep_status,
            final,
            (out.ts, out.valid, out.px, out.sz),
            (sv.ts, sv.valid, sv.px, sv.sz),
            (w.sent, w.end, w.off, w.keys, w.sizes),
            (self._best, self._seen),
        )
        self._done = final
        return int(rows), int(sv_rows)

    def _run_chunks(self, ops: BookOps, chunks: Sequence[tuple[int, int]], final: bool) -> Rows:
        out = self._buffers(self._bound(ops, final), self.depth)
        # At most one status row per message; the buffer's unwritten pages are never touched.
        sv = self._buffers(self._messages(ops) if self._keep_status else 0, 1)
        done = sv_done = 0
        for start, stop in chunks:
            last = final and stop >= len(ops)
            rows, sv_rows = self._feed_into(
                ops.slice(start, stop), last, out.tail(done), sv.tail(sv_done)
            )
            done += rows
            sv_done += sv_rows
        if self._keep_status:
            # A copy (concat of one part), so the message-sized buffer is freed.
            self._status_parts.append(Rows.concat([sv.head(sv_done, 1)], 1))
        return out.head(done, self.depth)

    def feed(self, ops: BookOps, final: bool = False) -> Rows:
        """Apply *ops*; return the rows completed by them (all remaining rows if *final*)."""
        return self._run_chunks(ops, [(0, len(ops))], final)

    def feed_all(self, ops: BookOps, chunk_size: int) -> Rows:
        """Apply *ops* to the end, *chunk_size* at a time; every remaining row, in one array each.

        The same rows as :meth:`feed` over the chunks, without joining them afterwards.
        """
        n = len(ops)
        chunks = [(a, min(a + chunk_size, n)) for a in range(0, max(n, 1), chunk_size)]
        return self._run_chunks(ops, chunks, True)

    def levels(self, side: int) -> tuple[I64, I64]:
        """``(prices, sizes)`` of every level of *side*, best first (copies)."""
        cnt = int(self._n[side])
        keys = self._keys[side, :cnt][::-1]
        sizes = self._sizes[side, :cnt][::-1].copy()
        return (keys.copy() if side == BID else -keys), sizes

    def top(self, side: int, depth: int) -> tuple[I64, I64]:
        """``(prices, sizes)`` of the best *depth* levels of *side*, best first."""
        cnt = int(self._n[side])
        lo = max(cnt - depth, 0)
        keys = self._keys[side, lo:cnt][::-1]
        return (keys.copy() if side == BID else -keys), self._sizes[side, lo:cnt][::-1].copy()
