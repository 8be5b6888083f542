"""Integrity checks of a dataset's raw parts, for ``tickrec verify``.

Each part is read whole, with its Parquet page checksums verified, and held
to the contract (docs/architecture.md section 2):

- the footer is readable and its venue, symbol, date and run agree with the
  part's path and name;
- the columns are the contract's schema;
- the row count, first and last ``seq`` and first and last ``recv_ts`` agree
  with the footer;
- ``seq`` strictly increases, every ``recv_ts`` falls on the partition's
  date, and every ``source`` is one the contract names;
- no two parts of one run hold overlapping ``seq`` ranges.

The same checks, on the footer alone (:func:`check_footer`, for ``tickrec
ls``) or on the :data:`KEY_COLUMNS` (:func:`check_part` with those columns,
for a replay, :mod:`replay.quarantine`), decide which parts are bad.

A temporary file left in a partition by a write whose process is gone
(:func:`tickrec.durable.is_orphan`) is reported too. Checks only read:
nothing is changed or moved.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tickrec.contract import (
    REPLACES,
    SCHEMA,
    SOURCES,
    PartFile,
    Partition,
    date_of_ns,
    list_partitions,
    parse_part_name,
    partition_dir,
    read_footer_meta,
    replaced,
)
from tickrec.durable import is_orphan
from tickrec.errors import DatasetError
from tickrec.store import Root, listing, source

__all__ = [
    "KEY_COLUMNS",
    "PartCheck",
    "Problem",
    "check_footer",
    "check_part",
    "content_problems",
    "footer_problems",
    "seq_overlaps",
    "statistics_problems",
    "verify_partition",
    "verify_root",
]

_NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    path: Root
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


#: The columns :func:`check_part` reads to hold a part's content to its footer and the
#: contract, when not told to read them all: a replay reads these before it decodes.
KEY_COLUMNS = ("recv_ts", "seq", "source")


@dataclass(frozen=True)
class PartCheck:
    """What :func:`check_part` or :func:`check_footer` found about one part."""

    footer: PartFile | None
    """The part's footer, if it could be read."""
    problems: list[str]
    span: tuple[int, int] | None
    """First and last ``recv_ts`` (ns) of its rows on the partition's date: from the rows
    if they were read, else from the footer's column statistics; None if neither says."""


def _first_last(table: pa.Table, name: str) -> tuple[int, int]:
    col = table.column(name)
    if col.type != pa.int64():
        col = col.cast(pa.int64())
    return int(col[0].as_py()), int(col[-1].as_py())


def _day(partition: Partition) -> tuple[int, int]:
    """The first and last ns of the partition's date."""
    first = (dt.date.fromisoformat(partition.date) - dt.date(1970, 1, 1)).days * _NS_PER_DAY
    return first, first + _NS_PER_DAY - 1


def _statistics(meta: pq.FileMetaData, name: str) -> tuple[int, int] | None:
    """Smallest and largest physical value of column *name* over the row groups, from
    the Parquet footer's statistics; None where any row group has none."""
    k = meta.schema.names.index(name) if name in meta.schema.names else -1
    if k < 0 or meta.num_row_groups == 0:
        return None
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(k).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min_raw)
        highs.append(stats.max_raw)
    if not all(isinstance(v, int) for v in (*lows, *highs)):
        return None
    return min(lows), max(highs)


def footer_problems(footer: PartFile, meta: pq.FileMetaData, partition: Partition) -> list[str]:
    """What the footer of a part says against its path, its name, the Parquet row count
    and the contract's schema."""
    problems = []
    if (footer.venue, footer.symbol, footer.date) != (
        partition.venue,
        partition.symbol,
        partition.date,
    ):
        problems.append(
            f"footer says {footer.venue}/{footer.date}/{footer.symbol}, "
            f"the path says {partition.venue}/{partition.date}/{partition.symbol}"
        )
    named = parse_part_name(footer.path.name)
    if named is not None and (named[0], named[1]) != (footer.first_recv_ns, footer.run_id):
        problems.append(
            f"name says run {named[1]} from {named[0]}, "
            f"the footer says run {footer.run_id} from {footer.first_recv_ns}"
        )
    if meta.num_rows != footer.rows:
        problems.append(f"{meta.num_rows} rows, the footer says {footer.rows}")
    try:
        schema = meta.schema.to_arrow_schema().remove_metadata()
    except (pa.ArrowException, ValueError):
        schema = None
    if schema is None or not schema.equals(SCHEMA):
        problems.append("columns do not match the contract's schema")
    return problems


