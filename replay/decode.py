"""Decode one partition's raw rows into normalized events (:class:`~replay.events.Decoded`).

This walks the rows in contract order (docs/architecture.md section 2.3) and routes
each by its ``source``:

- ``ws`` rows go to the venue stream of their connection (chosen by the
  row's ``protocol``; :func:`replay.streams.stream_class`);
- ``ws_sent`` rows (subscribes and other requests) go to the same stream;
- ``rest`` rows of a protocol with a book reader (:func:`replay.streams.book_reader`)
  become :class:`RestBook` snapshots, unless the partition's stream is conflated
  (:data:`replay.streams.CONFLATED`);
- ``event`` rows (recorder events, JSON ``{"event": kind, ...}``) become
  markers; unknown kinds are kept as markers and otherwise ignored. A
  ``skipped`` event (a line the importer left out) is handled as a bad
  message of its connection.

A bad message (not UTF-8, not JSON, or a value no exact column holds:
:mod:`tickrec.values`) costs only what the protocol's own rules make
invalid: the stream is told (``on_undecodable``), the book is invalid from
that row, and the gap's detail names the row by ``run_id`` and ``seq``.

Connections. A connection is a ``(run_id, conn_id)`` pair; ``conn_id`` alone
restarts with every run. The first row of a new connection clears the book,
which stays invalid until that connection's snapshot (docs/architecture.md
section 3). A connection is *lost* at its first ``disconnect``, ``error``,
``stale`` or ``shutdown`` event after its last received message (an error
followed by more data was not fatal; a run-level event, ``conn_id`` 0,
concerns the run's open connection); the book is cleared there. A
connection that simply stops (a crash: no event) is lost at its last row.
This holds for connections one after another; a partition where the rows
of two connections interleave (:attr:`ConnectionRows.interleaved`) is
decoded by :mod:`replay.overlap` instead, which follows one of them at a
time.

Carry over midnight (docs/architecture.md section 2.5). Given the previous
date's end-of-day checkpoints (:attr:`~replay.events.Decoded.ends`, that
date decoded alone), a partition whose first connection is among them opens
that connection at midnight, before every row (``grp`` ``CARRIED``): its
book as it stood, valid, and its stream's sync state, so the next message
is checked against the last sequence number or update id; any loss event
ends it as usual. At the end, the connection still open, in sync by its
stream and by its book, is the partition's own checkpoint.

Time. Replay order is row order. Receive times come from a wall clock and
could step back; the time used for the book is the running maximum of
``recv_ts``, so "the book after every message with ``recv_ts <= T``" stays
well defined and the result is still a pure function of the files.

Prices and sizes are kept as exact ``(mantissa, decimals)`` pairs while
reading and brought to the partition's own scale once, at the end
(:mod:`replay.ticks`).

Streaming. :class:`PartitionDecoder` takes the rows one record batch at a
time, so a day never has to sit in memory as text; :func:`decode` feeds it
a whole table. Runs of received rows of one connection (REST replies among
them are read apart, as they concern no stream) go to the stream's
:meth:`~tickrec.events.RunDecoder.decode_run` when it has one (Gemini
v1: a compiled scanner over the payload bytes), and row by row through
``orjson`` and ``on_message`` otherwise, or for any message the run decoder
declines. Both paths give the same events, so the output does not depend on
which path a message took, nor on how the rows were split into batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from replay.book import BookEngine
from replay.columns import with_nulls
from replay.events import BookOps, Checkpoint, Decoded, Marker, RestBook, SeqBreak, Trades
from replay.streams import CONFLATED, SYNCS, book_reader, stream_class
from replay.ticks import rescale
from tickrec.errors import DatasetError
from tickrec.events import (
    CARRIED,
    NO_ID,
    NO_TS,
    OP_CLEAR,
    OP_COLUMNS,
    OP_INVALID,
    OP_SET,
    OP_TYPES,
    OP_VALID,
    TRADE_COLUMNS,
    TRADE_TYPES,
    BookPairs,
    Columns,
    Levels,
    RawRows,
    RunDecoder,
    SyncedStream,
    VenueStream,
)
from tickrec.values import MAX_DECIMALS, BadValue, check_level, decimal_pair

__all__ = [
    "LOSS_EVENTS",
    "LOSS_SPAN_EVENTS",
    "ConnectionRows",
    "PartitionDecoder",
    "connection_rows",
    "decode",
]

I64 = npt.NDArray[np.int64]

#: Recorder events that end a connection when no message follows them on it.
LOSS_EVENTS = frozenset({"disconnect", "error", "stale", "shutdown"})
#: Recorder events saying records of a span were never stored, with the
#: payload keys of the span: a damaged journal tail found by recovery, or
#: records the recorder held in memory while the disk was full and had to
#: drop. (A ``disk_error`` event says that held records were all written
#: late, with their receive times: nothing is missing.)
LOSS_SPAN_EVENTS = {
    "journal_loss": ("start_ns", "end_ns"),
}

# Row sources as the decoder routes them; any other source is a received message.
_RECEIVED, _SENT, _REST, _EVENT = 0, 1, 2, 3
_SOURCES = {"ws_sent": _SENT, "rest": _REST, "event": _EVENT}

# A REST book as read: (sent, recv, row, levels as exact pairs).
RestRaw = tuple[int, int, int, BookPairs]


class _Sink:
    """Collects decoded events in columns (the concrete :class:`~tickrec.events.RunSink`)."""

    def __init__(self) -> None:
        self.cur_ts = 0
        self.cur_grp = 0
        self.cur_conn = -1
        self.ops = Columns(OP_COLUMNS, OP_TYPES)
        self.trades = Columns(TRADE_COLUMNS, TRADE_TYPES)
        self.breaks: list[SeqBreak] = []
        self.counts: dict[str, int] = {}
        self._pairs: dict[str, tuple[int, int]] = {}

    @property
    def ts(self) -> int:
        return self.cur_ts

    def pair(self, text: str) -> tuple[int, int]:
        """Exact ``(mantissa, decimals)`` of a decimal string; each distinct one is parsed once.

        Raises :class:`~tickrec.values.BadValue` for a value out of the limits
        of :func:`~tickrec.values.decimal_pair`.
        """
        got = self._pairs.get(text)
        if got is None:
            got = self._pairs[text] = decimal_pair(text)
        return got

    def level(self, price: str, size: str) -> tuple[tuple[int, int], tuple[int, int]]:
        """Exact pairs of a price and a size; raises :class:`~tickrec.values.BadValue`
        for a price not positive or a negative size (or a value out of the limits)."""
        px, sz = self.pair(price), self.pair(size)
        check_level(px, sz, price, size)
        return px, sz

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    def change(self, side: int, price: str, size: str, exch: int | None, snapshot: bool) -> None:
        (pm, pd), (sm, sd) = self.level(price, size)
        exch_ts = NO_TS if exch is None else exch
        self.ops.append(self.cur_ts, self.cur_grp, OP_SET, side, pm, pd, sm, sd, exch_ts, snapshot)

    def control(self, op: int) -> None:
        self.ops.append(self.cur_ts, self.cur_grp, op, 0, 0, 0, 0, 0, NO_TS, False)

    def trade(
        self,
        price: str,
        size: str,
        side: int,
        tid: int | None,
        exch: int | None,
        historical: bool,
    ) -> None:
        (pm, pd), (sm, sd) = self.level(price, size)
        self.trades.append(
            self.cur_ts,
            self.cur_grp,
            NO_TS if exch is None else exch,
            pm,
            pd,
            sm,
            sd,
            side,
            NO_ID if tid is None else tid,
            historical,
        )

    def seq_break(self, prev_ts: int, expected: int, got: int, sequence: str) -> None:
        self._break(prev_ts, self.cur_ts, self.cur_grp, expected, got, sequence)

    def _break(self, prev_ts: int, ts: int, grp: int, expected: int, got: int, seq: str) -> None:
        detail = f"{seq} expected {expected}, got {got}"
        self.breaks.append(SeqBreak(prev_ts, ts, grp, self.cur_conn, expected, got, detail))

    def add_run(self, breaks: Columns, counts: dict[str, int], sequence: str) -> None:
        rows = zip(*(col[: breaks.n].tolist() for col in breaks.arrays), strict=True)
        for prev_ts, ts, grp, expected, got in rows:
            self._break(prev_ts, ts, grp, expected, got, sequence)
        for kind, n in counts.items():
            self.count(kind, n)


def _load(payload: str | None) -> Any:
    try:
        return orjson.loads(payload) if payload is not None else None
    except orjson.JSONDecodeError:
        return None


def _text(payload: pa.Array, i: int) -> str | None:
    """Payload *i* as text, or None if it is not valid UTF-8 (or null)."""
    try:
        text: str | None = payload[i].as_py()
    except UnicodeDecodeError:
        return None
    return text


def _texts(payload: pa.Array, start: int, stop: int) -> list[str | None]:
    """Payloads ``start:stop`` as text; one that is not valid UTF-8 is None."""
    part = payload.slice(start, stop - start)
    try:
        texts: list[str | None] = part.to_pylist()
    except UnicodeDecodeError:
        return [_text(part, i) for i in range(len(part))]
    return texts


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dictionary(col: pa.Array) -> tuple[npt.NDArray[Any], list[Any]]:
    """``(codes, values)`` of a string column (dictionary-encoded or not)."""
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    return col.indices.to_numpy(zero_copy_only=False), col.dictionary.to_pylist()


def _payload_buffers(col: pa.Array) -> tuple[npt.NDArray[np.uint8], npt.NDArray[Any]]:
    """The bytes and offsets of a string column, without copying."""
    if pa.types.is_large_string(col.type):
        off_type: Any = np.int64
    elif pa.types.is_string(col.type):
        off_type = np.int32
    else:
        raise DatasetError(f"payload column has type {col.type}, not string")
    _, offsets, data = col.buffers()
    offs = np.frombuffer(offsets, off_type)[col.offset : col.offset + len(col) + 1]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return raw, offs


class ConnectionRows(NamedTuple):
    """What :func:`connection_rows` finds out about a partition's connections."""

    last_ws: dict[tuple[str, int], int]
    """Partition row index of the last ``ws`` row of each connection ``(run_id, conn_id)``."""
    interleaved: bool
    """Rows of two connections alternate: after a connection's rows, another's came,
    then the first one's again (two runs capturing at once, a make-before-break
    reconnect). Such a partition is replayed by :mod:`replay.overlap`."""


