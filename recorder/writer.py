"""Turning closed journal segments into Parquet parts of the dataset.

A segment becomes one part per (symbol, UTC date of ``recv_ts``): every row
goes to each symbol partition its record names (docs/architecture.md section 2.1: a message
that belongs to no single symbol goes to every partition its connection
serves). Part number ``n`` is the segment number, so converting the same
segment twice finds its parts already there and skips them: a crash after a
part's rename but before the segment's deletion costs nothing. The segment is
deleted only once every one of its parts exists.

:class:`Converter` does this in a background thread, so capture never waits
for Parquet.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recorder.journal import SegmentScan, scan_segment
from tickrec.contract import (
    RUN_CONN_ID,
    Row,
    date_of_ns,
    event_payload,
    part_name,
    partition_dir,
    rows_to_table,
    write_part,
)
from tickrec.errors import JournalError

__all__ = ["ConvertResult", "Converter", "convert_segment", "journal_loss_row", "split_rows"]

log = logging.getLogger("tickrec.recorder")


@dataclass
class ConvertResult:
    """What converting one segment did."""

    segment: Path
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
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
        if final.exists():
            result.skipped.append(final)
            continue
        table = rows_to_table(rows)
        result.written.append(write_part(root, run.venue, symbol, run.run_id, scan.meta.n, table))
        result.rows += len(rows)
    scan.path.unlink(missing_ok=True)
    return result


class Converter:
    """A background thread that converts closed segments of a live run, in order.

    A conversion that fails with an OS error (the disk is full, say) is
    retried with backoff; the segment stays on disk meanwhile, so nothing is
    lost if the process dies: recovery converts it later. A segment that fails
    any other way would fail again: it is left in the journal, listed in
    :attr:`failed`, and the thread goes on with the next one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        on_done: Callable[[ConvertResult], None] | None = None,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
    ) -> None:
        self.root = root
        self._on_done = on_done
        self._retry_base, self._retry_cap = retry_base, retry_cap
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._stop = threading.Event()
        self.failed: list[tuple[Path, str]] = []
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._thread.start()

    def submit(self, segment: Path) -> None:
        """Queue a closed segment for conversion."""
        self._queue.put(segment)

    def _convert(self, segment: Path) -> bool:
        try:
            scan = scan_segment(segment)
            if scan.problem is not None:
                # A closed segment of a live run should be whole; leave it to recovery,
                # which can give the journal_loss row its proper seq.
                self.failed.append((segment, scan.problem))
                log.error(
                    "journal segment %s is damaged (%s); left for recovery", segment, scan.problem
                )
                return True
            result = convert_segment(self.root, scan)
        except OSError as exc:  # the disk may take it later
            log.error("writing Parquet from %s failed: %s", segment, exc)
            return False
        except Exception as exc:  # would fail the same way again; the thread must go on
            self.failed.append((segment, f"{type(exc).__name__}: {exc}"))
            log.exception("cannot write Parquet from %s; left for recovery", segment)
            return True
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

    def close(self, retry_for: float = 30.0) -> list[tuple[Path, str]]:
        """Convert every queued segment, retrying failures for up to *retry_for* s, then stop.

        Returns the segments left unconverted (still in the journal), with why.
        """
        self._queue.put(None)
        self._thread.join(retry_for)
        self._stop.set()
        self._thread.join()
        return self.failed
