"""Bad parts: refused with one line naming the file, or left out with --skip-bad as bad_file gaps.

The rest of the day is never changed: every grid row a replay without the
bad part calls valid equals the row of the intact day.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import replay
from bench.synth import DayParams, make_day
from tickrec import contract
from tickrec.contract import PartFile, Partition
from tickrec.errors import CorruptFileError

TICKREC = str(Path(sys.executable).with_name("tickrec"))


def _tickrec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TICKREC, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A day of six parts, with reconnects (and so snapshots) along it."""
    params = DayParams(changes=30_000, seed=3, span_s=3600, reconnects=2, part_rows=3_000)
    return make_day(params, cache=tmp_path_factory.mktemp("intact")).root


def _copy(intact: Path, tmp_path: Path) -> tuple[Path, Partition, list[PartFile]]:
    root = tmp_path / "data"
    subprocess.run(["cp", "-r", str(intact), str(root)], check=True)
    (partition,) = contract.list_partitions(root)
    return root, partition, contract.list_parts(root, partition)


def _flip_payload(path: Path, n: int = 40) -> None:
    """XOR *n* bytes inside the first data page of the payload column."""
    meta = pq.read_metadata(path)
    col = meta.row_group(0).column(meta.schema.names.index("payload"))
    data = bytearray(path.read_bytes())
    start = col.dictionary_page_offset or col.data_page_offset
    for k in range(n):
        data[start + 64 + 7 * k] ^= 0x5A
    path.write_bytes(bytes(data))


def _rewrite(path: Path, table: pa.Table, **footer: str) -> None:
    """Write *table* at *path* with the footer of the part there, some keys replaced."""
    meta = dict(pq.read_metadata(path).metadata or {})
    for key, value in footer.items():
        meta[contract.META_KEYS[key].encode()] = value.encode()
    pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd")


def _open(root: Path, partition: Partition, **kw: object) -> replay.Day:
    return replay.open(partition.date, partition.symbol, data=root, **kw)  # type: ignore[arg-type]


def _assert_valid_rows_unchanged(day: replay.Day, truth: replay.Day) -> None:
    """Every grid row *day* calls valid is the intact day's row; the grids are the same."""
    got = day.book_snapshots(depth=5, every="1s")
    want = truth.book_snapshots(depth=5, every="1s")
    assert got["ts"].equals(want["ts"])
    valid = got["valid"].to_numpy()
    assert valid.any()
    assert got[valid].equals(want[valid])


