"""``tickrec record --venue binance`` against the simulator, replayed against its ground truth.

The recorder's connection takes a REST sync snapshot of each symbol on
connect and again after every gap, stored as ``rest`` rows of that
connection; the replay builds each book from them. Every valid book must be
the simulator's true book after the last update id the connection held by
then, every dropped diff must lie in a reported gap, and every gap must end
at a sync snapshot of the same connection.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests
import websocket
from test_binance_sim import true_tops
from test_midnight import MIDNIGHT, S, shifted_clock
from test_replay_realdata import kernel_tops
from truth import read_jsonl
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import replay
from recorder.feed import RESYNC
from recorder.record import RecordConfig, record
from replay.serve import ServeConfig, Served, Server
from tickrec import contract
from tickrec.errors import UsageError
from tickrec.sim import Simulator
from tickrec.venues.base import FetchBook, GapAt, Header, Resync
from tickrec.venues.binance.session import SpotSession

SYMBOLS = ("BTCUSDT", "ETHUSDT")
Rows = list[dict[str, Any]]


def record_binance(
    sim: Simulator | Served, root: Path, duration: float = 6.0, **overrides: Any
) -> None:
    settings: dict[str, Any] = {
        "symbols": SYMBOLS,
        "venue": "binance",
        "url": sim.ws_url,
        "rest_url": sim.rest_url,
        "data": str(root / "data"),
        "duration": duration,
        "sync_depth": 1000,
        "snapshot_every": 0.0,
        "rest_min_gap": 0.05,
        "status_every": 0.0,
        "fsync_interval": 0.02,
        **overrides,
    }
    record(RecordConfig(**settings))


def read_rows(root: Path, date: str, symbol: str) -> Rows:
    """A partition's rows in ``seq`` order, times as int ns and payloads parsed."""
    table = contract.read_partition(root / "data", "binance", date, symbol)
    recv = table.column("recv_ts").cast(pa.int64()).to_pylist()
    sent = table.column("sent_ts").cast(pa.int64()).to_pylist()
    rows: Rows = table.drop_columns(["recv_ts", "sent_ts"]).to_pylist()
    for row, r, s in zip(rows, recv, sent, strict=True):
        row["recv"], row["sent"] = r, s
        row["obj"] = json.loads(row["payload"])
    return rows


def held_ids(rows: Rows) -> list[tuple[int, int]]:
    """``(recv_ns, update id the connection's book holds by then)`` at each diff and snapshot."""
    held, out = 0, []
    for row in rows:
        obj = row["obj"]
        if row["source"] == "rest" and row["conn_id"] != contract.RUN_CONN_ID:
            held = max(held, obj["lastUpdateId"])
        elif row["source"] == "ws" and obj.get("data", {}).get("e") == "depthUpdate":
            held = max(held, obj["data"]["u"])
        else:
            continue
        out.append((row["recv"], held))
    return out


def assert_valid_books_are_true(
    root: Path, date: str, symbol: str, before: Rows | tuple[()] = ()
) -> replay.Day:
    """Replay *date*; *before* are the rows of the dates before it the replay carries from."""
    day = replay.open(date, symbol, venue="binance", data=root / "data")
    snaps = day.book_snapshots(depth=10, every=0, exact=True)
    valid = kernel_tops(snaps[snaps["valid"]], day.price_scale, day.size_scale)
    assert valid, f"{symbol}: never valid"
    truth = true_tops(root / "truth", symbol)
    rows = [*before, *read_rows(root, date, symbol)]
    # The book of whichever connection the replay follows (two overlap at a handover).
    ids = [held_ids([r for r in rows if r["conn_id"] in (c, 0)]) for c in _conns(rows)]
    for ns, top in valid:
        helds = {max((uid for t, uid in conn if t <= ns), default=None) for conn in ids}
        assert any(top == truth.get(h) for h in helds), (symbol, ns, helds)
    return day


def _conns(rows: Rows) -> list[int]:
    return sorted({r["conn_id"] for r in rows if r["source"] == "ws"})


