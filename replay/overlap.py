"""Overlapping connections: one book from several connections that cover a symbol at once.

Two recorders writing the same dataset, two imports of one capture, or a
make-before-break reconnect put the rows of two or more connections
``(run_id, conn_id)`` side by side in one partition (merged by
``(recv_ts, run_id, seq)``, docs/architecture.md section 2.3). Replaying
them as one stream would take every switch between them for a new
connection. Instead (:func:`decode_overlapping`):

1. Each connection is decoded on its own (:class:`~replay.decode.PartitionDecoder`
   over its rows and its run's run-level events, ``conn_id`` 0), and its
   *in-sync* intervals are found: where its own book is valid (a snapshot
   seen on it), cut at the last good message before each of its sequence
   breaks or undecodable messages, and ended where it is lost (its
   disconnect or other loss event, or its last row when another
   connection's rows go on after it). It is *alive* from its first row to
   that end.
2. One connection is *followed* at any time: the followed one stays
   followed while it is in sync; when it is not, the in-sync connection that
   has been in sync longest is taken (ties by ``(run_id, conn_id)``); when
   none is in sync, the followed one stays while it is alive, else the
   alive one alive longest (same ties). So the choice is a pure function of
   the rows, whatever order the files are in.
3. The book is the followed connection's operations, and at a switch to
   connection C at time ``t``: a clear, then C's whole book after its
   operations with ``recv_ts <= t`` (computed with the book engine) as
   snapshot levels, valid if C is in sync at ``t``, then C's operations
   after ``t``. Trades, message times (for silence) and sequence breaks
   come from the followed connection only, so nothing is counted twice and
   a standby connection's trouble is no gap. A loss is a gap (``lost``
   marker) only when no in-sync connection takes over; a switch to an
   in-sync one is a ``follow`` marker, to one not yet in sync a ``reset``.

The valid time is then the union of the in-sync time of all connections.
REST check replies (``rest`` rows) are read once, apart from the connections;
a sync snapshot (a ``rest`` row of a connection whose venue builds books
from them, docs/architecture.md section 2.6) is a row of its connection.
This path needs the partition as one table; partitions whose connections
never overlap are decoded in one streaming pass by :mod:`replay.decode`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from replay.book import BookEngine
from replay.decode import PartitionDecoder, connection_rows
from replay.events import BookOps, Checkpoint, Decoded, Marker, RestBook, SeqBreak, Trades
from replay.streams import CONFLATED, SYNCS
from tickrec.errors import DatasetError
from tickrec.events import ASK, BID, CARRIED, NO_TS, OP_CLEAR, OP_SET, OP_VALID

__all__ = ["decode_overlapping"]

I64 = npt.NDArray[np.int64]
Key = tuple[str, int]
Spans = list[tuple[int, int]]


@dataclass
class _Conn:
    """One connection decoded on its own, with partition row indices for ``grp``."""

    key: Key
    number: int
    dec: Decoded
    alive: tuple[int, int] | None = None
    sync: Spans = field(default_factory=list)
    lost: Marker | None = None

    def since(self, t: int) -> int | None:
        """Start of the in-sync interval holding *t*, or None."""
        k = bisect.bisect_right(self.sync, (t, 2**63)) - 1
        return self.sync[k][0] if k >= 0 and self.sync[k][1] > t else None

    def is_alive(self, t: int) -> bool:
        return self.alive is not None and self.alive[0] <= t < self.alive[1]


def _decode(
    table: pa.Table,
    rows: I64,
    symbol: str,
    number: int,
    carry: Sequence[Checkpoint] = (),
    start_ns: int | None = None,
) -> Decoded:
    """Decode rows *rows* of *table* alone; ``grp`` back in partition rows, connection *number*."""
    sub = table.take(pa.array(rows))
    batches = sub.to_batches()
    decoder = PartitionDecoder(
        symbol, connection_rows(batches).last_ws, sub.num_rows, carry=carry, start_ns=start_ns
    )
    for batch in batches:
        decoder.feed(batch)
    dec = decoder.finish()

    def row(grp: int) -> int:
        return grp if grp == CARRIED else int(rows[grp])

    ops_grp = np.where(dec.ops.grp == CARRIED, CARRIED, rows[np.maximum(dec.ops.grp, 0)])
    return replace(
        dec,
        ops=replace(dec.ops, grp=ops_grp),
        trades=replace(dec.trades, grp=rows[dec.trades.grp]),
        markers=[m._replace(grp=row(m.grp), conn=number) for m in dec.markers],
        breaks=[b._replace(grp=int(rows[b.grp]), conn=number) for b in dec.breaks],
        msg_conn=np.full(len(dec.msg_ts), number, np.int64),
    )


def _scaled(values: I64, by: int) -> I64:
    """*values* times ``10**by``, exactly."""
    if by == 0:
        return values
    factor = 10**by
    if len(values) and int(np.abs(values).max()) > np.iinfo(np.int64).max // factor:
        raise DatasetError("a value does not fit a 64-bit integer at the partition's scale")
    return values * factor


def _at_scale(dec: Decoded, price_scale: int, size_scale: int) -> Decoded:
    dp, ds = price_scale - dec.price_scale, size_scale - dec.size_scale
    ops = replace(dec.ops, price=_scaled(dec.ops.price, dp), size=_scaled(dec.ops.size, ds))
    trades = replace(
        dec.trades, price=_scaled(dec.trades.price, dp), size=_scaled(dec.trades.size, ds)
    )
    rest = [
        replace(
            r,
            bid_px=_scaled(r.bid_px, dp),
            bid_sz=_scaled(r.bid_sz, ds),
            ask_px=_scaled(r.ask_px, dp),
            ask_sz=_scaled(r.ask_sz, ds),
        )
        for r in dec.rest
    ]
    ends = tuple(
        replace(
            e,
            price_scale=price_scale,
            size_scale=size_scale,
            bid_px=_scaled(e.bid_px, price_scale - e.price_scale),
            bid_sz=_scaled(e.bid_sz, size_scale - e.size_scale),
            ask_px=_scaled(e.ask_px, price_scale - e.price_scale),
            ask_sz=_scaled(e.ask_sz, size_scale - e.size_scale),
        )
        for e in dec.ends
    )
    return replace(
        dec,
        ops=ops,
        trades=trades,
        rest=rest,
        price_scale=price_scale,
        size_scale=size_scale,
        ends=ends,
    )


def _sync_spans(c: _Conn, end: int) -> Spans:
    """Where connection *c*'s own book is valid, cut before each break, up to *end*."""
    ops = c.dec.ops
    if len(ops) == 0:
        return []
    engine = BookEngine(depth=0, status=True)
    engine.feed(ops, final=True)
    st = engine.status
    ts, valid = st.ts.tolist(), st.valid.tolist()
    spans = [
        (a, min(ts[k + 1] if k + 1 < len(ts) else end, end)) for k, a in enumerate(ts) if valid[k]
    ]
    cuts = sorted((b.prev_ts, b.ts) for b in c.dec.breaks)
    out: Spans = []
    for a, z in spans:
        for lo, hi in cuts:
            if lo < z and hi >= a:
                # Not in sync from the last good message to the break.
                if lo > a:
                    out.append((a, lo))
                a = max(a, hi)
        if a < z:
            out.append((a, z))
    merged: Spans = []
    for a, z in out:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], z))
        else:
            merged.append((a, z))
    return merged


