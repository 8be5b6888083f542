"""Recording to an object store (a loopback S3: moto's server, tests/s3.py): the journal
and the parts not yet sent stay local (--journal), every closed part is sent whole and
deleted locally only once the store holds it; an outage of the store and SIGKILLs in
the middle of uploads lose nothing and duplicate nothing."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest
import s3
from conftest import SimFactory, record_sim
from moto.server import ThreadedMotoServer

from recorder.upload import Uploader, staged_parts
from tickrec import contract
from tickrec.errors import UsageError
from tickrec.store import as_root


def stored_seqs(uri: str) -> dict[str, Counter[int]]:
    """How often each ``seq`` of each run is stored, over every part in the store (a
    connection-wide message is in each of its symbols' partitions: counted per symbol)."""
    root = as_root(uri)
    seen: dict[str, Counter[int]] = {}
    for partition in contract.list_partitions(root):
        table = contract.read_partition(
            root, partition.venue, partition.date, partition.symbol, ["run_id", "seq"]
        )
        for run in pc.unique(table.column("run_id").cast("string")).to_pylist():
            mask = pc.equal(table.column("run_id").cast("string"), run)
            seqs = table.filter(mask).column("seq").to_pylist()
            seen.setdefault(run, Counter()).update(set(seqs))
            assert len(seqs) == len(set(seqs)), f"{partition}: a seq of {run} twice"
    return seen


def parts(root, partition):  # type: ignore[no-untyped-def]
    return contract.list_parts(root, partition)


def test_a_recording_goes_to_the_store_and_nothing_stays_local(
    sim_factory: SimFactory, tmp_path: Path
):
    with s3.serve() as server:
        uri = server.bucket("rec") + "/data"
        result = record_sim(
            sim_factory(), tmp_path, data=uri, journal=str(tmp_path / "j"), rotate=0.3
        )
        assert result.uploaded == len(result.parts) >= 6 and not result.not_uploaded
        assert staged_parts(tmp_path / "j") == []
        keys = server.keys("rec")
        assert len(keys) == len(result.parts)
        assert not any("journal" in k for k in keys)
        root = as_root(uri)
        rows = sum(
            p.rows
            for part in contract.list_partitions(root)
            for p in contract.list_parts(root, part)
        )
        assert rows == result.rows
        (run,) = stored_seqs(uri)
        assert run == result.run_id


def test_recording_to_a_store_needs_a_local_journal(sim_factory: SimFactory, tmp_path: Path):
    with pytest.raises(UsageError, match="--journal"):
        record_sim(sim_factory(), tmp_path, data="s3://rec/data")
    with pytest.raises(UsageError, match="object store"):
        record_sim(sim_factory(), tmp_path, journal=str(tmp_path / "j"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_outage_of_the_store_loses_nothing(
    sim_factory: SimFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
):
    """The store is down until the recorder has said it cannot upload and parts wait
    locally, in an 8 s run; once it is back, every part is sent."""
    port = _free_port()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    staged_while_down: list[int] = []
    done = threading.Event()

    def come_back() -> None:
        while not done.wait(0.05):
            logged = any("cannot upload" in r.message for r in list(caplog.records))
            if logged and len(staged_parts(tmp_path / "j")) >= 3:
                break
        else:
            return
        staged_while_down.append(len(staged_parts(tmp_path / "j")))
        server.start()
        s3.S3(f"http://127.0.0.1:{port}").client.create_bucket(Bucket="out")

    timer = threading.Thread(target=come_back)
    timer.start()
    try:
        with caplog.at_level("WARNING", logger="recorder.upload"):
            result = record_sim(
                sim_factory(),
                tmp_path,
                data="s3://out/data",
                journal=str(tmp_path / "j"),
                rotate=0.3,
                duration=8.0,
            )
        assert staged_while_down, "the store never came back during the run"
        assert not result.not_uploaded and result.uploaded == len(result.parts)
        assert staged_parts(tmp_path / "j") == []
        root = as_root("s3://out/data")
        rows = sum(
            p.rows
            for part in contract.list_partitions(root)
            for p in contract.list_parts(root, part)
        )
        assert rows == result.rows
    finally:
        done.set()
        timer.join()
        if staged_while_down:
            server.stop()


def test_sigkills_in_the_middle_of_uploads(sim_factory: SimFactory, tmp_path: Path):
    """Recorders killed at random moments while they send a part every 0.2 s, each
    followed by a restart on the same journal (the last by ``tickrec recover``, then a
    run that stops cleanly): in the end the store holds every run's rows once, with no
    hole in any run's seq, and nothing waits locally."""
    sim = sim_factory(rate=400)
    journal = tmp_path / "j"
    rng = random.Random(7)
    with s3.serve() as server:
        uri = server.bucket("kill") + "/data"

        def start(duration: str | None = None) -> subprocess.Popen[str]:
            args = [
                sys.executable, "-m", "tickrec", "record", "--protocol", "v1",
                "--symbols", "BTCUSD,ETHUSD", "--url", sim.ws_url, "--rest-url", sim.rest_url,
                "--data", uri, "--journal", str(journal), "--fsync-interval", "20ms",
                "--rotate", "200ms", "--snapshot-every", "0", "--status-every", "0",
            ]  # fmt: skip
            if duration:
                args += ["--duration", duration]
            return subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
            )

        for _ in range(4):
            before = len(server.keys("kill"))
            proc = start()
            deadline = time.monotonic() + 30
            while len(server.keys("kill")) < before + 2:  # this run is uploading
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "no upload"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        recovered = subprocess.run(
            [sys.executable, "-m", "tickrec", "recover", "--data", uri, "--journal", str(journal)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert recovered.returncode == 0, recovered.stderr
        assert "uploaded to" in recovered.stdout
        assert staged_parts(journal) == []
        last = start("1s")
        out, err = last.communicate(timeout=60)
        assert last.returncode == 0, err
        assert "uploaded to" in out
        assert staged_parts(journal) == []
        seen = stored_seqs(uri)
        assert len(seen) == 5
        for run, counts in seen.items():
            # Every seq from the run's first to its last stored is there: a part lost
            # on the way would leave a hole. (Connection-wide rows are in both symbols.)
            assert set(counts) == set(range(max(counts) + 1)), run


def test_a_part_another_run_sent_meanwhile_is_skipped(tmp_path: Path):
    """Two runs on one ``--journal``: a part the other run sent (and deleted) between
    listing and reading is no failure of this one."""
    with s3.serve() as server:
        store = as_root(server.bucket("two") + "/data")
        staged = tmp_path / "raw/venue=gemini/date=2026-12-06/symbol=BTCUSD"
        staged.mkdir(parents=True)
        part = staged / "part-1-run-1.parquet"
        part.write_bytes(b"0123456789")
        mine, theirs = Uploader(tmp_path, store), Uploader(tmp_path, store)
        (listed,) = staged_parts(tmp_path)
        assert theirs.send_all() == 1
        assert not mine.send(listed) and mine.failing is None
        assert server.keys("two") == [
            "data/raw/venue=gemini/date=2026-12-06/symbol=BTCUSD/part-1-run-1.parquet"
        ]


def test_a_recording_to_the_store_through_midnight_makes_two_self_contained_days(
    sim_factory: SimFactory, tmp_path: Path
):
    """An injected clock 2 s before UTC midnight: the store gets each date's parts, and
    each date replays alone from the store, day 2 in sync from its own midnight snapshot."""
    from test_midnight import DAY1, DAY2, MIDNIGHT, S, shifted_clock

    import replay

    clock = shifted_clock(MIDNIGHT - 2 * S)
    sim = sim_factory(symbols=("BTCUSD",), rate=300.0, heartbeat_s=0.25, clock=clock)
    with s3.serve() as server:
        uri = server.bucket("midnight") + "/data"  # moto's buckets live on in the process
        result = record_sim(
            sim, tmp_path, protocol="ws", symbols=("BTCUSD",), data=uri,
            journal=str(tmp_path / "j"), duration=4.0, clock=clock, rest_min_gap=0.05,
            handover_lead=1.0,
        )  # fmt: skip
        assert result.uploaded == len(result.parts) and not result.not_uploaded
        assert staged_parts(tmp_path / "j") == []
        root = as_root(uri)
        assert sorted(p.date for p in contract.list_partitions(root)) == [DAY1, DAY2]
        for date in (DAY1, DAY2):
            alone = tmp_path / f"alone-{date}"
            for part in contract.list_partitions(root, date=date):
                table = contract.read_partition(root, part.venue, part.date, part.symbol)
                contract.write_part(alone, part.venue, part.symbol, "copy", 0, table)
            day = replay.open(date, "BTCUSD", data=alone, cache=False)
            first, last = day.span
            assert (first >= MIDNIGHT) == (date == DAY2) and (last < MIDNIGHT) == (date == DAY1)
            assert day.valid_ns > 0
        # day 2 is in sync from its own snapshot, within a second of midnight
        assert day.book_at(MIDNIGHT + S, depth=1).valid
