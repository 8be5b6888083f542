"""Integrity: page checksums on every read, and ``tickrec verify`` over parts and journals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recorder.journal import Journal, RunMeta
from recorder.recovery import check_journals, recover
from tickrec import contract
from tickrec.contract import Partition, Row
from tickrec.durable import temp_name
from tickrec.errors import CorruptFileError
from tickrec.verify import verify_partition, verify_root

DAY = 1_795_478_400_000_000_000  # 2026-11-24T00:00:00Z
SEC = 1_000_000_000
DATE = "2026-11-24"
RUN = "20261124T000000-abcd"
PARTITION = Partition("gemini", DATE, "BTCUSD")


def _rows(count: int, start_ns: int = DAY + SEC) -> list[Row]:
    return [
        Row(
            recv_ns=start_ns + i * 1_000_000,
            seq=i,
            run_id=RUN,
            conn_id=1,
            protocol="gemini.v1",
            source="ws",
            payload=json.dumps({"type": "update", "socket_sequence": i, "n": "x" * (i % 50)}),
            venue_seq=i,
        )
        for i in range(count)
    ]


def _part(root: Path, count: int = 20_000) -> Path:
    table = contract.rows_to_table(_rows(count))
    return contract.write_part(root, "gemini", "BTCUSD", RUN, 1, table)


def _flip(path: Path, n: int = 100, seed: int = 7) -> None:
    """XOR *n* bytes of the file's data pages (the footer's last 4 KiB are spared)."""
    data = bytearray(path.read_bytes())
    for pos in np.random.default_rng(seed).integers(8, len(data) - 4096, n):
        data[int(pos)] ^= 0x5A
    path.write_bytes(bytes(data))


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _tickrec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickrec", *args], capture_output=True, text=True, timeout=120
    )


def test_parts_are_written_with_page_checksums(tmp_path: Path) -> None:
    path = _part(tmp_path)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 20_000
    # every data page has a CRC: a reader that verifies them accepts the file
    assert pq.read_table(path, page_checksum_verification=True).num_rows == 20_000


@pytest.mark.parametrize("seed", range(5))
def test_a_flipped_byte_is_an_error_on_read_never_a_changed_value(
    tmp_path: Path, seed: int
) -> None:
    path = _part(tmp_path)
    _flip(path, seed=seed)
    with pytest.raises(CorruptFileError, match="not a valid Parquet file"):
        contract.read_partition(tmp_path, "gemini", DATE, "BTCUSD")
    with pytest.raises(CorruptFileError):
        list(contract.iter_parts(contract.list_parts(tmp_path, PARTITION)))
    (problem,) = verify_partition(tmp_path, PARTITION)
    assert problem.path == path and "cannot be read" in problem.what


def test_a_clean_partition_has_no_problems(tmp_path: Path) -> None:
    _part(tmp_path)
    assert [(p, found) for p, found in verify_root(tmp_path)] == [(PARTITION, [])]


def _rewrite(path: Path, table: pa.Table, **meta: str) -> None:
    """Write *table* to *path* with the footer of the part there, some keys replaced."""
    footer = dict(pq.read_metadata(path).metadata or {})
    for key, value in meta.items():
        footer[contract.META_KEYS[key].encode()] = value.encode()
    pq.write_table(table.replace_schema_metadata(footer), path, compression="zstd")


def test_a_footer_that_lies_is_reported(tmp_path: Path) -> None:
    path = _part(tmp_path, 100)
    table = pq.read_table(path)
    _rewrite(path, table, rows="150", last_seq="149")
    assert contract.read_footer(path).rows == 150
    whats = [p.what for p in verify_partition(tmp_path, PARTITION)]
    assert whats == [
        "100 rows, the footer says 150",
        "seq runs 0..99, the footer says 0..149",
    ]


def test_rows_off_the_partition_date_and_out_of_order_are_reported(tmp_path: Path) -> None:
    path = _part(tmp_path, 100)
    rows = _rows(100)
    rows[50] = rows[50]._replace(recv_ns=DAY + 3 * 86_400 * SEC)  # three days later
    rows[60], rows[61] = rows[61], rows[60]
    table = contract.rows_to_table(rows)
    _rewrite(path, table)
    whats = [p.what for p in verify_partition(tmp_path, PARTITION)]
    assert "seq does not strictly increase" in whats
    assert f"rows fall on {DATE}..2026-11-27, outside {DATE}" in whats


def test_a_footer_for_another_partition_is_reported(tmp_path: Path) -> None:
    path = _part(tmp_path, 10)
    other = tmp_path / "raw/venue=gemini/date=2026-11-24/symbol=ETHUSD"
    other.mkdir(parents=True)
    moved = other / path.name
    os.replace(path, moved)
    (problem,) = verify_partition(tmp_path, Partition("gemini", DATE, "ETHUSD"))
    assert problem.what == (
        "footer says gemini/2026-11-24/BTCUSD, the path says gemini/2026-11-24/ETHUSD"
    )


def test_orphaned_temporary_parts_are_reported_and_removed_by_recover(tmp_path: Path) -> None:
    path = _part(tmp_path, 10)
    orphan = temp_name(path, _dead_pid())
    orphan.write_bytes(b"PAR1 half a file")
    in_progress = temp_name(path.with_name("part-2-x-1.parquet"), os.getpid())
    in_progress.write_bytes(b"PAR1 being written")
    (problem,) = verify_partition(tmp_path, PARTITION)
    assert problem.path == orphan and "never finished" in problem.what
    assert recover(tmp_path) == []  # no journal to recover, but the orphan goes
    assert not orphan.exists() and in_progress.exists() and path.exists()
    assert list(verify_partition(tmp_path, PARTITION)) == []


def _dead_journal(root: Path, n: int = 30) -> Path:
    journal = Journal(root, RunMeta(RUN, "gemini", "gemini.v1", ("BTCUSD",)), fsync_interval=0.01)
    for i in range(n):
        journal.append(DAY + SEC + i, 1, "gemini.v1", "ws", f'{{"i":{i}}}', ("BTCUSD",))
    journal.close()
    # drop the lock without removing anything, as a killed process does
    journal._lock_fd, fd = -1, journal._lock_fd
    os.close(fd)
    (segment,) = (root / "journal" / RUN).glob("seg-*.tj")
    return segment


def test_damaged_journal_segments_are_found_and_left_as_they_are(tmp_path: Path) -> None:
    segment = _dead_journal(tmp_path)
    assert check_journals(tmp_path).damaged == [] and check_journals(tmp_path).segments == 1
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF
    segment.write_bytes(bytes(data))
    found = check_journals(tmp_path)
    ((path, what),) = found.damaged
    assert path == segment and "checksum mismatch" in what
    assert segment.read_bytes() == bytes(data)  # nothing changed


def test_verify_command_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    path = _part(tmp_path)
    ok = _tickrec("verify", "--data", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        f"gemini {DATE} BTCUSD: ok",
        "checked 1 partition and 0 journal segments: no problems",
    ]
    _flip(path)
    temp_name(path, _dead_pid()).write_bytes(b"")
    bad = _tickrec("verify", "--data", str(tmp_path), "--date", DATE)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[0] == f"gemini {DATE} BTCUSD: 2 problems"
    # files in name order: the hidden temporary one first
    assert "never finished" in lines[1]
    assert lines[2].startswith(f"  {path}: data cannot be read (")
    assert lines[-1] == "checked 1 partition and 0 journal segments: 2 problems"


def test_verify_deep_decodes_every_partition(tmp_path: Path) -> None:
    rows = [r._replace(protocol="nosuch.proto") for r in _rows(3)]
    contract.write_part(tmp_path, "gemini", "BTCUSD", RUN, 1, contract.rows_to_table(rows))
    assert _tickrec("verify", "--data", str(tmp_path)).returncode == 0
    deep = _tickrec("verify", "--data", str(tmp_path), "--deep")
    assert deep.returncode == 1
    assert "cannot be replayed" in deep.stdout and "nosuch.proto" in deep.stdout
