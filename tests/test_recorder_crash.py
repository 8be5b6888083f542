"""The ``tickrec record`` process killed with SIGKILL, and stopped with SIGTERM.

The recorder runs as a real subprocess against the in-process simulator; the
simulator's ground truth (every frame it sent, with the time) is what the
dataset must hold after recovery.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import recorders

from tickrec import contract
from tickrec.sim import Simulator

Rows = list[dict[str, Any]]
FSYNC_S = 0.05
# Time for a frame sent by the simulator to be read, journaled and fsynced,
# beyond the fsync interval itself (generous for a loaded test machine).
MARGIN_S = 0.3


def _start(sim: Simulator, data: Path, rotate: str = "250ms") -> subprocess.Popen[str]:
    return recorders.start(
        sim.ws_url, sim.rest_url, data, protocol="v1", symbols=("BTCUSD", "ETHUSD"),
        fsync_s=FSYNC_S, rotate=rotate,
    )  # fmt: skip


def _tickrec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickrec", *args], capture_output=True, text=True, timeout=60
    )


def _ws_by_connection(data: Path, symbol: str) -> list[Rows]:
    """Recorded ws rows of *symbol*, one list per (run, connection), in time order."""
    (part,) = [p for p in contract.list_partitions(data) if p.symbol == symbol]
    rows: Rows = contract.read_partition(data, part.venue, part.date, symbol).to_pylist()
    by_run: dict[str, Rows] = {}
    for r in rows:
        by_run.setdefault(r["run_id"], []).append(r)
    for run_rows in by_run.values():  # nothing twice, nothing out of order
        seqs = [r["seq"] for r in run_rows]
        assert seqs == sorted(set(seqs))
    conns: dict[tuple[str, int], Rows] = {}
    for r in rows:
        if r["source"] == "ws":
            conns.setdefault((r["run_id"], r["conn_id"]), []).append(r)
    return sorted(conns.values(), key=lambda c: c[0]["recv_ts"])


def test_sigkill_then_recover_keeps_everything_fsynced(
    sim_factory: Callable[..., Simulator], tmp_path: Path, read_jsonl: Callable[[Path], Rows]
) -> None:
    sim = sim_factory(symbols=("BTCUSD", "ETHUSD"), rate=2000, truth_dir=tmp_path / "truth")
    data = tmp_path / "data"
    kills: list[int] = []
    known: set[str] = set()
    for run_for in (1.0, 1.3):
        proc = _start(sim, data)
        recorders.wait_recording(data, proc, known)
        time.sleep(run_for)
        kills.append(time.time_ns())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = _tickrec("recover", "--data", str(data))
    assert done.returncode == 0, done.stderr
    sim.stop()
    assert not any((data / "journal").iterdir())
    truth: dict[int, Rows] = {}
    for m in read_jsonl(tmp_path / "truth" / "messages.jsonl"):
        truth.setdefault(m["conn"], []).append(m)
    for symbol in ("BTCUSD", "ETHUSD"):
        sent = [c for _, c in sorted(truth.items()) if f"/{symbol}?" in c[0]["path"]]
        stored = _ws_by_connection(data, symbol)
        assert len(sent) == len(stored) == 2
        for msgs, rows, kill_ns in zip(sent, stored, kills, strict=True):
            payloads = [r["payload"] for r in rows]
            assert payloads == [m["msg"] for m in msgs[: len(payloads)]]  # a byte-exact prefix
            durable = kill_ns - int((FSYNC_S + MARGIN_S) * 1e9)
            must = sum(1 for m in msgs if m["t_ns"] < durable)
            assert len(payloads) >= must > 500


def test_sigterm_stops_cleanly_with_closed_files(
    sim_factory: Callable[..., Simulator], tmp_path: Path, read_jsonl: Callable[[Path], Rows]
) -> None:
    sim = sim_factory(symbols=("BTCUSD", "ETHUSD"), truth_dir=tmp_path / "truth")
    data = tmp_path / "data"
    proc = _start(sim, data)
    recorders.wait_recording(data, proc, set())
    time.sleep(0.8)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped (SIGTERM)" in out
    sim.stop()
    assert not (data / "journal").exists() or not any((data / "journal").iterdir())
    truth = read_jsonl(tmp_path / "truth" / "messages.jsonl")
    for symbol in ("BTCUSD", "ETHUSD"):
        (rows,) = _ws_by_connection(data, symbol)
        assert [r["payload"] for r in rows] == [
            m["msg"] for m in truth if f"/{symbol}?" in m["path"]
        ]
        (part,) = [p for p in contract.list_partitions(data) if p.symbol == symbol]
        files = contract.list_parts(data, part)
        assert len(files) >= 2  # rotated every 250 ms
        table = contract.read_parts(files)
        events = [
            json.loads(p)
            for p, s in zip(
                table.column("payload").to_pylist(), table.column("source").to_pylist(), strict=True
            )
            if s == "event"
        ]
        assert events[-2]["event"] == "shutdown" and events[-2]["why"] == "SIGTERM"
        assert events[-1] == {**events[-1], "event": "disconnect", "code": 1000}


def test_a_second_ctrl_c_stops_at_once_and_says_where_the_journal_is(
    sim_factory: Callable[..., Simulator], tmp_path: Path, read_jsonl: Callable[[Path], Rows]
) -> None:
    sim = sim_factory(symbols=("BTCUSD", "ETHUSD"), rate=2000, truth_dir=tmp_path / "truth")
    data = tmp_path / "data"
    # One segment for the whole run, so the clean stop has seconds of rows to convert:
    # the second Ctrl-C comes while it does.
    proc = _start(sim, data, rotate="1h")
    recorders.wait_recording(data, proc, set())
    time.sleep(4.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)  # two signals at once could arrive as one
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: recording stopped at once;")
    assert f"under {data / 'journal'}, left for `tickrec recover`" in last
    done = _tickrec("recover", "--data", str(data))
    assert done.returncode == 0, done.stderr
    sim.stop()
    truth = read_jsonl(tmp_path / "truth" / "messages.jsonl")
    for symbol in ("BTCUSD", "ETHUSD"):
        (rows,) = _ws_by_connection(data, symbol)
        payloads = [r["payload"] for r in rows]
        sent = [m["msg"] for m in truth if f"/{symbol}?" in m["path"]]
        assert len(payloads) > 100 and payloads == sent[: len(payloads)]
