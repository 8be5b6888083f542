"""Byte-identical outputs: twice in one process, in separate processes, and in any chunking."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import realdata
from conftest import V2_DATE, sha

import replay
from replay import report

TICKREC = str(Path(sys.executable).with_name("tickrec"))


def in_process(v2_root: Path, out: Path, every: str = "1s", chunk_size: int = 1 << 20) -> str:
    symbols = report.resolve_symbols(v2_root, "gemini", V2_DATE, None)
    tables = {
        s: replay.open(V2_DATE, s, data=v2_root, chunk_size=chunk_size).snapshot_table(every=every)
        for s in symbols
    }
    params = {"venue": "gemini", "date": V2_DATE, "depth": 10, "every": every}
    return sha(report.write_snapshots(tables, out, params))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TICKREC, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_twice_in_one_process(v2_root: Path, tmp_path: Path, suffix: str):
    assert in_process(v2_root, tmp_path / f"a{suffix}") == in_process(
        v2_root, tmp_path / f"b{suffix}"
    )


@pytest.mark.parametrize("every", ["1s", "0"])
def test_chunk_size_does_not_change_a_byte(v2_root: Path, tmp_path: Path, every: str):
    hashes = {
        in_process(v2_root, tmp_path / f"c{n}.parquet", every, chunk_size=n)
        for n in (1, 7, 1 << 20)
    }
    assert len(hashes) == 1


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("every", ["1s", "0"])
def test_snapshot_table_is_the_snapshot_frame(v2_root: Path, every: str, exact: bool):
    """The Arrow table the command line writes holds what the DataFrame holds."""
    day = replay.open(V2_DATE, "FILUSD", data=v2_root)
    frame = day.book_snapshots(every=every, exact=exact)
    want = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    got = day.snapshot_table(every=every, exact=exact)
    assert got.num_rows > 0 and got.schema == want.schema
    assert got.equals(want)
    assert got.column("bid_px_9").null_count == (0 if exact else frame["bid_px_9"].isna().sum())


@pytest.mark.parametrize("cache", ["--no-cache", "--cache"])
def test_replay_to_parquet_needs_no_pandas(v2_root: Path, tmp_path: Path, cache: str):
    """pandas costs half a second to import; a replay to Parquet runs with it unavailable,
    decoding the raw files as well as reading the normalized cache."""
    out = tmp_path / "nopandas.parquet"
    extra = ", '--no-cache'" if cache == "--no-cache" else ""
    code = (
        # pandas cannot be imported (pyarrow's own probe for it must see an ImportError).
        "import sys\n"
        "class NoPandas:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'pandas':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoPandas())\n"
        "from tickrec.cli import main\n"
        f"sys.argv = ['tickrec', 'replay', '--date', '{V2_DATE}', '--data', {str(v2_root)!r},"
        f" '--out', {str(out)!r}{extra}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sha(out) == in_process(v2_root, tmp_path / "lib.parquet")


def test_chunk_size_does_not_change_quotes_or_gaps(v2_root: Path):
    whole = replay.open(V2_DATE, "FILUSD", data=v2_root)
    small = replay.open(V2_DATE, "FILUSD", data=v2_root, chunk_size=3)
    pd.testing.assert_frame_equal(whole.quotes(), small.quotes())
    assert whole.gap_list() == small.gap_list()
    assert whole.valid_ns == small.valid_ns


def test_separate_processes_match_each_other_and_the_library(v2_root: Path, tmp_path: Path):
    outs = [tmp_path / "p1.parquet", tmp_path / "p2.parquet"]
    for out in outs:
        done = run_cli("replay", "--date", V2_DATE, "--data", str(v2_root), "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert "FILUSD" in done.stdout and f"wrote {out}" in done.stdout
    assert sha(outs[0]) == sha(outs[1]) == in_process(v2_root, tmp_path / "lib.parquet")
    table = pd.read_parquet(outs[0])
    assert table.columns[0] == "symbol" and table.columns[-1] == "valid"
    assert sorted(table["symbol"].unique()) == sorted(realdata_symbols(v2_root))


def realdata_symbols(v2_root: Path) -> list[str]:
    return report.resolve_symbols(v2_root, "gemini", V2_DATE, None)


def test_cli_errors_are_one_line(v2_root: Path):
    done = run_cli("replay", "--date", "2021-06-25", "--data", str(v2_root))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "2021-06-24" in done.stderr
    done = run_cli("gaps", "--date", V2_DATE, "--symbol", "NOPE", "--data", str(v2_root))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "BTCGBP" in done.stderr
    done = run_cli("replay", "--date", V2_DATE, "--data", str(v2_root), "--out", "x.txt")
    assert done.returncode == 2 and ".parquet or .csv" in done.stderr


def test_cli_gaps_report(tmp_path: Path):
    recv = realdata.import_gemini_v1(tmp_path, drop=[5])
    done = run_cli("gaps", "--date", "2018-09-26", "--data", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "BTCUSD: 2 gaps",
        "  unsynced          2018-09-26T15:00:17.622000000Z .. 2018-09-26T15:00:20.222000000Z"
        "         2.600 s  connected, but no snapshot yet on this connection",
        "  sequence          2018-09-26T15:00:20.222000000Z .. 2018-09-26T15:00:21.810000000Z"
        "         1.588 s  socket_sequence expected 6, got 7",
    ]
    assert recv[4] == 1537974020222000000


def test_out_in_an_unwritable_place_fails_before_any_work(tmp_path: Path):
    root = tmp_path / "data"
    realdata.import_gemini_v2(root)
    blocker = tmp_path / "file"
    blocker.write_text("")
    (tmp_path / "d.csv").mkdir()
    cases = [
        (blocker / "sub" / "x.parquet", f"cannot write in {blocker}"),
        (tmp_path / "d.csv", "is a directory"),
    ]
    if os.geteuid() != 0:  # root may write in any directory
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((locked / "x.parquet", f"cannot write in {locked}"))
    for out, why in cases:
        done = run_cli("replay", "--date", V2_DATE, "--data", str(root), "--out", str(out))
        assert done.returncode == 2 and why in done.stderr, done.stderr
    # refused before the replay: nothing was decoded, so no cache was written
    assert not (root / "normalized").exists()


def test_csv_times_keep_their_nanoseconds(v2_root: Path, tmp_path: Path):
    out = tmp_path / "s.csv"
    done = run_cli(
        "replay", "--date", V2_DATE, "--data", str(v2_root), "--every", "0", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    text = pd.read_csv(out, dtype={"ts": str})["ts"]
    day = replay.open(V2_DATE, "FILUSD", data=v2_root)
    want = day.snapshot_table(every="0").column("ts").cast(pa.int64()).to_pylist()
    got = pd.read_csv(out)
    got_ns = pd.to_datetime(got[got["symbol"] == "FILUSD"]["ts"]).astype("int64").tolist()
    assert got_ns == want and any(ns % 1000 for ns in want)  # sub-microsecond times survive
    assert text.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z").all()
