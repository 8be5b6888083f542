"""The replay facade: one (venue, date, symbol) partition as a :class:`Day`.

Typical use, in a notebook::

    import replay
    day = replay.open("2026-11-23", "BTCUSD")
    snaps = day.book_snapshots(depth=10, every="1s")
    day.gaps(), day.coverage

Everything is a pure function of the partition's files (docs/architecture.md
section 2.3): rows are read through :func:`tickrec.contract.read_partition`
in contract order, decoded once (:mod:`replay.decode`), and the book is
rebuilt by the compiled kernel (:mod:`replay.book`) in chunks of
``chunk_size`` operations; the chunking never changes an output.

DataFrame outputs use float64 for prices and sizes (exact values divided by
``10**scale``, the nearest double to the decimal), unless ``exact=True``
asks for the integer ticks and units themselves; the scales are in
``df.attrs`` and on the :class:`Day`. Times are ``datetime64[ns, UTC]``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from replay.book import BookEngine, Rows
from replay.cache import decode_partition
from replay.columns import from_numpy
from replay.decode import decode
from replay.events import BadFile, Decoded
from replay.gaps import KINDS, Gap, RestCheck, analyze, crossed, rest_check, valid_mask, valid_ns
from replay.view import BookView, Event
from tickrec import contract
from tickrec.durations import parse_duration_ns
from tickrec.errors import UsageError
from tickrec.events import ASK, BID, NO_ID, NO_TS, OP_SET
from tickrec.progress import Progress
from tickrec.store import RootLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Day", "date_text", "gap_frame", "open", "parse_interval_ns", "to_ns"]

I64 = npt.NDArray[np.int64]
NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH = dt.date(1970, 1, 1)


def parse_interval_ns(every: str | float | dt.timedelta | pd.Timedelta, name: str = "every") -> int:
    """Exact ns of an interval: ``"1s"``, ``"100ms"``, ``"250us"``, ``"1m"``, seconds, timedelta."""
    if isinstance(every, dt.timedelta):  # a pandas.Timedelta is one too, to the ns
        import pandas as pd

        return int(pd.Timedelta(every).value)
    return parse_duration_ns(every, name)


def to_ns(ts: str | int | dt.datetime | pd.Timestamp | np.datetime64) -> int:
    """Nanoseconds since the epoch of a time; naive times are UTC, ints are already ns."""
    if isinstance(ts, (int, np.integer)):
        return int(ts)
    import pandas as pd

    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value)


def _times(ns: I64) -> pd.Series:
    import pandas as pd

    return pd.Series(pd.to_datetime(ns, unit="ns", utc=True))


def _exchange_times(table: Any) -> tuple[I64, I64]:
    """Raw receive and exchange times (ns) of the received messages that carry an exchange time."""
    exch_col = table.column("exch_ts")
    keep = (table.column("source").cast(pa.string()).to_numpy(zero_copy_only=False) == "ws") & (
        exch_col.is_valid().to_numpy(zero_copy_only=False)
    )
    recv = table.column("recv_ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
    # Nulls filled before leaving Arrow: a nullable int64 column would become float64.
    exch = exch_col.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    return recv[keep].astype(np.int64), exch[keep].astype(np.int64)


def _floats(values: I64, scale: int, present: npt.NDArray[np.bool_] | None = None) -> Any:
    out = values / float(10**scale)
    if present is not None:
        out[~present] = np.nan
    return out


def _read_only(dec: Decoded) -> None:
    """Make the decoded arrays read-only, as they are when mapped from the cache.

    Nothing writes into them; one flag for both sources also means one
    compiled variant of the book kernel instead of two.
    """
    for table in (dec.ops, dec.trades):
        for name in table.__dataclass_fields__:
            getattr(table, name).setflags(write=False)
    dec.msg_ts.setflags(write=False)
    dec.msg_conn.setflags(write=False)


def gap_frame(gaps: list[Gap], kinds: tuple[str, ...]) -> pd.DataFrame:
    """*gaps* as a DataFrame: ``kind`` (a categorical of *kinds*), ``start``, ``end``,
    ``duration``, ``detail``."""
    import pandas as pd

    start = np.array([x.start for x in gaps], np.int64)
    end = np.array([x.end for x in gaps], np.int64)
    return pd.DataFrame(
        {
            "kind": pd.Categorical([x.kind for x in gaps], categories=list(kinds)),
            "start": _times(start),
            "end": _times(end),
            "duration": pd.to_timedelta(end - start, unit="ns"),
            "detail": pd.Series([x.detail for x in gaps], dtype=object),
        }
    )


class Day:
    """One partition replayed: the book, trades, quotes and gaps of a (venue, date, symbol).

    Build it with :func:`open`, or from a contract table with
    ``Day(table, date=..., symbol=...)`` (tests and tools). *table* may also
    be an already decoded partition (:class:`~replay.events.Decoded`); then
    *raw* reads the partition's contract rows when :meth:`latency` needs them.
    """

    def __init__(
        self,
        table: Any,
        *,
        date: str,
        symbol: str,
        venue: str = "gemini",
        silence: str | float | dt.timedelta = "10s",
        chunk_size: int = 1 << 20,
        raw: Callable[[list[str]], Any] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise UsageError("chunk_size must be >= 1")
        self.date = date
        self.symbol = symbol
        self.venue = venue
        self.silence_ns = parse_interval_ns(silence, "silence")
        self.chunk_size = chunk_size
        if isinstance(table, Decoded):
            if raw is None:
                raise UsageError("raw: a decoded partition needs a reader of its rows")
            self.decoded = table
            self._raw = raw
        else:
            self.decoded = decode(table, symbol)
            self._raw = table.select
        _read_only(self.decoded)
        self._exch: tuple[I64, I64] | None = None
        self.midnight_ns = (dt.date.fromisoformat(date) - _EPOCH).days * NS_PER_DAY
        self._status: Rows | None = None
        self._timeline: Rows | None = None
        self._rest: tuple[RestCheck, tuple[I64, I64]] | None = None
        self._gaps: list[Gap] | None = None
        self._valid_ns: int | None = None

    # --- basic facts --------------------------------------------------------------

    @property
    def _exch_times(self) -> tuple[I64, I64]:
        """Read on first use: only :meth:`latency` needs them, and they take memory."""
        if self._exch is None:
            self._exch = _exchange_times(self._raw(["recv_ts", "exch_ts", "source"]))
        return self._exch

    @property
    def price_scale(self) -> int:
        """Prices are integers of ``10**-price_scale`` inside."""
        return self.decoded.price_scale

    @property
    def size_scale(self) -> int:
        """Sizes are integers of ``10**-size_scale`` inside."""
        return self.decoded.size_scale

    @property
    def protocols(self) -> tuple[str, ...]:
        """Websocket protocols seen in the partition (e.g. ``("gemini.v2",)``)."""
        return self.decoded.protocols

    @property
    def span(self) -> tuple[int, int]:
        """First and last receive time (ns) of the partition's rows.

        A day whose book was carried over midnight (:attr:`carried`) starts at
        its midnight instead: the carried book holds from there on.
        """
        return self.decoded.first_ns, self.decoded.last_ns

    @property
    def left_out(self) -> tuple[BadFile, ...]:
        """The bad parts left out of this replay (``skip_bad``), each a ``bad_file`` gap."""
        return self.decoded.bad

    @property
    def carried(self) -> tuple[tuple[str, int], ...]:
        """Connections ``(run_id, conn_id)`` whose book was carried in from the previous date."""
        return self.decoded.carried

    # --- the kernel ---------------------------------------------------------------

    def _rows(self, depth: int, grid: I64 | None) -> Rows:
        """Kernel rows (:class:`~replay.book.BookEngine`); the first pass also records the
        book's status and compares the REST books, so every operation is applied once for all."""
        if self._status is not None:
            return BookEngine(depth=depth, grid=grid).feed_all(self.decoded.ops, self.chunk_size)
        check = rest_check(self.decoded)
        engine = BookEngine(depth=depth, grid=grid, status=True, windows=check.windows)
        rows = engine.feed_all(self.decoded.ops, self.chunk_size)
        self._status = engine.status
        self._rest = check, engine.rest_diff
        return rows

    @property
    def _book_status(self) -> Rows:
        """Where the book's status changes (:attr:`BookEngine.status`)."""
        if self._status is None:
            self._rows(0, None)
        assert self._status is not None
        return self._status

    @property
    def timeline(self) -> Rows:
        """Top of book after every book-changing message (kernel output, ticks)."""
        if self._timeline is None:
            self._timeline = self._rows(1, None)
        return self._timeline

    def gap_list(self) -> list[Gap]:
        """The gaps as :class:`~replay.gaps.Gap` tuples (ns), sorted by start."""
        if self._gaps is None:
            status = self._book_status
            assert self._rest is not None
            self._gaps = analyze(self.decoded, status, *self._rest, self.silence_ns)
        return self._gaps

    def _valid(self, rows: Rows) -> npt.NDArray[np.bool_]:
        return valid_mask(rows.ts, rows.valid, crossed(rows), self.gap_list())

    # --- outputs ------------------------------------------------------------------

    def grid(
        self, every: str | float | dt.timedelta = "1s", start: Any = None, end: Any = None
    ) -> I64:
        """Grid times (ns): multiples of *every* since UTC midnight in ``[start, end]``.

        By default from the first to the last receive time of the partition.
        """
        step = parse_interval_ns(every)
        if step == 0:
            raise UsageError("every: a grid needs a positive interval")
        lo = to_ns(start) if start is not None else self.decoded.first_ns
        hi = to_ns(end) if end is not None else self.decoded.last_ns
        k0 = -((self.midnight_ns - lo) // step)  # ceil((lo - midnight) / step)
        k1 = (hi - self.midnight_ns) // step
        return self.midnight_ns + np.arange(k0, k1 + 1, dtype=np.int64) * step

    def book_snapshots(
        self,
        depth: int = 10,
        every: str | float | dt.timedelta = "1s",
        start: Any = None,
        end: Any = None,
        exact: bool = False,
    ) -> pd.DataFrame:
        """Top-*depth* book on a time grid, one row per grid time.

        The row at grid time ``T`` (a multiple of *every* since UTC midnight)
        shows the book after every message with ``recv_ts <= T``. ``every=0``
        gives one row per message that changed the book instead, at that
        message's ``recv_ts``. Columns: ``ts``, ``bid_px_0..``, ``bid_sz_0..``,
        ``ask_px_0..``, ``ask_sz_0..``, ``valid``. Prices and sizes are
        float64, NaN where the book has fewer levels; with ``exact=True`` they
        are int64 ticks/units with 0 for absent levels.
        """
        return self._frame(self._snapshot_rows(depth, every, start, end), depth, exact)

    def snapshot_table(
        self,
        depth: int = 10,
        every: str | float | dt.timedelta = "1s",
        start: Any = None,
        end: Any = None,
        exact: bool = False,
    ) -> pa.Table:
        """:meth:`book_snapshots` as an Arrow table, built without pandas.

        The same columns and values, ``ts`` as ``timestamp[ns, UTC]``; absent
        levels are nulls rather than NaN (what pandas' NaN becomes in Arrow).
        """
        rows = self._snapshot_rows(depth, every, start, end)
        cols = {"ts": from_numpy(rows.ts, pa.timestamp("ns", "UTC"))}
        for name, values in self._columns(rows, depth, exact).items():
            if values.dtype == np.bool_:
                cols[name] = from_numpy(values, pa.bool_())
            elif exact:
                cols[name] = from_numpy(values, pa.int64())
            else:
                cols[name] = from_numpy(values, pa.float64(), nulls=np.isnan(values))
        return pa.table(cols)

    def _snapshot_rows(self, depth: int, every: Any, start: Any, end: Any) -> Rows:
        if depth < 1:
            raise UsageError("depth must be >= 1")
        step = parse_interval_ns(every)
        grid = None if step == 0 else self.grid(every, start, end)
        return self._rows(depth, grid)

    def _columns(self, rows: Rows, depth: int, exact: bool) -> dict[str, npt.NDArray[Any]]:
        """Snapshot columns after ``ts``: price and size per side and level, then ``valid``."""
        cols: dict[str, npt.NDArray[Any]] = {}
        present = rows.sz > 0
        for name, s in (("bid", BID), ("ask", ASK)):
            for kind, values, scale in (
                ("px", rows.px, self.price_scale),
                ("sz", rows.sz, self.size_scale),
            ):
                block = values[:, s, :]
                data = block if exact else _floats(block, scale, present[:, s, :])
                for i in range(depth):
                    cols[f"{name}_{kind}_{i}"] = data[:, i]
        cols["valid"] = self._valid(rows)
        return cols

    def _frame(self, rows: Rows, depth: int, exact: bool) -> pd.DataFrame:
        import pandas as pd

        df = pd.DataFrame({"ts": _times(rows.ts), **self._columns(rows, depth, exact)})
        df.attrs.update(price_scale=self.price_scale, size_scale=self.size_scale)
        return df

    def book_at(self, ts: Any, depth: int | None = None) -> BookView:
        """The book after every message with ``recv_ts <= ts`` (all levels unless *depth*).

        *ts* must fall on the partition's UTC date.
        """
        t = to_ns(ts)
        if not self.midnight_ns <= t < self.midnight_ns + NS_PER_DAY:
            raise UsageError(
                f"book_at: {ts} is not on {self.date} (UTC); open that date's partition instead"
            )
        ops = self.decoded.ops
        stop = int(np.searchsorted(ops.ts, t, "right"))
        engine = BookEngine(depth=0)
        engine.feed(ops.slice(0, stop), final=True)
        return self._view(engine, t, depth)

    def _view(self, engine: BookEngine, t: int, depth: int | None) -> BookView:
        if depth is None:
            (bp, bs), (ap, az) = engine.levels(BID), engine.levels(ASK)
        else:
            (bp, bs), (ap, az) = engine.top(BID, depth), engine.top(ASK, depth)
        own = engine.valid
        is_crossed = own and len(bp) > 0 and len(ap) > 0 and bp[0] >= ap[0]
        ok = valid_mask(
            np.array([t], np.int64), np.array([own]), np.array([is_crossed]), self.gap_list()
        )
        return BookView(t, bool(ok[0]), bp, bs, ap, az, self.price_scale, self.size_scale)

    def trades(self, historical: bool = False, exact: bool = False) -> pd.DataFrame:
        """Trades: ``ts``, ``exch_ts``, ``price``, ``size``, ``side`` (taker), ``tid``.

        Only trades received live by default. ``historical=True`` adds the
        recent-trades list of v2 snapshots (trades from before a
        subscription), minus those also received live or already listed, so
        nothing is counted twice; column ``historical`` marks them.
        """
        import pandas as pd

        tr = self.decoded.trades
        keep = ~tr.historical
        if historical:
            seen = set(tr.tid[keep & (tr.tid != NO_ID)].tolist())
            for k in np.nonzero(tr.historical)[0]:
                tid = int(tr.tid[k])
                if tid == NO_ID or tid not in seen:
                    keep[k] = True
                    seen.add(tid)
        idx = np.nonzero(keep)[0]
        cols: dict[str, Any] = {
            "ts": _times(tr.ts[idx]),
            "exch_ts": _times(tr.exch[idx]).where(tr.exch[idx] != NO_TS),
            "price": tr.price[idx] if exact else _floats(tr.price[idx], self.price_scale),
            "size": tr.size[idx] if exact else _floats(tr.size[idx], self.size_scale),
            "side": pd.Categorical.from_codes(
                (tr.side[idx] + 1).astype(np.int64), pd.Index(["sell", "unknown", "buy"])
            ),
            "tid": pd.array(np.where(tr.tid[idx] == NO_ID, 0, tr.tid[idx]), dtype="Int64"),
        }
        cols["tid"][tr.tid[idx] == NO_ID] = pd.NA
        if historical:
            cols["historical"] = tr.historical[idx]
        df = pd.DataFrame(cols)
        df.attrs.update(price_scale=self.price_scale, size_scale=self.size_scale)
        return df

    def quotes(self, exact: bool = False) -> pd.DataFrame:
        """Best bid/offer changes: ``ts``, ``bid_px``/``bid_sz``, ``ask_px``/``ask_sz``, ``valid``.

        One row whenever any of the five changes, at the receive time of the
        message that changed it.
        """
        tl = self.timeline
        valid = self._valid(tl)
        key = np.column_stack(
            [
                tl.px[:, BID, 0],
                tl.sz[:, BID, 0],
                tl.px[:, ASK, 0],
                tl.sz[:, ASK, 0],
                valid.astype(np.int64),
            ]
        )
        change = np.ones(len(tl), bool)
        if len(tl) > 1:
            change[1:] = (key[1:] != key[:-1]).any(axis=1)
        df = self._frame(
            Rows(tl.ts[change], tl.valid[change], tl.px[change], tl.sz[change]), 1, exact
        )
        df["valid"] = valid[change]
        return df.rename(
            columns={
                "bid_px_0": "bid_px",
                "bid_sz_0": "bid_sz",
                "ask_px_0": "ask_px",
                "ask_sz_0": "ask_sz",
            }
        )

    def book_changes(self, exact: bool = False) -> pd.DataFrame:
        """Normalized level changes, one row per level set.

        Columns: ``recv_ts``, ``exch_ts``, ``side``, ``price``, ``size``, ``is_snapshot``.

        ``size`` is the absolute new size of the level; 0 removes it.
        Connection resets are not rows here; see :meth:`events` and
        :meth:`gaps`.
        """
        import pandas as pd

        ops = self.decoded.ops
        idx = np.nonzero(ops.op == OP_SET)[0]
        df = pd.DataFrame(
            {
                "recv_ts": _times(ops.ts[idx]),
                "exch_ts": _times(ops.exch[idx]).where(ops.exch[idx] != NO_TS),
                "side": pd.Categorical.from_codes(
                    ops.side[idx].astype(np.int64), pd.Index(["bid", "ask"])
                ),
                "price": ops.price[idx] if exact else _floats(ops.price[idx], self.price_scale),
                "size": ops.size[idx] if exact else _floats(ops.size[idx], self.size_scale),
                "is_snapshot": ops.snapshot[idx],
            }
        )
        df.attrs.update(price_scale=self.price_scale, size_scale=self.size_scale)
        return df

    def latency(self) -> pd.DataFrame:
        """Exchange-to-local latency of each received message that carries an exchange time.

        Columns: ``recv_ts``, ``exch_ts`` and ``latency`` (``recv_ts - exch_ts``,
        a timedelta exact to the ns), one row per websocket message whose
        ``exch_ts`` the recorder stored (Gemini v1 updates; v2 trades and
        heartbeats), in contract order. ``recv_ts`` is the raw local clock
        reading. Gemini stamps in ms and the two clocks are not synchronized,
        so values near zero may be negative.
        """
        import pandas as pd

        recv, exch = self._exch_times
        return pd.DataFrame(
            {
                "recv_ts": _times(recv),
                "exch_ts": _times(exch),
                "latency": pd.to_timedelta(recv - exch, unit="ns"),
            }
        )

    def gaps(self) -> pd.DataFrame:
        """Gaps: ``kind``, ``start``, ``end``, ``duration``, ``detail`` (see :mod:`replay.gaps`)."""
        return gap_frame(self.gap_list(), KINDS)

    @property
    def valid_ns(self) -> int:
        """Nanoseconds during which the book was valid: :attr:`span` minus the union of the gaps."""
        if self._valid_ns is None:
            self._valid_ns = valid_ns(self.gap_list(), *self.span)
        return self._valid_ns

    @property
    def coverage(self) -> float:
        """Fraction of the UTC day during which the book was valid.

        See docs/architecture.md section 3.
        """
        return self.valid_ns / NS_PER_DAY

    @property
    def span_coverage(self) -> float:
        """Fraction of the recorded span (first to last row) during which the book was valid."""
        first, last = self.span
        return self.valid_ns / (last - first) if last > first else 0.0

    def summary(self) -> dict[str, Any]:
        """Counts for reports: messages, book changes, trades, coverage, gaps by kind."""
        counts = {k: 0 for k in KINDS}
        for g in self.gap_list():
            counts[g.kind] += 1
        ops = self.decoded.ops
        return {
            "symbol": self.symbol,
            "protocols": ",".join(self.protocols),
            "messages": self.decoded.counts.get("messages", 0),
            # read but not decoded: bad messages (each a gap), and messages of a kind the
            # stream does not know (counted only: they are none of the kinds a book uses)
            "bad_messages": self.decoded.counts.get("undecodable", 0),
            "unknown_messages": self.decoded.counts.get("other", 0),
            "book_changes": int(np.count_nonzero(ops.op == OP_SET)),
            "trades": int(np.count_nonzero(~self.decoded.trades.historical)),
            "coverage": self.coverage,
            "span_coverage": self.span_coverage,
            "gaps": counts,
        }

    # --- backtests ----------------------------------------------------------------

    def events(self, depth: int | None = 10) -> Iterator[tuple[Event, BookView]]:
        """Every step in replay order, with the book as it was right after it.

        Per raw row: its markers first, then one ``"book"`` event if the row
        changed the book, then its trades. The :class:`BookView` shows the top
        *depth* levels (all if None) after the whole message.
        """
        dec = self.decoded
        ops, tr = dec.ops, dec.trades
        engine = BookEngine(depth=0)
        markers = sorted(dec.markers, key=lambda m: m.grp)
        rows = np.unique(
            np.concatenate([ops.grp, tr.grp, [m.grp for m in markers]]).astype(np.int64)
        )
        op_bounds = np.searchsorted(ops.grp, rows, "left"), np.searchsorted(ops.grp, rows, "right")
        tr_bounds = np.searchsorted(tr.grp, rows, "left"), np.searchsorted(tr.grp, rows, "right")
        mk = 0
        for k, row in enumerate(rows.tolist()):
            a, z = int(op_bounds[0][k]), int(op_bounds[1][k])
            if a < z:
                engine.feed(ops.slice(a, z))
            t = int(ops.ts[a]) if a < z else None
            view: BookView | None = None
            while mk < len(markers) and markers[mk].grp == row:
                m = markers[mk]
                mk += 1
                view = view or self._view(engine, m.ts if t is None else t, depth)
                yield Event(m.ts, m.kind, detail=m.detail), view
            if a < z and t is not None:
                view = view or self._view(engine, t, depth)
                yield Event(t, "book"), view
            for j in range(int(tr_bounds[0][k]), int(tr_bounds[1][k])):
                if tr.historical[j]:
                    continue
                tt = int(tr.ts[j])
                view = view or self._view(engine, tt, depth)
                yield (
                    Event(
                        tt,
                        "trade",
                        float(tr.price[j]) / 10**self.price_scale,
                        float(tr.size[j]) / 10**self.size_scale,
                        int(tr.side[j]),
                    ),
                    view,
                )

    def replay(self, callback: Callable[[Event, BookView], object], depth: int | None = 10) -> int:
        """Call ``callback(event, book)`` for every step of :meth:`events`; return the count."""
        n = 0
        for event, view in self.events(depth):
            callback(event, view)
            n += 1
        return n


def date_text(date: str | dt.date) -> str:
    """The ``YYYY-MM-DD`` of a date given as text, :class:`datetime.date` or a datetime.

    A datetime (or :class:`pandas.Timestamp`) with a time zone gives its UTC
    date; a naive one is taken as UTC.
    """
    if isinstance(date, dt.datetime):
        if date.tzinfo is not None:
            date = date.astimezone(dt.UTC)
        return date.date().isoformat()
    if isinstance(date, dt.date):
        return date.isoformat()
    return contract.check_date(str(date))


def open(
    date: str | dt.date,
    symbol: str,
    venue: str = "gemini",
    data: RootLike | None = None,
    *,
    silence: str | float | dt.timedelta = "10s",
    chunk_size: int = 1 << 20,
    cache: bool = True,
    carry: bool = True,
    progress: Progress | None = None,
    skip_bad: bool = False,
) -> Day:
    """Replay one day of one symbol from the dataset under *data*.

    *data* defaults to ``$TICKREC_DATA``, else ``data``. The partition is
    decoded from the normalized cache when it is current, else from the raw
    files, streamed, and the cache is written (:mod:`replay.cache`);
    ``cache=False`` neither reads nor writes it. Outputs are the same either way.

    With *carry* (the default), a connection of this date that was open and
    in sync at the end of the previous date (that date replayed alone) goes
    on with its book and sequence state from midnight, so the minutes
    before this date's own snapshot stay valid; the carried book counts as a
    seen snapshot, and the day's span starts at midnight
    (docs/architecture.md section 2.5). ``carry=False`` replays the date
    strictly alone.

    *progress* (a :mod:`tickrec.progress` printer) shows the rows decoded
    so far while the day is decoded from raw files.

    *date* is ``"YYYY-MM-DD"`` or a :class:`datetime.date`; *symbol* may be
    in any case (``"btcusd"`` is ``BTCUSD``). Raises
    :class:`~tickrec.errors.NotFoundError` (listing what exists) when there
    is no such partition.

    A bad part (unreadable, or contradicting its footer, its date or the
    contract's order; :mod:`replay.quarantine`) raises
    :class:`~tickrec.errors.CorruptFileError` naming it; with *skip_bad* it
    is left out instead, and is a ``bad_file`` gap over its time
    (:attr:`Day.left_out`).
    """
    date = date_text(date)
    symbol = contract.check_name("symbol", symbol.upper())
    root = contract.dataset_root(data)
    decoded = decode_partition(
        root, venue, date, symbol, cache=cache, carry=carry, progress=progress, skip_bad=skip_bad
    )
    left_out = {b.name for b in decoded.bad}

    def raw(columns: list[str]) -> Any:
        parts = contract.scan_parts(root, contract.Partition(venue, date, symbol))[0]
        return contract.read_parts([p for p in parts if p.path.name not in left_out], columns)

    return Day(
        decoded,
        date=date,
        symbol=symbol,
        venue=venue,
        silence=silence,
        chunk_size=chunk_size,
        raw=raw,
    )