def dropped_diffs(root: Path, symbol: str) -> list[tuple[int, int]]:
    """``(when, u)`` of each diff frame of *symbol* the simulator dropped."""
    out = []
    for fault in read_jsonl(root / "truth" / "faults.jsonl"):
        if fault["fault"] == "drop":
            data = json.loads(fault["frame"])["data"]
            if data.get("e") == "depthUpdate" and data["s"] == symbol:
                out.append((fault["t_ns"], data["u"]))
    return out


def test_drops_are_gaps_healed_by_a_resync_and_valid_books_are_true(
    sim_factory: Any, tmp_path: Path
) -> None:
    sim = sim_factory(symbols=SYMBOLS, rate=300.0, seed=5, drop=0.05, truth_dir=tmp_path / "truth")
    record_binance(sim, tmp_path)
    sim.stop()
    date = contract.list_partitions(tmp_path / "data", venue="binance")[0].date
    drops = 0
    for symbol in SYMBOLS:
        rows = read_rows(tmp_path, date, symbol)
        assert {r["conn_id"] for r in rows if r["source"] == "ws"} == {1}, "never reconnected"
        day = assert_valid_books_are_true(tmp_path, date, symbol)
        gaps = day.gap_list()
        breaks = [g for g in gaps if g.kind == "sequence"]
        noted = [r for r in rows if r["source"] == "event" and r["obj"]["event"] == "gap"]
        assert len(noted) == len(breaks), "the recorder saw each break the replay reports"
        ids, end = held_ids(rows), rows[-1]["recv"]
        for t, u in dropped_diffs(tmp_path, symbol):
            if u <= max((uid for r, uid in ids if r <= t), default=0):
                continue  # a snapshot taken since holds it already: nothing was lost
            if t > end - S // 2:
                continue  # the run ended before the next diff could show the skip
            drops += 1
            assert any(g.start <= t <= g.end for g in gaps), f"{symbol}: drop at {t} not in a gap"
        syncs = {r["recv"] for r in rows if r["source"] == "rest" and r["conn_id"] == 1}
        for g in breaks:
            if g.start < end - S:
                assert g.end in syncs, f"{symbol}: gap {g} did not end at a sync snapshot"
    assert drops >= 2


def test_rate_limited_sync_snapshots_wait_and_are_asked_again(
    sim_factory: Any, tmp_path: Path
) -> None:
    sim = sim_factory(
        symbols=SYMBOLS, rate=200.0, rest_429=0.5, retry_after=2, truth_dir=tmp_path / "truth"
    )
    record_binance(sim, tmp_path, duration=7.0)
    sim.stop()
    date = contract.list_partitions(tmp_path / "data", venue="binance")[0].date
    limited = 0
    for symbol in SYMBOLS:
        rows = read_rows(tmp_path, date, symbol)
        errors = [
            r["obj"]
            for r in rows
            if r["source"] == "event" and r["obj"]["event"] == "rest_error" and r["obj"]["sync"]
        ]
        limited += sum(e["status"] == 429 for e in errors)
        assert_valid_books_are_true(tmp_path, date, symbol)
    assert limited >= 1
    # Every request after a 429 went out no sooner than its Retry-After (2 s).
    asked = sorted(
        (r["start_ns"], r["t_ns"], r["status"]) for r in read_jsonl(tmp_path / "truth/rest.jsonl")
    )
    for (_, replied, status), (start, _, _) in itertools.pairwise(asked):
        if status == 429:
            assert start - replied >= 1.95 * S


