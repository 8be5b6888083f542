"""What ``tickrec replay`` and ``tickrec gaps`` do: replay partitions, write files, print reports.

Output files. ``--out FILE.parquet`` or ``FILE.csv`` receives the snapshots of
every requested symbol in one table, with a leading ``symbol`` column, rows
sorted by symbol then time; one schema whatever the number of symbols, and
``pandas.read_parquet(...).groupby("symbol")`` splits it back. Parquet files
carry no pandas metadata (which names library versions) but do carry the
replay parameters under the ``tickrec.replay`` key. The bytes depend only on
the input files and the options.

Progress goes to stderr, one line per symbol, only when stderr is a terminal.
Nothing here needs pandas except CSV output, so a replay to Parquet runs
without importing it (see :mod:`replay.columns`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from replay.api import Day, open, parse_interval_ns
from replay.columns import repeat_text
from replay.days import DayFacts, Days, facts, open_range, range_dates, range_gaps, range_summary
from replay.gaps import KINDS, Gap
from replay.parallel import map_partitions
from tickrec import __version__, contract
from tickrec.errors import NotFoundError, UsageError
from tickrec.progress import Progress, terminal_progress
from tickrec.store import Root

__all__ = [
    "DayReplayed",
    "ReplayJob",
    "Replayed",
    "check_options",
    "format_gaps",
    "format_summary",
    "left_out",
    "open_days",
    "resolve_symbols",
    "run_jobs",
    "write_snapshots",
]

OUT_FORMATS = (".parquet", ".csv")


def resolve_symbols(
    root: Root, venue: str, date: str, symbol: str | None, end: str | None = None
) -> list[str]:
    """The symbols to replay: *symbol* (any case), or every symbol stored for *date*
    (or for any date from *date* to *end*)."""
    contract.check_date(date)
    if end is not None:
        contract.check_date(end)
        if end < date:
            raise UsageError(f"--to {end} is before --from {date}")
    if symbol is not None:
        return [contract.check_name("symbol", symbol.upper())]
    contract.check_name("venue", venue)
    last = date if end is None else end
    found = sorted(
        {p.symbol for p in contract.list_partitions(root, venue=venue) if date <= p.date <= last}
    )
    if not found:
        dates = sorted({p.date for p in contract.list_partitions(root, venue=venue)})
        when = f"on {date}" if end is None else f"from {date} to {end}"
        raise NotFoundError(
            f"no data for {venue} {when} under {root} "
            f"(dates for {venue}: {', '.join(dates) or 'none'})"
        )
    return found


def open_days(
    root: Root,
    venue: str,
    date: str,
    symbols: list[str],
    silence: str = "10s",
    progress: Callable[[str], None] | None = None,
    cache: bool = True,
    *,
    end: str | None = None,
    carry: bool = True,
    rows: Progress | None = None,
    skip_bad: bool = False,
) -> Iterable[Day | Days]:
    """Open each symbol's day (or range *date* to *end*) in turn, one in memory at a time.

    *rows*, if given, shows the rows decoded inside a single day (:func:`replay.api.open`).
    *skip_bad* leaves bad parts out as ``bad_file`` gaps (:mod:`replay.quarantine`).
    """
    options: dict[str, Any] = {"silence": silence, "cache": cache, "carry": carry}
    options["skip_bad"] = skip_bad
    for k, sym in enumerate(symbols, 1):
        if progress is not None:
            progress(f"replay {venue} {date} {sym} ({k}/{len(symbols)})")
        if end is None:
            yield open(date, sym, venue, root, progress=rows, **options)
        else:
            yield open_range(date, end, sym, venue, root, **options)


def left_out(root: Root, day: Day | Days) -> list[str]:
    """One line per bad part left out of *day* (or of each date of a range): path and why."""
    lines = []
    for d in day.days if isinstance(day, Days) else [day]:
        directory = contract.partition_dir(root, d.venue, d.date, d.symbol)
        lines += [f"left out {directory / b.name}: {b.reason}" for b in d.left_out]
    return lines


@dataclass(frozen=True)
class Replayed:
    """What ``tickrec replay`` keeps of one symbol's day."""

    symbol: str
    summary: dict[str, Any]
    gaps: list[Gap]
    snapshots: pa.Table | None
    left_out: list[str]
    """:func:`left_out` lines: the bad parts left out (``--skip-bad``)."""