def _plan(conns: list[_Conn], first: int, last: int) -> list[tuple[int, _Conn | None]]:
    """The followed connection from each switch time on (module docstring, step 2).

    Switches happen inside ``[first, last)``: at the last row's time the data
    ends, and the followed connection's own operations say what happens there.
    """
    times = {first}
    for c in conns:
        times.update(t for span in c.sync for t in span)
        if c.alive is not None:
            times.update(c.alive)
    plan: list[tuple[int, _Conn | None]] = []
    cur: _Conn | None = None
    for t in sorted(times):
        if t < first or (t >= last and plan):
            continue
        new = cur
        if cur is None or cur.since(t) is None:
            synced = [(s, c.key, c) for c in conns if (s := c.since(t)) is not None]
            if synced:
                new = min(synced, key=lambda x: x[:2])[2]
            elif cur is None or not cur.is_alive(t):
                alive = [(c.alive[0], c.key, c) for c in conns if c.alive and c.is_alive(t)]
                new = min(alive, key=lambda x: x[:2])[2] if alive else None
        if not plan or new is not cur:
            plan.append((t, new))
        cur = new
    return plan


class _Out:
    """The assembled operations, trades, messages, breaks and markers."""

    def __init__(self) -> None:
        self.ops: list[BookOps] = []
        self.trades: list[Trades] = []
        self.msg_ts: list[I64] = []
        self.msg_conn: list[I64] = []
        self.breaks: list[SeqBreak] = []
        self.markers: list[Marker] = []

    def control(self, ts: int, grp: int, op: int) -> None:
        self.levels(ts, grp, op, np.zeros(1, np.int8), np.zeros(1, np.int64), np.zeros(1, np.int64))

    def levels(
        self, ts: int, grp: int, op: int, side: npt.NDArray[np.int8], px: I64, sz: I64
    ) -> None:
        n = len(px)
        self.ops.append(
            BookOps(
                ts=np.full(n, ts, np.int64),
                grp=np.full(n, grp, np.int64),
                op=np.full(n, op, np.int8),
                side=side.astype(np.int8),
                price=px,
                size=sz,
                exch=np.full(n, NO_TS, np.int64),
                snapshot=np.full(n, op == OP_SET, np.bool_),
            )
        )