def test_a_symbol_exchange_info_does_not_list_is_refused(sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory(symbols=SYMBOLS)
    with pytest.raises(UsageError, match="does not list XRPUSDT"):
        record_binance(sim, tmp_path, symbols=("BTCUSDT", "XRPUSDT"))
    assert not (tmp_path / "data" / "raw").exists()


def test_a_connection_near_its_lifetime_is_replaced_make_before_break(
    sim_factory: Any, tmp_path: Path
) -> None:
    sim = sim_factory(symbols=SYMBOLS, rate=200.0, truth_dir=tmp_path / "truth")
    record_binance(sim, tmp_path, duration=5.0, lifetime=2.0)
    sim.stop()
    date = contract.list_partitions(tmp_path / "data", venue="binance")[0].date
    for symbol in SYMBOLS:
        rows = read_rows(tmp_path, date, symbol)
        handovers = [
            r["obj"]
            for r in rows
            if r["source"] == "event"
            and r["obj"]["event"] == "disconnect"
            and r["obj"]["why"] == RESYNC
        ]
        assert handovers, "the old connection was retired for its successor"
        day = replay.open(date, symbol, venue="binance", data=tmp_path / "data")
        first_valid = min(g.end for g in day.gap_list() if g.kind == "unsynced")
        last = rows[-1]["recv"]
        inside = [g for g in day.gap_list() if first_valid <= g.start and g.end < last - S // 2]
        assert inside == [], "no stretch without a valid book at a handover"


def test_server_shutdown_opens_a_successor_before_the_close(
    sim_factory: Any, tmp_path: Path
) -> None:
    """``serverShutdown`` 1.5 s before the server closes connection 1: a successor has
    every book by then, and the old connection is retired, not lost."""
    sim = sim_factory(
        symbols=SYMBOLS,
        rate=200.0,
        close_every=1.5,
        shutdown_notice=1.5,
        close_conns=(1,),
        truth_dir=tmp_path / "truth",
    )
    record_binance(sim, tmp_path, duration=5.0)
    sim.stop()
    # The recorder left before the server closed it: the close never came.
    faults = read_jsonl(tmp_path / "truth" / "faults.jsonl")
    assert [f["fault"] for f in faults] == ["shutdown_notice"]
    date = contract.list_partitions(tmp_path / "data", venue="binance")[0].date
    for symbol in SYMBOLS:
        rows = read_rows(tmp_path, date, symbol)
        [end1] = [
            r["obj"]
            for r in rows
            if r["source"] == "event" and r["obj"]["event"] == "disconnect" and r["conn_id"] == 1
        ]
        assert end1["why"] == RESYNC and end1["handover_to"] == 2
        day = assert_valid_books_are_true(tmp_path, date, symbol)
        first_valid = min(g.end for g in day.gap_list() if g.kind == "unsynced")
        last = rows[-1]["recv"]
        inside = [g for g in day.gap_list() if first_valid <= g.start and g.end < last - S // 2]
        assert inside == [], "no stretch without a valid book at the handover"


def test_recording_from_serve_stores_the_recorded_frames_again(
    sim_factory: Any, tmp_path: Path
) -> None:
    """``tickrec serve`` plays a Binance recording on ``/stream`` and ``/api/v3``; the
    recorder, pointed at it as at Binance, stores the same frames, byte for byte."""
    sim = sim_factory(symbols=SYMBOLS, rate=200.0, drop=0.01)
    record_binance(sim, tmp_path / "a", duration=3.0)
    sim.stop()
    date = contract.list_partitions(tmp_path / "a" / "data", venue="binance")[0].date
    books = [
        r["payload"] for r in read_rows(tmp_path / "a", date, "BTCUSDT") if r["source"] == "rest"
    ]
    with Server(ServeConfig(data=tmp_path / "a" / "data")) as served:
        rest = served.url.rest_url
        info = requests.get(f"{rest}/api/v3/exchangeInfo", timeout=5).json()
        assert [s["symbol"] for s in info["symbols"]] == sorted(SYMBOLS)
        # Before any frame, the replay clock is the first receive time stored.
        first = min(r["recv"] for s in SYMBOLS for r in read_rows(tmp_path / "a", date, s))
        assert info["serverTime"] == first // 1_000_000
        depth = f"{rest}/api/v3/depth?symbol=BTCUSDT&limit=1000"
        assert requests.get(depth, timeout=5).text == books[0]  # the replay clock: its start
        # One stream of one symbol: only its frames.
        ws = websocket.create_connection(f"{served.url.ws_url}/stream?streams=btcusdt@trade")
        got = []
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            while frame := ws.recv():
                got.append(frame)
        trades = [
            r["payload"]
            for r in read_rows(tmp_path / "a", date, "BTCUSDT")
            if r["source"] == "ws" and r["payload"].startswith('{"stream":"btcusdt@trade"')
        ]
        assert got == trades and trades
        record_binance(served.url, tmp_path / "b", duration=2.0, backoff_base=0.2)
        assert requests.get(depth, timeout=5).text == books[-1]  # and now its end
        bad = requests.get(f"{rest}/api/v3/depth?symbol=NOPE", timeout=5)
        assert bad.status_code == 400 and bad.json()["code"] == -1121
        # as Binance: symbols in upper case, the limit cuts each side, and bad values
        # get Binance's own error codes
        for query, code in (("symbol=btcusdt", -1121), ("limit=5", -1102)):
            got = requests.get(f"{rest}/api/v3/depth?{query}", timeout=5)
            assert got.status_code == 400 and got.json()["code"] == code
        for limit in ("0", "5001", "x"):
            got = requests.get(f"{rest}/api/v3/depth?symbol=BTCUSDT&limit={limit}", timeout=5)
            assert got.status_code == 400 and got.json()["code"] == -1100
        five = requests.get(f"{rest}/api/v3/depth?symbol=BTCUSDT&limit=5", timeout=5).json()
        last = json.loads(books[-1])
        assert five == {**last, "bids": last["bids"][:5], "asks": last["asks"][:5]}
        assert len(last["bids"]) > 5
    # A raw stream: each event as Binance's /ws/<name> sends it, unwrapped.
    with Server(ServeConfig(data=tmp_path / "a" / "data")) as served:
        ws = websocket.create_connection(f"{served.url.ws_url}/ws/btcusdt@trade")
        raw = []
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            while frame := ws.recv():
                raw.append(frame)
    prefix = len('{"stream":"btcusdt@trade","data":')
    assert raw == [t[prefix:-1] for t in trades]
    # /ws alone, as many clients open it: each request answered as Binance does, and the
    # first good SUBSCRIBE starts the replay of its streams.
    with Server(ServeConfig(data=tmp_path / "a" / "data")) as served:
        ws = websocket.create_connection(f"{served.url.ws_url}/ws")
        ws.send("{nope")
        assert json.loads(ws.recv()) == {"code": 3, "msg": "Invalid JSON"}
        ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        assert json.loads(ws.recv()) == {"result": [], "id": 1}
        ws.send('{"method":"SUBSCRIBE","params":["nosuch@trade"],"id":2}')
        refused = json.loads(ws.recv())
        assert refused["code"] == 2 and refused["id"] == 2 and "NOSUCH" in refused["msg"]
        ws.send('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":3}')
        assert json.loads(ws.recv()) == {"result": None, "id": 3}
        subscribed = []
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            while frame := ws.recv():
                subscribed.append(frame)
        # Another stream on the same server: a socket of its own gets the same stored
        # connection (one socket per stream, as many bots keep them).
        ws = websocket.create_connection(f"{served.url.ws_url}/ws/btcusdt@depth@100ms")
        diffs = []
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            while frame := ws.recv():
                diffs.append(json.loads(frame))
    assert subscribed == raw
    assert len(diffs) > 10 and {d.get("e") for d in diffs} == {"depthUpdate"}
    assert [json.loads(f) for f in raw] == [json.loads(t)["data"] for t in trades]
    for symbol in SYMBOLS:
        frames = [
            [r["payload"] for r in read_rows(tmp_path / side, date, symbol) if r["source"] == "ws"]
            for side in ("a", "b")
        ]
        assert len(frames[0]) > 50 and frames[1] == frames[0]


def test_each_date_has_sync_snapshots_of_its_own(sim_factory: Any, tmp_path: Path) -> None:
    clock = shifted_clock(MIDNIGHT - 3 * S)
    sim = sim_factory(symbols=SYMBOLS, rate=200.0, truth_dir=tmp_path / "truth", clock=clock)
    record_binance(sim, tmp_path, duration=6.0, clock=clock)
    sim.stop()
    day1, day2 = contract.date_of_ns(MIDNIGHT - S), contract.date_of_ns(MIDNIGHT)
    for symbol in SYMBOLS:
        rows = read_rows(tmp_path, day2, symbol)
        syncs = [r for r in rows if r["source"] == "rest" and r["conn_id"] == 1]
        assert syncs and syncs[0]["sent"] - MIDNIGHT < S // 2, "a snapshot asked right after 0:00"
        # Carried on from day 1, then day 2 alone: valid from its own snapshot on.
        day = assert_valid_books_are_true(tmp_path, day2, symbol, read_rows(tmp_path, day1, symbol))
        assert day.coverage > 0
    for p in contract.list_partitions(tmp_path / "data", date=day1):
        shutil.rmtree(contract.partition_dir(tmp_path / "data", p.venue, p.date, p.symbol))
    for symbol in SYMBOLS:
        day = assert_valid_books_are_true(tmp_path, day2, symbol)
        first = next(r["recv"] for r in read_rows(tmp_path, day2, symbol) if r["source"] == "rest")
        snaps = day.book_snapshots(depth=1, every=0)
        assert snaps[snaps["valid"]]["ts"].min().value >= first, "valid before its snapshot"
        assert day.gap_list()[0].start >= first or day.gap_list()[0].end == first


def _diff(first: int, last: int, symbol: str = "BTCUSDT") -> Header:
    return Header(kind="depthUpdate", venue_seq=last, symbol=symbol, first_seq=first)


def test_session_holds_diffs_until_the_snapshot_and_asks_again_after_a_gap() -> None:
    session = SpotSession(("BTCUSDT",))
    assert session.opening() == [FetchBook("BTCUSDT")]
    assert session.message(_diff(5, 7), b"") == [] and session.message(_diff(8, 9), b"") == []
    assert session.booked == frozenset()
    # Older than the diffs held: U 5 does not cover 3 + 1; asked again.
    assert session.book("BTCUSDT", '{"lastUpdateId":3,"bids":[],"asks":[]}') == [
        FetchBook("BTCUSDT")
    ]
    assert session.booked == frozenset()
    assert session.book("BTCUSDT", '{"lastUpdateId":6,"bids":[],"asks":[]}') == []
    assert session.booked == {"BTCUSDT"}
    assert session.message(_diff(10, 12), b"") == []
    assert session.message(_diff(14, 15), b"") == [
        GapAt("BTCUSDT", (13, 14)),
        FetchBook("BTCUSDT"),
    ]
    assert session.booked == frozenset()
    assert session.book("BTCUSDT", '{"lastUpdateId":14,"bids":[],"asks":[]}') == []
    assert session.booked == {"BTCUSDT"}  # the held (14, 15) follows it
    assert session.message(_diff(16, 16), b"") == []
    # A refresh older than the book is left out, as the replay leaves it out: had it
    # been taken, the next diff would skip an id.
    assert session.book("BTCUSDT", '{"lastUpdateId":15,"bids":[],"asks":[]}') == []
    assert session.message(_diff(17, 17), b"") == []
    assert session.message(Header(kind="serverShutdown"), b"") == [Resync("serverShutdown")]


def test_serve_from_inside_a_connection_answers_depth_from_the_rebuilt_book(
    sim_factory: Any, tmp_path: Path
) -> None:
    """With ``--from`` inside the stored connection, the last stored depth reply is older
    than the frames served; ``/api/v3/depth`` answers from the book the connection's rows
    rebuild instead, so the recorder syncs by Binance's procedure and ends with the
    original's book, every level of it."""
    sim = sim_factory(symbols=SYMBOLS, rate=200.0)
    record_binance(sim, tmp_path / "a", duration=3.0)
    sim.stop()
    date = contract.list_partitions(tmp_path / "a" / "data", venue="binance")[0].date
    rows = read_rows(tmp_path / "a", date, "BTCUSDT")
    diffs = [r for r in rows if r["source"] == "ws" and "depthUpdate" in r["payload"]]
    from_ns = diffs[len(diffs) // 2]["recv"]
    # In recorded time, so the recorder's depth request comes while the frames flow.
    config = ServeConfig(data=tmp_path / "a" / "data", start_ns=from_ns, speed=1.0)
    with Server(config) as served:
        record_binance(served.url, tmp_path / "b", duration=2.5, backoff_base=0.2)
    for symbol in SYMBOLS:
        original = read_rows(tmp_path / "a", date, symbol)
        again = read_rows(tmp_path / "b", date, symbol)
        frames = [r["payload"] for r in original if r["source"] == "ws" and r["recv"] >= from_ns]
        assert [r["payload"] for r in again if r["source"] == "ws"] == frames
        (sync, *_) = [r["obj"] for r in again if r["source"] == "rest"]
        # The sync reply is the rebuilt book at a diff served, newer than any reply stored.
        ids = [r["obj"]["data"]["u"] for r in original if "depthUpdate" in r["payload"]]
        stored = [r["obj"]["lastUpdateId"] for r in original if r["source"] == "rest"]
        assert sync["lastUpdateId"] in ids and sync["lastUpdateId"] > max(stored)
        books = []
        for root, got in ((tmp_path / "a", original), (tmp_path / "b", again)):
            last = max(r["recv"] for r in got if r["source"] == "ws")
            day = replay.open(date, symbol, "binance", data=root / "data", cache=False)
            view = day.book_at(last)
            assert view.valid, (root, symbol)
            books.append([a.tolist() for a in (view.bid_px, view.bid_sz, view.ask_px, view.ask_sz)])
        assert books[0] == books[1], symbol


def test_serve_binance_streams_follow_subscribe_while_the_replay_runs(
    sim_factory: Any, tmp_path: Path
) -> None:
    """On a running Binance replay, ``SUBSCRIBE``, ``UNSUBSCRIBE`` and
    ``LIST_SUBSCRIPTIONS`` get Binance's replies, and the frames that follow are the
    stored ones of the streams subscribed by then, in recorded order."""
    sim = sim_factory(symbols=SYMBOLS, rate=200.0)
    record_binance(sim, tmp_path / "a", duration=3.0)
    sim.stop()
    date = contract.list_partitions(tmp_path / "a" / "data", venue="binance")[0].date
    stored = [
        r["payload"] for r in read_rows(tmp_path / "a", date, "BTCUSDT") if r["source"] == "ws"
    ]
    seen: list[str] = []
    replies: dict[int, Any] = {}

    def read_until(done: Any) -> None:
        while not done():
            frame = ws.recv()
            if not frame:
                return
            msg = json.loads(frame)
            if "id" in msg:
                replies[msg["id"]] = (msg, len(seen))
            else:
                seen.append(frame)

    with Server(ServeConfig(data=tmp_path / "a" / "data", speed=1.0)) as served:
        ws = websocket.create_connection(f"{served.url.ws_url}/stream?streams=btcusdt@trade")
        read_until(lambda: len(seen) >= 3)
        ws.send('{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":7}')
        ws.send('{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":8}')
        ws.send('{"method":"LIST_SUBSCRIPTIONS","id":9}')
        ws.send('{"method":"UNSUBSCRIBE","params":"btcusdt@trade","id":10}')
        read_until(lambda: 9 in replies and sum("depthUpdate" in f for f in seen) >= 3)
        ws.send('{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":11}')
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            read_until(lambda: False)
        # Nothing subscribed for a while: the connection keeps the recording's time, and
        # a SUBSCRIBE then gets the frames from there on, not those that came due meanwhile.
        depth = [json.loads(p)["data"] for p in stored if "depthUpdate" in p]
        span = (depth[-1]["E"] - depth[0]["E"]) / 1e3  # event times in ms
        ws = websocket.create_connection(f"{served.url.ws_url}/ws/btcusdt@depth@100ms")
        opened, first = time.monotonic(), json.loads(ws.recv())
        ws.send('{"method":"UNSUBSCRIBE","params":["btcusdt@depth@100ms"],"id":20}')
        time.sleep(1.0)
        ws.send('{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":21}')
        events = [first]
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            while frame := ws.recv():
                events.append(json.loads(frame))
        lasted = time.monotonic() - opened
    got = [e for e in events if "id" not in e]
    assert [e["id"] for e in events if "id" in e] == [20, 21]
    assert lasted > 0.8 * span and 0 < len(got) < len(depth) - 5
    resumed = [e for e in got if e["E"] - got[0]["E"] >= 1000]
    assert resumed and all(e in depth for e in got)
    assert replies[7][0] == {"result": None, "id": 7}
    assert replies[8][0]["code"] == 2 and "ethusdt@trade" in replies[8][0]["msg"]
    assert replies[9][0] == {"result": ["btcusdt@depth@100ms", "btcusdt@trade"], "id": 9}
    assert replies[10][0]["code"] == 2  # params must be a list
    assert replies[11][0] == {"result": None, "id": 11}
    # What came is the stored frames, in order, of the streams subscribed by then.
    it = iter(stored)
    assert all(any(f == s for s in it) for f in seen)
    before, after = seen[: replies[7][1]], seen[replies[11][1] :]
    assert before and all('"btcusdt@trade"' in f for f in before)
    assert any("depthUpdate" in f for f in seen[replies[7][1] :])
    assert after and all("depthUpdate" in f for f in after[5:]) and len(after) > 5


def test_serve_binance_rest_weight_and_the_message_rate_are_binances(
    sim_factory: Any, tmp_path: Path
) -> None:
    """Serve's ``/api/v3/depth`` and ``exchangeInfo`` carry the minute's request weight,
    refuse past 6,000 with 429 and ``Retry-After`` (code -1003), and a stream connection
    that sends more than 5 messages in a second is closed with 1008, as Binance does."""
    sim = sim_factory(symbols=SYMBOLS, rate=200.0)
    record_binance(sim, tmp_path / "a", duration=1.5)
    sim.stop()
    if time.time() % 60 > 50:  # the weight is counted per wall-clock minute
        time.sleep(61 - time.time() % 60)
    with Server(ServeConfig(data=tmp_path / "a" / "data")) as served:
        base = served.url.rest_url + "/api/v3"
        info = requests.get(base + "/exchangeInfo", timeout=10)
        small = requests.get(base + "/depth", params={"symbol": "BTCUSDT"}, timeout=10)
        assert info.status_code == small.status_code == 200
        assert info.headers["X-MBX-USED-WEIGHT-1M"] == "20"
        assert small.headers["X-MBX-USED-WEIGHT-1M"] == "25"  # limit 100 weighs 5
        bad = requests.get(base + "/depth", params={"symbol": "NOPE"}, timeout=10)
        assert bad.status_code == 400 and bad.json()["code"] == -1121
        assert bad.headers["X-MBX-USED-WEIGHT-1M"] == "25"  # a refused request weighs nothing
        used = []
        while True:
            got = requests.get(base + "/depth", params={"symbol": "ETHUSDT", "limit": 5000})
            used.append(int(got.headers["X-MBX-USED-WEIGHT-1M"]))
            if got.status_code != 200:
                break
            assert "lastUpdateId" in got.json()
        assert used[:2] == [275, 525] and used[-2] <= 6000 < used[-1] == used[-2] + 250
        assert got.status_code == 429 and got.json()["code"] == -1003
        assert 1 <= int(got.headers["Retry-After"]) <= 60
        with connect(f"{served.url.ws_url}/stream?streams=btcusdt@trade") as client:
            for i in range(12):  # at least 6 in one second, however the burst falls
                client.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    client.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "Too many requests")
