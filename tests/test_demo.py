"""``tickrec demo``: simulate, record, replay and report, as a new user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tickrec import contract
from tickrec.demo import DemoConfig, demo_faults


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
    # the summary table names both symbols, and counts disconnect gaps
    table = out.split("replay of ", 1)[1]
    assert "BTCUSD  gemini.v1" in table and "ETHUSD  gemini.v1" in table
    assert "disconnect" in table.split("next:")[0].split("\n", 3)[3]
    assert f"tickrec ls --data {data}" in out
    # the faults are announced as the simulator runs them, scaled to the 5 s run ...
    assert "fault: every connection stops sending for 0.5 s, 1 s after it opens" in out
    assert "fault: every connection aborted (TCP cut, no close frame) 2.25 s after it opens" in out
    assert "fault: 0.20% of frames dropped, at random" in out
    # ... and what fired is counted by the simulator; a stall comes 1 s into a connection
    fired = out.split("faults the simulator injected: ", 1)[1].split("\n", 1)[0]
    counts = {" ".join(w.split()[1:]): int(w.split()[0]) for w in fired.split(", ")}
    assert counts.get("stalls", counts.get("stall", 0)) >= 1, fired
    # a connection is aborted 2.25 s after it opens, and its loss is a gap of its own in
    # the list, apart from the end of the run's ("shutdown event")
    aborted = counts.get("connections aborted", counts.get("connection aborted", 0))
    assert aborted >= 1, fired
    assert "connection lost (disconnect event)" in out
    assert set(counts) <= {
        "connection aborted", "connections aborted", "stall", "stalls",
        "frame dropped", "frames dropped",
    }, fired  # fmt: skip
    assert "holds" not in out  # a fresh directory
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

    # a second demo into the same directory says that it adds to the first
    files = len(list((data / "raw").rglob("*.parquet")))
    again = subprocess.run(
        [tickrec, "demo", "--duration", "1s", "--no-faults", "--data", str(data)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{data} holds {files} files of an earlier run" in again.stdout
    assert "this one adds to them" in again.stdout and "fault:" not in again.stdout


def test_demo_faults_scale_with_the_run_and_stalls_stay_silences() -> None:
    """Each connection stalls twice before its abort, and a stall never trips the watchdog."""
    for duration in (5.0, 20.0, 120.0):
        faults = demo_faults(DemoConfig(Path("d"), duration=duration))
        assert faults.stall_every * 2 < faults.close_every < faults.stall_every * 3
        assert faults.stall_for < 2.0  # the demo's stale_after
        assert faults.drop * 200.0 * duration == pytest.approx(2.0)  # two frames a run
    assert demo_faults(DemoConfig(Path("d"), protocol="v2")).drop == 0
    assert demo_faults(DemoConfig(Path("d"), faults=False)).describe() == []
