"""A deterministic synthetic Binance spot day, written through the dataset contract.

The day is what ``tickrec record --venue binance --symbols BTCUSDT`` would
store from ``/stream?streams=btcusdt@depth@100ms/btcusdt@trade``
(docs/venues/binance.md; docs/architecture.md section 2.6), driven by the
same seeded order flow and message plan as the Gemini day (:mod:`bench.synth`,
:mod:`bench.flow`), so the two days hold the same book changes:

- each planned message becomes its trades, one ``@trade`` frame each (``m``
  true when the buyer was the maker), then one ``depthUpdate`` holding its
  level changes: bids, then asks, each level once with its quantity after
  the message, in price order, as ``[price, quantity]`` with the eight
  decimals Binance sends (``"0.00000000"`` removes a level);
- update ids go up across the day: a diff covers ``U..u``, a few ids more
  than its changes (other changes conflated away), and they jump over each
  disconnect;
- each connection is synced the way the recorder does it: its diffs are
  received, the ``/api/v3/depth`` reply (a ``rest`` row of the connection)
  arrives after the second one, with the book as of the first one's ``u``,
  so replay drops the first diff as stale and applies the second on top;
- a check snapshot (a ``rest`` row of connection 0, 50 levels a side)
  every 60 s, at the update id it shows;
- a few reconnects, as on the Gemini day (``disconnect``, ``reconnect`` and
  ``connect`` events).

Binance sends no heartbeats in the data (pings are control frames), so the
day has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from bench import synth
from bench.flow import ASK, BID, TRADE, Flow, run_flow
from tickrec.contract import SCHEMA, event_payload, write_part
from tickrec.venues.binance import rest, spot

__all__ = ["SYMBOL", "VENUE", "generate"]

VENUE = "binance"
SYMBOL = "BTCUSDT"
URL = spot.stream_url("wss://stream.binance.com:9443", [SYMBOL])

I64 = npt.NDArray[np.int64]
_NS, _MS = 1_000_000_000, 1_000_000
_FIRST_ID = 80_000_000_000  # the update id before the day's first diff
_JUMP = 10_000  # update ids that pass during a disconnect

# Row kinds, in the order rows with equal receive times are stored.
_K_EVENT, _K_TRADE, _K_DEPTH, _K_REST = 0, 1, 2, 3


def _pairs(px: I64, qty: I64) -> pa.Array:
    """``["price","quantity"]`` texts, with Binance's eight decimals."""
    return pc.binary_join_element_wise(
        '["', synth.decimals(px, 2, 8), '","', synth.decimals(qty, 8, 8), '"]', ""
    )


def _book_text(last_id: int, sides: tuple[dict[int, int], dict[int, int]]) -> str:
    """An ``/api/v3/depth`` reply: bids best (highest) first, asks lowest first."""
    out = []
    for side, book in zip((BID, ASK), sides, strict=True):
        levels = sorted(book.items(), reverse=side == BID)
        px = np.array([p for p, _ in levels], np.int64)
        qty = np.array([q for _, q in levels], np.int64)
        out.append(",".join(_pairs(px, qty).to_pylist()) if levels else "")
    return f'{{"lastUpdateId":{last_id},"bids":[{out[0]}],"asks":[{out[1]}]}}'


