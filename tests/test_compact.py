"""tickrec compact: one part per partition, replays byte-identical, safe at every step,
on local disk and on a loopback S3 (moto's server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import s3
from conftest import record_sim
from test_overlap import DATE as OVERLAP_DATE
from test_overlap import Run, market
from typer.testing import CliRunner

import replay
from tickrec import contract
from tickrec.cli import app
from tickrec.compact import compact, compact_partition
from tickrec.contract import rows_to_table
from tickrec.errors import CorruptFileError, UsageError
from tickrec.sim import SimConfig, Simulator
from tickrec.store import as_root
from tickrec.verify import verify_root


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two recorder runs of the simulator, one after the other, rotating every 0.25 s:
    many parts of two runs in each of two partitions. Returns the root and the date."""
    tmp = tmp_path_factory.mktemp("rec")
    for seed in (1, 2):
        sim = Simulator(SimConfig(rate=500.0, seed=seed, heartbeat_s=0.5)).start()
        record_sim(sim, tmp, duration=2.0, rotate=0.25)
    (date,) = {p.date for p in contract.list_partitions(tmp / "data")}
    return tmp / "data", date


def copy(root: Path, where: Path) -> Path:
    shutil.copytree(root, where)
    return where


def cli(*args: str) -> str:
    done = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def outputs(root: Path | str, date: str, where: Path) -> tuple[str, bytes]:
    """The replay's printed report and snapshot file, and the gap report, of *date*."""
    out = where / "snap.parquet"
    text = cli("replay", "--date", date, "--data", str(root), "--no-cache", "--out", str(out))
    text += cli("gaps", "--date", date, "--data", str(root), "--no-cache")
    return text.replace(str(out), "OUT"), out.read_bytes()


def problems(root: Path) -> list:
    return [p for _, found in verify_root(root) for p in found]


def parts_of(root: Path | str) -> dict[str, list[str]]:
    return {
        p.symbol: [f.path.name for f in contract.list_parts(as_root(root), p)]
        for p in contract.list_partitions(root)
    }


def test_one_part_per_partition_and_the_same_replay(recorded: tuple[Path, str], tmp_path: Path):
    root = copy(recorded[0], tmp_path / "data")
    date = recorded[1]
    before = parts_of(root)
    assert all(len(names) >= 10 for names in before.values()), before
    assert len({n.split("-")[2] for names in before.values() for n in names}) == 2
    expected = outputs(root, date, tmp_path)
    text = cli("compact", "--date", date, "--force", "--data", str(root))
    assert "compacted 2 of 2 partitions" in text
    after = parts_of(root)
    assert all(len(names) == 1 and "-compact." in names[0] for names in after.values()), after
    assert sorted(p.name for p in root.rglob("*.parquet")) == sorted(
        n for names in after.values() for n in names
    )
    assert outputs(root, date, tmp_path) == expected
    assert problems(root) == []
    # Again: nothing to do, nothing changed.
    files = {p: p.read_bytes() for p in root.rglob("*.parquet")}
    assert "already one part" in cli("compact", "--date", date, "--force", "--data", str(root))
    assert {p: p.read_bytes() for p in root.rglob("*.parquet")} == files


def test_overlapping_runs_merge_as_replay_reads_them(tmp_path: Path):
    for run in (market(Run("a")), market(Run("b", lag=0.3), out=(6, 9))):
        rows = run.rows
        for n, k in enumerate(range(0, len(rows), 7)):
            chunk = rows_to_table(rows[k : k + 7])
            contract.write_part(tmp_path, "gemini", "BTCUSD", run.run_id, n, chunk)
    partition = contract.list_partitions(tmp_path)[0]
    parts = contract.list_parts(tmp_path, partition)
    rows = contract.read_parts(parts)
    day = replay.open(OVERLAP_DATE, "BTCUSD", data=tmp_path, cache=False)
    done = compact_partition(tmp_path, partition)
    assert done.parts == len(parts) and done.removed == len(parts) and done.rows == len(rows)
    (merged,) = contract.list_parts(tmp_path, partition)
    assert contract.read_parts([merged]).equals(rows)
    again = replay.open(OVERLAP_DATE, "BTCUSD", data=tmp_path, cache=False)
    assert again.book_snapshots(depth=5).equals(day.book_snapshots(depth=5))
    assert again.gap_list() == day.gap_list()
    assert again.trades().equals(day.trades())


