"""``tickrec record`` as a subprocess of a test, and waiting for it to start."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def start(
    ws_url: str,
    rest_url: str,
    data: Path,
    *,
    protocol: str,
    symbols: Sequence[str],
    fsync_s: float,
    rotate: str,
    stdout: int | None = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start a recorder on the simulator at *ws_url*, with no check snapshots or status lines."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "tickrec", "record", "--protocol", protocol,
            "--symbols", ",".join(symbols), "--url", ws_url, "--rest-url", rest_url,
            "--data", str(data), "--fsync-interval", f"{round(fsync_s * 1000)}ms",
            "--rotate", rotate, "--snapshot-every", "0", "--status-every", "0",
        ],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def journal_runs(data: Path) -> set[str]:
    """The runs that have a journal segment under *data* now."""
    try:
        return {p.parent.name for p in data.glob("journal/*/seg-*.tj")}
    except FileNotFoundError:  # a journal directory renamed into place while listing
        return set()


def wait_recording(
    data: Path, proc: subprocess.Popen[str], known: set[str], timeout: float = 20.0
) -> None:
    """Wait until a run not in *known* has opened its journal (it connects right after).

    The new run is added to *known*. On failure the recorder is killed, so a
    failed test never leaves one running.
    """
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"recorder exited: {proc.communicate()[1]}")
            runs = journal_runs(data) - known
            if runs:
                known.update(runs)
                return
            time.sleep(0.01)
        raise AssertionError("recorder did not start")
    except BaseException:
        proc.kill()
        raise