def test_a_flipped_byte_stops_replay_naming_the_file_or_is_left_out(
    intact: Path, tmp_path: Path
) -> None:
    root, partition, parts = _copy(intact, tmp_path)
    truth = _open(root, partition, cache=False)
    victim = parts[1]
    _flip_payload(victim.path)
    done = _tickrec("replay", "--date", partition.date, "--data", str(root))
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {victim.path}: not a valid Parquet file (")
    assert "CRC" in line and line.endswith(
        "--skip-bad (skip_bad=True) leaves it out as a bad_file gap"
    )
    verify = _tickrec("verify", "--data", str(root))
    assert verify.returncode == 1
    assert f"  {victim.path}: data cannot be read (" in verify.stdout

    skipped = _tickrec("replay", "--date", partition.date, "--data", str(root), "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    assert f"left out {victim.path}: not a valid Parquet file (" in skipped.stdout
    assert "bad_file" in skipped.stdout and victim.path.name in skipped.stdout
    day = _open(root, partition, skip_bad=True)
    (bad,) = day.left_out
    assert bad.name == victim.path.name
    # The span of the rows left out, from their recv_ts column (its pages are intact).
    assert (bad.start, bad.end) == (victim.first_recv_ns, victim.last_recv_ns)
    (gap,) = [g for g in day.gap_list() if g.kind == "bad_file"]
    assert gap.start == bad.start and gap.end >= bad.end
    assert gap.detail.startswith(f"{victim.path.name} left out: not a valid Parquet file")
    _assert_valid_rows_unchanged(day, truth)
    # The book is valid again after the next snapshot, and matches there.
    assert day.valid_ns > 0 and day.span == truth.span
    # The same from the cache the skip-bad replay wrote, which still refuses without it.
    assert _open(root, partition, skip_bad=True).gap_list() == day.gap_list()
    with pytest.raises(CorruptFileError, match="--skip-bad"):
        _open(root, partition)


def test_gaps_skip_bad_and_ls_leave_a_lying_footer_out(intact: Path, tmp_path: Path) -> None:
    root, partition, parts = _copy(intact, tmp_path)
    liar = parts[2]
    table = pq.read_table(liar.path)
    _rewrite(liar.path, table, rows=str(liar.rows + 50))
    ls = _tickrec("ls", "--data", str(root))
    assert ls.returncode == 1
    head = ls.stdout.splitlines()[0]
    rows = sum(p.rows for p in parts) - liar.rows
    assert f": {len(parts) - 1} files, {rows} rows," in head and head.endswith(", 1 bad")
    assert f"  bad: {liar.path}: {liar.rows} rows, the footer says {liar.rows + 50}" in ls.stdout
    assert "1 bad file left out above" in ls.stderr
    gaps = _tickrec("gaps", "--date", partition.date, "--data", str(root))
    assert gaps.returncode == 1 and "the footer says" in gaps.stderr
    gaps = _tickrec("gaps", "--date", partition.date, "--data", str(root), "--skip-bad")
    assert gaps.returncode == 0, gaps.stderr
    assert f"{liar.path.name} left out: {liar.rows} rows, the footer says" in gaps.stdout


def test_a_row_days_off_its_date_is_bad_and_its_gap_keeps_to_the_rows(
    intact: Path, tmp_path: Path
) -> None:
    root, partition, parts = _copy(intact, tmp_path)
    truth = _open(root, partition, cache=False)
    part = parts[1]
    table = pq.read_table(part.path).replace_schema_metadata(None)
    recv = table.column("recv_ts").cast(pa.int64()).to_pylist()
    recv[100] += 3 * 86_400 * 10**9  # three days later
    field = table.schema.field(0)
    table = table.set_column(0, field, pa.array(recv, pa.int64()).cast(field.type))
    _rewrite(part.path, table)
    with pytest.raises(
        CorruptFileError, match=r"rows fall on 2026-01-15\.\.2026-01-18, outside 2026-01-15"
    ):
        _open(root, partition, cache=False)
    day = _open(root, partition, cache=False, skip_bad=True)
    (bad,) = day.left_out
    # The rows on the date say where the part lies; the stray row does not stretch it.
    assert (bad.start, bad.end) == (part.first_recv_ns, part.last_recv_ns)
    assert day.span == truth.span
    _assert_valid_rows_unchanged(day, truth)


def test_an_unreadable_part_spans_up_to_the_next_part(intact: Path, tmp_path: Path) -> None:
    root, partition, parts = _copy(intact, tmp_path)
    truth = _open(root, partition, cache=False)
    part = parts[3]
    part.path.write_bytes(part.path.read_bytes()[:1000])  # truncated: no footer
    with pytest.raises(CorruptFileError, match=part.path.name):
        _open(root, partition, cache=False)
    day = _open(root, partition, skip_bad=True)
    (bad,) = day.left_out
    assert (bad.start, bad.end) == (part.first_recv_ns, parts[4].first_recv_ns)
    _assert_valid_rows_unchanged(day, truth)


def test_a_part_repeating_its_runs_seq_is_bad(intact: Path, tmp_path: Path) -> None:
    root, partition, parts = _copy(intact, tmp_path)
    truth = _open(root, partition, cache=False)
    first = parts[0].path
    copy = first.with_name(first.name.replace("-0.parquet", "-9.parquet"))
    copy.write_bytes(first.read_bytes())  # the same rows again, as part 9 of the run
    with pytest.raises(CorruptFileError, match="overlaps"):
        _open(root, partition, cache=False)
    day = _open(root, partition, cache=False, skip_bad=True)
    (bad,) = day.left_out
    assert bad.name == copy.name and "of the same run" in bad.reason
    # Which of the two is right is not known: the copy's time is a gap.
    assert (bad.start, bad.end) == (parts[0].first_recv_ns, parts[0].last_recv_ns)
    _assert_valid_rows_unchanged(day, truth)
    assert "overlaps" in _tickrec("verify", "--data", str(root)).stdout


def test_every_part_bad_is_a_day_of_bad_file_gaps(intact: Path, tmp_path: Path) -> None:
    root, partition, parts = _copy(intact, tmp_path)
    for p in parts:
        _flip_payload(p.path)
    day = _open(root, partition, skip_bad=True)
    assert len(day.left_out) == len(parts) and day.valid_ns == 0
    assert {g.kind for g in day.gap_list()} == {"bad_file"}
    assert not day.book_snapshots()["valid"].any()


def test_bad_parts_are_found_whatever_order_the_files_are_listed_in(
    intact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, partition, parts = _copy(intact, tmp_path)
    _flip_payload(parts[1].path)
    parts[3].path.write_bytes(b"PAR1")
    forward = _open(root, partition, cache=False, skip_bad=True)
    listed = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(sorted(listed(self), reverse=True)))
    backward = _open(root, partition, cache=False, skip_bad=True)
    assert backward.left_out == forward.left_out and len(forward.left_out) == 2
    assert backward.gap_list() == forward.gap_list()
    assert backward.book_snapshots().equals(forward.book_snapshots())


def test_a_bad_part_of_the_previous_date_is_refused_when_carrying(
    intact: Path, tmp_path: Path
) -> None:
    root, partition, parts = _copy(intact, tmp_path)
    # The day's last part, moved to the previous date's partition, damaged there.
    before = contract.partition_dir(root, partition.venue, "2026-01-14", partition.symbol)
    before.mkdir(parents=True)
    moved = before / "part-1768348800000000000-other-0.parquet"
    os.replace(parts[0].path, moved)
    moved.write_bytes(b"PAR1 not a part")
    with pytest.raises(CorruptFileError, match=moved.name):
        _open(root, partition, cache=False)
    day = _open(root, partition, cache=False, skip_bad=True)
    assert day.carried == () and day.left_out == ()


def test_a_part_left_out_of_a_stream_without_sequence_numbers_masks_until_a_snapshot(
    v2_root: Path, tmp_path: Path
) -> None:
    """Gemini v2 numbers nothing: only the bad_file gap says the book after the hole is wrong."""
    (partition, *_) = contract.list_partitions(v2_root)
    (part,) = contract.list_parts(v2_root, partition)
    table = contract.read_parts([part])
    root = tmp_path / "data"
    third = table.num_rows // 3
    split = [table.slice(0, third), table.slice(third, third), table.slice(2 * third)]
    paths = [
        contract.write_part(root, partition.venue, partition.symbol, part.run_id, n, t)
        for n, t in enumerate(split)
    ]
    truth = _open(root, partition, cache=False)
    _flip_payload(paths[1])
    day = _open(root, partition, cache=False, skip_bad=True)
    (gap,) = [g for g in day.gap_list() if g.kind == "bad_file"]
    assert gap.end > day.left_out[0].end  # on past the rows left out, to a new book
    _assert_valid_rows_unchanged(day, truth)