def connection_rows(batches: Iterable[pa.RecordBatch]) -> ConnectionRows:
    """:class:`ConnectionRows` of the rows of *batches* (in contract order).

    Needs only the ``source``, ``run_id`` and ``conn_id`` columns, so a
    streaming caller can compute it in a cheap first pass. Rows with
    ``conn_id`` 0 (run-level events, REST replies) belong to no connection.
    """
    out: dict[tuple[str, int], int] = {}
    seen: set[tuple[str, int]] = set()
    prev: tuple[str, int] | None = None
    interleaved = False
    offset = 0
    for batch in batches:
        src, src_values = _dictionary(batch.column("source"))
        run, run_values = _dictionary(batch.column("run_id"))
        conn = batch.column("conn_id").to_numpy(zero_copy_only=False).astype(np.int64)
        is_ws = np.asarray([v == "ws" for v in src_values], bool)
        rows = np.flatnonzero(is_ws[src]) if len(src_values) else np.zeros(0, np.int64)
        if len(rows):
            run_ws, conn_ws = run[rows], conn[rows]
            # The last row of each stretch of one connection; later stretches overwrite.
            ends = np.append((run_ws[1:] != run_ws[:-1]) | (conn_ws[1:] != conn_ws[:-1]), True)
            for r in rows[ends].tolist():
                out[(run_values[run[r]], int(conn[r]))] = offset + r
        # The first row of each stretch of one connection, over rows of any source.
        own = np.flatnonzero(conn != 0)
        if len(own):
            run_own, conn_own = run[own], conn[own]
            heads = np.append(True, (run_own[1:] != run_own[:-1]) | (conn_own[1:] != conn_own[:-1]))
            for r in own[heads].tolist():
                key = (run_values[run[r]], int(conn[r]))
                if key != prev:
                    interleaved = interleaved or key in seen
                    seen.add(key)
                    prev = key
        offset += batch.num_rows
    return ConnectionRows(out, interleaved)


