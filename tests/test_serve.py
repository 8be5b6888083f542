"""``tickrec serve``: recorded data back over websockets, byte for byte, as the venue sends it.

The round trip is the main test: tickrec's recorder, a strict client of the
venue protocol, records from the simulator; then it records again from
``serve`` of that recording, as if ``serve`` were the exchange. Every
connection's payloads must come back exactly and in order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from threading import Thread
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import requests
import websocket
from conftest import SimFactory, record_sim
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import replay
from recorder.record import RecordConfig, record
from replay import tardis
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


@pytest.mark.parametrize("protocol", ["v1", "v2", "ws"])
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
            # One v2 or ws connection carries both symbols; each partition holds its
            # own messages and the connection's heartbeats or replies.
            assert [p for c in got for p in c] == [p for c in conns for p in c], symbol


def test_the_lessons_crawler_reads_a_recording_as_it_read_the_venue(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """A ``websocket-client`` ``WebSocketApp`` on ``/v1/marketdata/btcusd`` that keeps
    bids and asks dictionaries from ``change`` events, as the lesson's crawler does,
    gets the stored messages byte for byte, and its book at the end is the replay's."""
    sim = sim_factory(rate=300)
    record_sim(sim, tmp_path, protocol="v1", duration=1.5, symbols=("BTCUSD",))
    root = tmp_path / "data"
    (stored,) = _stored(root, "gemini.v1")["BTCUSD"]
    received: list[str] = []
    book: dict[str, dict[str, str]] = {"bid": {}, "ask": {}}
    closed: list[int | None] = []

    def on_message(app: websocket.WebSocketApp, message: str) -> None:
        received.append(message)
        msg = json.loads(message)
        for ev in msg.get("events", ()):
            if ev["type"] == "change":
                if float(ev["remaining"]) == 0:
                    book[ev["side"]].pop(ev["price"], None)
                else:
                    book[ev["side"]][ev["price"]] = ev["remaining"]

    def on_close(app: websocket.WebSocketApp, code: int | None, reason: str | None) -> None:
        closed.append(code)

    with Server(ServeConfig(data=root)) as server:
        app = websocket.WebSocketApp(
            f"{server.url.ws_url}/v1/marketdata/btcusd", on_message=on_message, on_close=on_close
        )
        app.run_forever()
    assert closed == [1000] and received == stored
    (part,) = contract.list_partitions(root)
    t = contract.read_partition(root, part.venue, part.date, part.symbol)
    ws_rows = t.filter(pc.equal(t.column("source").cast(pa.string()), "ws"))
    last = ws_rows.column("recv_ts").cast(pa.int64())[-1].as_py()  # the crawler's last message
    day = replay.open(part.date, "BTCUSD", data=root, cache=False)
    view = day.book_at(last, depth=5)
    assert view.valid
    bids = sorted(book["bid"].items(), key=lambda kv: -Decimal(kv[0]))[:5]
    asks = sorted(book["ask"].items(), key=lambda kv: Decimal(kv[0]))[:5]
    scale = Decimal(10) ** -view.price_scale, Decimal(10) ** -view.size_scale
    for levels, px, sz in ((bids, view.bid_px, view.bid_sz), (asks, view.ask_px, view.ask_sz)):
        want = [(p * scale[0], q * scale[1]) for p, q in zip(px.tolist(), sz.tolist(), strict=True)]
        assert [(Decimal(p), Decimal(q)) for p, q in levels] == want