def _switch_in(
    out: _Out, c: _Conn, engine: BookEngine, fed: int, t: int, grp: int, in_sync: bool
) -> int:
    """At a switch to *c* at *t*: clear, then *c*'s book as of *t*; returns ops fed to *engine*."""
    ops = c.dec.ops
    upto = int(np.searchsorted(ops.ts, t, "right"))
    if upto > fed:
        engine.feed(ops.slice(fed, upto))
    out.control(t, grp, OP_CLEAR)
    (bp, bs), (ap, az) = engine.levels(BID), engine.levels(ASK)
    side = np.concatenate([np.full(len(bp), BID, np.int8), np.full(len(ap), ASK, np.int8)])
    out.levels(t, grp, OP_SET, side, np.concatenate([bp, ap]), np.concatenate([bs, az]))
    if in_sync:
        out.control(t, grp, OP_VALID)
    return max(upto, fed)


def _assemble(
    conns: list[_Conn], plan: list[tuple[int, _Conn | None]], recv: I64, first: int
) -> _Out:
    out = _Out()
    engines = {c.key: BookEngine(depth=0) for c in conns}
    fed = dict.fromkeys(engines, 0)
    for k, (s, c) in enumerate(plan):
        e = plan[k + 1][0] if k + 1 < len(plan) else None
        prev = plan[k - 1][1] if k else None
        synced = c is not None and c.since(s) is not None
        # The previous connection's end here is a gap unless an in-sync one takes over.
        ended = prev is not None and prev.lost is not None and prev.alive and prev.alive[1] == s
        if ended and not synced:
            assert prev is not None and prev.lost is not None
            out.markers.append(prev.lost)
        if c is None:
            if k:
                out.control(s, int(np.searchsorted(recv, s, "left")), OP_CLEAR)
            continue
        ops = c.dec.ops
        lo = int(np.searchsorted(ops.ts, s, "left"))
        hi = len(ops) if e is None else int(np.searchsorted(ops.ts, e, "left"))
        detail = f"run {c.key[0]} conn {c.key[1]}"
        if lo > 0:
            # The connection has a book already: switch to it as of s.
            grp = int(np.searchsorted(recv, s, "right")) - 1
            fed[c.key] = _switch_in(out, c, engines[c.key], fed[c.key], s, grp, synced)
            lo = int(np.searchsorted(ops.ts, s, "right"))
        else:
            grp = int(ops.grp[lo]) if lo < hi else int(np.searchsorted(recv, s, "left"))
            out.control(s, grp, OP_CLEAR)
        kind = "follow" if synced and k and prev is not None else "reset"
        out.markers.append(Marker(s, grp, kind, c.number, detail, s, s))
        if lo < hi:
            out.ops.append(ops.slice(lo, hi))
        tr = c.dec.trades
        t_lo = int(np.searchsorted(tr.ts, s, "left"))
        t_hi = len(tr) if e is None else int(np.searchsorted(tr.ts, e, "left"))
        out.trades.append(_trade_slice(tr, t_lo, t_hi))
        m_lo = int(np.searchsorted(c.dec.msg_ts, s, "left"))
        m_hi = len(c.dec.msg_ts) if e is None else int(np.searchsorted(c.dec.msg_ts, e, "left"))
        out.msg_ts.append(c.dec.msg_ts[m_lo:m_hi])
        out.msg_conn.append(c.dec.msg_conn[m_lo:m_hi])
        out.breaks += [b for b in c.dec.breaks if b.prev_ts >= s and (e is None or b.prev_ts < e)]
    last = plan[-1][1] if plan else None
    if last is not None and last.lost is not None:
        out.markers.append(last.lost)
    return out