def test_a_crash_at_any_step_reads_one_copy_and_a_rerun_finishes(
    recorded: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    root = copy(recorded[0], tmp_path / "data")
    date = recorded[1]
    expected = outputs(root, date, tmp_path)
    partition = contract.list_partitions(root)[0]
    originals = sorted(f.path for f in contract.list_parts(root, partition))
    # Stop right after the merged part is written: no part removed yet.
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)
    compact_partition(root, partition)
    monkeypatch.undo()
    assert all(p.exists() for p in originals)
    assert len(contract.list_parts(root, partition)) == 1  # the merged part only
    assert outputs(root, date, tmp_path) == expected
    found = [p.what for p in problems(root)]
    assert found == ["replaced by a merged part; run tickrec compact to remove it"] * len(
        originals
    )
    # Stop in the middle of the removals.
    for path in originals[: len(originals) // 2]:
        path.unlink()
    assert outputs(root, date, tmp_path) == expected
    text = cli("compact", "--date", date, "--force", "--data", str(root))
    assert f"already merged; {len(originals) - len(originals) // 2} replaced parts removed" in text
    assert not any(p.exists() for p in originals)
    assert problems(root) == []
    assert outputs(root, date, tmp_path) == expected


def test_a_late_part_is_read_beside_the_merged_part(recorded: tuple[Path, str], tmp_path: Path):
    root = copy(recorded[0], tmp_path / "data")
    date = recorded[1]
    expected = outputs(root, date, tmp_path)
    partition = contract.list_partitions(root)[0]
    last = contract.list_parts(root, partition)[-1]
    aside = tmp_path / last.path.name
    shutil.move(last.path, aside)  # the last part arrives after the merge
    compact_partition(root, partition)
    shutil.move(aside, last.path)
    assert len(contract.list_parts(root, partition)) == 2
    assert outputs(root, date, tmp_path) == expected
    compact_partition(root, partition)
    assert len(contract.list_parts(root, partition)) == 1
    assert outputs(root, date, tmp_path) == expected


def test_compaction_on_s3(recorded: tuple[Path, str], tmp_path: Path):
    local, date = recorded
    expected = outputs(local, date, tmp_path)
    with s3.serve() as server:
        uri = server.bucket("compact") + "/data"
        root = as_root(uri)
        pafs.copy_files(str(local / "raw"), "compact/data/raw", destination_filesystem=root.fs)
        def keys() -> list[str]:  # copy_files leaves directory markers too
            return [k for k in server.keys("compact") if k.endswith(".parquet")]

        assert len(keys()) == sum(len(v) for v in parts_of(local).values())
        cli("compact", "--date", date, "--force", "--data", uri)
        merged = keys()
        assert len(merged) == 2 and all("-compact." in k for k in merged), merged
        assert outputs(uri, date, tmp_path) == expected


def test_a_date_not_over_is_refused_without_force(recorded: tuple[Path, str]):
    with pytest.raises(UsageError, match="not over yet"):
        compact(recorded[0], recorded[1])


def test_a_damaged_part_is_refused_and_nothing_written(recorded: tuple[Path, str], tmp_path: Path):
    root = copy(recorded[0], tmp_path / "data")
    partition = contract.list_partitions(root)[0]
    first = contract.list_parts(root, partition)[0].path
    first.write_bytes(first.read_bytes()[:-20])  # the footer cut off
    names = sorted(p.name for p in first.parent.iterdir())
    with pytest.raises(CorruptFileError, match="not compacted"):
        compact_partition(root, partition)
    assert sorted(p.name for p in first.parent.iterdir()) == names
