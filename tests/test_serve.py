"""``tickrec serve``: recorded data back over websockets, byte for byte, as the venue sends it.

The round trip is the main test: tickrec's recorder, a strict client of the
venue protocol, records from the simulator; then it records again from
``serve`` of that recording, as if ``serve`` were the exchange. Every
connection's payloads must come back exactly and in order.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import requests
from conftest import SimFactory, record_sim
from websockets.sync.client import connect

from recorder.record import RecordConfig, record
from replay.serve import ServeConfig, Server
from tickrec import contract


def _stored(root: Path, protocol: str) -> dict[str, list[list[str]]]:
    """Per symbol, each stored connection's received payloads in recorded order."""
    out: dict[str, list[list[str]]] = {}
    for p in contract.list_partitions(root):
        t = contract.read_partition(root, p.venue, p.date, p.symbol)
        t = t.filter(
            pc.and_(
                pc.equal(t.column("source").cast(pa.string()), "ws"),
                pc.equal(t.column("protocol").cast(pa.string()), protocol),
            )
        )
        conns: dict[tuple[str, int], list[str]] = {}
        rows = zip(
            t.column("run_id").to_pylist(),
            t.column("conn_id").to_pylist(),
            t.column("payload").to_pylist(),
            strict=True,
        )
        for run, conn, payload in rows:
            conns.setdefault((run, conn), []).append(payload)
        out.setdefault(p.symbol, []).extend(conns.values())
    return out


def _record_from(server: Server, data: Path, protocol: str, duration: float) -> None:
    record(
        RecordConfig(
            symbols=("BTCUSD", "ETHUSD"),
            protocol=protocol,
            url=server.url.ws_url,
            rest_url=server.url.rest_url,
            data=str(data),
            duration=duration,
            snapshot_every=0.0,
            status_every=0.0,
            fsync_interval=0.02,
            connects_per_minute=600.0,
            backoff_base=0.05,
        )
    )


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_recording_from_serve_gives_back_every_payload(
    sim_factory: SimFactory, tmp_path: Path, protocol: str
) -> None:
    # Connections closed every 0.6 s: the recording holds several per symbol.
    sim = sim_factory(rate=2000, close_every=0.6)
    record_sim(sim, tmp_path, protocol=protocol, duration=2.0)
    wire = f"gemini.{protocol}"
    original = _stored(tmp_path / "data", wire)
    assert all(len(conns) >= 2 for conns in original.values()), original.keys()
    with Server(ServeConfig(data=tmp_path / "data")) as server:
        _record_from(server, tmp_path / "again", protocol, duration=3.0)
    again = _stored(tmp_path / "again", wire)
    assert again.keys() == original.keys()
    for symbol, conns in original.items():
        got = [c for c in again[symbol] if c]  # after the end, a connection gets nothing
        if protocol == "v1":
            assert got == conns, symbol
        else:
            # One v2 connection carries both symbols; each partition holds its own
            # messages and the connection's heartbeats.
            assert [p for c in got for p in c] == [p for c in conns for p in c], symbol


def test_speed_one_takes_the_recorded_time(sim_factory: SimFactory, tmp_path: Path) -> None:
    sim = sim_factory(rate=200)
    record_sim(sim, tmp_path, protocol="v1", duration=1.5, symbols=("BTCUSD",))
    (conn,) = _stored(tmp_path / "data", "gemini.v1")["BTCUSD"]
    (part,) = contract.list_partitions(tmp_path / "data")
    t = contract.read_partition(tmp_path / "data", part.venue, part.date, part.symbol)
    ws = t.filter(pc.equal(t.column("source").cast(pa.string()), "ws"))
    recv = ws.column("recv_ts").cast(pa.int64()).to_pylist()
    span = (recv[-1] - recv[0]) / 1e9
    assert span > 1.0
    for speed, low, high in ((1.0, span - 0.05, span + 0.5), (None, 0.0, span / 3)):
        with Server(ServeConfig(data=tmp_path / "data", speed=speed)) as server:
            start = time.monotonic()
            with connect(server.url.ws_url + "/v1/marketdata/btcusd") as client:
                got = list(client)
            took = time.monotonic() - start
        assert got == conn
        assert low <= took <= high, (speed, took, span)


def test_rest_and_refusals(sim_factory: SimFactory, tmp_path: Path) -> None:
    sim = sim_factory(rate=200)
    record_sim(sim, tmp_path, protocol="v1", duration=1.0, snapshot_every=0.3)
    with Server(ServeConfig(data=tmp_path / "data", max_symbols=1)) as server:
        base = server.url.rest_url
        assert requests.get(base + "/v1/symbols", timeout=5).json() == ["btcusd", "ethusd"]
        book = requests.get(base + "/v1/book/btcusd", timeout=5)
        assert book.status_code == 200 and {"bids", "asks"} <= book.json().keys()
        bad = requests.get(base + "/v1/book/nosuch", timeout=5)
        assert bad.status_code == 400 and bad.json()["reason"] == "InvalidSymbol"
        assert requests.get(base + "/nowhere", timeout=5).status_code == 404
        # A malformed or too wide subscribe is refused with a close and its reason.
        for request in (b"{", {"type": "subscribe", "subscriptions": [{"name": "candles"}]}):
            with connect(server.url.ws_url + "/v2/marketdata") as client:
                client.send(request if isinstance(request, bytes) else orjson.dumps(request))
                with pytest.raises(Exception) as closed:
                    client.recv(timeout=5)
            assert "1008" in str(closed.value)
        wide = {
            "type": "subscribe",
            "subscriptions": [{"name": "l2", "symbols": ["BTCUSD", "ETHUSD"]}],
        }
        with connect(server.url.ws_url + "/v2/marketdata") as client:
            client.send(orjson.dumps(wide))
            with pytest.raises(Exception, match="1008"):
                client.recv(timeout=5)
