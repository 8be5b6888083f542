"""Integrity checks of a dataset's raw parts, for ``tickrec verify``.

Each part is read whole, with its Parquet page checksums verified, and held
to the contract (docs/architecture.md section 2):

- the footer is readable and its venue, symbol, date and run agree with the
  part's path and name;
- the columns are the contract's schema;
- the row count, first and last ``seq`` and first and last ``recv_ts`` agree
  with the footer;
- ``seq`` strictly increases, every ``recv_ts`` falls on the partition's
  date, and every ``source`` is one the contract names.

A temporary file left in a partition by a write whose process is gone
(:func:`tickrec.durable.is_orphan`) is reported too. Checks only read:
nothing is changed or moved.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tickrec.contract import (
    SCHEMA,
    SOURCES,
    PartFile,
    Partition,
    date_of_ns,
    list_partitions,
    parse_part_name,
    partition_dir,
    read_footer,
)
from tickrec.durable import is_orphan
from tickrec.errors import DatasetError

__all__ = ["Problem", "check_part", "verify_partition", "verify_root"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    path: Path
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def _first_last(table: pa.Table, name: str) -> tuple[int, int]:
    col = table.column(name)
    if col.type != pa.int64():
        col = col.cast(pa.int64())
    return int(col[0].as_py()), int(col[-1].as_py())


def check_part(path: Path, partition: Partition) -> list[str]:
    """What is wrong with the part at *path* of *partition* (empty if nothing)."""
    try:
        footer: PartFile = read_footer(path)
    except DatasetError as exc:
        return [str(exc).removeprefix(f"{path}: ")]
    problems = []
    named = parse_part_name(path.name)
    if (footer.venue, footer.symbol, footer.date) != (
        partition.venue,
        partition.symbol,
        partition.date,
    ):
        problems.append(
            f"footer says {footer.venue}/{footer.date}/{footer.symbol}, "
            f"the path says {partition.venue}/{partition.date}/{partition.symbol}"
        )
    if named is not None and (named[0], named[1]) != (footer.first_recv_ns, footer.run_id):
        problems.append(
            f"name says run {named[1]} from {named[0]}, "
            f"the footer says run {footer.run_id} from {footer.first_recv_ns}"
        )
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        return [*problems, f"data cannot be read ({exc})"]
    table = table.replace_schema_metadata(None)
    if not table.schema.equals(SCHEMA):
        return [*problems, "columns do not match the contract's schema"]
    if table.num_rows != footer.rows:
        problems.append(f"{table.num_rows} rows, the footer says {footer.rows}")
    if table.num_rows == 0:
        return [*problems, "no rows"]
    seq = table.column("seq")
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
    recv = table.column("recv_ts").cast(pa.int64())
    lo, hi = int(pc.min(recv).as_py()), int(pc.max(recv).as_py())
    if date_of_ns(lo) != partition.date or date_of_ns(hi) != partition.date:
        problems.append(
            f"rows fall on {date_of_ns(lo)}..{date_of_ns(hi)}, outside {partition.date}"
        )
    sources = set(table.column("source").combine_chunks().dictionary.to_pylist())
    if not sources <= set(SOURCES):
        problems.append(f"unknown source values {sorted(sources - set(SOURCES))}")
    return problems


def verify_partition(root: str | os.PathLike[str], partition: Partition) -> Iterator[Problem]:
    """The problems of every file in one partition's directory, in name order."""
    directory = partition_dir(root, partition.venue, partition.date, partition.symbol)
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        if parse_part_name(path.name) is not None:
            for what in check_part(path, partition):
                yield Problem(path, what)
        elif is_orphan(path):
            yield Problem(path, "temporary file of a write that never finished")


def verify_root(
    root: str | os.PathLike[str], venue: str | None = None, date: str | None = None
) -> Iterator[tuple[Partition, list[Problem]]]:
    """Each partition under *root* (optionally of one venue or date) with its problems."""
    for partition in list_partitions(root, venue=venue, date=date):
        yield partition, list(verify_partition(root, partition))