@dataclass(frozen=True)
class DayReplayed:
    """What a :class:`ReplayJob` keeps of one (date, symbol) partition."""

    date: str
    symbol: str
    facts: DayFacts
    gaps: list[Gap]
    snapshots: pa.Table | None
    left_out: list[str]


@dataclass(frozen=True)
class ReplayJob:
    """Replay symbols of a day, or of a range of days, for ``tickrec replay``.

    The work is one task per (date, symbol) partition (:meth:`tasks`,
    :meth:`day`), each a pure function of the files, so the tasks can run in
    any process or on any machine (:func:`replay.parallel.map_partitions`);
    :meth:`combine` puts a symbol's days together as :func:`open_range`
    would. Picklable, for worker processes.
    """

    root: Root
    venue: str
    date: str
    silence: str = "10s"
    cache: bool = True
    depth: int = 10
    every: str = "1s"
    snapshots: bool = False
    """Whether to compute the snapshot table (only when it will be written)."""
    end: str | None = None
    """The last date of a range replayed as one book (:func:`replay.days.open_range`)."""
    carry: bool = True
    progress: bool = False
    """Whether to show the rows decoded inside the day on a terminal's stderr."""
    skip_bad: bool = False
    """Whether to leave bad parts out as ``bad_file`` gaps instead of failing."""

    def _dates(self) -> list[str]:
        return [self.date] if self.end is None else range_dates(self.date, self.end)

    def tasks(self, symbols: Sequence[str]) -> list[tuple[str, str, bool]]:
        """``(date, symbol, later)`` for each partition to replay, by symbol then date;
        *later* is true for every date of a symbol's range after its first one."""
        if self.end is None:
            return [(self.date, sym, False) for sym in symbols]
        dates = self._dates()
        have = {
            (p.date, p.symbol)
            for p in contract.list_partitions(self.root, venue=self.venue)
            if dates[0] <= p.date <= dates[-1]
        }
        found = []
        for sym in symbols:
            mine = [d for d in dates if (d, sym) in have]
            if not mine:
                raise NotFoundError(
                    f"no data for {self.venue} {sym} from {dates[0]} to {dates[-1]} "
                    f"under {self.root}"
                )
            found += [(d, sym, k > 0) for k, d in enumerate(mine)]
        return found

    def day(self, task: tuple[str, str, bool]) -> DayReplayed:
        """Replay one partition (a task of :meth:`tasks`)."""
        date, symbol, later = task
        day = open(
            date,
            symbol,
            self.venue,
            self.root,
            silence=self.silence,
            cache=self.cache,
            carry=self.carry,
            progress=terminal_progress() if self.progress else None,
            skip_bad=self.skip_bad,
        )
        table = None
        if self.snapshots:
            start = day.midnight_ns if later else None
            table = day.snapshot_table(depth=self.depth, every=self.every, start=start)
        return DayReplayed(
            date, symbol, facts(day), day.gap_list(), table, left_out(self.root, day)
        )

    def combine(self, symbol: str, days: Sequence[DayReplayed]) -> Replayed:
        """One symbol's :class:`Replayed` from its days' results, in date order."""
        if self.end is None:
            (one,) = days
            return Replayed(symbol, one.facts.summary, one.gaps, one.snapshots, one.left_out)
        dates = self._dates()
        missing = sorted(set(dates) - {d.date for d in days})
        tables = [d.snapshots for d in days if d.snapshots is not None]
        return Replayed(
            symbol,
            range_summary(symbol, dates, missing, [d.facts for d in days]),
            range_gaps([d.gaps for d in days], missing),
            pa.concat_tables(tables) if self.snapshots else None,
            [line for d in days for line in d.left_out],
        )

    def __call__(self, symbol: str) -> Replayed:
        return self.combine(symbol, [self.day(t) for t in self.tasks([symbol])])


def run_jobs(
    job: ReplayJob,
    symbols: Sequence[str],
    workers: int = 1,
    cluster: str | None = None,
    done: Callable[[int, int, str], None] | None = None,
) -> Iterator[Replayed]:
    """Each symbol's :class:`Replayed`, in the order of *symbols*, from one task per
    partition run in this process, in *workers* processes, or on a Dask *cluster*
    (:func:`replay.parallel.map_partitions`). *done*, if given, is called with the
    tasks done, their number and the symbol, after each task."""
    tasks = job.tasks(symbols)
    results = map_partitions(job.day, tasks, workers, cluster)
    pending: list[DayReplayed] = []
    for k, result in enumerate(results, 1):
        if done is not None:
            done(k, len(tasks), result.symbol)
        if pending and pending[-1].symbol != result.symbol:
            yield job.combine(pending[-1].symbol, pending)
            pending = []
        pending.append(result)
    if pending:
        yield job.combine(pending[-1].symbol, pending)