def test_speed_follows_the_recorded_time(sim_factory: SimFactory, tmp_path: Path) -> None:
    sim = sim_factory(rate=200)
    record_sim(sim, tmp_path, protocol="v1", duration=1.5, symbols=("BTCUSD",))
    (conn,) = _stored(tmp_path / "data", "gemini.v1")["BTCUSD"]
    (part,) = contract.list_partitions(tmp_path / "data")
    t = contract.read_partition(tmp_path / "data", part.venue, part.date, part.symbol)
    ws = t.filter(pc.equal(t.column("source").cast(pa.string()), "ws"))
    recv = ws.column("recv_ts").cast(pa.int64()).to_pylist()
    span = (recv[-1] - recv[0]) / 1e9
    assert span > 1.0
    # Real time, four times real time, and as fast as the client reads.
    paces = ((1.0, span - 0.05, span + 0.5), (4.0, span / 4 - 0.05, span / 4 + 0.3))
    for speed, low, high in (*paces, (None, 0.0, span / 3)):
        with Server(ServeConfig(data=tmp_path / "data", speed=speed)) as server:
            start = time.monotonic()
            with connect(server.url.ws_url + "/v1/marketdata/btcusd") as client:
                got = list(client)
            took = time.monotonic() - start
        assert got == conn
        assert low <= took <= high, (speed, took, span)


