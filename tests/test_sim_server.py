"""The simulator over loopback, with real clients: v1, v2, REST, truth files, determinism."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import websocket
from conftest import SimFactory
from websockets.sync.client import connect

from tickrec.sim import Simulator

Levels = tuple[tuple[str, str], ...]
ReadJsonl = Callable[[Path], list[dict[str, Any]]]


def _apply_v1(book: dict[str, dict[str, str]], msg: dict[str, Any]) -> None:
    for ev in msg["events"]:
        if ev["type"] == "change":
            side = book[ev["side"]]
            if ev["remaining"] == "0":
                side.pop(ev["price"], None)
            else:
                side[ev["price"]] = ev["remaining"]


def _top(book: dict[str, dict[str, str]], depth: int) -> tuple[Levels, Levels]:
    bids = sorted(book["bid"].items(), key=lambda kv: -float(kv[0]))[:depth]
    asks = sorted(book["ask"].items(), key=lambda kv: float(kv[0]))[:depth]
    return tuple(bids), tuple(asks)


def _rest_top(body: dict[str, Any]) -> tuple[Levels, Levels]:
    def side(levels: list[dict[str, str]]) -> Levels:
        return tuple((lv["price"], lv["amount"]) for lv in levels)

    return side(body["bids"]), side(body["asks"])


def test_v1_websocketapp_gets_book_then_consecutive_updates(sim: Simulator) -> None:
    received: list[dict[str, Any]] = []

    def on_message(app: websocket.WebSocketApp, text: str) -> None:
        received.append(json.loads(text))
        if len(received) >= 60:
            app.close()

    app = websocket.WebSocketApp(
        f"{sim.ws_url}/v1/marketdata/btcusd?heartbeat=true", on_message=on_message
    )
    thread = threading.Thread(target=app.run_forever, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert len(received) >= 60
    first = received[0]
    assert list(first) == [
        "type",
        "eventId",
        "timestamp",
        "timestampms",
        "socket_sequence",
        "events",
    ]
    assert first["type"] == "update" and first["socket_sequence"] == 0
    assert {ev["reason"] for ev in first["events"]} == {"initial"}
    assert sum(ev["side"] == "bid" for ev in first["events"]) >= 10
    assert sum(ev["side"] == "ask" for ev in first["events"]) >= 10
    assert [m["socket_sequence"] for m in received] == list(range(len(received)))
    updates = [m for m in received[1:] if m["type"] == "update"]
    assert updates and all(m["eventId"] > first["eventId"] for m in updates)
    assert {ev["reason"] for m in updates for ev in m["events"] if ev["type"] == "change"} <= {
        "place",
        "cancel",
        "trade",
    }
    book: dict[str, dict[str, str]] = {"bid": {}, "ask": {}}
    for m in received:
        if m["type"] == "update":
            _apply_v1(book, m)
            (best_bid, _), (best_ask, _) = (lv[0] for lv in _top(book, 1))
            assert float(best_bid) < float(best_ask)


def test_v1_heartbeats_and_filters(sim_factory: SimFactory) -> None:
    sim = sim_factory(rate=2000, heartbeat_s=0.02)
    url = f"{sim.ws_url}/v1/marketdata/ETHUSD?heartbeat=true&bids=false&trades=false"
    with connect(url) as ws:
        msgs = [json.loads(ws.recv(timeout=5)) for _ in range(80)]
    beats = [m for m in msgs if m["type"] == "heartbeat"]
    assert beats and all(list(b) == ["type", "socket_sequence"] for b in beats)
    assert [m["socket_sequence"] for m in msgs] == list(range(80))
    events = [ev for m in msgs if m["type"] == "update" for ev in m["events"]]
    assert events and all(ev["type"] == "change" and ev["side"] == "ask" for ev in events)


def test_v1_top_of_book_is_a_one_level_book(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(rate=4000, truth_dir=tmp_path)
    with connect(f"{sim.ws_url}/v1/marketdata/btcusd?top_of_book=true&trades=false") as ws:
        msgs = [json.loads(ws.recv(timeout=5)) for _ in range(200)]
    sim.stop()
    assert sorted(ev["side"] for ev in msgs[0]["events"]) == ["ask", "bid"]
    true_book: dict[str, dict[str, str]] = {"bid": {}, "ask": {}}
    changes = iter(read_jsonl(tmp_path / "book.jsonl"))
    pending: dict[str, Any] | None = next(changes)
    book: dict[str, dict[str, str]] = {"bid": {}, "ask": {}}
    for m in msgs:
        _apply_v1(book, m)
        # After each update the client holds exactly the true best bid and ask.
        while pending is not None and pending["event_id"] <= m["eventId"]:
            if pending["symbol"] == "BTCUSD":
                _apply_v1(
                    true_book,
                    {"events": [{"type": "change", "remaining": pending["size"], **pending}]},
                )
            pending = next(changes, None)
        assert len(book["bid"]) == len(book["ask"]) == 1
        assert _top(book, 1) == _top(true_book, 1)


def test_v1_unknown_symbol_and_path_are_http_errors(sim: Simulator) -> None:
    for path, status in (("/v1/marketdata/nosuch", 400), ("/v3/marketdata", 404)):
        try:
            websocket.create_connection(sim.ws_url + path, timeout=5)
        except websocket.WebSocketBadStatusException as exc:
            assert exc.status_code == status
        else:
            raise AssertionError(f"{path} upgraded")
    body = requests.get(sim.rest_url + "/v1/book/nosuch", timeout=5).json()
    assert body["result"] == "error" and body["reason"] == "InvalidSymbol" and body["message"]


def test_v2_subscribe_snapshot_then_updates_and_unsubscribe(sim_factory: SimFactory) -> None:
    sim = sim_factory(rate=2000)
    sub = {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD", "ETHUSD"]}]}
    with connect(f"{sim.ws_url}/v2/marketdata") as ws:
        ws.send(json.dumps(sub))
        msgs = [json.loads(ws.recv(timeout=5)) for _ in range(400)]
        snapshots = {}
        for m in msgs:
            if m["type"] == "l2_updates" and "trades" in m:
                snapshots[m["symbol"]] = m
        assert set(snapshots) == {"BTCUSD", "ETHUSD"}
        for symbol, snap in snapshots.items():
            # The snapshot comes before any other message of its symbol.
            first = next(m for m in msgs if m.get("symbol") == symbol)
            assert first is snap
            sides = [c[0] for c in snap["changes"]]
            assert sides == sorted(sides) and {"buy", "sell"} == set(sides)
            bids = [float(c[1]) for c in snap["changes"] if c[0] == "buy"]
            asks = [float(c[1]) for c in snap["changes"] if c[0] == "sell"]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
            assert 0 < len(snap["trades"]) <= 50 and snap["auction_events"] == []
            tids = [t["tid"] for t in snap["trades"]]
            assert tids == sorted(tids, reverse=True)
        kinds = {m["type"] for m in msgs}
        assert {"l2_updates", "trade"} <= kinds
        trades = [m for m in msgs if m["type"] == "trade"]
        assert all(t["side"] in ("buy", "sell") and t["event_id"] == t["tid"] for t in trades)
        ws.send(
            json.dumps(
                {
                    **sub,
                    "type": "unsubscribe",
                    "subscriptions": [{"name": "l2", "symbols": ["ETHUSD"]}],
                }
            )
        )
        # Frames queued before the unsubscribe still arrive; then ETHUSD stops.
        later = [json.loads(ws.recv(timeout=5)) for _ in range(600)][300:]
    assert {m.get("symbol") for m in later} <= {"BTCUSD", None}


def test_v2_bad_subscription_closes_with_policy_violation(sim: Simulator) -> None:
    bad = {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["NOPEUSD"]}]}
    with connect(f"{sim.ws_url}/v2/marketdata/") as ws:
        ws.send(json.dumps(bad))
        try:
            while True:
                ws.recv(timeout=5)
        except Exception:
            pass
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1008


def test_rest_shapes(sim: Simulator) -> None:
    base = sim.rest_url
    symbols = requests.get(base + "/v1/symbols", timeout=5)
    assert symbols.status_code == 200 and symbols.headers["Content-Type"] == "application/json"
    assert symbols.json() == ["btcusd", "ethusd"]
    details = requests.get(base + "/v1/symbols/details/btcusd", timeout=5).json()
    assert details["symbol"] == "BTCUSD" and details["base_currency"] == "BTC"
    assert details["tick_size"] == 1e-8 and details["quote_increment"] == 0.01
    assert isinstance(details["min_order_size"], str)
    book = requests.get(base + "/v1/book/BTCUSD", timeout=5).json()
    assert 10 <= len(book["bids"]) <= 50 and 10 <= len(book["asks"]) <= 50
    assert set(book["bids"][0]) == {"price", "amount", "timestamp"}
    assert all(isinstance(v, str) for lv in book["bids"] + book["asks"] for v in lv.values())
    assert float(book["bids"][0]["price"]) < float(book["asks"][0]["price"])
    small = requests.get(base + "/v1/book/btcusd?limit_bids=3&limit_asks=0", timeout=5).json()
    assert len(small["bids"]) == 3 and len(small["asks"]) >= 10
    trades = requests.get(base + "/v1/trades/btcusd?limit_trades=20", timeout=5).json()
    assert 0 < len(trades) <= 20
    assert set(trades[0]) == {
        "timestamp",
        "timestampms",
        "tid",
        "price",
        "amount",
        "exchange",
        "type",
    }
    tids = [t["tid"] for t in trades]
    assert tids == sorted(tids, reverse=True)
    since = requests.get(
        base + f"/v1/trades/btcusd?since_tid={tids[-1]}&limit_trades=500", timeout=5
    ).json()
    assert since and min(t["tid"] for t in since) > tids[-1]
    stamp = trades[0]["timestampms"]
    newer = requests.get(base + f"/v1/trades/btcusd?timestamp={stamp}", timeout=5).json()
    assert all(t["timestampms"] > stamp for t in newer)
    assert requests.get(base + "/v1/book/btcusd?limit_bids=x", timeout=5).status_code == 400
    missing = requests.get(base + "/v1/nothing", timeout=5)
    assert missing.status_code == 404 and missing.json()["result"] == "error"


def test_rest_book_agrees_with_the_stream(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(rate=1000, truth_dir=tmp_path)
    states: dict[int, tuple[Levels, Levels]] = {}
    book: dict[str, dict[str, str]] = {"bid": {}, "ask": {}}
    ws = websocket.create_connection(f"{sim.ws_url}/v1/marketdata/btcusd", timeout=5)
    replies = []
    try:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            _apply_v1(book, msg)
            states[msg["eventId"]] = _top(book, 50)
        for _ in range(3):
            replies.append(
                _rest_top(requests.get(sim.rest_url + "/v1/book/btcusd", timeout=5).json())
            )
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            _apply_v1(book, msg)
            states[msg["eventId"]] = _top(book, 50)
    finally:
        ws.close()
    seen = set(states.values())
    for reply in replies:
        assert reply in seen
    sim.stop()
    # Exactly: the reply equals the streamed book after the last btcusd event it covered.
    served = [
        r for r in read_jsonl(tmp_path / "rest.jsonl") if r["path"].startswith("/v1/book/btcusd")
    ]
    assert len(served) == 3
    for record in served:
        upto = max(eid for eid in states if eid <= record["event_id"])
        assert _rest_top(json.loads(record["body"])) == states[upto]


def test_truth_files(sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl) -> None:
    sim = sim_factory(rate=1000, truth_dir=tmp_path)
    url = f"{sim.ws_url}/v1/marketdata/btcusd?heartbeat=true"
    with connect(url) as ws:
        got = [ws.recv(timeout=5) for _ in range(100)]
    reply = requests.get(sim.rest_url + "/v1/book/btcusd?limit_bids=0&limit_asks=0", timeout=5)
    sim.stop()
    sent = read_jsonl(tmp_path / "messages.jsonl")
    mine = [m for m in sent if m["path"] == "/v1/marketdata/btcusd?heartbeat=true"]
    assert [m["msg"] for m in mine[:100]] == got
    assert all(a["t_ns"] <= b["t_ns"] for a, b in itertools.pairwise(mine))
    conns = read_jsonl(tmp_path / "connections.jsonl")
    assert [c["event"] for c in conns if c["conn"] == mine[0]["conn"]] == ["open", "close"]
    # Rebuild the true book up to the REST reply and compare with what it served.
    record = read_jsonl(tmp_path / "rest.jsonl")[0]
    assert record["status"] == 200 and record["start_ns"] <= record["t_ns"]
    true_book: dict[str, dict[str, str]] = {"bid": {}, "ask": {}}
    for change in read_jsonl(tmp_path / "book.jsonl"):
        if change["symbol"] == "BTCUSD" and change["event_id"] <= record["event_id"]:
            _apply_v1(
                true_book, {"events": [{"type": "change", "remaining": change["size"], **change}]}
            )
    assert _rest_top(reply.json()) == _top(true_book, 10**6)
    assert _rest_top(json.loads(record["body"])) == _rest_top(reply.json())


def test_order_flow_is_deterministic_given_the_seed(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    flows = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        sim = sim_factory(seed=seed, rate=2000, truth_dir=tmp_path / name)
        time.sleep(0.2)
        sim.stop()
        lines = read_jsonl(tmp_path / name / "book.jsonl")
        flows.append([{k: v for k, v in line.items() if k != "t_ns"} for line in lines])
    n = min(len(f) for f in flows)
    assert n > 500
    assert flows[0][:n] == flows[1][:n]
    assert flows[0][:n] != flows[2][:n]
