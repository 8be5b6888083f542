"""Whole-program measurements, each in a child process: ``tickrec replay`` and the recorder.

Each child runs under :mod:`bench.launcher`, a small standard-library
process, so its peak resident memory is its own: a process forked straight
from the harness would start its ``ru_maxrss`` at the harness's peak.

- :func:`replay_day`: ``python -m tickrec replay --date D`` over a synthetic
  day, first with any ``{root}/normalized`` cache removed (from raw), then
  again with whatever cache the first run left (docs/architecture.md section 2.1);
  the pair is repeated, each time from raw again.
- :func:`replay_workers`: ``tickrec replay --date D`` over a dataset holding
  the day under two symbols, with ``--workers 1`` and ``--workers 2``, from
  raw (``--no-cache``) and from the normalized cache; the snapshot files of
  the two worker counts must be byte-identical;
- :func:`record_sim`: the loopback simulator (:mod:`tickrec.sim`) in this
  process at a given event rate, and ``python -m tickrec record`` capturing
  it for a fixed time. Loss is every break in the stored v1
  ``socket_sequence`` (a message the recorder missed or dropped); the result
  counts as sustained only with zero loss. Frames the simulator sent that
  were still in flight when the recorder closed its connection are shown,
  but are not loss. The recorder is started directly (its peak memory is
  not reported), and its CPU time is read from ``/proc`` while it captures,
  so the CPU figures leave out start-up and shutdown.
"""

from __future__ import annotations

import hashlib
import json
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
import pyarrow.parquet as pq

from bench.synth import Day
from tickrec.contract import list_partitions, list_parts, read_partition, write_part

__all__ = [
    "Child",
    "EndToEnd",
    "RecordResult",
    "Unavailable",
    "Workers",
    "add_day",
    "record_sim",
    "replay_day",
    "replay_workers",
]

_LAUNCHER = Path(__file__).with_name("launcher.py")


class Unavailable(Exception):
    """A measurement cannot run in this environment; the message says why."""


@dataclass(frozen=True)
class Child:
    """How one child process ran."""

    seconds: float
    peak_bytes: int
    """Peak resident memory of the largest single process."""
    tree_bytes: int
    """Peak of the summed resident memory of the whole process tree (sampled)."""
    cpu_seconds: float
    returncode: int
    stderr_tail: str


def _tickrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "tickrec", *args]