def test_current_api_answers_a_depth_request_from_the_rebuilt_book(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """A ``depth`` request mid-stream that the recording never sent is answered with the
    book rebuilt from the stored rows so far: it equals the book the client can build
    itself from the stored snapshot and the diffs up to the reply's ``lastUpdateId``."""
    sim = sim_factory(rate=500)
    record_sim(sim, tmp_path, protocol="ws", duration=2.0)
    root = tmp_path / "data"
    subscribe = {"id": 1, "method": "subscribe", "params": ["btcusd@depth@100ms"]}
    # in real time, so that the stream is still going when the requests come; the
    # recorder's own requests are not sent, so their stored replies are soon left out
    config = ServeConfig(data=root, speed=1.0, request_wait_s=0.1)
    with Server(config) as server, connect(server.url.ws_url + "/") as ws:
        ws.send(orjson.dumps(subscribe).decode())
        got: list[dict[str, Any]] = []
        for m in ws:
            got.append(orjson.loads(m))
            if sum(1 for g in got if g.get("e") == "depthUpdate") == 6:
                for rid, params in (
                    (42, {"symbol": "btcusd", "limit": 5}),
                    (43, {"symbol": "dogeusd"}),  # not on this connection
                    (44, {"symbol": "btcusd", "limit": 0}),
                ):
                    ws.send(orjson.dumps({"id": rid, "method": "depth", "params": params}).decode())
    replies = {g["id"]: g for g in got if "status" in g}
    assert replies[43]["status"] == replies[44]["status"] == 400
    result = replies[42]["result"]
    last = result["lastUpdateId"]
    # The client's own book: the stored snapshot (the first diff), then each diff to `last`.
    diffs = [g for g in got if g.get("e") == "depthUpdate"]
    assert any(d["u"] == last for d in diffs) and diffs[-1]["u"] > last
    book: dict[str, dict[Decimal, Decimal]] = {"b": {}, "a": {}}
    for d in diffs:
        if d["u"] > last:
            break
        for side in ("b", "a"):
            for px, qty in d[side]:
                if Decimal(qty):
                    book[side][Decimal(px)] = Decimal(qty)
                else:
                    book[side].pop(Decimal(px), None)
    top = {
        "bids": sorted(book["b"].items(), reverse=True)[:5],
        "asks": sorted(book["a"].items())[:5],
    }
    for side in ("bids", "asks"):
        assert [(Decimal(p), Decimal(q)) for p, q in result[side]] == top[side]
    # prices spelled as the stream spells them, so a book keyed by the text holds one level
    spelled = {px for d in diffs for side in ("b", "a") for px, _ in d[side]}
    assert {p for side in ("bids", "asks") for p, _ in result[side]} <= spelled


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


def _v2_rows(root: Path, symbols: set[str], channels: set[str]) -> list[tuple[int, str, int, str]]:
    """Stored v2 rows ``(recv_ns, run_id, conn_id, payload)`` of *channels*, in receive order."""
    rows = []
    for p in contract.list_partitions(root):
        if p.symbol not in symbols:
            continue
        t = contract.read_partition(root, p.venue, p.date, p.symbol).to_pylist()
        for r in t:
            if r["protocol"] != "gemini.v2" or r["source"] != "ws":
                continue
            if orjson.loads(r["payload"]).get("type") in channels:
                recv = r["recv_ts"]
                ns = int(recv.value) if hasattr(recv, "value") else int(recv.timestamp() * 1e9)
                rows.append((ns, r["run_id"], r["seq"], r["conn_id"], r["payload"]))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return [(ns, run, conn, payload) for ns, run, _, conn, payload in rows]


def _local_timestamp(ns: int) -> str:
    second = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{second}.{ns % 10**9 // 100:07d}Z"


def test_tardis_replay_ndjson_is_the_stored_rows(sim_factory: SimFactory, tmp_path: Path) -> None:
    sim = sim_factory(rate=1000, close_every=0.5)
    record_sim(sim, tmp_path, protocol="v2", duration=1.6)
    root = tmp_path / "data"
    wanted = _v2_rows(root, {"BTCUSD", "ETHUSD"}, {"trade", "l2_updates"})
    expected_btc = [r for r in wanted if "BTCUSD" in r[3] and '"l2_updates"' in r[3]]
    assert len({(run, conn) for _, run, conn, _ in wanted}) >= 3
    start = datetime.fromtimestamp(wanted[0][0] // 10**9, UTC).strftime("%Y-%m-%dT%H:%M")
    end = datetime.fromtimestamp(wanted[-1][0] // 10**9 + 60, UTC).strftime("%Y-%m-%dT%H:%M")
    with Server(ServeConfig(data=root)) as server:
        options = {
            "exchange": "gemini",
            "from": start,
            "to": end,
            "filters": [
                {"channel": "trade", "symbols": ["btcusd", "ethusd"]},
                {"channel": "l2_updates"},
            ],
            "withDisconnects": True,
        }
        got = requests.get(
            server.url.rest_url + "/replay", params={"options": orjson.dumps(options)}, timeout=30
        )
        # A date alone is a day, UTC, as in tardis' examples.
        day = datetime.fromtimestamp(wanted[0][0] // 10**9, UTC).date()
        options.update(
            filters=[{"channel": "l2_updates", "symbols": ["BTCUSD"]}],
            **{"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()},
        )
        del options["withDisconnects"]
        btc = requests.get(
            server.url.rest_url + "/replay", params={"options": orjson.dumps(options)}, timeout=30
        )
        bad = requests.get(
            server.url.rest_url + "/replay",
            params={"options": orjson.dumps({**options, "exchange": "binance"})},
            timeout=30,
        )
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "application/x-json-stream"
    # Each line is the stored payload as stored; an empty line where a connection ended.
    expected: list[str] = []
    for i, (ns, run, conn, payload) in enumerate(wanted):
        expected.append(f'{{"localTimestamp":"{_local_timestamp(ns)}","message":{payload}}}')
        if i + 1 < len(wanted) and all((r, c) != (run, conn) for _, r, c, _ in wanted[i + 1 :]):
            expected.append("")
    assert got.text.split("\n")[:-1] == expected
    assert expected.count("") == len({(r, c) for _, r, c, _ in wanted}) - 1
    lines = btc.text.split("\n")[:-1]
    assert [orjson.loads(x)["message"] for x in lines] == [orjson.loads(r[3]) for r in expected_btc]
    assert bad.status_code == 400 and "exchange" in bad.json()["message"]


def test_tardis_ndjson_is_the_same_in_any_pieces() -> None:
    payloads = [b'{"n":%d}' % i for i in range(7)]
    conn = np.array([0, 0, 1, 0, 2, 2, 1])
    selection = tardis.Selection(np.arange(7, dtype=np.int64) * 10**9, conn, payloads)
    whole = b"".join(tardis.ndjson(selection, True))
    lines = whole.decode().split("\n")[:-1]
    # Connection 0 ends after row 3, connection 2 after row 5; the last row has no blank.
    assert [line and orjson.loads(line)["message"]["n"] for line in lines] == [
        0,
        1,
        2,
        3,
        "",
        4,
        5,
        "",
        6,
    ]
    for rows in (1, 2, 3, 6):
        pieces = list(tardis.ndjson(selection, True, rows))
        assert len(pieces) == -(-7 // rows) and b"".join(pieces) == whole
    assert b"\n\n" not in b"".join(tardis.ndjson(selection, False, 2))
    assert list(tardis.ndjson(tardis.Selection(conn[:0], conn[:0], []), True)) == []


def test_http_answers_are_streamed_and_may_outlast_the_open_timeout(
    sim_factory: SimFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = sim_factory(rate=500)
    record_sim(sim, tmp_path, protocol="v2", duration=1.0)
    root = tmp_path / "data"
    wanted = _v2_rows(root, {"BTCUSD", "ETHUSD"}, {"trade", "l2_updates"})
    day = datetime.fromtimestamp(wanted[0][0] // 10**9, UTC).date()
    options = orjson.dumps(
        {"exchange": "gemini", "from": day.isoformat(), "to": str(day + timedelta(days=1))}
    )
    select = tardis.Tardis.select

    def slow_select(self: tardis.Tardis, o: tardis.Options) -> tardis.Selection:
        time.sleep(1.0)  # as a long range would take
        return select(self, o)

    monkeypatch.setattr(tardis.Tardis, "select", slow_select)
    config = ServeConfig(data=root, open_timeout_s=0.3, send_timeout_s=1.0)
    with Server(config) as server, caplog.at_level(logging.WARNING, "tickrec.serve"):
        port = server.server.port
        got = requests.get(server.url.rest_url + "/replay", params={"options": options}, timeout=30)
        assert got.status_code == 200 and got.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in got.headers
        assert [orjson.loads(x)["message"] for x in got.text.split("\n")[:-1]] == [
            orjson.loads(r[3]) for r in wanted
        ]
        # A connection that never sends its request is closed after the open timeout.
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.settimeout(5)
            began = time.monotonic()
            assert idle.recv(100) == b""
            assert 0.2 < time.monotonic() - began < 3
        # A client that stops reading a long answer is dropped after the send timeout.
        monkeypatch.setattr(tardis, "ndjson", lambda *_: (b"x" * 2**20 for _ in range(64)))
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", port))
            query = urlencode({"options": options})
            stalled.sendall(f"GET /replay?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            deadline = time.monotonic() + 10
            while "read nothing" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "dropping an HTTP client that read nothing for 1 s" in caplog.text
            stalled.settimeout(5)
            received = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := stalled.recv(2**20):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 200 OK") and len(received) < 64 * 2**20
            assert not received.endswith(b"0\r\n\r\n")  # cut short, so visibly incomplete
        symbols = requests.get(server.url.rest_url + "/v1/symbols", timeout=10)
        assert symbols.json() == ["btcusd", "ethusd"]


def test_tardis_ws_replay_sessions(sim_factory: SimFactory, tmp_path: Path) -> None:
    sim = sim_factory(rate=500)
    record_sim(sim, tmp_path, protocol="v2", duration=1.0)
    root = tmp_path / "data"
    rows = {
        s: _v2_rows(root, {s}, {"trade", "l2_updates", "auction_open"})
        for s in ("BTCUSD", "ETHUSD")
    }
    start = datetime.fromtimestamp(rows["BTCUSD"][0][0] // 10**9, UTC).strftime("%Y-%m-%dT%H:%M")
    end = datetime.fromtimestamp(rows["BTCUSD"][-1][0] // 10**9 + 60, UTC).strftime(
        "%Y-%m-%dT%H:%M"
    )
    got: dict[str, list[str]] = {}
    codes: dict[str, int | None] = {}

    def client(symbol: str, session: str) -> None:
        query = f"exchange=gemini&from={start}&to={end}&session={session}"
        with connect(server.url.ws_url + "/ws-replay?" + query) as ws:
            if symbol:
                sub = {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": [symbol]}]}
                ws.send(orjson.dumps(sub).decode())
            received = got[symbol or session] = []
            with contextlib.suppress(ConnectionClosed):
                received.extend(str(m) for m in ws)
            codes[symbol or session] = ws.close_code

    with Server(ServeConfig(data=root, session_delay_s=0.5)) as server:
        # Two connections of one session, each with its own subscription.
        threads = [Thread(target=client, args=(s, "one")) for s in ("BTCUSD", "ETHUSD")]
        # A connection of its own session that subscribes to nothing fails it (1011).
        threads.append(Thread(target=client, args=("", "idle")))
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # An exchange tardis-machine would refuse is refused at the upgrade.
        with pytest.raises(InvalidStatus, match="400"):
            connect(server.url.ws_url + f"/ws-replay?exchange=binance&from={start}&to={end}")
        # What one session of both sends: each connection's rows, merged by receive time.
        source = server.server.sessions.tardis
        picks = []
        for symbol in ("BTCUSD", "ETHUSD"):
            options = tardis.ws_options(f"exchange=gemini&from={start}&to={end}", source.exchanges)
            options.add("l2_updates", [symbol])
            options.add("trade", [symbol])
            picks.append(source.select(options))
        merged = list(tardis.merge(picks, batch=3))
    taken, times = [0, 0], []
    for who, batch, last in merged:
        times.extend(picks[who].recv_ns[taken[who] : taken[who] + len(batch)].tolist())
        taken[who] += len(batch)
        assert times[-1] == last
    assert times == sorted(times) and taken == [len(p.payloads) for p in picks]
    assert len(merged) > 4  # the two connections interleave
    for who in (0, 1):
        sent = [p for w, batch, _ in merged if w == who for p in batch]
        assert sent == picks[who].payloads
    for symbol in ("BTCUSD", "ETHUSD"):
        assert got[symbol] == [r[3] for r in rows[symbol]]
        assert codes[symbol] == 1000
    assert got["idle"] == [] and codes["idle"] == 1011


def test_current_api_answers_a_bot_from_the_stored_rows(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=500)
    record_sim(sim, tmp_path, protocol="ws", duration=1.0)
    root = tmp_path / "data"
    (conn,) = _stored(root, "gemini.ws")["BTCUSD"]
    frames = [p for p in conn if orjson.loads(p).get("s", "").upper() == "BTCUSD"]
    (subscribed,) = [p for p in conn if orjson.loads(p).get("id") == 1]
    assert frames and orjson.loads(frames[0])["e"] == "depthUpdate"  # the stored snapshot
    requests_sent = [
        # The recorder's first subscribe, by another id and in upper case: the stored reply.
        {"id": "a", "method": "SUBSCRIBE", "params": ["btcusd@depth@100ms", "btcusd@trade"]},
        {"id": 7, "method": "subscribe", "params": ["ethusd@bookTicker"]},  # not recorded
        # no such stored request, and sent before any row: no valid book to answer from
        {"id": 8, "method": "depth", "params": {"symbol": "ethusd"}},
        {"id": 9, "method": "ping"},
        {"id": 10, "method": "nosuch"},
    ]
    with Server(ServeConfig(data=root)) as server, connect(server.url.ws_url + "/") as ws:
        for r in requests_sent:
            ws.send(orjson.dumps(r).decode())
        got = [str(m) for m in ws]
        assert ws.close_code == 1000
    replies = {orjson.loads(m)["id"]: orjson.loads(m) for m in got if '"status"' in m}
    assert replies["a"] == {**orjson.loads(subscribed), "id": "a"}
    assert replies[7]["status"] == replies[8]["status"] == replies[10]["status"] == 400
    assert replies[9] == {"id": 9, "status": 200, "result": {}}
    assert len(replies) == 5
    # The streams of BTCUSD only, stored bytes in recorded order.
    assert [m for m in got if '"status"' not in m] == frames


def _frames_from(root: Path, protocol: str, symbol: str, from_ns: int) -> list[str]:
    """The received payloads of *symbol*'s stored connections from *from_ns* on."""
    (part,) = [p for p in contract.list_partitions(root) if p.symbol == symbol]
    t = contract.read_partition(root, part.venue, part.date, part.symbol)
    keep = pc.and_(
        pc.and_(
            pc.equal(t.column("source").cast(pa.string()), "ws"),
            pc.equal(t.column("protocol").cast(pa.string()), protocol),
        ),
        pc.greater_equal(t.column("recv_ts").cast(pa.int64()), from_ns),
    )
    return t.filter(keep).column("payload").to_pylist()


def _whole_book(root: Path, symbol: str) -> tuple[list[int], ...]:
    """Every level of *symbol*'s replayed book after its last stored row; it must be valid."""
    (part,) = [p for p in contract.list_partitions(root) if p.symbol == symbol]
    t = contract.read_partition(root, part.venue, part.date, part.symbol)
    ws_rows = t.filter(pc.equal(t.column("source").cast(pa.string()), "ws"))
    last = ws_rows.column("recv_ts").cast(pa.int64())[-1].as_py()
    view = replay.open(part.date, symbol, data=root, cache=False).book_at(last)
    assert view.valid, symbol
    return tuple(a.tolist() for a in (view.bid_px, view.bid_sz, view.ask_px, view.ask_sz))


@pytest.mark.parametrize("protocol", ["v1", "v2", "ws"])
def test_from_inside_a_stored_connection_opens_with_the_rebuilt_book(
    sim_factory: SimFactory, tmp_path: Path, protocol: str
) -> None:
    """``--from`` falls inside the stored connections: tickrec's recorder, recording from
    ``serve``, is in sync from the opening book the server rebuilds, gets the stored
    frames after ``--from``, and ends with the original's book, every level of it."""
    sim = sim_factory(rate=1000)
    record_sim(sim, tmp_path, protocol=protocol, duration=2.0)
    root, again = tmp_path / "data", tmp_path / "again"
    wire = f"gemini.{protocol}"
    (part,) = [p for p in contract.list_partitions(root) if p.symbol == "BTCUSD"]
    recv = contract.read_partition(root, part.venue, part.date, "BTCUSD").column("recv_ts")
    from_ns = recv.cast(pa.int64())[len(recv) // 2].as_py()
    with Server(ServeConfig(data=root, start_ns=from_ns)) as server:
        _record_from(server, again, protocol, duration=3.0)
    if protocol == "ws":
        # A client that leaves before it subscribes gives its place back.
        with Server(ServeConfig(data=root, start_ns=from_ns, max_connections=1)) as server:
            with connect(f"{server.url.ws_url}/?snapshot=-1"):
                pass
            time.sleep(0.3)
            with (
                connect(f"{server.url.ws_url}/?snapshot=-1") as second,
                pytest.raises(ConnectionClosed) as closed,
            ):
                second.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    for symbol in ("BTCUSD", "ETHUSD"):
        original = _frames_from(root, wire, symbol, from_ns)
        got = _frames_from(again, wire, symbol, 0)
        assert len(original) > 100
        if protocol == "v1":
            opening, *rest = got
            first = json.loads(opening)
            assert first["socket_sequence"] == 0
            assert {e["reason"] for e in first["events"]} == {"initial"}
            assert [json.loads(p)["socket_sequence"] for p in rest] == list(range(1, len(rest) + 1))
            renumbered = [
                p.replace(
                    f'"socket_sequence":{json.loads(p)["socket_sequence"]}',
                    f'"socket_sequence":{i}',
                    1,
                )
                for i, p in enumerate(original, 1)
            ]
            assert rest == renumbered
        elif protocol == "v2":
            opening, *rest = got
            assert json.loads(opening)["symbol"] == symbol and "changes" in json.loads(opening)
            assert rest == original
        else:
            # The stream frames are the stored ones; the replies answer this recorder.
            def stream(payloads: list[str]) -> list[str]:
                return [p for p in payloads if '"e":' in p]

            assert stream(got) == stream(original)
        assert _whole_book(again, symbol) == _whole_book(root, symbol)


def test_from_after_midnight_inside_a_current_api_connection_opens_with_both_days_book(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """A current-API connection recorded through midnight, served ``--from`` midnight, before
    day 2's own ``depth`` reply: the opening book can only come from the connection's rows
    of day 1, and tickrec's recorder, recording from ``serve``, is in sync from it and ends
    with day 2's book, every level."""
    from test_midnight import (
        DAY2,
        MIDNIGHT,
        read_rows,
        record_through_midnight,
        ws_depth_after_midnight,
    )

    run = record_through_midnight(sim_factory, tmp_path, "ws")
    from_ns = MIDNIGHT
    for symbol in ("BTCUSD", "ETHUSD"):
        _, reply = ws_depth_after_midnight(read_rows(run.root, DAY2, symbol), symbol)
        assert reply["recv"] > from_ns
    again = tmp_path / "again"
    with Server(ServeConfig(data=run.root, start_ns=from_ns)) as server:
        _record_from(server, again, "ws", duration=4.0)
    for symbol in ("BTCUSD", "ETHUSD"):
        day2 = contract.read_partition(run.root, "gemini", DAY2, symbol)
        ws_rows = day2.filter(
            pc.and_(
                pc.equal(day2.column("source").cast(pa.string()), "ws"),
                pc.greater_equal(day2.column("recv_ts").cast(pa.int64()), from_ns),
            )
        )
        (conn,) = set(ws_rows.column("conn_id").to_pylist())
        # The served connection opened before midnight: its opening book needs day 1.
        day1 = contract.read_partition(run.root, "gemini", "2026-01-01", symbol)
        assert (
            conn
            in day1.filter(pc.equal(day1.column("source").cast(pa.string()), "ws"))
            .column("conn_id")
            .to_pylist()
        )
        original = [p for p in ws_rows.column("payload").to_pylist() if '"e":' in p]
        got = [p for p in _frames_from(again, "gemini.ws", symbol, 0) if '"e":' in p]
        assert len(original) > 100 and got == original
        last = ws_rows.column("recv_ts").cast(pa.int64())[-1].as_py()
        view = replay.open(DAY2, symbol, data=run.root, cache=False).book_at(last)
        assert view.valid
        want = tuple(a.tolist() for a in (view.bid_px, view.bid_sz, view.ask_px, view.ask_sz))
        assert _whole_book(again, symbol) == want


def test_from_inside_a_current_api_connection_answers_every_depth_asked_before_subscribing(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """Opened ``--from`` inside a stored connection, the stream waits for the client's
    subscribe; a ``depth`` answered from the rebuilt book while another reply has gone out
    (here ``time``) still reaches the client, before the stream."""
    sim = sim_factory(rate=1000)
    record_sim(sim, tmp_path, protocol="ws", duration=2.0)
    root = tmp_path / "data"
    (part,) = [p for p in contract.list_partitions(root) if p.symbol == "BTCUSD"]
    recv = contract.read_partition(root, part.venue, part.date, "BTCUSD").column("recv_ts")
    from_ns = recv.cast(pa.int64())[len(recv) // 2].as_py()
    requests_sent = [
        {"id": 7, "method": "depth", "params": {"symbol": "btcusd", "limit": 5}},
        {"id": 8, "method": "depth", "params": {"symbol": "ethusd", "limit": 5}},
        {"id": 9, "method": "time"},
    ]
    with (
        Server(ServeConfig(data=root, start_ns=from_ns)) as server,
        connect(server.url.ws_url + "/") as ws,
    ):
        for request in requests_sent:
            ws.send(orjson.dumps(request).decode())
        first = orjson.loads(ws.recv(timeout=10))
        ws.send(
            orjson.dumps({"id": 10, "method": "subscribe", "params": ["btcusd@trade"]}).decode()
        )
        got = [first]
        while not any(g.get("e") == "trade" for g in got):
            got.append(orjson.loads(ws.recv(timeout=10)))
    replies = {g["id"]: g for g in got if "status" in g}
    assert {7, 8, 9, 10} <= replies.keys()
    assert replies[7]["status"] == replies[8]["status"] == 200
    assert replies[7]["result"]["bids"] and replies[8]["result"]["asks"]
    stream_at = next(i for i, g in enumerate(got) if g.get("e") == "trade")
    assert all(i < stream_at for i, g in enumerate(got) if g.get("id") in (7, 8))
