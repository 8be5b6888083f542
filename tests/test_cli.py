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
    assert none.returncode == 1  # as replay's for a date with no data
    assert none.stderr.startswith("error: no partitions for date 2026-11-25 under ")
    assert none.stderr.rstrip().endswith("it holds gemini 2026-11-24")
    bad_date = tickrec("ls", "--data", str(tmp_path), "--date", "2026-13-45")
    assert bad_date.returncode == 2 and "invalid date '2026-13-45': no such day" in bad_date.stderr
    bad_form = tickrec("ls", "--data", str(tmp_path), "--date", "26-11-24")
    assert bad_form.returncode == 2 and "expected YYYY-MM-DD" in bad_form.stderr
    empty = tickrec("ls", "--data", str(tmp_path / "nowhere"))
    assert empty.returncode == 1 and empty.stderr.startswith("error: no dataset under")


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    bad_name = tickrec("ls", "--data", str(tmp_path), "--venue", "../etc")
    assert bad_name.returncode == 2
    assert bad_name.stderr.count("\n") == 1 and bad_name.stderr.startswith("error: invalid venue")

    part = write(tmp_path, "BTCUSD", "run-a", 0, DAY, 2, 0)
    good = write(tmp_path, "BTCUSD", "run-a", 1, DAY + 10 * SEC, 3, 2)
    other = write(tmp_path, "ETHUSD", "run-a", 0, DAY, 1, 0)
    part.write_bytes(b"garbage")
    corrupt = tickrec("ls", "--data", str(tmp_path))
    # the bad file is shown and left out; the rest of the dataset is still listed
    assert corrupt.returncode == 1
    lines = corrupt.stdout.splitlines()
    assert lines[0].startswith("gemini 2026-11-24 BTCUSD: 1 file, 3 rows, ")
    assert lines[0].endswith(", 1 bad")
    assert lines[1].startswith(f"  {good.name}  rows=3")
    assert lines[2].startswith(f"  bad: {part}: not a valid Parquet file")
    assert lines[3].startswith("gemini 2026-11-24 ETHUSD: 1 file, 1 row") and other.name in lines[4]
    assert corrupt.stderr == (
        "error: 1 bad file left out above (tickrec verify checks every file; "
        "replay --skip-bad replays without them)\n"
    )
    assert "Traceback" not in corrupt.stderr

    debug = tickrec("--debug", "ls", "--data", str(tmp_path))
    assert debug.returncode == 1 and "Traceback" in debug.stderr

    for command in ("replay", "gaps"):
        not_a_date = tickrec(command, "--date", "yesterday", "--data", str(tmp_path))
        assert not_a_date.returncode == 2 and "invalid date 'yesterday'" in not_a_date.stderr

    unknown = tickrec("ls", "--bogus")
    assert unknown.returncode == 2 and "No such option" in unknown.stderr


def test_option_errors_speak_of_options_in_one_line(tmp_path: Path) -> None:
    write(tmp_path, "BTCUSD", "run-a", 0, DAY, 2, 0)
    for args, why in (
        (("sim", "--abrupt"), "error: --abrupt needs --close-every\n"),
        (("sim", "--drop", "0.7", "--malformed", "0.7"), "error: --drop and --malformed: together"),
        (("replay", "--date", "2026-11-24", "--depth", "0"), "error: --depth: must be at least 1"),
        (("replay", "--date", "2026-11-24", "--workers", "0"), "error: --workers: must be at"),
        (("replay", "--date", "2026-02-30"), "error: invalid date '2026-02-30': no such day\n"),
    ):
        done = tickrec(*args, "--data", str(tmp_path)) if args[0] != "sim" else tickrec(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith(why) and done.stderr.count("\n") == 1, done.stderr


def test_a_run_that_never_receives_anything_fails(tmp_path: Path) -> None:
    """Under cron, a night with no data must not look like success."""
    done = subprocess.run(
        [
            sys.executable, "-m", "tickrec", "record", "--symbols", "BTCUSD",
            "--url", "ws://127.0.0.1:1", "--rest-url", "http://127.0.0.1:1",
            "--duration", "2s", "--status-every", "0", "--data", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "error: nothing was received for BTCUSD (from ws://127.0.0.1:1); see the log above"
    )
    assert "stopped (duration)" in done.stdout  # what it did store is still kept and said
