"""Whole-program measurements, each in a child process: ``tickrec replay`` and the recorder.

A child's wall time is measured around it, and its peak resident memory and
CPU time come from ``wait4`` on that one child (``ru_maxrss`` in KiB on
Linux), so other children of the harness never blur them.

- :func:`replay_day`: ``python -m tickrec replay --date D`` over a synthetic
  day, first with any ``{root}/normalized`` cache removed (from raw), then
  again with whatever cache the first run left (ARCHITECTURE section 2.1).
- :func:`record_sim`: the loopback simulator (:mod:`tickrec.sim`) in this
  process at a given event rate, and ``python -m tickrec record`` capturing
  it for a fixed time. Loss is every break in the stored v1
  ``socket_sequence`` (a message the recorder missed or dropped); the result
  counts as sustained only with zero loss. Frames the simulator sent that
  were still in flight when the recorder closed its connection are shown,
  but are not loss.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.synth import Day
from tickrec.contract import list_partitions, read_partition

__all__ = ["Child", "RecordResult", "Unavailable", "record_sim", "replay_day"]

_POLL_S = 0.002


class Unavailable(Exception):
    """A measurement cannot run in this environment; the message says why."""


@dataclass(frozen=True)
class Child:
    """How one child process ran."""

    seconds: float
    peak_bytes: int
    cpu_seconds: float
    returncode: int
    stderr_tail: str


def _tickrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "tickrec", *args]


def run_child(argv: list[str], timeout: float) -> Child:
    """Run *argv*; its wall time, peak RSS and CPU time (from ``wait4``)."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(_POLL_S)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = err.read().strip().splitlines()
    return Child(
        seconds=seconds,
        peak_bytes=usage.ru_maxrss * 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        returncode=proc.returncode,
        stderr_tail=lines[-1] if lines else "",
    )


def _has_command(name: str) -> str | None:
    """None if ``tickrec NAME`` exists, else why not."""
    proc = subprocess.run(_tickrec(name, "--help"), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"tickrec {name} is not available ({tail.strip(' │')})"
    return None


def replay_day(day: Day, timeout: float = 1800.0) -> tuple[Child, Child, bool]:
    """Replay *day* end to end twice: ``(from raw, second run, cache present)``.

    The first run starts with no ``normalized`` cache; the second keeps what
    the first left, and the flag says whether there was any.
    """
    why = _has_command("replay")
    if why:
        raise Unavailable(why)
    cache = day.root / "normalized"
    shutil.rmtree(cache, ignore_errors=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="tickrec-bench-out-") as out:
        for k in range(2):
            argv = _tickrec(
                "replay",
                "--date",
                day.date,
                "--symbol",
                day.symbol,
                "--venue",
                day.venue,
                "--data",
                str(day.root),
                "--out",
                str(Path(out) / f"snapshots-{k}.parquet"),
            )
            child = run_child(argv, timeout)
            if child.returncode != 0:
                raise Unavailable(f"tickrec replay failed: {child.stderr_tail}")
            runs.append(child)
            if k == 0:
                cached = cache.exists()
    return runs[0], runs[1], cached


@dataclass(frozen=True)
class RecordResult:
    """One recorder run against the simulator."""

    rate: float
    seconds: float
    sent: int
    recorded: int
    breaks: int
    cpu_seconds: float
    peak_bytes: int

    @property
    def in_flight(self) -> int:
        """Messages the simulator sent that were not stored (in flight at close)."""
        return max(self.sent - self.recorded, 0)

    @property
    def msgs_per_s(self) -> float:
        """Messages stored per second of capture."""
        return self.recorded / self.seconds

    @property
    def cpu_ms_per_1000(self) -> float:
        """Recorder CPU time (user + system) per 1,000 stored messages, in ms."""
        return 1e6 * self.cpu_seconds / max(self.recorded, 1)


def _stored(root: Path) -> tuple[int, int]:
    """``(websocket messages, socket_sequence breaks)`` stored under *root*."""
    recorded = breaks = 0
    for part in list_partitions(root):
        table = read_partition(root, part.venue, part.date, part.symbol)
        ws = table.filter(pc.equal(table.column("source").cast(pa.string()), "ws"))
        recorded += ws.num_rows
        conn = ws.column("conn_id").to_numpy()
        seq = ws.column("venue_seq").to_numpy(zero_copy_only=False)
        same = conn[1:] == conn[:-1]
        breaks += int(np.count_nonzero(same & (np.diff(seq) != 1)))
    return recorded, breaks


def record_sim(rate: float, seconds: float, timeout: float = 600.0) -> RecordResult:
    """Record the simulator at *rate* events/s on one v1 symbol for *seconds*."""
    why = _has_command("record")
    if why:
        raise Unavailable(why)
    try:
        from tickrec.sim import SimConfig, Simulator
    except ImportError as exc:
        raise Unavailable(f"tickrec.sim is not available ({exc})") from None
    with (
        tempfile.TemporaryDirectory(prefix="tickrec-bench-rec-") as data,
        Simulator(SimConfig(rate=rate, seed=1, symbols=("BTCUSD",))) as sim,
    ):
        before = sim.stats.messages
        argv = _tickrec(
            "record",
            "--symbols",
            "BTCUSD",
            "--protocol",
            "v1",
            "--url",
            sim.ws_url,
            "--rest-url",
            sim.rest_url,
            "--data",
            data,
            "--duration",
            f"{seconds}s",
        )
        child = run_child(argv, timeout)
        sent = sim.stats.messages - before
        if child.returncode != 0:
            raise Unavailable(f"tickrec record failed: {child.stderr_tail}")
        recorded, breaks = _stored(Path(data))
    return RecordResult(rate, seconds, sent, recorded, breaks, child.cpu_seconds, child.peak_bytes)