def run_child(argv: list[str], timeout: float) -> Child:
    """Run *argv* through :mod:`bench.launcher`; its wall time, peak memory and CPU time."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", str(_LAUNCHER), str(timeout), *argv],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            check=False,
        )
        err.seek(0)
        lines = err.read().strip().splitlines()
    if proc.returncode != 0:
        raise Unavailable(f"the launcher failed: {lines[-1] if lines else proc.returncode}")
    report = json.loads(proc.stdout)
    return Child(
        seconds=report["seconds"],
        peak_bytes=report["peak_bytes"],
        tree_bytes=report["tree_bytes"],
        cpu_seconds=report["cpu_seconds"],
        returncode=report["returncode"],
        stderr_tail=lines[-1] if lines else "",
    )


def _has_command(name: str) -> str | None:
    """None if ``tickrec NAME`` exists, else why not."""
    proc = subprocess.run(_tickrec(name, "--help"), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"tickrec {name} is not available ({tail.strip(' │')})"
    return None


@dataclass(frozen=True)
class EndToEnd:
    """Runs of ``tickrec replay --date``: from raw, and again with the cache the first left."""

    raw: list[Child]
    again: list[Child]
    cached: bool
    """Whether every first run left a normalized cache."""


def replay_day(day: Day, reps: int = 1, timeout: float = 1800.0) -> EndToEnd:
    """Replay *day* end to end twice, *reps* times.

    Each first run starts with no ``normalized`` cache; the second keeps what
    the first left.
    """
    why = _has_command("replay")
    if why:
        raise Unavailable(why)
    raw, again, cached = [], [], True
    for _ in range(reps):
        first, second, left = _replay_twice(day, timeout)
        raw.append(first)
        again.append(second)
        cached = cached and left
    return EndToEnd(raw, again, cached)


def _replay_twice(day: Day, timeout: float) -> tuple[Child, Child, bool]:
    """From raw, then again: ``(first run, second run, cache left by the first)``."""
    cache = day.root / "normalized"
    shutil.rmtree(cache, ignore_errors=True)
    runs = []
    cached = False
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


#: The second symbol of the two-symbol dataset (a copy of the day's rows).
SECOND_SYMBOL = "ETHUSD"


def add_day(day: Day, root: Path, symbols: tuple[str, ...]) -> None:
    """Put the raw parts of *day* into the dataset *root* under each of *symbols*.

    The day's own symbol gets hard links to its parts; any other gets the
    same rows rewritten with their own footer.
    """
    for part in list_parts(day.root, next(iter(list_partitions(day.root)))):
        assert isinstance(part.path, Path)  # a local day
        table = None
        for symbol in symbols:
            if symbol == day.symbol:
                link = root / part.path.relative_to(day.root)
                link.parent.mkdir(parents=True, exist_ok=True)
                os.link(part.path, link)
                continue
            if table is None:
                table = pq.read_table(part.path).replace_schema_metadata(None)
            write_part(root, day.venue, symbol, part.run_id, part.n, table, part.extra)


def _two_symbols(day: Day) -> Path:
    """A dataset root with the day's raw parts under its own symbol and :data:`SECOND_SYMBOL`.

    Made once next to the day; ``done`` is written last.
    """
    root = day.root.with_name(day.root.name + "-2sym")
    if (root / "done").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    add_day(day, root, (day.symbol, SECOND_SYMBOL))
    (root / "done").write_text("")
    return root


@dataclass(frozen=True)
class Workers:
    """``tickrec replay`` of two symbols with one and with two worker processes."""

    raw: dict[int, Child]
    """From raw (``--no-cache``), by worker count."""
    cached: dict[int, Child]
    """From the normalized cache, by worker count."""
    identical: bool
    """Whether every run wrote the same snapshot bytes."""


def replay_workers(day: Day, timeout: float = 1800.0) -> Workers:
    """Replay *day* and a copy under a second symbol with ``--workers`` 1 and 2 (see module)."""
    why = _has_command("replay")
    if why:
        raise Unavailable(why)
    root = _two_symbols(day)
    shutil.rmtree(root / "normalized", ignore_errors=True)
    runs: dict[tuple[bool, int], Child] = {}
    outputs = set()
    with tempfile.TemporaryDirectory(prefix="tickrec-bench-out-") as out:
        # The first cached run writes the cache; the timed cached runs come after it.
        for cache, workers in ((False, 1), (False, 2), (True, 1), (True, 1), (True, 2)):
            path = Path(out) / "snapshots.parquet"
            argv = _tickrec(
                "replay",
                "--date",
                day.date,
                "--venue",
                day.venue,
                "--data",
                str(root),
                "--out",
                str(path),
                "--workers",
                str(workers),
                *(() if cache else ("--no-cache",)),
            )
            child = run_child(argv, timeout)
            if child.returncode != 0:
                raise Unavailable(f"tickrec replay --workers {workers} failed: {child.stderr_tail}")
            runs[(cache, workers)] = child
            outputs.add(hashlib.sha256(path.read_bytes()).hexdigest())
            path.unlink()
    return Workers(
        raw={w: c for (cache, w), c in runs.items() if not cache},
        cached={w: c for (cache, w), c in runs.items() if cache},
        identical=len(outputs) == 1,
    )


@dataclass(frozen=True)
class RecordResult:
    """One recorder run against the simulator."""

    rate: float
    seconds: float
    sent: int
    recorded: int
    breaks: int
    cpu_seconds: float
    """CPU time (user + system) of the whole run, start-up and shutdown included."""
    steady_cpu: float
    """CPU time per second of wall time while capturing, start-up and shutdown excluded."""
    steady_msgs_per_s: float
    """Messages the simulator sent per second over the same span."""

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
        """Recorder CPU time while capturing per 1,000 messages, in ms."""
        return 1e6 * self.steady_cpu / max(self.steady_msgs_per_s, 1.0)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def record_sim(rate: float, seconds: float) -> RecordResult:
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
        # Started directly, not through the launcher, to read its CPU time while it
        # captures: start-up (imports, the symbol check, recovery) and shutdown
        # (Parquet) are fixed costs of a run, not of the rate being measured.
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
            try:
                time.sleep(min(3.0, seconds / 4))
                cpu0, t0, sent0 = _cpu_seconds(proc.pid), time.monotonic(), sim.stats.messages
                time.sleep(max(0.5, seconds - min(3.0, seconds / 4) - 1.0))
                cpu1, t1, sent1 = _cpu_seconds(proc.pid), time.monotonic(), sim.stats.messages
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            lines = err.read().strip().splitlines()
        sent = sim.stats.messages - before
        if proc.returncode != 0:
            raise Unavailable(f"tickrec record failed: {lines[-1] if lines else proc.returncode}")
        recorded, breaks = _stored(Path(data))
    return RecordResult(
        rate,
        seconds,
        sent,
        recorded,
        breaks,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        steady_cpu=(cpu1 - cpu0) / (t1 - t0),
        steady_msgs_per_s=(sent1 - sent0) / (t1 - t0),
    )
