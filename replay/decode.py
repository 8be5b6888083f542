"""Decode one partition's raw rows into normalized events (:class:`~replay.events.Decoded`).

This walks the rows in contract order (ARCHITECTURE section 2.3) and routes
each by its ``source``:

- ``ws`` rows go to the venue stream of their connection (chosen by the
  row's ``protocol``; :data:`replay.venues.STREAMS`);
- ``ws_sent`` rows (subscribes and other requests) go to the same stream;
- ``rest`` rows with protocol ``gemini.rest`` become :class:`RestBook`
  snapshots, unless the partition's stream is conflated
  (:data:`replay.venues.CONFLATED`);
- ``event`` rows (recorder events, JSON ``{"event": kind, ...}``) become
  markers; unknown kinds are kept as markers and otherwise ignored.

Connections. A connection is a ``(run_id, conn_id)`` pair; ``conn_id`` alone
restarts with every run. The first row of a new connection clears the book,
which stays invalid until that connection's snapshot (ARCHITECTURE
section 3). A connection is *lost* at its first ``disconnect``, ``error``,
``stale`` or ``shutdown`` event after its last received message (an error
followed by more data was not fatal; a run-level event, ``conn_id`` 0,
concerns the run's open connection); the book is cleared there. A
connection that simply stops (a crash: no event) is lost at its last row.

Time. Replay order is row order. Receive times come from a wall clock and
could step back; the time used for the book is the running maximum of
``recv_ts``, so "the book after every message with ``recv_ts <= T``" stays
well defined and the result is still a pure function of the files.

Prices and sizes are interned as strings while reading and converted once, at
the end, at the partition's own scale (:mod:`replay.ticks`).
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from replay.events import (
    NO_ID,
    NO_TS,
    OP_CLEAR,
    OP_INVALID,
    OP_SET,
    BookOps,
    Decoded,
    Marker,
    RestBook,
    SeqBreak,
    Trades,
)
from replay.ticks import StringTable
from replay.venues import CONFLATED, STREAMS, VenueStream
from replay.venues.gemini_rest import parse_book
from tickrec.errors import DatasetError

__all__ = ["LOSS_EVENTS", "LOSS_SPAN_EVENTS", "decode"]

#: Recorder events that end a connection when no message follows them on it.
LOSS_EVENTS = frozenset({"disconnect", "error", "stale", "shutdown"})
#: Recorder events saying records of a span were never stored, with the
#: payload keys of the span: a damaged journal tail found by recovery, and
#: journal writes that failed (a full disk).
LOSS_SPAN_EVENTS = {
    "journal_loss": ("start_ns", "end_ns"),
    "disk_error": ("since_ns", "resumed_ns"),
}


def _i64(values: array[int]) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.frombuffer(values, dtype=np.int64).copy() if len(values) else np.zeros(0, np.int64)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Sink:
    """Collects decoded events in compact arrays (the concrete :class:`EventSink`)."""

    def __init__(self) -> None:
        self.prices = StringTable()
        self.sizes = StringTable()
        self.cur_ts = 0
        self.cur_grp = 0
        self.cur_conn = -1
        # book operations
        self.o_ts = array("q")
        self.o_grp = array("q")
        self.o_op = array("b")
        self.o_side = array("b")
        self.o_px = array("q")
        self.o_sz = array("q")
        self.o_exch = array("q")
        self.o_snap = array("b")
        # trades
        self.t_ts = array("q")
        self.t_grp = array("q")
        self.t_exch = array("q")
        self.t_px = array("q")
        self.t_sz = array("q")
        self.t_side = array("b")
        self.t_tid = array("q")
        self.t_hist = array("b")
        self.breaks: list[SeqBreak] = []
        self.zero_px = self.prices.index("0")
        self.zero_sz = self.sizes.index("0")

    @property
    def ts(self) -> int:
        return self.cur_ts

    def _op(self, op: int, side: int, px: int, sz: int, exch: int | None, snap: bool) -> None:
        self.o_ts.append(self.cur_ts)
        self.o_grp.append(self.cur_grp)
        self.o_op.append(op)
        self.o_side.append(side)
        self.o_px.append(px)
        self.o_sz.append(sz)
        self.o_exch.append(NO_TS if exch is None else exch)
        self.o_snap.append(snap)

    def change(self, side: int, price: str, size: str, exch: int | None, snapshot: bool) -> None:
        self._op(OP_SET, side, self.prices.index(price), self.sizes.index(size), exch, snapshot)

    def control(self, op: int) -> None:
        self._op(op, 0, self.zero_px, self.zero_sz, None, False)

    def trade(
        self,
        price: str,
        size: str,
        side: int,
        tid: int | None,
        exch: int | None,
        historical: bool,
    ) -> None:
        self.t_ts.append(self.cur_ts)
        self.t_grp.append(self.cur_grp)
        self.t_exch.append(NO_TS if exch is None else exch)
        self.t_px.append(self.prices.index(price))
        self.t_sz.append(self.sizes.index(size))
        self.t_side.append(side)
        self.t_tid.append(NO_ID if tid is None else tid)
        self.t_hist.append(historical)

    def seq_break(self, prev_ts: int, expected: int, got: int) -> None:
        self.breaks.append(
            SeqBreak(prev_ts, self.cur_ts, self.cur_grp, self.cur_conn, expected, got)
        )


def _column(table: pa.Table, name: str) -> list[Any]:
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    elif pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    return col.to_pylist()


def _load(payload: str) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None


def decode(table: pa.Table, symbol: str) -> Decoded:
    """Decode the rows of one partition (a contract table in contract order)."""
    n = table.num_rows
    recv_raw = table.column("recv_ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
    recv = np.maximum.accumulate(recv_raw) if n else recv_raw
    run_ids = _column(table, "run_id")
    conn_ids = _column(table, "conn_id")
    protocols = _column(table, "protocol")
    sources = _column(table, "source")
    payloads = _column(table, "payload")
    venue_seqs = _column(table, "venue_seq")
    sent = _column(table, "sent_ts")

    conn_number: dict[tuple[str, int], int] = {}
    last_ws: dict[tuple[str, int], int] = {}
    for i in range(n):
        if sources[i] == "ws":
            last_ws[(run_ids[i], conn_ids[i])] = i

    sink = _Sink()
    markers: list[Marker] = []
    rest: list[tuple[int, int, int, list[tuple[str, str]], list[tuple[str, str]]]] = []
    counts: dict[str, int] = {}
    msg_ts = array("q")
    msg_conn = array("q")
    ws_protocols: set[str] = set()
    stream: VenueStream | None = None
    cur: tuple[str, int] | None = None
    live = False
    last_row_ts = 0

    def mark(
        i: int, kind: str, detail: str = "", start: int | None = None, end: int | None = None
    ) -> None:
        ts = int(recv[i])
        markers.append(
            Marker(
                ts,
                i,
                kind,
                sink.cur_conn,
                detail,
                ts if start is None else start,
                ts if end is None else end,
            )
        )

    for i in range(n):
        src = sources[i]
        ts = int(recv[i])
        sink.cur_ts, sink.cur_grp = ts, i
        if src == "rest":
            if protocols[i] == "gemini.rest":
                levels = parse_book(_load(payloads[i]))
                if levels is not None:
                    s = sent[i] if sent[i] is not None else ts
                    rest.append((min(int(s), ts), ts, i, levels[0], levels[1]))
            continue
        key = (run_ids[i], conn_ids[i])
        if src == "event":
            obj = _load(payloads[i])
            kind = str(obj.get("event", "unknown")) if isinstance(obj, dict) else "unknown"
            if kind in LOSS_SPAN_EVENTS and isinstance(obj, dict):
                lo_key, hi_key = LOSS_SPAN_EVENTS[kind]
                start = _int_or_none(obj.get(lo_key)) or ts
                end = _int_or_none(obj.get(hi_key)) or ts
                mark(i, kind, payloads[i], min(start, end), max(start, end))
            else:
                mark(i, kind, payloads[i])
            # Run-level events (conn_id 0, e.g. shutdown) concern the run's open connection.
            if (
                kind in LOSS_EVENTS
                and cur is not None
                and live
                and (key == cur or (conn_ids[i] == 0 and run_ids[i] == cur[0]))
                and i > last_ws.get(cur, -1)
            ):
                sink.control(OP_CLEAR)
                mark(i, "lost", kind)
                live = False
            continue
        if key != cur:
            if cur is not None and live:
                # The old connection ended without an event (a crash): lost at its last row.
                markers.append(
                    Marker(
                        last_row_ts,
                        i,
                        "lost",
                        sink.cur_conn,
                        "no disconnect event",
                        last_row_ts,
                        last_row_ts,
                    )
                )
            sink.cur_conn = conn_number.setdefault(key, len(conn_number))
            stream_cls = STREAMS.get(protocols[i])
            if stream_cls is None:
                raise DatasetError(
                    f"row {i}: protocol {protocols[i]!r} is not supported by replay "
                    f"(supported: {', '.join(sorted(STREAMS))})"
                )
            ws_protocols.add(protocols[i])
            stream = stream_cls(symbol)
            cur, live = key, True
            sink.control(OP_CLEAR)
            mark(i, "reset", f"run {key[0]} conn {key[1]}")
        assert stream is not None
        last_row_ts = ts
        msg = _load(payloads[i])
        if src == "ws_sent":
            stream.on_sent(sink, msg)
            continue
        msg_ts.append(ts)
        msg_conn.append(sink.cur_conn)
        if msg is None:
            # A message we cannot read may have changed the book: stop trusting it.
            # The connection's stream keeps its state: a fresh one would take
            # the next v2 l2_updates for a snapshot (gemini.md section 2).
            counts["undecodable"] = counts.get("undecodable", 0) + 1
            sink.control(OP_INVALID)
            sink.breaks.append(SeqBreak(ts, ts, i, sink.cur_conn, -1, -1))
            continue
        kind = stream.on_message(sink, msg, venue_seqs[i])
        counts[kind] = counts.get(kind, 0) + 1
    counts["messages"] = len(msg_ts)
    if ws_protocols & CONFLATED:
        rest.clear()

    return _finish(sink, markers, rest, msg_ts, msg_conn, tuple(sorted(ws_protocols)), recv, counts)


def _finish(
    sink: _Sink,
    markers: list[Marker],
    rest_raw: list[tuple[int, int, int, list[tuple[str, str]], list[tuple[str, str]]]],
    msg_ts: array[int],
    msg_conn: array[int],
    protocols: tuple[str, ...],
    recv: np.ndarray[Any, np.dtype[np.int64]],
    counts: dict[str, int],
) -> Decoded:
    rest_px = [sink.prices.index(p) for r in rest_raw for side in (r[3], r[4]) for p, _ in side]
    rest_sz = [sink.sizes.index(s) for r in rest_raw for side in (r[3], r[4]) for _, s in side]
    px_ids = np.concatenate([_i64(sink.o_px), _i64(sink.t_px), np.asarray(rest_px, np.int64)])
    sz_ids = np.concatenate([_i64(sink.o_sz), _i64(sink.t_sz), np.asarray(rest_sz, np.int64)])
    price_scale = sink.prices.scale(px_ids)
    size_scale = sink.sizes.scale(sz_ids)
    px = sink.prices.units(px_ids, price_scale)
    sz = sink.sizes.units(sz_ids, size_scale)
    n_ops, n_tr = len(sink.o_ts), len(sink.t_ts)
    if (sz < 0).any():
        raise DatasetError("negative size in the data")

    ops = BookOps(
        ts=_i64(sink.o_ts),
        grp=_i64(sink.o_grp),
        op=np.frombuffer(sink.o_op, dtype=np.int8).copy(),
        side=np.frombuffer(sink.o_side, dtype=np.int8).copy(),
        price=px[:n_ops],
        size=sz[:n_ops],
        exch=_i64(sink.o_exch),
        snapshot=np.frombuffer(sink.o_snap, dtype=np.int8).astype(bool),
    )
    trades = Trades(
        ts=_i64(sink.t_ts),
        grp=_i64(sink.t_grp),
        exch=_i64(sink.t_exch),
        price=px[n_ops : n_ops + n_tr],
        size=sz[n_ops : n_ops + n_tr],
        side=np.frombuffer(sink.t_side, dtype=np.int8).copy(),
        tid=_i64(sink.t_tid),
        historical=np.frombuffer(sink.t_hist, dtype=np.int8).astype(bool),
    )
    rest: list[RestBook] = []
    k = n_ops + n_tr
    for sent, rts, grp, bids, asks in rest_raw:
        nb, na = len(bids), len(asks)
        rest.append(
            RestBook(
                sent,
                rts,
                grp,
                px[k : k + nb],
                sz[k : k + nb],
                px[k + nb : k + nb + na],
                sz[k + nb : k + nb + na],
            )
        )
        k += nb + na
    return Decoded(
        ops=ops,
        trades=trades,
        rest=rest,
        markers=markers,
        breaks=sink.breaks,
        msg_ts=_i64(msg_ts),
        msg_conn=_i64(msg_conn),
        price_scale=price_scale,
        size_scale=size_scale,
        protocols=protocols,
        rows=len(recv),
        first_ns=int(recv[0]) if len(recv) else 0,
        last_ns=int(recv[-1]) if len(recv) else 0,
        counts=counts,
    )
