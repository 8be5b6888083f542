"""A recording from the simulator onto a filesystem that fills up (an 8 MB tmpfs).

The recorder runs in a child on the tmpfs (:mod:`fulldisk`). At
1,000 events/s on v1 (about 340 kB/s of journal), after 2 s a filler file
takes every byte left; 4 s later the child either gives back 1 MB, less
than the recorder then holds in memory, or nothing.
The dataset is copied out before the child exits, and replayed here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from conftest import SimFactory
from fulldisk import events, run_child

import replay
from tickrec import contract

_CHILD = textwrap.dedent(
    """
    import json, logging, shutil, threading, time
    from recorder.record import RecordConfig, record
    from tickrec.errors import JournalError

    out, mode, ws_url, rest_url = Path(sys.argv[2]), *sys.argv[3:6]
    seen = {}

    KEYS = ("journal write failed", "journal writable again", "cannot write the journal")

    class Watch(logging.Handler):
        def emit(self, record):
            for key in KEYS:
                if record.getMessage().startswith(key):
                    seen.setdefault(key, time.monotonic())

    logging.getLogger("tickrec.recorder").addHandler(Watch())
    logging.basicConfig(level=logging.INFO)
    config = RecordConfig(symbols=("BTCUSD",), protocol="v1", url=ws_url, rest_url=rest_url,
                          data=str(MNT / "data"), snapshot_every=0.0, status_every=0.0,
                          fsync_interval=0.02, disk_timeout=3.0 if mode == "none" else 60.0)
    stop, outcome = threading.Event(), {}

    def run():
        try:
            outcome["rows"] = record(config, stop).rows
        except JournalError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=run)
    thread.start()

    def wait_for(key, timeout=30):
        deadline = time.monotonic() + timeout
        while key not in seen and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.01)
        return key in seen

    time.sleep(2.0)  # about 700 kB in the journal
    fill(16 << 10)
    assert wait_for("journal write failed")
    time.sleep(4.0)  # the feed goes on: about 1.3 MB held in memory
    if mode == "small":
        with open(FILLER, "r+b") as fh:
            fh.truncate(FILLER.stat().st_size - (1 << 20))
        assert wait_for("journal writable again")
        time.sleep(0.5)
    else:
        assert wait_for("cannot write the journal")  # dropped, with a journal_loss row
        FILLER.unlink()  # room again, for the conversion of what the journal kept
    stop.set()
    thread.join(60)
    shutil.copytree(MNT / "data", out)
    print(json.dumps(outcome))
    """
)


def _record_on_a_full_disk(
    sim_factory: SimFactory, tmp_path: Path, mode: str
) -> tuple[dict[str, Any], pa.Table, replay.Day]:
    sim = sim_factory(symbols=("BTCUSD",), rate=1000.0)
    out = tmp_path / "out"
    outcome, _ = run_child(_CHILD, tmp_path / "mnt", str(out), mode, sim.ws_url, sim.rest_url)
    (partition,) = contract.list_partitions(out)
    rows = contract.read_parts(contract.list_parts(out, partition))
    return outcome, rows, replay.open(partition.date, "BTCUSD", data=out, cache=False)


def test_less_room_than_the_backlog_given_back_resumes_with_nothing_lost(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    outcome, rows, day = _record_on_a_full_disk(sim_factory, tmp_path, "small")
    assert "error" not in outcome and outcome["rows"] > 0
    (event,) = events(rows, "disk_error")
    assert event["lost"] == 0 and event["segments_freed"] >= 1
    assert event["bytes_held"] > 1 << 20  # more than the room given back
    assert not events(rows, "journal_loss")
    assert sorted(rows["seq"].to_pylist()) == list(range(len(rows)))
    # every message of every connection was stored: socket_sequence never skips
    ws = rows.filter(pc.equal(rows["source"], "ws"))
    for conn in set(ws["conn_id"].to_pylist()):
        mine = ws.filter(pc.equal(ws["conn_id"], conn))
        sequence = [json.loads(p)["socket_sequence"] for p in mine["payload"].to_pylist()]
        assert sequence == list(range(len(sequence)))
    assert [g for g in day.gap_list() if g.kind == "journal_loss"] == []


def test_records_dropped_when_no_room_comes_back_are_a_journal_loss_gap_of_their_span(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    outcome, rows, day = _record_on_a_full_disk(sim_factory, tmp_path, "none")
    assert "journal_loss event" in outcome["error"] and "lost" in outcome["error"]
    (loss,) = events(rows, "journal_loss")
    assert loss["errno"] == "ENOSPC" and loss["lost"] > 0
    first, last = loss["first_seq"], loss["last_seq"]
    assert loss["lost"] == last - first + 1
    seqs = rows["seq"].to_pylist()
    # every seq is stored, or inside the dropped range the event names: none is silent
    assert len(set(seqs)) == len(seqs)
    assert sorted(set(seqs) | set(range(first, last + 1))) == list(range(max(seqs) + 1))
    assert not set(seqs) & set(range(first, last + 1))
    kept = rows.filter(pc.less(rows["seq"], first))["recv_ts"].cast(pa.int64()).to_pylist()
    assert max(kept) <= loss["start_ns"] <= loss["end_ns"]
    (gap,) = [g for g in day.gap_list() if g.kind == "journal_loss"]
    assert (gap.start, gap.end) == (loss["start_ns"], loss["end_ns"])
    # and the command line reports it, with its duration
    data = str(tmp_path / "out")
    cli = subprocess.run(
        [sys.executable, "-m", "tickrec", "gaps", "--date", day.date, "--data", data],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    (line,) = [ln for ln in cli.stdout.splitlines() if ln.strip().startswith("journal_loss")]
    assert f"{(gap.end - gap.start) / 1e9:.3f} s" in line
