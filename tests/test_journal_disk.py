"""Disk failures on the journal, made real with RLIMIT_FSIZE in a child process.

A file size limit (with SIGXFSZ ignored) makes the kernel refuse writes past
it with EFBIG, part-way through a record when it falls there: the same
situation as a full disk, without needing a tiny filesystem. Raising the
limit again is "space coming back".
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recorder.journal import scan_segment

_CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys, time
    from pathlib import Path
    from recorder.journal import Journal, RunMeta
    from tickrec.errors import JournalError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    root, mode = Path(sys.argv[1]), sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    closed = []
    j = Journal(root, RunMeta("run-disk", "gemini", "gemini.v1", ("BTCUSD",)),
                fsync_interval=0.01, on_closed=closed.append,
                disk_timeout=0.3 if mode == "giveup" else 60.0)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    accepted, refused = [], 0
    for i in range(300):
        if i == 250:
            time.sleep(0.2 if mode == "resume" else 0.6)  # the flusher retries meanwhile
            if mode == "resume":
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space is back
                time.sleep(0.2)
        payload = json.dumps({"i": i, "pad": "x" * 57})
        try:
            accepted.append(j.append(time.time_ns(), 1, "gemini.v1", "ws", payload, ("BTCUSD",)))
        except JournalError:
            refused += 1
    fatal = str(j.fatal) if j.fatal else None
    j.close()
    print(json.dumps({"accepted": accepted, "refused": refused, "fatal": fatal,
                      "segments": [str(p) for p in closed]}))
    """
)


def _run(tmp_path: Path, mode: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.splitlines()[-1]), log=proc.stderr)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics checked on Linux")
def test_write_refused_then_space_returns_nothing_lost(tmp_path: Path) -> None:
    out = _run(tmp_path, "resume")
    assert out["refused"] == 0 and out["fatal"] is None
    assert "journal write failed (EFBIG)" in str(out["log"])
    (segment,) = out["segments"]  # type: ignore[misc]
    scan = scan_segment(Path(segment))
    assert scan.problem is None
    rows = [r.row for r in scan.records]
    assert [r.seq for r in rows] == list(range(301))
    payloads = [json.loads(r.payload) for r in rows]
    events = [p for p in payloads if "event" in p]
    assert [p["i"] for p in payloads if "i" in p] == list(range(300))
    assert len(events) == 1  # written once the held records are on disk
    event = events[0]
    assert event["event"] == "disk_error" and event["errno"] == "EFBIG"
    assert event["records_held"] > 0 and event["lost"] == 0


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics checked on Linux")
def test_write_refused_for_too_long_gives_up_cleanly(tmp_path: Path) -> None:
    out = _run(tmp_path, "giveup")
    assert out["fatal"] and "tickrec recover" in str(out["fatal"])
    assert out["refused"] == 50  # every append after giving up is refused
    (segment,) = out["segments"]  # type: ignore[misc]
    scan = scan_segment(Path(segment))
    # the file holds whole records only, a prefix of what was accepted, and nothing torn
    assert scan.problem is None and scan.size <= 20_000
    assert [r.row.seq for r in scan.records] == list(range(len(scan.records)))
    assert 0 < len(scan.records) < 250
