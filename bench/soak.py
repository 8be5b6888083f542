"""The soak benchmark: the recorder against the simulator for minutes, across rotations.

The simulator (``python -m tickrec sim --truth``) runs in its own process at
a given event rate on one v1 symbol, and ``python -m tickrec record`` in
another with a short ``--rotate``, so several journal segments are converted
to Parquet while it captures. Every ``_SAMPLE_S`` the harness reads, from
``/proc``, the resident memory of the recorder's whole process tree (so a
conversion child counts), its open file descriptors, its CPU time, and how
many journal segments are on disk: more than one means a closed segment is
being converted, which marks the sample as "during a conversion".

At the end each stored websocket row is matched, by its exact payload, to the
frame the simulator's truth file says it sent; the lag of a row is its
stored ``recv_ts`` minus that send time. Payloads that occur more than once in
the truth file are left out of the match (v1 frames carry a
``socket_sequence``, so only a reconnect repeats one).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tickrec.contract import list_partitions, read_partition

__all__ = ["Sample", "SoakResult", "soak"]

_SAMPLE_S = 0.25
_MIB = 1 << 20


@dataclass(frozen=True)
class Sample:
    """One reading of the recorder process tree."""

    t: float
    rss: int
    fds: int
    cpu: float
    segments: int


@dataclass
class SoakResult:
    """What one soak run measured."""

    rate: float
    seconds: float
    rotate: str
    samples: list[Sample] = field(default_factory=list)
    lag_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Lag of every matched row, in ms, in ``recv_ts`` order."""
    converting: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Whether each matched row was received while a segment was being converted."""
    sent: int = 0
    stored: int = 0
    unmatched: int = 0
    conversions: int = 0

    @property
    def peak_rss_mb(self) -> float:
        return max((s.rss for s in self.samples), default=0) / _MIB

    @property
    def rss_slope_mb_h(self) -> float:
        """Least-squares slope of RSS over the second half of the run, MB per hour."""
        half = self.samples[len(self.samples) // 2 :]
        if len(half) < 2:
            return 0.0
        t = np.array([s.t for s in half])
        rss = np.array([s.rss for s in half]) / _MIB
        return float(np.polyfit(t, rss, 1)[0] * 3600)

    @property
    def cpu_share(self) -> float:
        """Recorder CPU seconds per wall second over the sampled span."""
        if len(self.samples) < 2:
            return 0.0
        a, b = self.samples[0], self.samples[-1]
        return (b.cpu - a.cpu) / max(b.t - a.t, 1e-9)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the simulator did not start listening")


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(x) for x in fh.read().split()]
        except OSError:
            pass
    return pids


def _read_int_fields(pid: int) -> tuple[int, int, float]:
    """``(rss bytes, open fds, cpu seconds)`` of one process; zeros if it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError, ValueError):
        return 0, 0, 0.0
    return rss, fds, cpu


def _sample(pid: int, journal: Path, t0: float) -> Sample:
    rss = fds = 0
    cpu = 0.0
    for p in _tree(pid):
        r, f, c = _read_int_fields(p)
        rss, cpu = rss + r, cpu + c
        if p == pid:
            fds = f
    segments = sum(1 for _ in journal.glob("*/seg-*.tj")) if journal.is_dir() else 0
    return Sample(time.monotonic() - t0, rss, fds, cpu, segments)


