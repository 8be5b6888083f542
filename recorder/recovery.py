"""Recovery: turning the journals of dead recorder runs into Parquet.

A run is dead when nobody holds its journal lock (a live recorder holds it
with ``flock`` for its whole life, and the kernel drops it when the process
dies, however it dies). Recovery takes the lock itself, so two recoveries, or
a recovery and a starting recorder, never convert the same run twice.

Each segment is read up to its first damaged record (see
:mod:`recorder.journal`); everything before is kept. For a damaged tail, a
``journal_loss`` event row (segment, offset, bytes lost) is written to every
symbol partition of the run, with the next ``seq`` of the run, so the replayer
can report the loss as a gap instead of silently missing it.

A segment that cannot be recovered at all (its header is unreadable, or its
records pass their checksums but break the dataset contract: a crafted or
buggy journal) is moved into the run's ``damaged/`` directory with a
``.why`` file beside it, so it cannot stop this or any later start.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from recorder.journal import (
    LOCK_NAME,
    RESERVE_NAME,
    SegmentScan,
    list_segments,
    scan_segment,
    try_lock,
)
from recorder.status import STATUS_FILE
from recorder.writer import convert_segment
from tickrec.contract import list_partitions, parse_part_name, partition_dir, read_footer
from tickrec.durable import fsync_dir, is_orphan
from tickrec.errors import JournalError, TickrecError
from tickrec.progress import Progress
from tickrec.store import Root, listing

__all__ = [
    "JournalCheck",
    "RunRecovery",
    "check_journals",
    "recover",
    "recover_run",
    "remove_orphans",
]

log = logging.getLogger("tickrec.recorder")


@dataclass
class RunRecovery:
    """What recovering one run did."""

    run_id: str
    segments: int = 0
    rows: int = 0
    parts: list[Root] = field(default_factory=list)
    losses: list[SegmentScan] = field(default_factory=list)
    left: list[tuple[Path, str]] = field(default_factory=list)


def _next_seq(segments: list[tuple[int, Path]]) -> tuple[int, SegmentScan | None]:
    """The next free ``seq`` of a run: after the last one its newest readable segment proves."""
    for _, path in reversed(segments):
        try:
            scan = scan_segment(path)
        except JournalError:
            continue
        return scan.last_seq + 1, scan
    return 0, None


def _next_seq_in_parts(root: str | os.PathLike[str], venue: str, run_id: str) -> int:
    """One past the highest ``seq`` in the run's Parquet parts (0 if none).

    A recovery that crashed after converting a damaged segment has already
    written that segment's loss row; a rerun must not hand its seq out again.
    """
    pattern = f"date=*/symbol=*/part-*-{run_id}-*.parquet"
    parts = (Path(root) / "raw" / f"venue={venue}").glob(pattern)
    ours = [p for p in parts if (parse_part_name(p.name) or (0, "", 0))[1] == run_id]
    return max((read_footer(p).last_seq + 1 for p in ours), default=0)


def recover_run(
    root: str | os.PathLike[str], run_dir: Path, progress: Progress | None = None
) -> RunRecovery:
    """Convert every segment of one dead run (the caller holds its lock)."""
    result = RunRecovery(run_dir.name)
    segments = list_segments(run_dir)
    next_seq, last = _next_seq(segments)
    if last is not None:
        next_seq = max(next_seq, _next_seq_in_parts(root, last.meta.run.venue, run_dir.name))
    for k, (_, path) in enumerate(segments, 1):
        if progress is not None:
            progress(f"recover run {run_dir.name}: segment {k}/{len(segments)}")
        try:
            scan = last if last is not None and last.path == path else scan_segment(path)
        except JournalError as exc:
            # The header is gone, so the run, and so the partitions, are unknown.
            why = str(exc).removeprefix(f"{path}: ")
            aside = _move_aside(path, why)
            result.left.append((aside, f"moved aside: {why}"))
            log.error("moved %s aside to %s: %s", path, aside, exc)
            continue
        loss_seq = None
        if scan.problem is not None:
            loss_seq, next_seq = next_seq, next_seq + 1
            result.losses.append(scan)
            log.warning(
                "%s: %s; kept %d records, %d bytes lost",
                path,
                scan.problem,
                len(scan.records),
                scan.lost_bytes,
            )
        try:
            converted = convert_segment(root, scan, loss_seq)
        except (TickrecError, ValueError, OverflowError, pa.ArrowException) as exc:
            # Records that pass their checksums yet break the contract (a crafted or
            # buggy journal): it would fail every later start too, so it goes aside.
            aside = _move_aside(path, f"cannot be converted: {exc}")
            result.left.append((aside, f"moved aside: cannot be converted ({exc})"))
            log.error("moved %s aside to %s: %s", path, aside, exc)
            continue
        result.segments += 1
        result.rows += converted.rows
        result.parts.extend(converted.written)
    return result


#: Where recovery puts a segment it cannot convert, inside the run's journal directory.
DAMAGED_DIR = "damaged"


def _move_aside(path: Path, why: str) -> Path:
    """Move a segment into the run's :data:`DAMAGED_DIR`, with a ``.why`` file beside it."""
    aside_dir = path.parent / DAMAGED_DIR
    aside_dir.mkdir(exist_ok=True)
    aside = aside_dir / path.name
    aside.with_name(aside.name + ".why").write_text(why + "\n", encoding="utf-8")
    os.replace(path, aside)
    fsync_dir(aside_dir)
    fsync_dir(path.parent)
    return aside