class _Day:
    """The day's messages as numbers, and every row's place."""

    def __init__(self, p: synth.DayParams, rng: np.random.Generator, day0: int) -> None:
        plan = synth.plan_messages(p, rng, day0)
        rest_sent = day0 + np.arange(1, p.span_s // 60 + 1) * 60 * _NS
        rest_sent = rest_sent[rest_sent < plan.conn_end[-1] - _NS]
        rest_sent += rng.integers(0, 5 * _MS, len(rest_sent))
        snap_after = np.searchsorted(plan.ts, rest_sent, "right") - 1
        flow = run_flow(p.seed, plan.trade, plan.n, plan.initial_before, snap_after)
        self.flow: Flow = flow
        n_msg = len(flow.msg_plan)
        counts = np.diff(flow.ev_off)
        self.ev_msg = np.repeat(np.arange(n_msg, dtype=np.int64), counts)
        trade = flow.kind == TRADE
        n_change = np.bincount(self.ev_msg[~trade], minlength=n_msg)

        # Planned messages keep their times; a connection's dump is its sync snapshot.
        planned = np.flatnonzero(flow.msg_plan >= 0)  # in plan order
        self.msg_ts = np.zeros(n_msg, np.int64)
        self.msg_ts[planned] = plan.ts[flow.msg_plan[planned]]
        conn = np.searchsorted(plan.conn_start, self.msg_ts, "right").astype(np.int32)
        dumps = np.flatnonzero(flow.msg_plan < 0)

        # Update ids of each planned message's diff, and its exchange time (ms).
        span = n_change[planned] + rng.integers(0, 3, len(planned))
        jump = np.zeros(len(planned), np.int64)
        starts = np.searchsorted(planned, dumps[1:])  # first message after each later dump
        jump[starts] = _JUMP
        self.last_id = np.zeros(n_msg, np.int64)
        self.last_id[planned] = _FIRST_ID + np.cumsum(span + jump)
        self.first_id = np.zeros(n_msg, np.int64)
        self.first_id[planned] = self.last_id[planned] - span + 1
        lat = rng.lognormal(np.log(8 * _MS), 0.6, len(planned)).astype(np.int64)
        self.exch_ms = np.zeros(n_msg, np.int64)
        self.exch_ms[planned] = np.maximum.accumulate((self.msg_ts[planned] - lat) // _MS)
        self.trade_id = 9_100_000_000 + np.arange(len(flow.kind), dtype=np.int64)

        # The rows: events, trades, diffs, REST replies; texts holds events' and replies'.
        texts = [event_payload("run_start", argv="tickrec record --venue binance (synthetic)")]
        ts, kind, conns, ref, sent = [day0 + _MS], [_K_EVENT], [0], [0], [-1]

        def row(t: int, k: int, c: int, text: str, sent_ns: int = -1) -> None:
            ts.append(t)
            kind.append(k)
            conns.append(c)
            ref.append(len(texts))
            sent.append(sent_ns)
            texts.append(text)

        n_conn = len(plan.conn_start)
        for c in range(n_conn):
            start = int(plan.conn_start[c])
            if c:
                row(start - 100 * _MS, _K_EVENT, c + 1, event_payload("reconnect", attempt=1))
            row(start, _K_EVENT, c + 1, event_payload("connect", url=URL))
            # the sync reply comes after the connection's second diff, as of its first
            first, second = planned[np.searchsorted(planned, dumps[c]) + np.arange(2)]
            book = self._dump(dumps[c])
            self._apply(book, first)
            reply = _book_text(int(self.last_id[first]), book)
            row(int(self.msg_ts[second]), _K_REST, c + 1, reply, start + 10 * _MS)
            if c < n_conn - 1:
                why = "connection reset by peer"
                ev = event_payload("disconnect", code=None, reason=None, why=why)
                row(int(plan.conn_end[c]), _K_EVENT, c + 1, ev)
        row(int(plan.conn_end[-1]) + 200 * _MS, _K_EVENT, 0, event_payload("shutdown", why="end"))
        recv = rest_sent + rng.integers(40 * _MS, 200 * _MS, len(rest_sent))
        for k in range(len(rest_sent)):
            at = int(snap_after[k])
            last = int(self.last_id[planned[at]]) if at >= 0 else _FIRST_ID
            levels = []
            for s in (BID, ASK):
                n = int(flow.snap_n[k, s])
                levels.append(
                    dict(
                        zip(
                            flow.snap_px[k, s, :n].tolist(),
                            flow.snap_sz[k, s, :n].tolist(),
                            strict=True,
                        )
                    )
                )
            row(
                int(recv[k]),
                _K_REST,
                0,
                _book_text(last, (levels[0], levels[1])),
                int(rest_sent[k]),
            )
        self.texts = texts

        trades = np.flatnonzero(trade)
        diffs = planned
        all_ts = np.concatenate(
            [np.asarray(ts), self.msg_ts[self.ev_msg[trades]], self.msg_ts[diffs]]
        )
        all_kind = np.concatenate(
            [
                np.asarray(kind, np.int8),
                np.full(len(trades), _K_TRADE, np.int8),
                np.full(len(diffs), _K_DEPTH, np.int8),
            ]
        )
        all_conn = np.concatenate(
            [np.asarray(conns, np.int32), conn[self.ev_msg[trades]], conn[diffs]]
        )
        all_ref = np.concatenate([np.asarray(ref, np.int64), trades, diffs])
        all_sent = np.concatenate(
            [np.asarray(sent, np.int64), np.full(len(trades) + len(diffs), -1)]
        )
        order = np.lexsort((all_ref, all_kind, all_ts))
        self.ts, self.kind, self.conn = all_ts[order], all_kind[order], all_conn[order]
        self.ref, self.sent = all_ref[order], all_sent[order]
        self.changes = int((~trade).sum())
        self.trades = len(trades)
        self.rest = int((self.kind == _K_REST).sum())
        self.connections = n_conn

    def _dump(self, m: int) -> tuple[dict[int, int], dict[int, int]]:
        f, lo, hi = self.flow, int(self.flow.ev_off[m]), int(self.flow.ev_off[m + 1])
        book: tuple[dict[int, int], dict[int, int]] = ({}, {})
        for side, px, qty in zip(
            f.side[lo:hi].tolist(), f.px[lo:hi].tolist(), f.qty[lo:hi].tolist(), strict=True
        ):
            book[side][px] = qty
        return book

    def _apply(self, book: tuple[dict[int, int], dict[int, int]], m: int) -> None:
        f, lo, hi = self.flow, int(self.flow.ev_off[m]), int(self.flow.ev_off[m + 1])
        for e in range(lo, hi):
            if f.kind[e] == TRADE:
                continue
            side, px, qty = int(f.side[e]), int(f.px[e]), int(f.qty[e])
            if qty:
                book[side][px] = qty
            else:
                book[side].pop(px, None)

    def payloads(self, lo: int, hi: int) -> pa.Array:
        """Payload texts of rows ``lo:hi``, built column-wise in Arrow."""
        f = self.flow
        kind, ref = self.kind[lo:hi], self.ref[lo:hi]
        at = {k: np.flatnonzero(kind == k) for k in (_K_TRADE, _K_DEPTH)}
        pieces, where = [], []

        es = ref[at[_K_TRADE]]  # trade events
        if len(es):
            ms = synth.ints(self.exch_ms[self.ev_msg[es]])
            maker_bid = pc.if_else(pa.array(f.side[es] == BID), "true", "false")
            trades = pc.binary_join_element_wise(
                '{"stream":"btcusdt@trade","data":{"e":"trade","E":', ms,
                ',"s":"BTCUSDT","t":', synth.ints(self.trade_id[es]),
                ',"p":"', synth.decimals(f.px[es], 2, 8),
                '","q":"', synth.decimals(f.qty[es], 8, 8),
                '","T":', ms, ',"m":', maker_bid, ',"M":true}}', "",
            )  # fmt: skip
            pieces.append(trades)
            where.append(at[_K_TRADE])

        ms_ = ref[at[_K_DEPTH]]  # messages, ascending
        if len(ms_):
            e_lo, e_hi = int(f.ev_off[ms_[0]]), int(f.ev_off[ms_[-1] + 1])
            local = np.full(len(f.msg_plan), -1, np.int64)
            local[ms_] = np.arange(len(ms_))
            owner = local[self.ev_msg[e_lo:e_hi]]
            sel = np.flatnonzero((owner >= 0) & (f.kind[e_lo:e_hi] != TRADE)) + e_lo
            key = local[self.ev_msg[sel]] * 2 + f.side[sel]
            # A diff names a level once, with its quantity after the message, in price order.
            order = np.lexsort((f.px[sel], key))  # stable: the last of equal prices is the final
            sel, key = sel[order], key[order]
            last = np.ones(len(sel), bool)
            last[:-1] = (key[1:] != key[:-1]) | (f.px[sel][1:] != f.px[sel][:-1])
            sel, key = sel[last], key[last]
            offsets = np.zeros(2 * len(ms_) + 1, np.int32)
            offsets[1:] = np.cumsum(np.bincount(key, minlength=2 * len(ms_)))
            groups = pc.binary_join(
                pa.ListArray.from_arrays(pa.array(offsets), _pairs(f.px[sel], f.qty[sel])), ","
            )
            bids = groups.take(pa.array(np.arange(0, 2 * len(ms_), 2)))
            asks = groups.take(pa.array(np.arange(1, 2 * len(ms_), 2)))
            diffs = pc.binary_join_element_wise(
                '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":',
                synth.ints(self.exch_ms[ms_]),
                ',"s":"BTCUSDT","U":', synth.ints(self.first_id[ms_]),
                ',"u":', synth.ints(self.last_id[ms_]), ',"b":[', bids, '],"a":[', asks, "]}}", "",
            )  # fmt: skip
            pieces.append(diffs)
            where.append(at[_K_DEPTH])

        other = np.flatnonzero((kind == _K_EVENT) | (kind == _K_REST))
        pieces.append(pa.array([self.texts[i] for i in ref[other]], pa.string()))
        where.append(other)
        place = np.empty(hi - lo, np.int64)
        place[np.concatenate(where)] = np.arange(hi - lo)
        return pa.concat_arrays(pieces).take(pa.array(place))

    def table(self, run_id: str, lo: int, hi: int) -> pa.Table:
        kind = self.kind[lo:hi]
        received = (kind == _K_TRADE) | (kind == _K_DEPTH)
        protocol = np.where(kind == _K_REST, rest.PROTOCOL, spot.PROTOCOL)
        source = np.array(["event", "ws", "ws", "rest"])[kind]
        ref = self.ref[lo:hi]
        msg = np.where(kind == _K_TRADE, self.ev_msg[np.where(kind == _K_TRADE, ref, 0)], ref)
        exch = np.where(received, self.exch_ms[np.where(received, msg, 0)] * _MS, -1)
        venue_seq = np.where(kind == _K_DEPTH, self.last_id[np.where(kind == _K_DEPTH, ref, 0)], -1)

        def ts(values: I64) -> pa.Array:
            return pa.array(values, pa.int64(), mask=values < 0).cast(SCHEMA.field("recv_ts").type)

        arrays = [
            ts(self.ts[lo:hi]),
            pa.array(np.arange(lo + 1, hi + 1, dtype=np.int64)),
            pa.array([run_id] * (hi - lo), pa.string()).dictionary_encode(),
            pa.array(self.conn[lo:hi], pa.int32()),
            pa.array(protocol).dictionary_encode(),
            pa.array(source).dictionary_encode(),
            self.payloads(lo, hi),
            ts(exch),
            pa.array(venue_seq, pa.int64(), mask=venue_seq < 0),
            ts(self.sent[lo:hi]),
        ]
        for i, name in ((2, "run_id"), (4, "protocol"), (5, "source")):
            arrays[i] = arrays[i].cast(SCHEMA.field(name).type)
        return pa.Table.from_arrays(arrays, schema=SCHEMA)


def generate(p: synth.DayParams, root: Path, day0: int) -> synth.Day:
    """Write the Binance day of *p* under *root* (an empty dataset root)."""
    day = _Day(p, np.random.default_rng(p.seed), day0)
    n = len(day.ts)
    bounds = [*range(0, n, p.part_rows), n]
    extra = {"generator": "tickrec-bench", "generator_version": synth.GENERATOR_VERSION}
    for k in range(len(bounds) - 1):
        write_part(
            root, VENUE, SYMBOL, p.run_id, k, day.table(p.run_id, bounds[k], bounds[k + 1]), extra
        )
    return synth.Day(
        root=root,
        params=p,
        rows=n,
        messages=int(((day.kind == _K_TRADE) | (day.kind == _K_DEPTH)).sum()),
        changes=day.changes,
        trades=day.trades,
        heartbeats=0,
        rest_snapshots=day.rest,
        connections=day.connections,
        parts=len(bounds) - 1,
    )