def _sent_times(truth: Path) -> tuple[dict[int, int], int]:
    """Send time of every websocket frame by the hash of its text; repeated texts left out."""
    times: dict[int, int] = {}
    repeated: set[int] = set()
    n = 0
    with open(truth / "messages.jsonl", "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            n += 1
            key = hash(rec["msg"])
            if key in times:
                repeated.add(key)
            times[key] = rec["t_ns"]
    for key in repeated:
        del times[key]
    return times, n


def _stored_rows(root: Path) -> tuple[list[str], np.ndarray]:
    """Payloads and ``recv_ts`` (ns) of the stored websocket rows, in ``recv_ts`` order."""
    payloads: list[str] = []
    recv: list[np.ndarray] = []
    for part in list_partitions(root):
        table = read_partition(root, part.venue, part.date, part.symbol)
        ws = table.filter(pc.equal(table.column("source").cast(pa.string()), "ws"))
        payloads += ws.column("payload").to_pylist()
        recv.append(ws.column("recv_ts").cast(pa.int64()).to_numpy())
    ns = np.concatenate(recv) if recv else np.zeros(0, dtype=np.int64)
    order = np.argsort(ns, kind="stable")
    return [payloads[i] for i in order], ns[order]


def _converting_spans(samples: list[Sample], wall0_ns: int) -> list[tuple[int, int]]:
    """Wall-clock spans (ns) during which more than one journal segment was on disk."""
    spans: list[tuple[int, int]] = []
    start = None
    for s in samples:
        t_ns = wall0_ns + int(s.t * 1e9)
        if s.segments > 1 and start is None:
            start = t_ns - int(_SAMPLE_S * 1e9)  # it began at most one sample earlier
        elif s.segments <= 1 and start is not None:
            spans.append((start, t_ns))
            start = None
    if start is not None:
        spans.append((start, wall0_ns + int(samples[-1].t * 1e9)))
    return spans


def soak(rate: float, seconds: float, rotate: str = "20s") -> SoakResult:
    """Run the simulator and the recorder for *seconds*; measure the recorder throughout."""
    result = SoakResult(rate, seconds, rotate)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tickrec-soak-") as tmp:
        data, truth = Path(tmp) / "data", Path(tmp) / "truth"
        py = [sys.executable, "-m", "tickrec"]
        sim = subprocess.Popen(
            [*py, "sim", "--port", str(port), "--rate", str(rate), "--symbols", "BTCUSD",
             "--seed", "1", "--truth", str(truth), "--status-every", "1h"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_listening(port, sim)
            rec = subprocess.Popen(
                [*py, "record", "--symbols", "BTCUSD", "--protocol", "v1",
                 "--url", f"ws://127.0.0.1:{port}", "--rest-url", f"http://127.0.0.1:{port}",
                 "--data", str(data), "--rotate", rotate, "--duration", f"{seconds}s"],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            wall0_ns, t0 = time.time_ns(), time.monotonic()
            try:
                while rec.poll() is None:
                    result.samples.append(_sample(rec.pid, data / "journal", t0))
                    time.sleep(_SAMPLE_S)
            finally:
                if rec.poll() is None:
                    rec.kill()
                rec.wait()
            if rec.returncode != 0:
                raise RuntimeError(f"tickrec record exited with status {rec.returncode}")
        finally:
            sim.send_signal(signal.SIGINT)  # it flushes its truth files as it stops
            sim.wait(120)
        sent_at, result.sent = _sent_times(truth)
        payloads, recv_ns = _stored_rows(data)
    result.stored = len(payloads)
    sent = np.array([sent_at.get(hash(p), -1) for p in payloads], dtype=np.int64)
    matched = sent >= 0
    result.unmatched = int(np.count_nonzero(~matched))
    recv_ns, sent = recv_ns[matched], sent[matched]
    result.lag_ms = (recv_ns - sent) / 1e6
    spans = _converting_spans(result.samples, wall0_ns)
    result.conversions = len(spans)
    converting = np.zeros(len(recv_ns), dtype=bool)
    for a, b in spans:
        converting |= (recv_ns >= a) & (recv_ns < b)
    result.converting = converting
    return result


def _pct(lag: np.ndarray) -> str:
    if lag.size == 0:
        return "n/a"
    p50, p99 = np.percentile(lag, [50, 99])
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lag.max():.2f} ms ({lag.size:,} rows)"


#: Targets (issue 19): recv_ts lag at 5,000 msgs/s across rotations, and recorder memory.
LAG_P99_MS, LAG_MAX_MS, RSS_MB = 5.0, 50.0, 200.0


def report(r: SoakResult) -> tuple[str, bool]:
    """The soak figures as text, and whether every target is met."""
    lines = [
        f"soak: {r.rate:,.0f} msgs/s for {r.seconds:.0f} s, --rotate {r.rotate}; "
        f"{r.conversions} conversion spans seen",
        f"  sent {r.sent:,} frames, stored {r.stored:,} ws rows, {r.unmatched:,} not matched",
        f"  recv_ts lag, all rows:         {_pct(r.lag_ms)}",
        f"  recv_ts lag, during conversion: {_pct(r.lag_ms[r.converting])}",
        f"  RSS (tree): peak {r.peak_rss_mb:.0f} MB, slope {r.rss_slope_mb_h:+.0f} MB/h "
        f"(second half); CPU {100 * r.cpu_share:.0f}% of a core; fds peak "
        f"{max((s.fds for s in r.samples), default=0)}",
        "  RSS over time (MB): "
        + " ".join(
            f"{s.t:.0f}s:{s.rss / _MIB:.0f}" for s in r.samples[:: max(1, len(r.samples) // 12)]
        ),
    ]
    lag = r.lag_ms
    ok = bool(
        lag.size
        and np.percentile(lag, 99) <= LAG_P99_MS
        and lag.max() <= LAG_MAX_MS
        and r.peak_rss_mb < RSS_MB
    )
    lines.append(
        f"  targets: lag p99 <= {LAG_P99_MS} ms, max <= {LAG_MAX_MS} ms, "
        f"RSS < {RSS_MB:.0f} MB: {'met' if ok else 'NOT MET'}"
    )
    return "\n".join(lines), ok