def _remove_if_empty(run_dir: Path) -> None:
    if list_segments(run_dir):
        return
    for p in run_dir.iterdir():
        if p.name not in (LOCK_NAME, STATUS_FILE, RESERVE_NAME) and not p.name.endswith(".tmp"):
            return
    shutil.rmtree(run_dir, ignore_errors=True)


def remove_orphans(root: str | os.PathLike[str]) -> list[Root]:
    """Remove the temporary parts that writes killed before their rename left behind.

    Only files whose writing process is gone go (:func:`tickrec.durable.is_orphan`);
    the records they held are still in the journal they were converted from,
    which is deleted only after the rename.
    """
    removed = []
    for partition in list_partitions(root):
        directory = partition_dir(root, partition.venue, partition.date, partition.symbol)
        for path in listing(directory):
            if path.is_file() and is_orphan(path):
                path.unlink(missing_ok=True)
                removed.append(path)
                log.info("removed %s, left by a write that never finished", path)
    return removed


def recover(root: str | os.PathLike[str], progress: Progress | None = None) -> list[RunRecovery]:
    """Recover every dead run's journal under *root*; live runs are left alone.

    Temporary parts left by killed writes are removed first (:func:`remove_orphans`).
    """
    remove_orphans(root)
    journal = Path(root) / "journal"
    results: list[RunRecovery] = []
    if not journal.is_dir():
        return results
    for run_dir in sorted(p for p in journal.iterdir() if p.is_dir()):
        try:
            fd = try_lock(run_dir / LOCK_NAME)
        except FileNotFoundError:
            continue  # removed by its own recorder meanwhile
        if fd is None:
            continue  # a live recorder holds it
        try:
            if run_dir.name.startswith("."):
                # A run that died while creating its journal directory holds no records.
                if not list_segments(run_dir):
                    shutil.rmtree(run_dir, ignore_errors=True)
                continue
            result = recover_run(root, run_dir, progress)
            results.append(result)
            _remove_if_empty(run_dir)
        finally:
            os.close(fd)
    if progress is not None:
        progress("")
    return results


def _set_aside(run_dir: Path) -> list[tuple[Path, str]]:
    """The segments in *run_dir*'s :data:`DAMAGED_DIR`, each with its ``.why``."""
    aside_dir = run_dir / DAMAGED_DIR
    if not aside_dir.is_dir():
        return []
    found = []
    for path in sorted(aside_dir.glob("seg-*.tj")):
        why = path.with_name(path.name + ".why")
        try:
            reason = why.read_text(encoding="utf-8").strip()
        except OSError:
            reason = "no reason recorded"
        found.append((path, reason))
    return found


@dataclass
class JournalCheck:
    """What :func:`check_journals` found: damaged segments, and runs it did not look at."""

    damaged: list[tuple[Path, str]] = field(default_factory=list)
    segments: int = 0
    live_runs: list[str] = field(default_factory=list)
    set_aside: list[tuple[Path, str]] = field(default_factory=list)
    """Segments recovery moved into a run's :data:`DAMAGED_DIR`, with the reason it gave:
    records that are not in the dataset until someone looks at them."""


def check_journals(root: str | os.PathLike[str]) -> JournalCheck:
    """Read every journal segment of the dead runs under *root*, changing nothing.

    A segment is damaged when its header cannot be read or records after
    its last good one cannot (:func:`~recorder.journal.scan_segment`);
    ``tickrec recover`` keeps what comes before the damage. Runs that a live
    recorder holds are listed, not read: their newest segment is being
    written. Segments recovery set aside (:data:`DAMAGED_DIR`) are listed
    with their reason, live runs' too.
    """
    found = JournalCheck()
    journal = Path(root) / "journal"
    if not journal.is_dir():
        return found
    for run_dir in sorted(p for p in journal.iterdir() if p.is_dir()):
        found.set_aside += _set_aside(run_dir)
        try:
            fd = try_lock(run_dir / LOCK_NAME)
        except FileNotFoundError:
            continue
        if fd is None:
            found.live_runs.append(run_dir.name)
            continue
        try:
            for _, path in list_segments(run_dir):
                found.segments += 1
                try:
                    scan = scan_segment(path)
                except JournalError as exc:
                    found.damaged.append((path, str(exc).removeprefix(f"{path}: ")))
                    continue
                if scan.problem is not None:
                    found.damaged.append(
                        (path, f"{scan.lost_bytes} bytes cannot be read ({scan.problem})")
                    )
        finally:
            os.close(fd)
    return found
