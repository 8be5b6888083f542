"""Segment conversion in a child process (recorder.convert): same parts, crash-safe."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from recorder.journal import Journal, RunMeta, scan_segment
from recorder.recovery import remove_orphans
from recorder.writer import Converter, convert_segment
from tickrec import contract

SYMS = ("BTCUSD", "ETHUSD")
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
DAY = 86_400 * 1_000_000_000


def _segments(
    root: Path, n: int, days: int = 1
) -> tuple[list[Path], list[tuple[int, str, tuple[str, ...]]]]:
    """Closed segments (one per UTC date) of *n* rows over *days* dates; returns (paths, sent)."""
    closed: list[Path] = []
    j = Journal(
        root,
        RunMeta("20260101T000000-conv", "gemini", "gemini.v2", SYMS),
        on_closed=closed.append,
        rotate_every_ns=1000 * DAY,
        clock=lambda: T0,
    )
    sent = []
    for i in range(n):
        symbols = (SYMS[i % 2],) if i % 3 else SYMS
        payload = f'{{"i":{i},"txt":"é ✓ \\"q\\"","pad":"{"x" * (i % 50)}"}}'
        t = T0 + (i * days * DAY) // n
        seq = j.append(t, 1, "gemini.v2", "ws", payload, symbols, exch_ns=t - 5 if i % 2 else None)
        sent.append((seq, payload, symbols))
    j.close()
    j.release()
    assert len(closed) == days
    return closed, sent


def _parts(root: Path) -> dict[str, bytes]:
    raw = root / "raw"
    return {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*.parquet"))}


def _check_stored(root: Path, sent: list[tuple[int, str, tuple[str, ...]]]) -> None:
    """Every sent row is stored once in each of its symbols' partitions, in seq order."""
    for symbol in SYMS:
        seqs, payloads = [], []
        for part in contract.list_partitions(root):
            if part.symbol != symbol:
                continue
            t = contract.read_partition(root, part.venue, part.date, symbol)
            seqs += t.column("seq").to_pylist()
            payloads += t.column("payload").to_pylist()
        assert seqs == [q for q, _, s in sent if symbol in s]
        assert payloads == [p for _, p, s in sent if symbol in s]


def test_the_child_writes_the_same_bytes_as_the_in_process_conversion(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    segs, sent = _segments(a, 3_000, days=2)
    copies = [b / seg.relative_to(a) for seg in segs]
    copies[0].parent.mkdir(parents=True)
    done = []
    converter = Converter(b, on_done=done.append)
    for seg, copy in zip(segs, copies, strict=True):
        shutil.copy(seg, copy)
        convert_segment(a, scan_segment(seg))
        converter.submit(copy)
    assert converter.close() == []
    assert not any(copy.exists() for copy in copies)
    assert len(_parts(a)) == 4 and _parts(a) == _parts(b)
    assert sum(r.rows for r in done) == sum(len(s) for _, _, s in sent)
    assert sorted(p for r in done for p in r.written) == sorted((b / "raw").rglob("*.parquet"))
    _check_stored(b, sent)


def test_a_child_killed_mid_conversion_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    (seg,), sent = _segments(tmp_path, 60_000)
    child = subprocess.Popen(
        [sys.executable, "-m", "recorder.convert", str(tmp_path), str(seg)],
        stdout=subprocess.DEVNULL,
    )
    raw = tmp_path / "raw"
    # Kill it as soon as its first part is renamed into place: mid-conversion.
    deadline = time.monotonic() + 60
    while not any(raw.rglob("*.parquet")) and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert seg.exists(), "the child finished before the kill; the test proves nothing"
    first = _parts(tmp_path)
    assert len(first) == 1
    remove_orphans(tmp_path)
    assert not [p for p in raw.rglob("*") if p.name.endswith(".tmp")]
    converter = Converter(tmp_path)
    converter.submit(seg)
    assert converter.close() == []
    assert not seg.exists()
    after = _parts(tmp_path)
    assert len(after) == 2 and all(after[k] == v for k, v in first.items())
    _check_stored(tmp_path, sent)
