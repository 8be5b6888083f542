"""The command line as a user meets it: listings, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tickrec import contract
from tickrec.contract import Row

DAY = 1_795_478_400_000_000_000  # 2026-11-24T00:00:00Z
SEC = 1_000_000_000


def tickrec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickrec", *args], capture_output=True, text=True, check=False
    )


def write(
    root: Path, symbol: str, run_id: str, n: int, start_ns: int, count: int, seq0: int
) -> Path:
    rows = [
        Row(start_ns + i * SEC, seq0 + i, run_id, 1, "gemini.v1", "ws", "{}") for i in range(count)
    ]
    return contract.write_part(root, "gemini", symbol, run_id, n, contract.rows_to_table(rows))


def test_ls_lists_partitions_and_files_from_footers(tmp_path: Path) -> None:
    write(tmp_path, "BTCUSD", "run-a", 0, DAY + 3600 * SEC, 3, 0)
    write(tmp_path, "BTCUSD", "run-a", 1, DAY + 3700 * SEC, 2, 3)
    write(tmp_path, "ETHUSD", "run-a", 0, DAY + 7200 * SEC + 5_000_000, 1, 0)
    done = tickrec("ls", "--data", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "gemini 2026-11-24 BTCUSD: 2 files, 5 rows, 01:00:00.000..01:01:41.000 UTC"
    assert lines[1].startswith(f"  part-{DAY + 3600 * SEC}-run-a-0.parquet  rows=3  seq=0..2")
    assert lines[3] == "gemini 2026-11-24 ETHUSD: 1 file, 1 row, 02:00:00.005..02:00:00.005 UTC"
    only = tickrec("ls", "--data", str(tmp_path), "--symbol", "ethusd")
    assert only.stdout.splitlines()[0].startswith("gemini 2026-11-24 ETHUSD")
    none = tickrec("ls", "--data", str(tmp_path), "--date", "2026-11-25")
    assert none.returncode == 0
    assert none.stdout.startswith("no partitions for date 2026-11-25 under ")
    assert none.stdout.rstrip().endswith("it holds gemini 2026-11-24")
    bad_date = tickrec("ls", "--data", str(tmp_path), "--date", "2026-13-45")
    assert bad_date.returncode == 2 and "invalid date" in bad_date.stderr
    empty = tickrec("ls", "--data", str(tmp_path / "nowhere"))
    assert empty.returncode == 1 and empty.stderr.startswith("error: no dataset under")


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    bad_name = tickrec("ls", "--data", str(tmp_path), "--venue", "../etc")
    assert bad_name.returncode == 2
    assert bad_name.stderr.count("\n") == 1 and bad_name.stderr.startswith("error: invalid venue")

    part = write(tmp_path, "BTCUSD", "run-a", 0, DAY, 2, 0)
    part.write_bytes(b"garbage")
    corrupt = tickrec("ls", "--data", str(tmp_path))
    assert corrupt.returncode == 1
    assert corrupt.stderr.count("\n") == 1 and str(part) in corrupt.stderr
    assert "Traceback" not in corrupt.stderr

    debug = tickrec("--debug", "ls", "--data", str(tmp_path))
    assert debug.returncode == 1 and "Traceback" in debug.stderr

    for command in ("replay", "gaps"):
        not_a_date = tickrec(command, "--date", "yesterday", "--data", str(tmp_path))
        assert not_a_date.returncode == 2 and "invalid date 'yesterday'" in not_a_date.stderr

    unknown = tickrec("ls", "--bogus")
    assert unknown.returncode == 2 and "No such option" in unknown.stderr
