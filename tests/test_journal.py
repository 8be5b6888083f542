"""The write-ahead journal, its conversion to Parquet, and recovery, on real files."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.journal import (
    Journal,
    RunMeta,
    SegmentScan,
    encode_record,
    list_segments,
    scan_segment,
)
from recorder.recovery import recover
from recorder.rotation import NS_PER_DAY, next_rotation_ns
from recorder.writer import Converter, convert_segment
from tickrec import contract
from tickrec.errors import UsageError

SYMS = ("BTCUSD", "ETHUSD")
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MIN = 60 * 1_000_000_000


def _meta(run_id: str = "20260101T000000-test") -> RunMeta:
    return RunMeta(run_id, "gemini", "gemini.v2", SYMS)


def _journal(root: Path, closed: list[Path], **kw: object) -> Journal:
    return Journal(root, _meta(), on_closed=closed.append, fsync_interval=0.01, **kw)  # type: ignore[arg-type]


def _append_sample(j: Journal, n: int, t: int = T0 + MIN) -> list[tuple[int, str, tuple[str, ...]]]:
    """n rows alternating BTCUSD, ETHUSD, both; returns (seq, payload, symbols)."""
    out = []
    for i in range(n):
        symbols = (SYMS[i % 2],) if i % 3 else SYMS
        payload = json.dumps({"i": i, "txt": 'é ✓ "q"', "symbols": list(symbols)})
        seq = j.append(
            t + i,
            1,
            "gemini.v2",
            "ws",
            payload,
            symbols,
            exch_ns=t - 5 if i % 2 else None,
            venue_seq=i if i % 4 == 0 else None,
        )
        out.append((seq, payload, symbols))
    return out


def test_round_trip_record_to_parquet(tmp_path: Path) -> None:
    closed: list[Path] = []
    j = _journal(tmp_path, closed)
    sent = _append_sample(j, 50)
    j.append(T0 + MIN + 100, 0, "gemini.rest", "rest", "{}", ("BTCUSD",), sent_ns=T0 + MIN + 90)
    j.close()
    assert len(closed) == 1
    scan = scan_segment(closed[0])
    assert scan.problem is None and scan.lost_bytes == 0
    assert [r.row.seq for r in scan.records] == list(range(51))
    assert [(r.row.payload, r.symbols) for r in scan.records[:50]] == [(p, s) for _, p, s in sent]
    assert scan.records[1].row.exch_ns == T0 + MIN - 5 and scan.records[0].row.exch_ns is None
    assert scan.records[-1].row.sent_ns == T0 + MIN + 90
    convert_segment(tmp_path, scan)
    j.release()
    assert not (tmp_path / "journal" / _meta().run_id).exists()
    btc = contract.read_partition(tmp_path, "gemini", "2026-01-01", "BTCUSD").to_pylist()
    eth = contract.read_partition(tmp_path, "gemini", "2026-01-01", "ETHUSD").to_pylist()
    assert [r["payload"] for r in btc[:-1]] == [p for _, p, s in sent if "BTCUSD" in s]
    assert [r["payload"] for r in eth] == [p for _, p, s in sent if "ETHUSD" in s]
    assert btc[-1]["source"] == "rest" and btc[-1]["sent_ts"] is not None
    assert all(r["run_id"] == _meta().run_id for r in btc + eth)


def _crashed_journal(
    tmp_path: Path, n: int = 40
) -> tuple[Path, list[tuple[int, str, tuple[str, ...]]]]:
    """A journal left as a dead process leaves it: segment on disk, lock released."""
    closed: list[Path] = []
    j = _journal(tmp_path, closed)
    sent = _append_sample(j, n)
    j.close()
    j._lock_fd, fd = -1, j._lock_fd  # drop the lock without removing anything, as a crash does
    os.close(fd)
    return closed[0], sent


def _record_sizes(scan: SegmentScan) -> list[int]:
    return [
        len(
            encode_record(
                r.row.recv_ns,
                r.row.seq,
                r.row.conn_id,
                r.row.protocol,
                r.row.source,
                r.row.payload,
                r.symbols,
                r.row.exch_ns,
                r.row.venue_seq,
                r.row.sent_ns,
            )
        )
        for r in scan.records
    ]


def _rows(root: Path, symbol: str) -> list[dict[str, object]]:
    return contract.read_partition(root, "gemini", "2026-01-01", symbol).to_pylist()


def test_torn_tail_keeps_everything_before_and_records_the_loss(tmp_path: Path) -> None:
    seg, sent = _crashed_journal(tmp_path)
    whole = seg.stat().st_size
    scan = scan_segment(seg)
    cut = whole - 7  # inside the last record
    with open(seg, "r+b") as fh:
        fh.truncate(cut)
    results = recover(tmp_path)
    assert len(results) == 1 and len(results[0].losses) == 1
    assert not (tmp_path / "journal" / _meta().run_id).exists()
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        want = [p for _, p, s in sent[:-1] if symbol in s]
        assert [r["payload"] for r in rows[:-1]] == want
        loss = rows[-1]
        assert loss["source"] == "event" and loss["seq"] == len(sent) - 1  # next free seq
        detail = json.loads(str(loss["payload"]))
        assert detail["event"] == "journal_loss"
        assert detail["segment"] == seg.name
        assert detail["offset"] == whole - _record_sizes(scan)[-1]
        assert detail["bytes_lost"] == cut - detail["offset"]
        seqs = [r["seq"] for r in rows]
        assert seqs == sorted(set(seqs))


def test_bit_flip_stops_at_the_damaged_record(tmp_path: Path) -> None:
    seg, sent = _crashed_journal(tmp_path)
    scan = scan_segment(seg)
    sizes = _record_sizes(scan)
    offset = scan.size - sum(sizes) + sum(sizes[:20])  # where record 20 starts
    data = bytearray(seg.read_bytes())
    data[offset + 30] ^= 0x04
    seg.write_bytes(bytes(data))
    damaged = scan_segment(seg)
    assert len(damaged.records) == 20 and damaged.good_bytes == offset
    assert damaged.problem is not None and "checksum" in damaged.problem
    recover(tmp_path)
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        assert [r["payload"] for r in rows[:-1]] == [p for _, p, s in sent[:20] if symbol in s]
        detail = json.loads(str(rows[-1]["payload"]))
        assert detail == {
            **detail,
            "event": "journal_loss",
            "offset": offset,
            "bytes_lost": scan.size - offset,
        }
        assert rows[-1]["seq"] == 20  # the first seq no readable record holds


def test_reconversion_after_a_crash_mid_conversion_writes_nothing_twice(tmp_path: Path) -> None:
    seg, sent = _crashed_journal(tmp_path)
    backup = tmp_path / "backup.tj"
    shutil.copy(seg, backup)
    convert_segment(tmp_path, scan_segment(seg))
    # the crash: parts renamed into place, the segment not yet deleted
    shutil.copy(backup, seg)
    first = next(
        iter(contract.list_parts(tmp_path, contract.Partition("gemini", "2026-01-01", "BTCUSD")))
    )
    first.path.unlink()  # and one part not yet written
    results = recover(tmp_path)
    assert results[0].losses == [] and len(results[0].parts) == 1
    for symbol in SYMS:
        assert [r["payload"] for r in _rows(tmp_path, symbol)] == [
            p for _, p, s in sent if symbol in s
        ]


def test_recovery_leaves_live_runs_alone(tmp_path: Path) -> None:
    closed: list[Path] = []
    j = _journal(tmp_path, closed)
    _append_sample(j, 5)
    assert recover(tmp_path) == []
    assert list_segments(j.dir)
    j.close()
    for p in closed:
        convert_segment(tmp_path, scan_segment(p))
    j.release()
    assert not j.dir.exists()


def test_rotation_times_are_wall_clock_multiples_and_midnight() -> None:
    assert next_rotation_ns(T0 + 7 * MIN, 15 * MIN) == T0 + 15 * MIN
    assert next_rotation_ns(T0 + 15 * MIN, 15 * MIN) == T0 + 30 * MIN
    late = T0 + NS_PER_DAY - 5 * MIN
    assert next_rotation_ns(late, 7 * MIN) == T0 + NS_PER_DAY  # never past midnight
    assert next_rotation_ns(late, 0) == T0 + NS_PER_DAY
    assert next_rotation_ns(T0 + 1, 2 * NS_PER_DAY) == T0 + NS_PER_DAY


def test_rotation_across_midnight_writes_two_dates(tmp_path: Path) -> None:
    midnight = T0 + NS_PER_DAY  # 2026-01-02T00:00Z
    now = [midnight - 30 * MIN]
    closed: list[Path] = []
    j = _journal(tmp_path, closed, rotate_every_ns=10 * MIN, clock=lambda: now[0])
    seqs = []
    for k in range(-25, 15):  # one row a minute from 23:35 to 00:14
        now[0] = midnight + k * MIN
        seqs.append(j.append(now[0], 1, "gemini.v2", "ws", f'{{"k":{k}}}', ("BTCUSD",)))
    j.close()
    assert len(closed) == 5  # ..23:40, ..23:50, ..00:00, ..00:10, ..00:14
    for p in closed:
        convert_segment(tmp_path, scan_segment(p))
    j.release()
    parts = contract.list_partitions(tmp_path)
    assert [p.date for p in parts] == ["2026-01-01", "2026-01-02"]
    for part in parts:
        files = contract.list_parts(tmp_path, part)
        rows = contract.read_parts(files).to_pylist()
        assert {r["recv_ts"].date().isoformat() for r in rows} == {part.date}
        for f in files:
            assert contract.date_of_ns(f.first_recv_ns) == contract.date_of_ns(f.last_recv_ns)
    before = contract.read_partition(tmp_path, "gemini", "2026-01-01", "BTCUSD")
    after = contract.read_partition(tmp_path, "gemini", "2026-01-02", "BTCUSD")
    assert before.num_rows == 25 and after.num_rows == 15
    assert after.column("recv_ts")[0].as_py() == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert before.column("seq").to_pylist() + after.column("seq").to_pylist() == seqs


def test_size_rotation_and_empty_segments(tmp_path: Path) -> None:
    closed: list[Path] = []
    j = _journal(tmp_path, closed, max_segment_bytes=2000)
    _append_sample(j, 60)
    j.rotate()
    j.rotate()  # an empty segment is deleted, not handed over
    j.close()
    assert len(closed) > 3
    counts = [len(scan_segment(p).records) for p in closed]
    assert sum(counts) == 60 and 0 not in counts
    # the empty one is gone from disk too; the flusher may close one segment (a 15 min
    # rotation falling within the test) as this thread closes the next, so in any order
    assert [p for _, p in list_segments(j.dir)] == sorted(closed)


def test_journal_refuses_bad_names(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid run id"):
        RunMeta("../x", "gemini", "gemini.v1", SYMS)


def test_converter_survives_a_segment_it_cannot_write(tmp_path: Path) -> None:
    closed: list[Path] = []
    j = _journal(tmp_path, closed)
    j.append(T0 + MIN, 1, "gemini.v2", "bogus", "{}", ("BTCUSD",))  # not a contract source
    j.rotate()
    sent = _append_sample(j, 6)
    j.close()
    converter = Converter(tmp_path, retry_base=0.01)
    for p in closed:
        converter.submit(p)
    failed = converter.close(retry_for=5.0)
    assert [(p, "unknown source" in why) for p, why in failed] == [(closed[0], True)]
    assert closed[0].exists() and not closed[1].exists()  # the bad one is left for recovery
    assert [r["payload"] for r in _rows(tmp_path, "ETHUSD")] == [
        p for _, p, s in sent if "ETHUSD" in s
    ]


def test_rerun_after_a_crash_mid_recovery_never_reuses_a_seq(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two damaged segments, and recovery dies after converting the first: the rerun's loss
    row must not take the seq the first loss row already has."""
    import recorder.recovery

    closed: list[Path] = []
    j = _journal(tmp_path, closed)
    _append_sample(j, 20)
    j.rotate()
    _append_sample(j, 20)
    j.close()
    j._lock_fd, fd = -1, j._lock_fd
    os.close(fd)
    for seg in closed:
        with open(seg, "r+b") as fh:
            fh.truncate(seg.stat().st_size - 5)
    real = recorder.recovery.convert_segment
    calls = itertools.count()

    def dies_on_the_second(*args: object, **kwargs: object) -> object:
        if next(calls) == 1:
            raise KeyboardInterrupt  # the process is killed mid-recovery
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(recorder.recovery, "convert_segment", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        recover(tmp_path)
    monkeypatch.setattr(recorder.recovery, "convert_segment", real)
    recover(tmp_path)
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        losses = [r for r in rows if '"journal_loss"' in str(r["payload"])]
        assert len(losses) == 2
        seqs = [r["seq"] for r in rows]
        assert len(seqs) == len(set(seqs)), "a seq was handed out twice"


def test_deferred_records_are_written_together_in_order(tmp_path: Path) -> None:
    """Records appended with defer wait in memory, then reach the file in seq order: on
    write_deferred, before a plain append, in the segment a rotation closes, and at close."""
    closed: list[Path] = []
    hour = 3600 * 1_000_000_000
    j = Journal(
        tmp_path,
        _meta(),
        on_closed=closed.append,
        fsync_interval=3600,  # no flusher writes during the test
        rotate_every_ns=hour,
        clock=lambda: T0,
    )
    seg = list_segments(j.dir)[0][1]
    empty = seg.stat().st_size

    def add(t: int, payload: str | bytes, defer: bool = True) -> int:
        return j.append(T0 + t, 1, "gemini.v2", "ws", payload, SYMS, defer=defer)

    add(1, b'{"n":0}')
    add(2, '{"n":1,"t":"\u00e9"}')
    assert seg.stat().st_size == empty  # held in memory
    j.write_deferred()
    assert seg.stat().st_size > empty
    add(3, b'{"n":2}')
    written = seg.stat().st_size
    add(4, '{"n":3}', defer=False)  # writes the deferred record first
    add(5, b'{"n":4}')
    add(hour + 1, b'{"n":5}')  # rotates: n=4 belongs to the closing segment
    add(hour + 2, b'{"n":6}')
    j.close()
    assert seg.stat().st_size > written
    first, second = (scan_segment(p) for p in closed)
    assert [json.loads(r.row.payload)["n"] for r in first.records] == [0, 1, 2, 3, 4]
    assert [json.loads(r.row.payload)["n"] for r in second.records] == [5, 6]
    assert [r.row.seq for r in first.records + second.records] == list(range(7))
    assert first.records[1].row.payload == '{"n":1,"t":"\u00e9"}'


def test_a_crafted_segment_is_moved_aside_and_stops_no_later_start(tmp_path: Path) -> None:
    """Records with good checksums that break the contract (a symbol that is a path)."""
    closed: list[Path] = []
    j = _journal(tmp_path, closed)
    j.append(T0 + MIN, 1, "gemini.v2", "ws", '{"ok":1}', ("BTCUSD",))
    j.append(T0 + MIN + 1, 1, "gemini.v2", "ws", '{"bad":1}', ("../../etc",))
    j.close()
    j._lock_fd, fd = -1, j._lock_fd  # dead: lock dropped, segment left
    os.close(fd)
    (segment,) = closed
    crafted = segment.read_bytes()
    # a header-damaged segment of a second dead run goes aside too
    other = tmp_path / "journal" / "20260101T000001-other"
    other.mkdir()
    (other / "seg-000001.tj").write_bytes(b"TKRJ garbage")

    results = {r.run_id: r for r in recover(tmp_path)}
    aside = segment.parent / "damaged" / segment.name
    ((path, why),) = results[_meta().run_id].left
    assert path == aside and why.startswith("moved aside: cannot be converted (invalid symbol")
    assert aside.read_bytes() == crafted and not segment.exists()
    assert "invalid symbol" in aside.with_name(aside.name + ".why").read_text()
    ((path, why),) = results["20260101T000001-other"].left
    assert path == other / "damaged" / "seg-000001.tj"
    assert why == "moved aside: journal format version 26400, expected 1"
    # nothing is left for the next start to trip over, and nothing escaped the dataset
    assert all(not r.left for r in recover(tmp_path))
    assert not (tmp_path.parent / "etc").exists()
    cli = subprocess.run(
        [sys.executable, "-m", "tickrec", "recover", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    # verify names what was set aside, and why, until someone deals with it
    verify = subprocess.run(
        [sys.executable, "-m", "tickrec", "verify", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verify.returncode == 1
    assert f"  {aside}: set aside by recovery, not in the dataset: cannot be converted: " in (
        verify.stdout
    )
    assert f"  {other / 'damaged' / 'seg-000001.tj'}: set aside by recovery" in verify.stdout