def _trade_slice(tr: Trades, lo: int, hi: int) -> Trades:
    return Trades(*(getattr(tr, f)[lo:hi] for f in tr.__dataclass_fields__))


def _concat_ops(parts: list[BookOps]) -> BookOps:
    names = BookOps.__dataclass_fields__
    if not parts:
        types = (np.int64, np.int64, np.int8, np.int8, np.int64, np.int64, np.int64, np.bool_)
        return BookOps(*(np.zeros(0, t) for t in types))  # type: ignore[arg-type]
    return BookOps(*(np.concatenate([getattr(p, f) for p in parts]) for f in names))


def _concat_trades(parts: list[Trades], empty: Trades) -> Trades:
    names = Trades.__dataclass_fields__
    return Trades(*(np.concatenate([getattr(p, f) for p in [empty, *parts]]) for f in names))


def decode_overlapping(
    table: pa.Table, symbol: str, carry: Sequence[Checkpoint] = (), start_ns: int | None = None
) -> Decoded:
    """Decode a partition whose connections overlap in time (module docstring).

    *table* holds the partition's rows in contract order. Every connection
    in *carry* (the previous date's ends) goes on with its book from
    *start_ns* (:class:`~replay.decode.PartitionDecoder`).
    """
    n = table.num_rows
    recv = np.maximum.accumulate(
        table.column("recv_ts").cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64)
    )
    # Every connection sees the partition's running maximum of recv_ts (replay.decode).
    table = table.set_column(
        table.schema.get_field_index("recv_ts"),
        table.schema.field("recv_ts"),
        pa.array(recv, pa.int64()).cast(table.schema.field("recv_ts").type),
    )
    first, last = int(recv[0]), int(recv[-1])
    runs = table.column("run_id").cast(pa.string()).to_numpy(zero_copy_only=False)
    conn_ids = table.column("conn_id").to_numpy(zero_copy_only=False).astype(np.int64)
    source = table.column("source").cast(pa.string()).to_numpy(zero_copy_only=False)
    protocol = table.column("protocol").cast(pa.string()).to_numpy(zero_copy_only=False)
    # Check snapshots; a connection's sync snapshots go to its stream (replay.decode).
    is_rest = (source == "rest") & ((conn_ids == 0) | ~np.isin(protocol, list(SYNCS)))
    run_level = (conn_ids == 0) & (source == "event")

    # Connections numbered in order of their first row, as the one-pass decoder does.
    own = np.flatnonzero((conn_ids != 0) & ~is_rest)
    order: dict[Key, int] = {}
    for r in own.tolist():
        order.setdefault((str(runs[r]), int(conn_ids[r])), len(order))
    conns: list[_Conn] = []
    for key, number in sorted(order.items()):
        mine = (runs == key[0]) & (((conn_ids == key[1]) & ~is_rest) | run_level)
        rows = np.flatnonzero(mine).astype(np.int64)
        conns.append(_Conn(key, number, _decode(table, rows, symbol, number, carry, start_ns)))
    # REST replies, and run-level events of runs that had no connection, on their own.
    connected_runs = {k[0] for k in order}
    lone = is_rest | (run_level & ~np.isin(runs, list(connected_runs)))
    rest_rows = np.flatnonzero(lone).astype(np.int64)
    apart = _decode(table, rest_rows, symbol, -1) if len(rest_rows) else None

    everything = [c.dec for c in conns] + ([apart] if apart is not None else [])
    price_scale = max(d.price_scale for d in everything)
    size_scale = max(d.size_scale for d in everything)
    for c in conns:
        c.dec = _at_scale(c.dec, price_scale, size_scale)
        _find_sync(c, runs, conn_ids, source, recv)
    carried = tuple(sorted(k for c in conns for k in c.dec.carried))
    if carried:
        first = min(first, *(c.dec.first_ns for c in conns if c.dec.carried))
    plan = _plan(conns, first, last)
    out = _assemble(conns, plan, recv, first)

    markers = {(m.grp, m.kind, m.detail): m for m in out.markers}
    for d in everything:
        for m in d.markers:
            if m.kind not in ("reset", "lost"):
                markers.setdefault((m.grp, m.kind, m.detail), m)
    protocols = tuple(sorted({p for d in everything for p in d.protocols}))
    rest: list[RestBook] = []
    if apart is not None and not set(protocols) & CONFLATED:
        rest = _at_scale(apart, price_scale, size_scale).rest
    counts: dict[str, int] = {}
    for d in everything:
        for kind, k in d.counts.items():
            counts[kind] = counts.get(kind, 0) + k
    empty = _trade_slice(conns[0].dec.trades, 0, 0)
    return Decoded(
        ops=_concat_ops(out.ops),
        trades=_concat_trades(out.trades, empty),
        rest=rest,
        markers=sorted(markers.values(), key=lambda m: (m.grp, m.ts, m.kind, m.detail)),
        breaks=sorted(out.breaks, key=lambda b: (b.ts, b.grp)),
        msg_ts=np.concatenate([np.zeros(0, np.int64), *out.msg_ts]),
        msg_conn=np.concatenate([np.zeros(0, np.int64), *out.msg_conn]),
        price_scale=price_scale,
        size_scale=size_scale,
        protocols=protocols,
        rows=n,
        first_ns=first,
        last_ns=last,
        counts=dict(sorted(counts.items())),
        # In sync at its last row, with no event saying it was lost: one whose rows stop
        # before another's is followed no further here, but goes on if the next date
        # holds its rows.
        ends=tuple(e for c in conns for e in c.dec.ends),
        carried=carried,
    )


def _find_sync(
    c: _Conn,
    runs: npt.NDArray[np.object_],
    conn_ids: I64,
    source: npt.NDArray[np.object_],
    recv: I64,
) -> None:
    """Set *c*'s alive interval, loss and in-sync intervals (module docstring, step 1)."""
    dec = c.dec
    resets = [m for m in dec.markers if m.kind == "reset"]
    if not resets:
        return  # only events: the connection never carried a message
    start = resets[0].ts
    lost = next((m for m in dec.markers if m.kind == "lost"), None)
    if lost is not None:
        end = lost.ts
    else:
        carried = (conn_ids != 0) & (source != "event") & (source != "rest")
        mine = np.flatnonzero(carried & (runs == c.key[0]) & (conn_ids == c.key[1]))
        last_row = int(mine[-1])
        later = np.flatnonzero(carried[last_row:])[1:] + last_row  # other connections' rows
        if len(later):
            # Another connection goes on after this one's last row: it stopped there.
            end = int(recv[last_row])
            lost = Marker(end, int(later[0]), "lost", c.number, "no disconnect event", end, end)
        else:
            end = int(recv[-1])
    c.alive = (start, max(end, start))
    c.lost = lost
    c.sync = _sync_spans(c, end)