def statistics_problems(footer: PartFile, meta: pq.FileMetaData, partition: Partition) -> list[str]:
    """What the Parquet column statistics of a part say against its footer and date
    (``seq`` range, ``recv_ts`` on the date): the footer-only view of the content checks."""
    problems = []
    seq = _statistics(meta, "seq")
    if seq is not None and seq != (footer.first_seq, footer.last_seq):
        problems.append(
            f"seq runs {seq[0]}..{seq[1]}, the footer says {footer.first_seq}..{footer.last_seq}"
        )
    recv = _statistics(meta, "recv_ts")
    if recv is not None and not _on_date(*recv, partition):
        problems.append(_off_date(*recv, partition))
    return problems


def _on_date(lo: int, hi: int, partition: Partition) -> bool:
    first, last = _day(partition)
    return first <= lo and hi <= last


def _off_date(lo: int, hi: int, partition: Partition) -> str:
    return f"rows fall on {date_of_ns(lo)}..{date_of_ns(hi)}, outside {partition.date}"


def content_problems(table: pa.Table, footer: PartFile, partition: Partition) -> list[str]:
    """What a part's rows (at least :data:`KEY_COLUMNS`) say against its footer and the
    contract: first and last ``seq`` and ``recv_ts``, ``seq`` order, the date, sources."""
    if table.num_rows == 0:
        return ["no rows"]
    problems = []
    seq = table.column("seq")
    if REPLACES in footer.extra:  # a merged part: rows of several runs, the footer's extremes
        return _merged_problems(table, footer, partition)
    if (footer.first_seq, footer.last_seq) != _first_last(table, "seq"):
        problems.append(
            f"seq runs {seq[0]}..{seq[-1]}, the footer says {footer.first_seq}..{footer.last_seq}"
        )
    if table.num_rows > 1 and not pc.all(pc.greater(seq[1:], seq[:-1])).as_py():
        problems.append("seq does not strictly increase")
    first, last = _first_last(table, "recv_ts")
    if (footer.first_recv_ns, footer.last_recv_ns) != (first, last):
        problems.append(
            f"recv_ts runs {first}..{last}, "
            f"the footer says {footer.first_recv_ns}..{footer.last_recv_ns}"
        )
    lo, hi = _min_max(table.column("recv_ts").cast(pa.int64()))
    if not _on_date(lo, hi, partition):
        problems.append(_off_date(lo, hi, partition))
    sources = set(table.column("source").combine_chunks().dictionary.to_pylist())
    if not sources <= set(SOURCES):
        problems.append(f"unknown source values {sorted(sources - set(SOURCES))}")
    return problems


def _merged_problems(table: pa.Table, footer: PartFile, partition: Partition) -> list[str]:
    """:func:`content_problems` of a merged part (:mod:`tickrec.compact`)."""
    problems = []
    seq = _min_max(table.column("seq"))
    if seq != (footer.first_seq, footer.last_seq):
        problems.append(
            f"seq runs {seq[0]}..{seq[1]}, the footer says {footer.first_seq}..{footer.last_seq}"
        )
    lo, hi = _min_max(table.column("recv_ts").cast(pa.int64()))
    if (lo, hi) != (footer.first_recv_ns, footer.last_recv_ns):
        problems.append(
            f"recv_ts runs {lo}..{hi}, "
            f"the footer says {footer.first_recv_ns}..{footer.last_recv_ns}"
        )
    if not _on_date(lo, hi, partition):
        problems.append(_off_date(lo, hi, partition))
    sources = set(table.column("source").combine_chunks().dictionary.to_pylist())
    if not sources <= set(SOURCES):
        problems.append(f"unknown source values {sorted(sources - set(SOURCES))}")
    return problems


def _span_on_date(recv: pa.ChunkedArray, partition: Partition) -> tuple[int, int] | None:
    first, last = _day(partition)
    ns = recv.cast(pa.int64())
    lo, hi = _min_max(ns)
    if first <= lo and hi <= last:
        return lo, hi
    on = pc.filter(ns, pc.and_(pc.greater_equal(ns, first), pc.less_equal(ns, last)))
    return _min_max(on) if len(on) else None


