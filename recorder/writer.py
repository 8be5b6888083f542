"""Turning closed journal segments into Parquet parts of the dataset.

A segment becomes one part per (symbol, UTC date of ``recv_ts``): every row
goes to each symbol partition its record names (docs/architecture.md section 2.1: a message
that belongs to no single symbol goes to every partition its connection
serves). Part number ``n`` is the segment number, so converting the same
segment twice finds its parts already there and skips them: a crash after a
part's rename but before the segment's deletion costs nothing. The segment is
deleted only once every one of its parts exists.

:class:`Converter` does this in a child process (:mod:`recorder.convert`)
started from a background thread, so capture never waits for Parquet, and
the recorder's memory does not grow with the segment.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from recorder.journal import SegmentScan
from tickrec.contract import (
    RUN_CONN_ID,
    Row,
    date_of_ns,
    event_payload,
    part_name,
    partition_dir,
    replaced_in,
    rows_to_table,
    write_part,
)
from tickrec.errors import JournalError
from tickrec.store import Root

__all__ = ["ConvertResult", "Converter", "convert_segment", "journal_loss_row", "split_rows"]

log = logging.getLogger("tickrec.recorder")


@dataclass
class ConvertResult:
    """What converting one segment did."""

    segment: Path
    written: list[Root] = field(default_factory=list)
    skipped: list[Root] = field(default_factory=list)
    rows: int = 0


def journal_loss_row(scan: SegmentScan, seq: int) -> Row:
    """The ``journal_loss`` event row for a segment with a damaged tail.

    It is stamped with the time of the last good record (the loss happened
    after it), so it falls in that record's date partition; ``start_ns`` and
    ``end_ns`` bound the span that may be missing (the end is the segment's
    last modification).
    """
    assert scan.problem is not None
    start = scan.last_recv_ns
    try:
        # The segment was last written when the lost records were: the end of the span.
        end = max(start, scan.path.stat().st_mtime_ns)
    except OSError:
        end = start
    payload = event_payload(
        "journal_loss",
        segment=scan.path.name,
        offset=scan.good_bytes,
        bytes_lost=scan.lost_bytes,
        problem=scan.problem,
        last_good_seq=scan.last_seq if scan.records else None,
        start_ns=start,
        end_ns=end,
    )
    run = scan.meta.run
    return Row(start, seq, run.run_id, RUN_CONN_ID, run.protocol, "event", payload)


def split_rows(scan: SegmentScan, loss: Row | None = None) -> dict[tuple[str, str], list[Row]]:
    """Rows of a segment by (symbol, date), each list in ``seq`` order.

    *loss* (a journal_loss row) goes to every symbol of the run, after the
    segment's records.
    """
    groups: dict[tuple[str, str], list[Row]] = {}
    for row, symbols in scan.records:
        date = date_of_ns(row.recv_ns)
        for symbol in symbols:
            groups.setdefault((symbol, date), []).append(row)
    if loss is not None:
        date = date_of_ns(loss.recv_ns)
        for symbol in scan.meta.run.symbols:
            groups.setdefault((symbol, date), []).append(loss)
    return groups


def convert_segment(
    root: str | os.PathLike[str], scan: SegmentScan, loss_seq: int | None = None
) -> ConvertResult:
    """Write the parts of a scanned segment, skip those already there, then delete it.

    A damaged segment (``scan.problem`` set) needs *loss_seq*, the ``seq`` of
    its journal_loss row; a clean one must not have one.
    """
    if scan.problem is not None and loss_seq is None:
        raise JournalError(f"{scan.path}: damaged ({scan.problem}); convert it with recovery")
    loss = (
        journal_loss_row(scan, loss_seq)
        if scan.problem is not None and loss_seq is not None
        else None
    )
    run = scan.meta.run
    result = ConvertResult(scan.path)
    for (symbol, date), rows in sorted(split_rows(scan, loss).items()):
        final = partition_dir(root, run.venue, date, symbol) / part_name(
            rows[0].recv_ns, run.run_id, scan.meta.n
        )
        if final.exists() or final.name in replaced_in(final.parent):
            result.skipped.append(final)  # written before (and maybe merged since)
            continue
        table = rows_to_table(rows)
        result.written.append(write_part(root, run.venue, symbol, run.run_id, scan.meta.n, table))
        result.rows += len(rows)
    scan.path.unlink(missing_ok=True)
    return result


class Converter:
    """A background thread that converts closed segments of a live run, in order.

    Each segment is converted by a child process (:mod:`recorder.convert`);
    the thread only waits for its result. *lock_fd*, the run's journal lock,
    is passed down to the child, so no recovery converts the run meanwhile.
    A child killed before it finishes is treated like an OS error: the
    segment is converted again, and the parts the child already renamed
    are skipped.

    A conversion that fails with an OS error (the disk is full, say) is
    retried with backoff, doubling from *retry_base* seconds to *retry_cap*;
    the segment stays on disk meanwhile, so nothing is lost if the process
    dies: recovery converts it later. A segment that fails any other way
    would fail again: it is left in the journal, listed in
    :attr:`failed`, and the thread goes on with the next one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        on_done: Callable[[ConvertResult], None] | None = None,
        retry_base: float = 1.0,
        retry_cap: float = 5.0,
    ) -> None:
        self.root = root
        #: The run's journal lock fd, inherited by every conversion child.
        self.lock_fd: int | None = None
        self._on_done = on_done
        self._retry_base, self._retry_cap = retry_base, retry_cap
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self.failed: list[tuple[Path, str]] = []
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._thread.start()

    def submit(self, segment: Path) -> None:
        """Queue a closed segment for conversion."""
        with self._pending_lock:
            self._pending += 1
        self._queue.put(segment)

    def pending(self) -> int:
        """Segments submitted and not yet converted or given up on."""
        with self._pending_lock:
            return self._pending

    def _convert(self, segment: Path) -> bool:
        from recorder import convert  # the exit codes; imported late, it imports this module

        fds = (self.lock_fd,) if self.lock_fd is not None else ()
        argv = [
            sys.executable,
            "-P",
            "-m",
            "recorder.convert",
            os.fspath(self.root),
            os.fspath(segment),
        ]
        try:
            child = subprocess.run(
                [*argv, str(os.getpid())], capture_output=True, pass_fds=fds, check=False
            )
        except OSError as exc:  # cannot start a process now (no memory, no pids): later
            log.error("cannot start the Parquet conversion of %s: %s", segment, exc)
            return False
        try:
            reply = orjson.loads(child.stdout) if child.stdout else {}
        except orjson.JSONDecodeError:
            reply = {}
        why = str(reply.get("error") or child.stderr.decode(errors="replace").strip()[-500:])
        if child.returncode == 0:
            result = ConvertResult(
                segment,
                [Path(p) for p in reply["written"]],
                [Path(p) for p in reply["skipped"]],
                int(reply["rows"]),
            )
        elif child.returncode == convert.EXIT_DAMAGED:
            # A closed segment of a live run should be whole; leave it to recovery,
            # which can give the journal_loss row its proper seq.
            self.failed.append((segment, reply["problem"]))
            log.error(
                "journal segment %s is damaged (%s); left for recovery", segment, reply["problem"]
            )
            return True
        elif child.returncode == convert.EXIT_FAILED and "error" in reply:  # would fail again
            self.failed.append((segment, why))
            log.error("cannot write Parquet from %s; left for recovery: %s", segment, why)
            return True
        else:  # an OS error, or the child was killed: the disk may take it later
            log.error(
                "writing Parquet from %s failed (status %d): %s", segment, child.returncode, why
            )
            return False
        if self._on_done is not None:
            self._on_done(result)
        return True

    def _run(self) -> None:
        while True:
            segment = self._queue.get()
            if segment is None:
                return
            delay = self._retry_base
            while not self._convert(segment):
                if self._stop.wait(delay):
                    self.failed.append((segment, "not converted before shutdown"))
                    break
                delay = min(self._retry_cap, delay * 2)
            with self._pending_lock:
                self._pending -= 1

    def close(self, retry_for: float = 30.0) -> list[tuple[Path, str]]:
        """Convert every queued segment, retrying failures for up to *retry_for* s, then stop.

        Returns the segments left unconverted (still in the journal), with why.
        """
        self._queue.put(None)
        self._thread.join(retry_for)
        self._stop.set()
        self._thread.join()
        return self.failed
