"""Compaction: a day's parts merged into one part per (venue, date, symbol).

The recorder leaves many small parts a day (a rotation every 15 minutes per
symbol, more after restarts), which slows every reader that opens them. A
merged part holds the partition's rows exactly as a replay reads them from
the parts it replaces (:func:`tickrec.contract.read_parts`: contract order,
runs that overlap merged by ``(recv_ts, run_id, seq)``), so a replay gives
byte-identical outputs before and after.

The steps, each safe to stop at (docs/architecture.md section 2.7):

1. The merged part is written whole, under its final name: a temporary
   name, fsync and rename on local disk, one complete object in an object
   store. Its footer lists the names of the parts it replaces
   (:data:`~tickrec.contract.REPLACES`).
2. The replaced parts are removed. From the moment the merged part exists,
   a reader that still finds some of them reads the merged part only
   (:func:`tickrec.contract.replaced`), never both.

Running it again finishes what a crash left: the parts still listed as
replaced are removed, and a partition already merged is left as it is.

A merged part's footer names a run of its own, ``compact.<hash>`` (the
hash of the names it replaces), and gives the least and greatest ``seq``
and ``recv_ts`` of its rows; its rows keep their own ``run_id`` and ``seq``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow.parquet as pq

from tickrec import contract
from tickrec.contract import MERGED_RUN, REPLACES, SCHEMA, PartFile, Partition
from tickrec.durable import fsync_dir, write_atomic
from tickrec.errors import CorruptFileError, DatasetError, NotFoundError, UsageError
from tickrec.store import Root, listing

__all__ = ["Compacted", "compact", "compact_partition"]


@dataclass(frozen=True)
class Compacted:
    """What compaction did to one partition."""

    partition: Partition
    merged: Root | None  # the merged part written, or None if none was needed
    parts: int  # parts the merged part holds
    rows: int
    removed: int  # replaced parts removed (including ones an earlier crash left)


def _merge(root: Root, partition: Partition, live: Sequence[PartFile]) -> Root:
    """Write the merged part of *live* (readable parts in contract order); return it."""
    names = sorted(p.path.name for p in live)
    gone = sorted(set(names) | contract.replaced(live))
    run_id = MERGED_RUN + hashlib.sha256("\0".join(names).encode()).hexdigest()[:16]
    rows = sum(p.rows for p in live)
    first_ns = min(p.first_recv_ns for p in live)
    meta = contract.footer_meta(
        partition.venue,
        partition.symbol,
        run_id,
        (min(p.first_seq for p in live), max(p.last_seq for p in live)),
        (first_ns, max(p.last_recv_ns for p in live)),
        rows,
        {REPLACES: json.dumps(gone, separators=(",", ":"))},
    )
    directory = contract.partition_dir(root, partition.venue, partition.date, partition.symbol)
    final = directory / contract.part_name(first_ns, run_id, 0)

    def write(fh: BinaryIO) -> None:
        with pq.ParquetWriter(
            fh, SCHEMA.with_metadata(meta), compression="zstd", write_page_checksum=True
        ) as writer:
            for batch in contract.iter_parts(live):
                writer.write_batch(batch)

    try:
        write_atomic(final, write, replace=False)
    except FileExistsError:
        raise DatasetError(f"{final}: already exists; is another compaction running?") from None
    written = contract.read_footer(final)
    if written.rows != rows:
        raise DatasetError(f"{final}: holds {written.rows} rows, its parts {rows}")
    return final


def compact_partition(root: Root, partition: Partition) -> Compacted:
    """Merge the parts of one partition (see the module docstring).

    A partition with a part whose footer cannot be read is refused with
    :class:`~tickrec.errors.CorruptFileError` naming it (``tickrec verify``
    lists them); nothing is written then.
    """
    live, damaged = contract.scan_parts(root, partition)
    if damaged:
        raise CorruptFileError(f"{damaged[0]}; not compacted (see tickrec verify)", damaged[0].path)
    merged, held = None, 0
    if len(live) > 1:
        held = len(live)
        merged = _merge(root, partition, live)
        live = [contract.read_footer(merged)]
    gone = contract.replaced(live)
    directory = contract.partition_dir(root, partition.venue, partition.date, partition.symbol)
    removed = 0
    for path in listing(directory):
        if path.name in gone:
            path.unlink(missing_ok=True)
            removed += 1
    if removed and isinstance(directory, Path):
        fsync_dir(directory)
    return Compacted(partition, merged, held, sum(p.rows for p in live), removed)


def compact(
    root: Root,
    date: str,
    venue: str | None = None,
    symbol: str | None = None,
    force: bool = False,
    progress: Callable[[Compacted], None] | None = None,
) -> list[Compacted]:
    """Compact every partition of *date* (optionally one venue or symbol).

    A date that is not over yet (UTC) is refused unless *force*: parts that
    arrive after the merge are left beside it, so the partition would need
    compacting again.
    """
    contract.check_date(date)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    if date >= today and not force:
        raise UsageError(
            f"{date} is not over yet (UTC); parts still arriving would be left beside "
            "the merged part (use --force to compact anyway)"
        )
    partitions = contract.list_partitions(root, venue=venue, date=date, symbol=symbol)
    if not partitions:
        wanted = " ".join(x for x in (venue, date, symbol) if x)
        raise NotFoundError(f"no partitions for {wanted} under {root}")
    done = []
    for partition in partitions:
        result = compact_partition(root, partition)
        if progress is not None:
            progress(result)
        done.append(result)
    return done
