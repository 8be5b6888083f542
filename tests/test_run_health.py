"""Health of an unattended run: the Prometheus endpoint (``--metrics``) and ``tickrec status``."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import SimFactory
from prometheus_client.parser import text_string_to_metric_families

from recorder.metrics import parse_address
from recorder.record import RecordConfig, RecordResult, record
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
        assert sample(second, "tickrec_gaps_total", kind="sequence", **labels) == 0
    assert sample(second, "tickrec_connections_open", venue="gemini") == 2
    assert sample(second, "tickrec_journal_fsync_seconds_count") > 20  # every 20 ms
    assert sample(second, "tickrec_journal_held_records") == 0
    # rotation every second: parts were written while recording
    assert 0 < sample(second, "tickrec_parts_written_total") <= len(result.parts)
    assert sample(second, "tickrec_rows_written_total") <= result.rows
    assert sample(second, "tickrec_exchange_latency_seconds", venue="gemini", quantile="0.5") < 1
    with pytest.raises(requests.ConnectionError):
        scrape(port)  # the endpoint stops with the run


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
    assert ("tickrec_last_message_age_seconds", tuple(sorted(labels.items()))) not in samples


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
    head, *symbols = live.stdout.splitlines()
    assert head.startswith(f"run {done[0].run_id} (gemini.v1, pid ")
    assert ": recording, 2 connections open, status " in head
    assert [line.split(":")[0].strip() for line in symbols] == list(SYMBOLS)
    for line in symbols:
        age = float(line.split("last row ")[1].split(" s ago")[0])
        assert age < 1.5 and " 0 gaps" in line
    after = status()  # a clean stop leaves nothing behind
    assert after.returncode == 1 and not (data / "journal" / done[0].run_id).exists()
