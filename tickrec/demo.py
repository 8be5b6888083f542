"""``tickrec demo``: the embedded default run, on a machine with no exchange in reach.

It starts the local Gemini-compatible simulator on 127.0.0.1 (with a few
faults injected, so the gap report has something to say), records from it
with the real recorder for a while, then replays what was recorded and prints
the summary and the gaps, as ``tickrec replay`` would. Like the CLI, this
module is an edge: it imports the recorder, the replayer and the simulator
lazily.

The replayer's compiled kernels (:mod:`replay.kernels`) are compiled, the
first time, in a second process that starts with the recording, so that
they are ready, or nearly, when it ends. A process rather than a thread:
compiling holds the GIL most of the time, and with a compiling thread the
recorder's reads lagged (exchange-to-local latency p50/p90/p99 of
2.4/17.6/43 ms, against 0.8/1.2/1.4 ms beside a compiling process). When
the kernels are already cached, that process only loads them.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickrec.sim import FaultConfig

__all__ = ["DemoConfig", "demo_faults", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Options of a demo run; times in seconds."""

    data: Path
    duration: float = 20.0
    protocol: str = "v1"
    symbols: tuple[str, ...] = ("BTCUSD", "ETHUSD")
    rate: float = 200.0
    seed: int = 7
    faults: bool = True


# Run by the second process: compile (or load) the kernels a replay of the protocol needs.
_WARM = """
import sys
from replay import kernels
kernels.announce_compiles(sys.argv[1])
kernels.warm(sys.argv[2:])
"""
_WARM_NOTICE = (
    "compiling replay kernels in the background while recording "
    "(first run only, about {seconds} s)..."
)


@contextlib.contextmanager
def _compiling_meanwhile(protocol: str, echo: Callable[[str], None]) -> Iterator[None]:
    """Compile the kernels a replay of *protocol* needs in another process during the block.

    After the block, waits for them; if that fails, the replay compiles them itself.
    """
    # -P: the working directory is not put on the module path, where a folder
    # named like a package (a clone called "tickrec") would shadow the real one.
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", _WARM, _WARM_NOTICE, f"gemini.{protocol}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
        if proc.poll() is None:
            echo("waiting for the replay kernels to finish compiling (first run only) ...")
        try:
            code = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            echo("compiling the replay kernels ahead failed; the replay compiles them")
    finally:
        if proc.poll() is None:  # interrupted, or past the timeout
            proc.kill()
            proc.wait()


#: Longest stall of the demo: under the recorder's ``stale_after`` of 2 s, so
#: that a stall is a silence in the data rather than a reconnect.
_MAX_STALL = 1.0
#: Frames the demo drops on v1 and the current API, over the whole run, on average.
_DROPS_PER_RUN = 2.0


def demo_faults(config: DemoConfig) -> FaultConfig:
    """The demo's faults, scaled to its duration so that each one fires as announced.

    Every connection stalls for a tenth of the run (at most :data:`_MAX_STALL`)
    every fifth of it, and is aborted 0.45 of the run after it opens: twice a
    connection in a run, before it is aborted. On v1 and the current API
    about :data:`_DROPS_PER_RUN` frames of the run are dropped, each a
    sequence break; the recorder answers one with a new connection that
    takes over, whose timers start again, so there are few of them. (At 0.2 % of
    frames, a drop came every 5 s or so and no connection lived to its
    abort.) v2 has no sequence numbers, so nothing is dropped there.
    """
    from tickrec.sim import FaultConfig

    if not config.faults:
        return FaultConfig()
    drop = _DROPS_PER_RUN / (config.rate * config.duration)
    return FaultConfig(
        drop=min(drop, 1.0) if config.protocol in ("v1", "ws") else 0.0,
        close_every=config.duration * 0.45,
        abrupt=True,
        stall_for=min(_MAX_STALL, config.duration * 0.1),
        stall_every=config.duration * 0.2,
    )