class PartitionDecoder:
    """Decodes one partition's rows, fed in contract order one record batch at a time."""

    def __init__(
        self,
        symbol: str,
        last_ws: dict[tuple[str, int], int],
        rows: int | None = None,
        payload_bytes: int | None = None,
        carry: Sequence[Checkpoint] = (),
        start_ns: int | None = None,
    ) -> None:
        """*last_ws* is :attr:`ConnectionRows.last_ws` of the same rows.

        *carry* holds the previous date's :attr:`~replay.events.Decoded.ends`;
        when the first connection of these rows is among them, its book and
        stream state go on from there, from *start_ns* (the date's midnight)
        on, and the partition's span starts there (docs/architecture.md section 2.5).

        *rows* and *payload_bytes*, if known, are the number of rows and of
        payload bytes of all the rows to be fed (an estimate too large does
        no harm). The output columns are then sized once, from the events
        per payload byte (or else per row) of the first batches, instead of
        grown: a copy of everything so far, into memory that is new and so
        slow to touch.
        """
        self.symbol = symbol
        self._last_ws = last_ws
        self._sink = _Sink()
        self._markers: list[Marker] = []
        self._rest: list[RestRaw] = []
        self._batch: pa.RecordBatch | None = None
        self._batch_grp0 = 0
        self._msgs = Columns(("ts", "conn"), ("q", "q"))
        self._expect = (rows, payload_bytes)
        self._bytes = 0
        if rows is not None:
            self._msgs.set_capacity(rows)
        self._protocols: set[str] = set()
        self._conn_number: dict[tuple[str, int], int] = {}
        self._stream: VenueStream | None = None
        self._cur: tuple[str, int] | None = None
        self._protocol = ""
        self._live = False
        self._last_row_ts = 0
        self._rows = 0
        self._first_ns = 0
        self._max_ns = 0
        first = next(iter(last_ws), None)
        self._carry = next((c for c in carry if c.key == first), None)
        self._start_ns = start_ns
        self._carried: tuple[tuple[str, int], ...] = ()

    def _mark(
        self, i: int, ts: int, kind: str, detail: str = "", span: tuple[int, int] | None = None
    ) -> None:
        start, end = span if span is not None else (ts, ts)
        self._markers.append(Marker(ts, i, kind, self._sink.cur_conn, detail, start, end))

    def feed(self, batch: pa.RecordBatch) -> None:
        """Decode the next rows (a record batch with the contract's columns)."""
        n = batch.num_rows
        if n == 0:
            return
        recv = np.maximum.accumulate(
            batch.column("recv_ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
        )
        if self._rows:
            recv = np.maximum(recv, self._max_ns)
        else:
            self._first_ns = int(recv[0])
            if self._carry is not None:
                self._carry_in(self._carry, min(self._start_ns or self._first_ns, self._first_ns))
        grp0, self._rows, self._max_ns = self._rows, self._rows + n, int(recv[-1])

        src_codes, src_values = _dictionary(batch.column("source"))
        src = np.asarray([_SOURCES.get(v, _RECEIVED) for v in src_values], np.int8)[src_codes]
        run, run_values = _dictionary(batch.column("run_id"))
        proto, proto_values = _dictionary(batch.column("protocol"))
        conn = batch.column("conn_id").to_numpy(zero_copy_only=False)
        vseq, vseq_ok = with_nulls(batch.column("venue_seq"))
        sent = batch.column("sent_ts").cast(pa.int64())
        payload = batch.column("payload")
        data, offsets = _payload_buffers(payload)
        received = src == _RECEIVED
        rows = RawRows(data, offsets, recv, vseq, vseq_ok, received, grp0)
        self._batch, self._batch_grp0 = batch, grp0
        sink = self._sink

        # A REST reply on a connection of a venue whose books are built from REST
        # snapshots is that connection's sync snapshot: it goes to its stream, in order.
        rest = src == _REST
        syncing = [SYNCS.get(v) is not None for v in proto_values]
        if any(syncing):
            sync = rest & (conn != 0) & np.asarray(syncing, bool)[proto]
            rest &= ~sync
        # The other REST replies (checks) stand apart from the websocket streams: read them first.
        for h in np.flatnonzero(rest).tolist():
            reader = book_reader(proto_values[proto[h]])
            if reader is None:
                continue
            ts = int(recv[h])
            scan = getattr(reader, "scan_book", None)
            levels: BookPairs | Levels | None = (
                None if scan is None else scan(data, int(offsets[h]), int(offsets[h + 1]))
            )
            if levels is None:
                levels = reader.parse_book(_load(_text(payload, h)))
            pairs = self._book_pairs(levels)
            if pairs is None:
                if levels is not None:
                    sink.count("bad_rest")  # a book with a value out of range: not a snapshot
            else:
                s = sent[h].as_py()
                s = ts if s is None else s
                self._rest.append((min(s, ts), ts, grp0 + h, pairs))

        # The other rows in runs: a run starts at every row that is not a received
        # message, and wherever the connection or protocol changes; only run starts
        # go through Python. A run of received rows may have REST rows among them.
        kept = np.flatnonzero(~rest)
        k_received, k_run, k_conn, k_proto = received[kept], run[kept], conn[kept], proto[kept]
        head = np.ones(len(kept), bool)
        head[1:] = (
            ~k_received[1:]
            | ~k_received[:-1]
            | (k_run[1:] != k_run[:-1])
            | (k_conn[1:] != k_conn[:-1])
            | (k_proto[1:] != k_proto[:-1])
        )
        heads = np.flatnonzero(head)
        counts = np.diff(heads, append=len(kept))
        for hk, count in zip(heads.tolist(), counts.tolist(), strict=True):
            h, e = int(kept[hk]), int(kept[hk + count - 1]) + 1
            i = grp0 + h
            ts = int(recv[h])
            sink.cur_ts, sink.cur_grp = ts, i
            code = src[h]
            key = (run_values[run[h]], int(conn[h]))
            if code == _EVENT:
                self._event(i, ts, key, _text(payload, h))
                continue
            if key != self._cur:
                wire = proto_values[proto[h]]
                self._connect(i, ts, key, SYNCS.get(wire, wire) if code == _REST else wire)
            stream = self._stream
            assert stream is not None
            if code == _REST:
                self._last_row_ts = ts
                self._sync_snapshot(stream, _text(payload, h))
                continue
            if code == _SENT:
                self._last_row_ts = ts
                stream.on_sent(sink, _load(_text(payload, h)))
                continue
            self._last_row_ts = int(recv[e - 1])
            msg_ts = recv[h:e] if count == e - h else recv[h:e][received[h:e]]
            self._msgs.extend(count, msg_ts, sink.cur_conn)
            if isinstance(stream, RunDecoder):
                r = h
                while r < e:
                    r = stream.decode_run(sink, rows, r, e)
                    if r < e:
                        self._received(stream, rows, r, _text(payload, r))
                        r += 1
            else:
                for r, text in enumerate(_texts(payload, h, e), h):
                    if received[r]:
                        self._received(stream, rows, r, text)
        self._bytes += int(offsets[-1] - offsets[0])
        rows_due, bytes_due = self._expect
        if bytes_due is not None and 0 < self._bytes < bytes_due:
            self._size_columns(bytes_due / self._bytes)
        elif bytes_due is None and rows_due is not None and self._rows < rows_due:
            self._size_columns(rows_due / self._rows)

    def _size_columns(self, factor: float) -> None:
        """Make room for *factor* times the events so far, and a quarter more for safety.

        Capacity that is never written costs no memory, so erring high is cheap.
        """
        for cols in (self._sink.ops, self._sink.trades):
            want = int(cols.n * factor * 1.25) + (1 << 16)
            if want > cols.capacity:
                cols.set_capacity(want)

    def _received(self, stream: VenueStream, rows: RawRows, r: int, text: str | None) -> None:
        """Decode received row *r* on the general path."""
        sink = self._sink
        ts = int(rows.recv[r])
        sink.cur_ts, sink.cur_grp = ts, rows.grp0 + r
        msg = _load(text)
        if msg is None:
            # A message we cannot read may have changed the book: stop trusting it.
            # The connection's stream keeps its state (a fresh one would take
            # the next v2 l2_updates for a snapshot, docs/venues/gemini.md section 2) and
            # says when the book can be trusted again.
            self._bad_message(stream, "not valid UTF-8" if text is None else "not JSON")
            return
        vseq = int(rows.venue_seq[r]) if rows.venue_seq_ok[r] else None
        ops_n, trades_n, breaks_n = sink.ops.n, sink.trades.n, len(sink.breaks)
        try:
            kind = stream.on_message(sink, msg, vseq)
        except (BadValue, TypeError, KeyError, ValueError, AttributeError) as exc:
            # A value no column can hold, or a field of the wrong JSON type: the
            # message is read as far as the failure, so drop what it added and
            # handle it like an undecodable one.
            sink.ops.n, sink.trades.n = ops_n, trades_n
            del sink.breaks[breaks_n:]
            reason = str(exc) if isinstance(exc, BadValue) else f"malformed message ({exc!r})"
            self._bad_message(stream, reason)
            return
        sink.count(kind)

    def _sync_snapshot(self, stream: VenueStream, text: str | None) -> None:
        """A sync snapshot of the current connection, at the current row."""
        sink = self._sink
        msg = _load(text)
        if not isinstance(stream, SyncedStream) or msg is None:
            sink.count("bad_rest")  # no book: the stream goes on waiting for one
            return
        ops_n, breaks_n = sink.ops.n, len(sink.breaks)
        try:
            kind = stream.on_rest(sink, msg)
        except (BadValue, TypeError, KeyError, ValueError, AttributeError):
            # A value no column holds: the reply is no snapshot, and the book is as it was.
            sink.ops.n = ops_n
            del sink.breaks[breaks_n:]
            kind = "bad_rest"
        sink.count(kind)

    def _bad_message(self, stream: VenueStream, reason: str) -> None:
        """Mark the book invalid at the current row, with a gap naming the row and *reason*."""
        sink = self._sink
        ts = sink.cur_ts
        # The stream says what it is and how the book comes back: "what; how".
        what, sep, how = stream.on_undecodable().partition(";")
        run_id = self._cur[0] if self._cur is not None else "?"
        seq = self._seq_of(sink.cur_grp)
        where = f"run {run_id} seq {seq}" if seq is not None else f"run {run_id}"
        detail = f"{what} at {where} ({reason}){sep}{how}"
        sink.count("undecodable")
        sink.control(OP_INVALID)
        sink.breaks.append(SeqBreak(ts, ts, sink.cur_grp, sink.cur_conn, -1, -1, detail))

    def _seq_of(self, grp: int) -> int | None:
        """The ``seq`` column of partition row *grp*, if it is in the batch being decoded."""
        batch = self._batch
        if batch is None or "seq" not in batch.schema.names:
            return None
        r = grp - self._batch_grp0
        if not 0 <= r < batch.num_rows:
            return None
        value = batch.column("seq")[r].as_py()
        return int(value) if value is not None else None

    def _event(self, i: int, ts: int, key: tuple[str, int], text: str | None) -> None:
        obj = _load(text)
        detail = text or ""
        kind = str(obj.get("event", "unknown")) if isinstance(obj, dict) else "unknown"
        if kind in LOSS_SPAN_EVENTS and isinstance(obj, dict):
            lo_key, hi_key = LOSS_SPAN_EVENTS[kind]
            start = _int_or_none(obj.get(lo_key)) or ts
            end = _int_or_none(obj.get(hi_key)) or ts
            self._mark(i, ts, kind, detail, (min(start, end), max(start, end)))
        else:
            self._mark(i, ts, kind, detail)
        cur = self._cur
        if kind == "skipped" and key == cur and self._live and self._stream is not None:
            # A line the importer left out may have changed the book, as a bad message.
            assert isinstance(obj, dict)
            where = f"{obj.get('file')}:{obj.get('line')}"
            self._bad_message(self._stream, f"skipped on import, {where}: {obj.get('why')}")
        # Run-level events (conn_id 0, e.g. shutdown) concern the run's open connection.
        if (
            kind in LOSS_EVENTS
            and cur is not None
            and self._live
            and (key == cur or (key[1] == 0 and key[0] == cur[0]))
            and i > self._last_ws.get(cur, -1)
        ):
            self._sink.control(OP_CLEAR)
            self._mark(i, ts, "lost", kind)
            self._live = False

    def _connect(self, i: int, ts: int, key: tuple[str, int], protocol: str) -> None:
        sink = self._sink
        if self._cur is not None and self._live:
            # The old connection ended without an event (a crash): lost at its last row.
            last = self._last_row_ts
            self._markers.append(
                Marker(last, i, "lost", sink.cur_conn, "no disconnect event", last, last)
            )
        sink.cur_conn = self._conn_number.setdefault(key, len(self._conn_number))
        try:
            stream_cls = stream_class(protocol)
        except DatasetError as exc:
            raise DatasetError(f"row {i}: {exc}") from None
        self._protocols.add(protocol)
        self._stream = stream_cls(self.symbol)
        self._cur, self._live, self._protocol = key, True, protocol
        sink.control(OP_CLEAR)
        self._mark(i, ts, "reset", f"run {key[0]} conn {key[1]}")

    def _carry_in(self, cp: Checkpoint, ts: int) -> None:
        """Open connection *cp* at *ts* with its book and stream state from the previous date."""
        sink = self._sink
        sink.cur_ts, sink.cur_grp = ts, CARRIED
        self._connect(CARRIED, ts, cp.key, cp.protocol)
        assert self._stream is not None
        self._stream.resume(cp.state)
        reset = self._markers[-1]
        self._markers[-1] = reset._replace(detail=f"{reset.detail} carried")
        # Silence is measured from the connection's last message on the previous date.
        self._mark(CARRIED, ts, "carried", reset.detail, (cp.last_msg_ns, ts))
        for side, px, sz in ((0, cp.bid_px, cp.bid_sz), (1, cp.ask_px, cp.ask_sz)):
            for p, z in zip(px.tolist(), sz.tolist(), strict=True):
                sink.ops.append(
                    ts, CARRIED, OP_SET, side, p, cp.price_scale, z, cp.size_scale, NO_TS, True
                )
        sink.control(OP_VALID)
        self._first_ns = ts
        self._last_row_ts = ts
        self._carried = (cp.key,)

    def ends(
        self, ops: BookOps, msgs: dict[str, npt.NDArray[Any]], price_scale: int, size_scale: int
    ) -> tuple[Checkpoint, ...]:
        """The open connection's :class:`Checkpoint`, if it is in sync after all of *ops*.

        *msgs* are the message times and connection numbers (``ts``, ``conn``).
        """
        stream, key = self._stream, self._cur
        if stream is None or key is None or not self._live:
            return ()
        state = stream.sync_state()
        if state is None:
            return ()
        # The open connection's book starts at its last clear (a connect or a snapshot).
        clears = np.flatnonzero(ops.op == OP_CLEAR)
        start = int(clears[-1]) if len(clears) else 0
        engine = BookEngine(depth=0)
        engine.feed(ops.slice(start, len(ops)), final=True)
        if not engine.valid:
            return ()
        (bp, bs), (ap, az) = engine.levels(0), engine.levels(1)
        scales = price_scale, size_scale
        mine = msgs["ts"][msgs["conn"] == self._sink.cur_conn]
        last = int(mine[-1]) if len(mine) else self._last_row_ts
        cp = Checkpoint(key[0], key[1], self._protocol, state, *scales, bp, bs, ap, az, last)
        return (cp,)

    def _book_pairs(self, levels: BookPairs | Levels | None) -> BookPairs | None:
        """REST levels as exact pairs, or None if a value is bad (the reply is then no book).

        Those read on the general path are strings; the scanner's are pairs already.
        """
        if levels is None:
            return None
        if not isinstance(levels, BookPairs):
            try:
                pairs = [self._sink.pair(t) for side in levels for level in side for t in level]
            except BadValue:
                return None
            flat = np.asarray(pairs, np.int64).reshape(-1, 4).T
            levels = BookPairs(flat[0], flat[1], flat[2], flat[3], len(levels[0]))
        in_range = (
            levels.px.min(initial=1) > 0
            and levels.sz.min(initial=0) >= 0
            and levels.px_dec.max(initial=0) <= MAX_DECIMALS
            and levels.sz_dec.max(initial=0) <= MAX_DECIMALS
        )
        return levels if in_range else None

    def finish(self) -> Decoded:
        """Everything decoded, at the partition's scales (:mod:`replay.ticks`)."""
        sink = self._sink
        msgs = self._msgs.take()
        sink.counts["messages"] = len(msgs["ts"])
        if self._protocols & CONFLATED:
            self._rest.clear()
        ops = sink.ops.take()
        tr = sink.trades.take()
        books = [levels for *_, levels in self._rest]
        rest_px_m, rest_px_d, rest_sz_m, rest_sz_d = (
            np.concatenate([b[k] for b in books]) if books else np.zeros(0, np.int64)
            for k in range(4)
        )
        # One scale per quantity for the whole partition: operations, trades and REST levels.
        price_scale = max(int(d.max(initial=0)) for d in (ops["px_dec"], tr["px_dec"], rest_px_d))
        size_scale = max(int(d.max(initial=0)) for d in (ops["sz_dec"], tr["sz_dec"], rest_sz_d))
        # Prices first, then sizes, each in the order operations, trades, REST levels,
        # so the first value that does not fit is always the one reported.
        for cols in (ops, tr):
            cols["price"] = rescale(cols.pop("px"), cols.pop("px_dec"), price_scale)
        rest_px_u = rescale(rest_px_m, rest_px_d, price_scale)
        for cols in (ops, tr):
            cols["size"] = rescale(cols.pop("sz"), cols.pop("sz_dec"), size_scale)
        rest_sz_u = rescale(rest_sz_m, rest_sz_d, size_scale)
        if any(sz.min(initial=0) < 0 for sz in (ops["size"], tr["size"], rest_sz_u)):
            raise DatasetError("negative size in the data")
        book_ops = BookOps(
            ts=ops["ts"],
            grp=ops["grp"],
            op=ops["op"],
            side=ops["side"],
            price=ops["price"],
            size=ops["size"],
            exch=ops["exch"],
            snapshot=ops["snap"].view(np.bool_),
        )
        trades = Trades(
            ts=tr["ts"],
            grp=tr["grp"],
            exch=tr["exch"],
            price=tr["price"],
            size=tr["size"],
            side=tr["side"],
            tid=tr["tid"],
            historical=tr["hist"].view(np.bool_),
        )
        rest: list[RestBook] = []
        k = 0
        for (sent, rts, grp, _), book in zip(self._rest, books, strict=True):
            nb, na = book.n_bids, len(book.px) - book.n_bids
            rest.append(
                RestBook(
                    sent,
                    rts,
                    grp,
                    rest_px_u[k : k + nb],
                    rest_sz_u[k : k + nb],
                    rest_px_u[k + nb : k + nb + na],
                    rest_sz_u[k + nb : k + nb + na],
                )
            )
            k += nb + na
        return Decoded(
            ops=book_ops,
            trades=trades,
            rest=rest,
            markers=self._markers,
            breaks=sink.breaks,
            msg_ts=msgs["ts"],
            msg_conn=msgs["conn"],
            price_scale=price_scale,
            size_scale=size_scale,
            protocols=tuple(sorted(self._protocols)),
            rows=self._rows,
            first_ns=self._first_ns,
            last_ns=self._max_ns,
            counts=dict(sorted(sink.counts.items())),
            ends=self.ends(book_ops, msgs, price_scale, size_scale),
            carried=self._carried,
        )


def decode(
    table: pa.Table, symbol: str, carry: Sequence[Checkpoint] = (), start_ns: int | None = None
) -> Decoded:
    """Decode the rows of one partition (a contract table in contract order).

    A partition whose connections overlap in time goes to :mod:`replay.overlap`.
    *carry* and *start_ns* are those of :class:`PartitionDecoder`.
    """
    batches = table.to_batches()
    conns = connection_rows(batches)
    if conns.interleaved:
        from replay.overlap import decode_overlapping  # it builds on this module

        return decode_overlapping(table, symbol, carry, start_ns)
    payload_bytes = 0
    for batch in batches:
        if batch.num_rows:
            offsets = _payload_buffers(batch.column("payload"))[1]
            payload_bytes += int(offsets[-1] - offsets[0])
    decoder = PartitionDecoder(
        symbol, conns.last_ws, table.num_rows, payload_bytes, carry=carry, start_ns=start_ns
    )
    for batch in batches:
        decoder.feed(batch)
    return decoder.finish()
