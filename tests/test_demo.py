"""``tickrec demo``: simulate, record, replay and report, as a new user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tickrec import contract


def test_demo_records_replays_and_reports_gaps(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    # Run from a folder holding a clone called "tickrec", as a new user may: a folder
    # named like a package must not shadow the real one in the demo's second process.
    (tmp_path / "tickrec" / "tickrec").mkdir(parents=True)
    (tmp_path / "replay").mkdir()
    tickrec = str(Path(sys.executable).with_name("tickrec"))  # the command, as a user runs it
    proc = subprocess.run(
        [tickrec, "demo", "--duration", "5s", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "simulator: ws://127.0.0.1:" in out
    # the summary table names both symbols, and the abrupt close shows as a disconnect
    table = out.split("replay of ", 1)[1]
    assert "BTCUSD  gemini.v1" in table and "ETHUSD  gemini.v1" in table
    assert "disconnect" in table.split("next:")[0].split("\n", 3)[3]
    assert f"tickrec ls --data {data}" in out
    # the kernels were compiled (or loaded) by the second process while recording
    assert "compiling the replay kernels ahead failed" not in out
    assert "Traceback" not in proc.stderr

    partitions = contract.list_partitions(data)
    assert sorted(p.symbol for p in partitions) == ["BTCUSD", "ETHUSD"]
    rows = sum(f.rows for p in partitions for f in contract.list_parts(data, p))
    recorded = int(out.split("\nrecorded ", 1)[1].split(" rows", 1)[0])
    # connection-wide rows are stored once per symbol partition, so files hold at least that many
    assert rows >= recorded > 100
    assert not any((data / "journal").iterdir())  # a clean stop leaves no journal behind