def _min_max(values: pa.ChunkedArray | pa.Array) -> tuple[int, int]:
    both = pc.min_max(values)
    return int(both["min"].as_py()), int(both["max"].as_py())


def _clipped_span(span: tuple[int, int] | None, partition: Partition) -> tuple[int, int] | None:
    if span is None:
        return None
    first, last = _day(partition)
    lo, hi = max(span[0], first), min(span[1], last)
    return (lo, hi) if lo <= hi else None


def check_footer(path: Root, partition: Partition) -> PartCheck:
    """The checks of the part at *path* that read its footer only (``tickrec ls``):
    :func:`footer_problems` and :func:`statistics_problems`."""
    try:
        footer, meta = read_footer_meta(path)
    except DatasetError as exc:
        return PartCheck(None, [str(exc).removeprefix(f"{path}: ")], None)
    problems = footer_problems(footer, meta, partition)
    problems += statistics_problems(footer, meta, partition)
    return PartCheck(footer, problems, _clipped_span(_statistics(meta, "recv_ts"), partition))


def check_part(path: Root, partition: Partition, columns: Sequence[str] | None = None) -> PartCheck:
    """The checks of the part at *path* of *partition*: its footer, then its rows.

    Every column is read (every page's checksum verified) unless *columns*
    names some; they must include :data:`KEY_COLUMNS`.
    """
    try:
        footer, meta = read_footer_meta(path)
    except DatasetError as exc:
        return PartCheck(None, [str(exc).removeprefix(f"{path}: ")], None)
    problems = footer_problems(footer, meta, partition)
    stats_span = _clipped_span(_statistics(meta, "recv_ts"), partition)
    if "columns do not match the contract's schema" in problems:
        return PartCheck(footer, problems, stats_span)
    try:
        cols = None if columns is None else list(columns)
        # ParquetFile, not read_table: no pyarrow.dataset (which imports pandas) needed.
        reader = pq.ParquetFile(source(path), page_checksum_verification=True)
        table = reader.read(columns=cols)
    except (OSError, pa.ArrowException) as exc:
        return PartCheck(footer, [*problems, f"data cannot be read ({exc})"], stats_span)
    problems += content_problems(table, footer, partition)
    span = _span_on_date(table.column("recv_ts"), partition) if table.num_rows else None
    return PartCheck(footer, problems, span)


def seq_overlaps(footers: Sequence[PartFile]) -> dict[Root, str]:
    """Parts whose ``seq`` range overlaps an earlier part of the same run (by first
    ``seq``, then name), each with the problem: two parts cannot both be in contract order."""
    found: dict[Root, str] = {}
    last: dict[str, PartFile] = {}
    for part in sorted(footers, key=lambda p: (p.run_id, p.first_seq, p.path.name)):
        prev = last.get(part.run_id)
        if prev is not None and part.first_seq <= prev.last_seq:
            found[part.path] = (
                f"seq {part.first_seq}..{part.last_seq} overlaps {prev.path.name} "
                f"({prev.first_seq}..{prev.last_seq}) of the same run"
            )
            continue
        last[part.run_id] = part
    return found


def verify_partition(root: str | os.PathLike[str], partition: Partition) -> Iterator[Problem]:
    """The problems of every file in one partition's directory, in name order."""
    directory = partition_dir(root, partition.venue, partition.date, partition.symbol)
    checks = {}
    for path in listing(directory):
        if path.is_file() and parse_part_name(path.name) is not None:
            checks[path] = check_part(path, partition)
    gone = replaced(c.footer for c in checks.values() if c.footer and not c.problems)
    live = [
        c.footer for p, c in checks.items() if c.footer and not c.problems and p.name not in gone
    ]
    overlaps = seq_overlaps(live)
    for path in listing(directory):
        if not path.is_file():
            continue
        if path.name in gone:
            yield Problem(path, "replaced by a merged part; run tickrec compact to remove it")
        elif path in checks:
            for what in checks[path].problems:
                yield Problem(path, what)
            if path in overlaps:
                yield Problem(path, overlaps[path])
        elif is_orphan(path):
            yield Problem(path, "temporary file of a write that never finished")


def verify_root(
    root: str | os.PathLike[str], venue: str | None = None, date: str | None = None
) -> Iterator[tuple[Partition, list[Problem]]]:
    """Each partition under *root* (optionally of one venue or date) with its problems."""
    for partition in list_partitions(root, venue=venue, date=date):
        yield partition, list(verify_partition(root, partition))
