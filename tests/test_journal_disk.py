"""A full disk under the journal, made real with a small tmpfs in a private mount namespace.

Each test runs a child on an 8 MB tmpfs (:mod:`fulldisk`). The child starts
a journal there with the real Parquet converter, appends about 1 MB, fills
the rest of the filesystem with a filler file, keeps appending, then gives
space back by shrinking the filler (or does not), and copies the dataset out
of the tmpfs before it exits. The test reads the copy.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fulldisk import events, run_child

from tickrec import contract

_CHILD = textwrap.dedent(
    """
    import json, shutil, time
    from recorder.journal import Journal, RunMeta
    from recorder.recovery import recover
    from recorder.writer import Converter

    out, mode = Path(sys.argv[2]), sys.argv[3]
    root = MNT / "data"
    converter = Converter(root, retry_base=0.05, retry_cap=0.2)
    j = Journal(root, RunMeta("20260101T000000-disk01", "gemini", "gemini.v1", ("BTCUSD",)),
                fsync_interval=0.01, on_closed=converter.submit, converting=converter.pending,
                disk_timeout=60.0, drain_for=0.5)
    converter.lock_fd = j.lock_fd

    n, t0 = 0, time.time_ns()

    def add(count):
        global n
        for _ in range(count):
            payload = json.dumps({"type": "update", "socket_sequence": n, "events": [
                {"type": "change", "side": "bid", "price": f"{30000 + n % 97}.{n % 13:02d}",
                 "remaining": f"{n % 7}.{n % 1000:04d}", "reason": "place"}]})
            j.append(t0 + n * 1000, 1, "gemini.v1", "ws", payload, ("BTCUSD",))
            n += 1

    add(5000)  # about 1 MB in the journal, then the disk is full
    fill()
    while not j.held_records:
        add(100)
    failed_at = n
    while j.held_records * 160 < (2 << 20):  # 2 MB held in memory (records are 220 bytes)
        add(100)
    held = j.held_records
    freed = {"small": 1 << 20, "large": 4 << 20, "none": 0}[mode]
    if freed:
        with open(FILLER, "r+b") as fh:
            fh.truncate(FILLER.stat().st_size - freed)
    deadline = time.monotonic() + 30
    while mode != "none" and j.held_records and time.monotonic() < deadline:
        add(10)  # the feed goes on meanwhile
        time.sleep(0.01)
    resumed = not j.held_records
    add(200)
    j.close()
    fatal = str(j.fatal) if j.fatal else None
    left = converter.close(retry_for=1.0)
    j.release()
    if mode == "none":
        FILLER.unlink()  # space for the recovery of what the journal kept
        recover(root)
    shutil.copytree(root, out)
    print(json.dumps({"appended": n, "failed_at": failed_at, "held": held, "resumed": resumed,
                      "fatal": fatal, "left": [str(p) for p, _ in left]}))
    """
)


def _run(tmp_path: Path, mode: str) -> tuple[dict[str, Any], pa.Table]:
    out = tmp_path / "out"
    result, log = run_child(_CHILD, tmp_path / "mnt", str(out), mode)
    result["log"] = log
    (partition,) = contract.list_partitions(out)
    rows = contract.read_parts(contract.list_parts(out, partition))
    return result, rows


@pytest.mark.parametrize("mode", ["small", "large"])
def test_a_full_disk_makes_room_by_conversion_and_loses_nothing(tmp_path: Path, mode: str) -> None:
    """Space given back smaller (1 MB) and larger (4 MB) than the 2 MB held in memory."""
    out, rows = _run(tmp_path, mode)
    assert out["resumed"] and out["fatal"] is None and out["left"] == [], out["log"][-2000:]
    assert "journal write failed (ENOSPC)" in out["log"]
    ws = rows.filter(pc.equal(rows["source"], "ws"))
    # every record appended is stored, once, in order, with its receive time, and
    # one more row (the disk_error event) took the seq after the last held record
    assert rows["seq"].to_pylist() == list(range(out["appended"] + 1))
    sequence = [json.loads(p)["socket_sequence"] for p in ws["payload"].to_pylist()]
    assert sequence == list(range(out["appended"]))
    t0 = int(ws["recv_ts"].cast(pa.int64())[0].as_py())
    assert pc.subtract(ws["recv_ts"].cast(pa.int64()), t0).to_pylist() == [
        n * 1000 for n in sequence
    ]
    (event,) = events(rows)
    assert event["event"] == "disk_error" and event["errno"] == "ENOSPC"
    assert event["lost"] == 0 and event["records_held"] >= out["held"]
    assert event["segments_freed"] >= 1  # room was made by converting the closed segment


def test_records_the_disk_never_takes_are_a_journal_loss_of_their_span(tmp_path: Path) -> None:
    out, rows = _run(tmp_path, "none")
    assert out["fatal"] and "journal_loss" in out["fatal"] and not out["resumed"]
    ws = rows.filter(pc.equal(rows["source"], "ws"))
    stored = ws["seq"].to_pylist()
    (loss,) = events(rows)
    assert loss["event"] == "journal_loss" and loss["errno"] == "ENOSPC"
    first, last = loss["first_seq"], loss["last_seq"]
    # what was written before the failure is kept; the rest is named by the event
    assert stored == list(range(first)) and first >= out["failed_at"] - 100
    assert last == out["appended"] - 1 and loss["lost"] == last - first + 1
    # the span is the receive times of the first and the last record dropped (t0 + n us)
    t0 = int(ws["recv_ts"].cast(pa.int64())[0].as_py())
    assert (loss["start_ns"] - t0, loss["end_ns"] - t0) == (first * 1000, last * 1000)