#: How the simulator's fault kinds are counted in the demo's last lines (one, many).
_FIRED = {
    "abort": ("connection aborted", "connections aborted"),
    "close": ("connection closed", "connections closed"),
    "stall": ("stall", "stalls"),
    "drop": ("frame dropped", "frames dropped"),
    "malformed": ("frame cut short", "frames cut short"),
}


def _fired(faults: dict[str, int]) -> str:
    """The simulator's fault counts in words: ``2 connections aborted, 4 stalls``."""
    said = [
        f"{faults[k]} {one if faults[k] == 1 else many}"
        for k, (one, many) in _FIRED.items()
        if faults.get(k)
    ]
    return ", ".join(said) or "none"


def _earlier_files(data: Path) -> int:
    """Parts an earlier demo (or anything else) left in *data*."""
    raw = data / "raw"
    return sum(1 for _ in raw.rglob("*.parquet")) if raw.is_dir() else 0


def run_demo(config: DemoConfig, echo: Callable[[str], None]) -> int:
    """Simulate, record, replay and report; return the number of rows recorded."""
    from recorder.record import RecordConfig, record
    from replay import report
    from tickrec.sim import SimConfig, Simulator

    faults = demo_faults(config)
    sim_config = SimConfig(
        symbols=config.symbols, rate=config.rate, seed=config.seed, faults=faults
    )
    logging.basicConfig(
        level=logging.INFO,
        format="  %(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # The recorder's status lines are the show; the server's per-connection
    # chatter is not (the faults are listed above and appear in the gap report).
    for noisy in ("websockets", "tickrec.sim"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    earlier = _earlier_files(config.data)
    with _compiling_meanwhile(config.protocol, echo), Simulator(sim_config) as sim:
        echo(
            f"simulator: {sim.ws_url} and {sim.rest_url} "
            f"({', '.join(config.symbols)}; {config.rate:g} events/s; seed {config.seed})"
        )
        for line in faults.describe():
            echo(f"fault: {line}")
        if faults.drop:
            echo(
                "  (a dropped frame is a sequence break: the recorder opens a new connection "
                "for a fresh book, which takes over, and its timers start again)"
            )
        if earlier:
            echo(
                f"{config.data} holds {earlier} files of an earlier run: this one adds to "
                "them, and the replay below shows them together (remove it, or give "
                "another --data, to start afresh)"
            )
        echo(f"recording gemini {config.protocol} for {config.duration:g} s into {config.data} ...")
        result = record(
            RecordConfig(
                symbols=config.symbols,
                protocol=config.protocol,
                data=str(config.data),
                url=sim.ws_url,
                rest_url=sim.rest_url,
                snapshot_every=2.0,
                duration=config.duration,
                stale_after=2.0,
                status_every=5.0,
                backoff_base=0.2,
                backoff_cap=2.0,
                connects_per_minute=60.0,
            )
        )
        fired = sim.stats.faults
    echo(f"recorded {result.rows} rows in {len(result.parts)} files (run {result.run_id})")
    if config.faults:
        echo(f"faults the simulator injected: {_fired(fired)}")

    # A stall shows as a silence gap when the threshold is under its length.
    silence = faults.stall_for / 2 if faults.stall_for else 10.0
    dates = sorted({part.parent.parent.name.removeprefix("date=") for part in result.parts})
    for date in dates:
        symbols = report.resolve_symbols(config.data, "gemini", date, None)
        days = list(report.open_days(config.data, "gemini", date, symbols, f"{silence:g}s", None))
        echo(f"\nreplay of {date}:")
        echo(report.format_summary([day.summary() for day in days]))
        for day in days:
            echo(report.format_gaps(day.symbol, day.gap_list()))
    if dates:
        data = f" --data {config.data}"
        echo(
            "\nnext:\n"
            f"  tickrec ls{data}\n"
            f"  tickrec replay --date {dates[-1]}{data} --out snapshots.parquet\n"
            f"  tickrec gaps --date {dates[-1]}{data}"
            + (f" --silence {silence:g}s" if faults.stall_for else "")
        )
    return result.rows