def check_options(out: str | os.PathLike[str] | None, every: str, silence: str) -> None:
    """Reject bad ``--out``, ``--every`` or ``--silence`` before any work is done."""
    if out is not None:
        _check_out(out)
    parse_interval_ns(every, "--every")
    parse_interval_ns(silence, "--silence")


def _check_out(out: str | os.PathLike[str]) -> Path:
    """*out* if a snapshot file can be written there: a known suffix, in a writable place."""
    path = Path(out)
    if path.suffix.lower() not in OUT_FORMATS:
        raise UsageError(f"--out: {path.name!r} must end in .parquet or .csv")
    if path.is_dir():
        raise UsageError(f"--out: {path} is a directory")
    # The nearest existing ancestor must be a writable directory (missing ones are made).
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out: cannot write in {parent}")
    return path


def write_snapshots(
    tables: dict[str, pa.Table], out: str | os.PathLike[str], params: dict[str, Any]
) -> Path:
    """Write per-symbol snapshot tables as one file with a ``symbol`` column; return its path."""
    path = _check_out(out)
    parts = [
        t.add_column(0, "symbol", repeat_text(sym, t.num_rows)) for sym, t in sorted(tables.items())
    ]
    table = pa.concat_tables(parts) if parts else pa.table({"symbol": repeat_text("", 0)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".csv":
        # Times as ISO text to the nanosecond (Arrow's %S keeps the fraction; pandas' %f
        # would cut it to microseconds).
        k = table.schema.get_field_index("ts")
        iso = pc.strftime(table.column(k), format="%Y-%m-%dT%H:%M:%SZ", locale="C")
        table.set_column(k, "ts", iso).to_pandas().to_csv(tmp, index=False, lineterminator="\n")
    else:
        meta = {"tickrec.replay": json.dumps({"tickrec": __version__, **params}, sort_keys=True)}
        # Dictionaries only for the symbol: built for prices and sizes they are
        # discarded (too many values) after costing a quarter of the write.
        pq.write_table(
            table.replace_schema_metadata(meta),
            tmp,
            compression="zstd",
            use_dictionary=["symbol"],
        )
    os.replace(tmp, path)
    return path


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def format_summary(rows: list[dict[str, Any]]) -> str:
    """The per-symbol summary table printed by ``tickrec replay``."""
    head = ["symbol", "protocol", "messages", "changes", "trades", "cover(day)", "cover(span)"]
    kinds = list(rows[0]["gaps"]) if rows else list(KINDS)
    head += kinds
    table = [head]
    for r in rows:
        table.append(
            [
                r["symbol"],
                r["protocols"] or "-",
                str(r["messages"]),
                str(r["book_changes"]),
                str(r["trades"]),
                _pct(r["coverage"]),
                _pct(r["span_coverage"]),
                *(str(r["gaps"][k]) for k in kinds),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    for r in rows:
        bad, unknown = r.get("bad_messages", 0), r.get("unknown_messages", 0)
        notes = [f"{bad} bad message{'s' if bad != 1 else ''} (each a gap)"] if bad else []
        if unknown:
            notes.append(f"{unknown} message{'s' if unknown != 1 else ''} of a kind not read")
        if notes:
            lines.append(f"{r['symbol']}: {', '.join(notes)}")
    return "\n".join(lines)


def _iso(ns: int) -> str:
    t = dt.datetime.fromtimestamp(ns // 10**9, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"


def format_gaps(symbol: str, gaps: list[Gap]) -> str:
    """The gap report of one symbol, one gap per line."""
    if not gaps:
        return f"{symbol}: no gaps"
    lines = [f"{symbol}: {len(gaps)} gap{'s' if len(gaps) != 1 else ''}"]
    for g in gaps:
        lines.append(
            f"  {g.kind:<17} {_iso(g.start)} .. {_iso(g.end)}  {g.duration / 1e9:>12.3f} s  "
            f"{g.detail}"
        )
    return "\n".join(lines)
