"""Each fault option of the simulator produces the fault it claims, and logs it."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import SimFactory
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

ReadJsonl = Callable[[Path], list[dict[str, Any]]]


def _recv_until_closed(ws: ClientConnection, limit_s: float) -> list[str]:
    frames: list[str] = []
    deadline = time.monotonic() + limit_s
    with pytest.raises(ConnectionClosed):
        while time.monotonic() < deadline:
            frame = ws.recv(timeout=deadline - time.monotonic())
            assert isinstance(frame, str)
            frames.append(frame)
    return frames


def test_drop_makes_v1_sequence_skip(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(rate=2000, drop=0.1, truth_dir=tmp_path)
    with connect(f"{sim.ws_url}/v1/marketdata/btcusd") as ws:
        seqs = [json.loads(ws.recv(timeout=5))["socket_sequence"] for _ in range(300)]
    sim.stop()
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    missing = set(range(seqs[0], seqs[-1] + 1)) - set(seqs)
    assert 5 < len(missing) < 100
    drops = [f for f in read_jsonl(tmp_path / "faults.jsonl") if f["fault"] == "drop"]
    # Every dropped frame took its sequence number: the skips are exactly the drops.
    logged = {json.loads(f["frame"])["socket_sequence"] for f in drops}
    assert missing <= logged
    assert all(f["conn"] == 1 and f["t_ns"] > 0 for f in drops)


def test_malformed_frames_are_invalid_json(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(rate=2000, malformed=0.05, truth_dir=tmp_path)
    bad = good = 0
    with connect(f"{sim.ws_url}/v1/marketdata/btcusd") as ws:
        for _ in range(400):
            try:
                json.loads(ws.recv(timeout=5))
                good += 1
            except json.JSONDecodeError:
                bad += 1
    sim.stop()
    assert bad > 3 and good > 300
    logged = [f for f in read_jsonl(tmp_path / "faults.jsonl") if f["fault"] == "malformed"]
    assert len(logged) >= bad


def test_close_every_sends_a_close_frame(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(rate=1000, close_every=0.3, truth_dir=tmp_path)
    for _ in range(2):  # every connection is closed, not just the first
        start = time.monotonic()
        with connect(f"{sim.ws_url}/v1/marketdata/ethusd") as ws:
            frames = _recv_until_closed(ws, 5)
            assert frames and ws.protocol.close_rcvd is not None
            assert ws.protocol.close_rcvd.code == 1000
        assert 0.25 < time.monotonic() - start < 3
    sim.stop()
    assert [f["fault"] for f in read_jsonl(tmp_path / "faults.jsonl")] == ["close", "close"]
    ends = [c for c in read_jsonl(tmp_path / "connections.jsonl") if c["event"] != "open"]
    assert [(c["event"], c["code"]) for c in ends] == [("close", 1000), ("close", 1000)]


def test_abrupt_close_sends_no_close_frame(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(rate=1000, close_every=0.3, abrupt=True, truth_dir=tmp_path)
    with connect(f"{sim.ws_url}/v2/marketdata") as ws:
        ws.send(
            json.dumps(
                {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD"]}]}
            )
        )
        frames = _recv_until_closed(ws, 5)
        assert frames and ws.protocol.close_rcvd is None
    sim.stop()
    assert [f["fault"] for f in read_jsonl(tmp_path / "faults.jsonl")] == ["abort"]
    assert [c["event"] for c in read_jsonl(tmp_path / "connections.jsonl")] == ["open", "abort"]


def test_stall_goes_silent_then_resumes(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(
        rate=2000, heartbeat_s=0.05, stall_for=0.4, stall_every=0.3, truth_dir=tmp_path
    )
    arrivals: list[float] = []
    # An unbounded client queue: the backlog sent after a stall must not hold up the close.
    with connect(f"{sim.ws_url}/v1/marketdata/btcusd?heartbeat=true", max_queue=None) as ws:
        deadline = time.monotonic() + 1.0
        seqs = []
        while time.monotonic() < deadline:
            seqs.append(json.loads(ws.recv(timeout=5))["socket_sequence"])
            arrivals.append(time.monotonic())
    sim.stop()
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) >= 0.35
    assert sum(g >= 0.35 for g in gaps) <= 2
    # A stall delays frames; it loses none.
    assert seqs == list(range(len(seqs)))
    kinds = [f["fault"] for f in read_jsonl(tmp_path / "faults.jsonl")]
    assert kinds[:2] == ["stall", "stall_end"]


def test_rest_429_has_retry_after(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(rest_429=1.0, retry_after=3, truth_dir=tmp_path)
    reply = requests.get(sim.rest_url + "/v1/book/btcusd", timeout=5)
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "3"
    assert (
        set(reply.json()) == {"result", "reason", "message"} and reply.json()["result"] == "error"
    )
    sim.stop()
    assert [f["fault"] for f in read_jsonl(tmp_path / "faults.jsonl")] == ["rest_429"]
    assert read_jsonl(tmp_path / "rest.jsonl")[0]["status"] == 429


def test_rest_500(sim_factory: SimFactory) -> None:
    sim = sim_factory(rest_500=1.0)
    reply = requests.get(sim.rest_url + "/v1/trades/btcusd", timeout=5)
    assert reply.status_code == 500 and reply.json()["result"] == "error"


def test_rest_slow(sim_factory: SimFactory) -> None:
    sim = sim_factory(rest_slow=1.0, rest_slow_for=0.3)
    start = time.monotonic()
    reply = requests.get(sim.rest_url + "/v1/symbols", timeout=5)
    assert reply.status_code == 200 and reply.json() == ["btcusd", "ethusd"]
    assert time.monotonic() - start >= 0.3


def test_rest_fault_rate_is_a_share_of_requests(sim_factory: SimFactory) -> None:
    sim = sim_factory(rest_429=0.3, rest_500=0.2)
    codes = [requests.get(sim.rest_url + "/v1/symbols", timeout=5).status_code for _ in range(60)]
    assert {200, 429, 500} == set(codes)
    assert codes.count(200) > 10


def test_close_conns_closes_only_the_connections_named(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(rate=1000, close_every=0.3, close_conns=(2,), truth_dir=tmp_path)
    with connect(f"{sim.ws_url}/v1/marketdata/ethusd") as first:
        with connect(f"{sim.ws_url}/v1/marketdata/btcusd") as second:
            frames = _recv_until_closed(second, 5)
            assert frames and second.protocol.close_rcvd is not None
        first.recv(timeout=1)  # still open
        assert first.protocol.close_rcvd is None
    sim.stop()
    assert [(f["fault"], f["conn"]) for f in read_jsonl(tmp_path / "faults.jsonl")] == [
        ("close", 2)
    ]
