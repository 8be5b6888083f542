"""Health of an unattended run: the Prometheus endpoint (``--metrics``) and ``tickrec status``."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
import requests
from conftest import SimFactory
from prometheus_client.parser import text_string_to_metric_families

from recorder.metrics import parse_address
from recorder.offline import OfflineStretch, OfflineWatch
from recorder.record import RecordConfig, RecordResult, record
from tickrec import contract
from tickrec.errors import UsageError

SYMBOLS = ("BTCUSD", "ETHUSD")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_are_served_while_recording_and_stop_with_the_run(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(symbols=SYMBOLS, rate=500.0)
    port = free_port()
    done: list[RecordResult] = []
    config = RecordConfig(
        symbols=SYMBOLS,
        protocol="v1",
        url=sim.ws_url,
        rest_url=sim.rest_url,
        data=str(tmp_path / "data"),
        duration=4.0,
        snapshot_every=0.5,
        rest_min_gap=0.05,
        rotate=1.0,
        status_every=0.0,
        fsync_interval=0.02,
        metrics=f"127.0.0.1:{port}",
    )
    runner = threading.Thread(target=lambda: done.append(record(config)))
    runner.start()
    try:
        time.sleep(2.5)
        first = scrape(port)
        time.sleep(0.5)
        second = scrape(port)
    finally:
        runner.join()
    (result,) = done
    for symbol in SYMBOLS:
        labels = {"venue": "gemini", "symbol": symbol}
        got = sample(first, "tickrec_messages_received_total", **labels)
        assert 0 < got < sample(second, "tickrec_messages_received_total", **labels)
        assert sample(second, "tickrec_received_bytes_total", **labels) > 100 * got
        assert 0 <= sample(second, "tickrec_last_message_age_seconds", **labels) < 1.0
        assert sample(second, "tickrec_rest_snapshots_total", **labels) >= 2
        assert 0 < sample(second, "tickrec_rest_latency_seconds", **labels) < 5
        for kind in ("sequence", "malformed", "disconnect", "silence"):
            assert sample(second, "tickrec_gaps_total", kind=kind, **labels) == 0
    assert sample(second, "tickrec_connections_open", venue="gemini") == 2
    up = {k[1]: v for k, v in second.items() if k[0] == "tickrec_connection_up"}
    assert sorted(dict(labels)["symbols"] for labels in up) == sorted(SYMBOLS)  # v1: one each
    assert all(v == 1 for v in up.values())
    assert sample(second, "tickrec_journal_fsync_seconds_count") > 20  # every 20 ms
    assert sample(second, "tickrec_journal_held_records") == 0
    # rotation every second: parts were written while recording
    assert 0 < sample(second, "tickrec_parts_written_total") <= len(result.parts)
    assert sample(second, "tickrec_rows_written_total") <= result.rows
    assert sample(second, "tickrec_exchange_latency_seconds", venue="gemini", quantile="0.5") < 1
    # every v1 update carries the exchange's time: the lag histogram counts them all (the
    # heartbeats do not), nearly all within a second on loopback
    lag = {
        float(dict(k[1])["le"]): v
        for k, v in second.items()
        if k[0] == "tickrec_recv_lag_seconds_bucket"
    }
    messages = sum(
        sample(second, "tickrec_messages_received_total", venue="gemini", symbol=s) for s in SYMBOLS
    )
    total = lag[float("inf")]
    assert 0.5 * messages < total <= messages
    assert lag[1.0] >= 0.99 * total and list(lag.values()) == sorted(lag.values())
    assert sample(second, "tickrec_recv_lag_seconds_count", venue="gemini") == total
    with pytest.raises(requests.ConnectionError):
        scrape(port)  # the endpoint stops with the run


def test_gap_counts_by_kind_follow_the_faults(sim_factory: SimFactory, tmp_path: Path) -> None:
    """Stalls past the watchdog (each ends its connection) and cut frames count by kind."""
    sim = sim_factory(
        symbols=SYMBOLS[:1], rate=300.0, stall_for=1.0, stall_every=0.5, malformed=0.01
    )
    port = free_port()
    config = RecordConfig(
        symbols=SYMBOLS[:1], protocol="v1", url=sim.ws_url, rest_url=sim.rest_url,
        data=str(tmp_path / "data"), duration=4.0, snapshot_every=0.0, status_every=0.0,
        stale_after=0.3, connects_per_minute=600.0, backoff_base=0.05,
        metrics=f"127.0.0.1:{port}",
    )  # fmt: skip
    runner = threading.Thread(target=lambda: record(config))
    runner.start()
    try:
        time.sleep(3.5)
        samples = scrape(port)
    finally:
        runner.join()
    labels = {"venue": "gemini", "symbol": SYMBOLS[0]}
    got = {
        kind: sample(samples, "tickrec_gaps_total", kind=kind, **labels)
        for kind in ("malformed", "disconnect", "silence")
    }
    assert all(n > 0 for n in got.values()), got
    # each watchdog drop also ends its connection: a silence is a disconnect too
    assert got["disconnect"] >= got["silence"]
    table = contract.read_partition(
        tmp_path / "data", "gemini", contract.list_partitions(tmp_path / "data")[0].date, SYMBOLS[0]
    )
    events = [
        json.loads(p)["event"]
        for p in table.filter(pc.equal(table["source"], "event"))["payload"].to_pylist()
    ]
    assert events.count("stale") >= got["silence"]


def test_metrics_addresses_are_host_and_port() -> None:
    for bad in ("9108", "localhost:", ":9108", "host:port", "127.0.0.1:70000"):
        with pytest.raises(UsageError, match="HOST:PORT"):
            parse_address(bad)
    assert parse_address("[::1]:9108") == ("::1", 9108)


def test_never_connected_run_exposes_zero_messages_and_no_open_connection(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = RecordConfig(
        symbols=("BTCUSD",),
        protocol="v1",
        url="ws://127.0.0.1:1",
        rest_url="http://127.0.0.1:1",
        data=str(tmp_path / "data"),
        duration=2.0,
        snapshot_every=0.0,
        status_every=0.0,
        metrics=f"127.0.0.1:{port}",
    )
    runner = threading.Thread(target=lambda: record(config))
    runner.start()
    try:
        time.sleep(1.0)
        samples = scrape(port)
    finally:
        runner.join()
    labels = {"venue": "gemini", "symbol": "BTCUSD"}
    assert sample(samples, "tickrec_messages_received_total", **labels) == 0
    assert sample(samples, "tickrec_connections_open", venue="gemini") == 0
    up = [v for k, v in samples.items() if k[0] == "tickrec_connection_up"]
    assert up == [0]
    assert ("tickrec_last_message_age_seconds", tuple(sorted(labels.items()))) not in samples
    # offline since the run started, about a second before the scrape
    assert 0.8 <= sample(samples, "tickrec_offline_seconds", **labels) <= 2.0


def test_offline_stretches_per_symbol_and_the_threshold() -> None:
    s = 1_000_000_000
    watch = OfflineWatch(("BTCUSD", "ETHUSD"), 0, max_offline=5.0)
    watch.update(1 * s, {"BTCUSD"})
    assert watch.offline_s("BTCUSD", 1 * s) == 0 and watch.offline_s("ETHUSD", 1 * s) == 1.0
    watch.update(4 * s, {"BTCUSD"})
    watch.update(5 * s, set())  # BTCUSD's connection is lost
    watch.update(6 * s, {"ETHUSD"})  # ETHUSD connects after 6 s: over the threshold
    watch.update(10 * s, {"ETHUSD"})
    assert watch.over == {"ETHUSD": OfflineStretch("ETHUSD", 0, 6 * s)}
    watch.update(10 * s + 1, {"ETHUSD"})  # BTCUSD: 5 s and 1 ns without one
    watch.update(12 * s, {"BTCUSD", "ETHUSD"})
    assert watch.over["BTCUSD"] == OfflineStretch("BTCUSD", 5 * s, 12 * s)
    assert watch.connected_ever == {"BTCUSD": True, "ETHUSD": True}
    watch.update(13 * s, set())
    watch.finish(14 * s)  # short stretches at the end are not over
    assert watch.over["BTCUSD"].seconds(99 * s) == 7.0
    assert not OfflineWatch(("BTCUSD",), 0, max_offline=0).max_ns  # 0: no threshold


def test_a_run_without_a_connection_for_too_long_fails_and_its_gaps_cover_it(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """The exchange goes away for the last 4 s of a 7 s run; --max-offline is 2 s."""
    import subprocess
    import sys

    import replay

    sim = sim_factory(symbols=("BTCUSD",), rate=200.0)
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "tickrec", "record", "--symbols", "BTCUSD", "--protocol", "v1",
            "--url", sim.ws_url, "--rest-url", sim.rest_url, "--snapshot-every", "0",
            "--duration", "7s", "--max-offline", "2s", "--status-every", "0",
            "--data", str(data),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(3.0)
        sim.stop()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "error: without a connection for longer than --max-offline 2 s: BTCUSD for "
    ), last
    assert last.endswith(" UTC; see the log above")
    assert 3.0 <= float(last.split(" for ")[2].split(" s ")[0]) <= 6.0
    assert "no connection for" in err and "longer than --max-offline 2 s" in err
    assert "stopped (duration)" in out  # what was recorded is kept
    (partition,) = contract.list_partitions(data)
    day = replay.open(partition.date, "BTCUSD", data=data, cache=False)
    rows = contract.read_parts(contract.list_parts(data, partition))
    events = [json.loads(p) for p in rows.filter(pc.equal(rows["source"], "event"))["payload"]
              .to_pylist()]  # fmt: skip
    assert any(e["event"] == "error" for e in events)  # the failed connects are stored
    # every stretch without a connection is inside the gaps: here from the loss to the end
    (lost,) = [g for g in day.gap_list() if g.kind == "disconnect"]
    assert lost.end == day.decoded.last_ns and lost.duration >= 3 * 1_000_000_000
    assert day.valid_ns < day.decoded.last_ns - lost.start


def test_status_shows_the_runs_recording_now(sim_factory: SimFactory, tmp_path: Path) -> None:
    """``tickrec status`` reads the live runs' status files, by their journal locks."""
    import subprocess
    import sys

    data = tmp_path / "data"

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tickrec", "status", "--data", str(data)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    idle = status()
    assert idle.returncode == 1 and "no run is recording under" in idle.stderr
    sim = sim_factory(symbols=SYMBOLS, rate=500.0)
    config = RecordConfig(
        symbols=SYMBOLS, protocol="v1", url=sim.ws_url, rest_url=sim.rest_url,
        data=str(data), duration=4.0, snapshot_every=0.0, status_every=0.0,
    )  # fmt: skip
    done: list[RecordResult] = []
    runner = threading.Thread(target=lambda: done.append(record(config)))
    runner.start()
    try:
        time.sleep(2.5)
        live = status()
    finally:
        runner.join()
    assert live.returncode == 0, live.stderr
    head, *symbols = live.stdout.split("in parts:")[0].splitlines()
    assert head.startswith(f"run {done[0].run_id} (gemini.v1, pid ")
    assert ": recording, 2 connections open, status " in head
    assert [line.split(":")[0].strip() for line in symbols] == list(SYMBOLS)
    for line in symbols:
        age = float(line.split("last row ")[1].split(" s ago")[0])
        assert age < 1.5 and " 0 gaps" in line
    after = status()  # a clean stop leaves nothing behind
    assert after.returncode == 1 and not (data / "journal" / done[0].run_id).exists()
    # ... but what was stored, each symbol's last row in the parts and how old it is
    title, *stored = after.stdout.splitlines()
    assert title == "in parts:" and [line.split(":")[0] for line in stored] == [
        f"  gemini {s}" for s in SYMBOLS
    ]
    # A newer date's directory with no part in it (an upload to a store leaves these)
    # does not hide the last row stored.
    Path(contract.partition_dir(data, "gemini", "2099-01-01", SYMBOLS[0])).mkdir(parents=True)
    stored += status().stdout.splitlines()[1:]
    assert len(stored) == 2 * len(SYMBOLS)
    for line in stored:
        age = float(line.split("last stored row ")[1].split(" s ago")[0])
        assert 0 < age < 30


def test_a_starting_run_removes_orphaned_temporary_parts(tmp_path: Path) -> None:
    """A write killed before its rename leaves a temporary part; the next start removes it."""
    import subprocess
    import sys

    from tickrec.contract import Row, rows_to_table, write_part
    from tickrec.durable import temp_name

    data = tmp_path / "data"
    row = Row(1_795_478_400_000_000_000, 0, "run-old", 1, "gemini.v1", "ws", "{}")
    part = write_part(data, "gemini", "BTCUSD", "run-old", 1, rows_to_table([row]))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = temp_name(part.with_name("part-2-run-old-2.parquet"), dead.pid)
    orphan.write_bytes(b"PAR1 half a file")
    record(
        RecordConfig(
            symbols=("BTCUSD",),
            url="ws://127.0.0.1:1",
            rest_url="http://127.0.0.1:1",
            data=str(data),
            duration=0.5,
            snapshot_every=0.0,
            status_every=0.0,
        )
    )
    assert not orphan.exists() and part.exists()
