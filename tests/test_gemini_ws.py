"""The current Gemini WebSocket API (docs/venues/gemini.md section 3) end to end.

Simulator frames and replies, the header codec, the recorder against the real
loopback simulator (byte-for-byte against the truth files), and the replay
against the simulator's true book. The true book after update id ``u`` of a
symbol is rebuilt from ``book.jsonl`` on its own, without ``replay/``.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import SimFactory, after_lead_in, record_sim
from websockets.sync.client import ClientConnection, connect

import replay
from tickrec import contract
from tickrec.contract import Row, rows_to_table
from tickrec.errors import ProtocolError
from tickrec.sim import Simulator
from tickrec.venues import GEMINI_WS, header_of
from tickrec.venues.base import Gap
from tickrec.venues.gemini.ws import UpdateTracker, epoch_ns, parse_reply, request
from tickrec.venues.gemini.ws_book import GeminiWsStream

SYMS = ("BTCUSD", "ETHUSD")
#: Above 2**53: a double would round these ids (docs/venues/gemini.md section 3.4).
BIG = 2**53 + 1
Rows = list[dict[str, Any]]
ReadJsonl = Callable[[Path], Rows]


# --- the simulator ------------------------------------------------------------------------


def _frames(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    out = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            out.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return out


def _send(ws: ClientConnection, rid: Any, method: str, params: Any = None) -> None:
    body = {"id": rid, "method": method}
    if params is not None:
        body["params"] = params
    ws.send(json.dumps(body))


def _types(obj: dict[str, Any]) -> dict[str, str]:
    return {k: type(v).__name__ for k, v in obj.items()}


def test_requests_replies_and_frame_shapes(sim_factory: SimFactory) -> None:
    sim = sim_factory(symbols=SYMS, update_id_base=BIG)
    with connect(sim.ws_url + "/?snapshot=-1") as ws:
        _send(ws, 1, "subscribe", ["btcusd@depth@100ms", "btcusd@trade", "btcusd@bookTicker"])
        _send(ws, 2, "depth", {"symbol": "btcusd", "limit": 3})
        _send(ws, 3, "LIST_SUBSCRIPTIONS")
        _send(ws, "t", "time")
        _send(ws, 5, "ping")
        _send(ws, 6, "SUBSCRIBE", ["ethusd@depth"])
        _send(ws, 7, "UNSUBSCRIBE", ["ethusd@depth"])
        frames = _frames(ws, 1.5)
    replies = {f["id"]: f for f in frames if "status" in f}
    assert replies[1] == {"id": 1, "status": 200}
    depth = replies[2]["result"]
    assert set(depth) == {"lastUpdateId", "bids", "asks"} and depth["lastUpdateId"] >= BIG
    assert len(depth["bids"]) == len(depth["asks"]) == 3
    assert all(isinstance(p, str) and isinstance(q, str) for p, q in depth["bids"])
    assert replies[3]["result"] == ["btcusd@depth@100ms", "btcusd@trade", "btcusd@bookTicker"]
    assert isinstance(replies["t"]["result"]["serverTime"], int)
    assert replies[5] == {"id": 5, "status": 200, "result": {}}
    assert replies[6]["status"] == replies[7]["status"] == 200

    (eth,) = [f for f in frames if f.get("s") == "ethusd"]  # its snapshot, then unsubscribed
    diffs = [f for f in frames if f.get("e") == "depthUpdate" and f is not eth]
    trades = [f for f in frames if f.get("e") == "trade"]
    tickers = [f for f in frames if "e" not in f and "status" not in f]
    # shapes as in docs/venues/gemini.md section 3.3: keys in order, value types
    assert list(diffs[0]) == ["e", "E", "s", "U", "u", "b", "a"]
    assert _types(diffs[1]) == {
        "e": "str", "E": "int", "s": "str", "U": "int", "u": "int", "b": "list", "a": "list"
    }  # fmt: skip
    assert list(trades[0]) == ["e", "E", "s", "t", "p", "q", "m"]
    assert _types(trades[0]) == {
        "e": "str", "E": "int", "s": "str", "t": "int", "p": "str", "q": "str", "m": "bool"
    }  # fmt: skip
    assert tickers and list(tickers[0]) == ["u", "E", "s", "b", "B", "a", "A"]
    assert all(len(str(f["E"])) == 19 for f in diffs + trades + tickers)  # ns
    # the first diff frame is the whole book (snapshot=-1), U == u == the depth reply's id
    snap = diffs[0]
    assert snap["U"] == snap["u"] == depth["lastUpdateId"] and len(snap["b"]) >= 10
    # conflated diffs cover consecutive update ids, at most one frame per 100 ms step
    for a, b in itertools.pairwise(diffs):
        assert b["U"] == a["u"] + 1 and b["U"] <= b["u"]
    assert 5 <= len(diffs) <= 17
    assert all(f["s"] == "btcusd" for f in diffs + trades + tickers)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"id": 1, "method": "subscribe", "params": ["nosuch@depth"]}, -1002),
        ({"id": 1, "method": "subscribe", "params": ["btcusd@depth5"]}, -1002),
        ({"id": 1, "method": "subscribe", "params": "btcusd@trade"}, -1002),
        ({"id": 1, "method": "DEPTH", "params": {"symbol": "btcusd"}}, -1001),
        ({"id": 1, "method": "depth", "params": {"symbol": "btcusd", "limit": 0}}, -1002),
        ({"method": "ping"}, -1000),
    ],
)
def test_bad_requests_get_error_replies(sim: Simulator, request_: Any, code: int) -> None:
    with connect(sim.ws_url + "/") as ws:
        ws.send(json.dumps(request_))
        reply = json.loads(ws.recv(timeout=2))
        _send(ws, 9, "list_subscriptions")
        listed = json.loads(ws.recv(timeout=2))
    assert reply["status"] == 400 and reply["error"]["code"] == code and reply["error"]["msg"]
    assert reply["id"] == request_.get("id")
    assert listed["result"] == []  # nothing half-subscribed


def test_symbol_spelling_echoed_and_top_n_snapshot(sim_factory: SimFactory) -> None:
    sim = sim_factory(symbols=SYMS)
    with connect(sim.ws_url + "/?snapshot=5") as ws:
        _send(ws, 1, "subscribe", ["BTCUSD@depth@100ms", "ETHUSD@trade"])
        frames = _frames(ws, 0.5)
    diffs = [f for f in frames if f.get("e") == "depthUpdate"]
    assert len(diffs[0]["b"]) == len(diffs[0]["a"]) == 5
    assert {f["s"] for f in diffs} == {"BTCUSD"}
    assert {f["s"] for f in frames if f.get("e") == "trade"} == {"ETHUSD"}


def test_without_snapshot_only_diffs(sim: Simulator) -> None:
    with connect(sim.ws_url + "/") as ws:
        _send(ws, 1, "subscribe", ["btcusd@depth@100ms"])
        frames = _frames(ws, 0.5)
    diffs = [f for f in frames if f.get("e") == "depthUpdate"]
    # the book has 50 levels a side; a 100 ms diff changes a few of them
    assert diffs and all(len(f["b"]) + len(f["a"]) < 50 for f in diffs)


def test_drops_break_update_id_continuity(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(symbols=("BTCUSD",), drop=0.2, seed=3, truth_dir=tmp_path / "truth")
    with connect(sim.ws_url + "/?snapshot=-1") as ws:
        _send(ws, 1, "subscribe", ["btcusd@depth@100ms"])
        frames = _frames(ws, 2.0)
    sim.stop()
    diffs = [f for f in frames if f.get("e") == "depthUpdate"]
    skips = [b for a, b in itertools.pairwise(diffs) if b["U"] > a["u"] + 1]
    dropped = [json.loads(f["frame"]) for f in read_jsonl(tmp_path / "truth" / "faults.jsonl")]
    assert skips and len(skips) <= len([d for d in dropped if d.get("e") == "depthUpdate"])


# --- the codec ----------------------------------------------------------------------------


def test_header_reads_ids_exactly_time_units_and_symbol_case() -> None:
    big = 9007199254740993  # docs/venues/gemini.md section 3.4's conformance value
    ms = header_of(GEMINI_WS, f'{{"e":"depthUpdate","E":1700000000000,"s":"btcusd","U":{big},'
                              f'"u":{big + 2},"b":[],"a":[]}}')  # fmt: skip
    assert (ms.kind, ms.venue_seq, ms.first_seq, ms.symbol) == (
        "depthUpdate",
        big + 2,
        big,
        "BTCUSD",
    )
    assert ms.exch_ns == 1_700_000_000_000_000_000
    ns = header_of(GEMINI_WS, '{"e":"trade","E":1767225600123999000,"s":"BTCUSD","t":9100000061,'
                              '"p":"61000.20","q":"1.2","m":false}')  # fmt: skip
    assert (ns.kind, ns.exch_ns, ns.venue_seq, ns.symbol) == (
        "trade", 1767225600123999000, None, "BTCUSD"
    )  # fmt: skip
    assert [epoch_ns(v) for v in (1700000000, 1700000000000, 1700000000000000)] == [
        1_700_000_000_000_000_000
    ] * 3
    reply = header_of(GEMINI_WS, '{"id":1,"status":200}')
    assert reply.kind == "reply" and reply.symbol is None and reply.problem is None
    partial = header_of(GEMINI_WS, '{"lastUpdateId":88000130,"bids":[],"asks":[]}')
    assert (partial.kind, partial.symbol, partial.venue_seq) == ("partialDepth", None, 88000130)
    # ids beyond int64 (orjson turns > 2**64 into a float) are a problem, never a rounded value
    for u in (2**63, 2**64 + 1):
        bad = header_of(GEMINI_WS, f'{{"e":"depthUpdate","E":1,"s":"x","U":1,"u":{u}}}')
        assert bad.venue_seq is None and bad.problem
    assert header_of(GEMINI_WS, "{not json").problem


def test_reply_errors_and_tracker() -> None:
    refused = parse_reply('{"id":3,"status":400,"error":{"code":-1002,"msg":"bad stream"}}')
    assert refused is not None and refused.error == (-1002, "bad stream")
    ok = parse_reply('{"id":2,"status":200,"result":{"lastUpdateId":5}}')
    assert ok is not None and ok.error is None and ok.result == {"lastUpdateId": 5}
    assert parse_reply('{"e":"trade"}') is None
    tracker = UpdateTracker([request(1, "subscribe", ["btcusd@depth@100ms", "ethusd@depth"])])
    assert tracker.check("BTCUSD", BIG, BIG) is None  # no book yet: nothing to break
    subscribed = parse_reply('{"id":1,"status":200,"result":null}')
    assert subscribed is not None
    tracker.reply(subscribed)
    assert tracker.check("BTCUSD", BIG, BIG) is None  # the snapshot
    assert tracker.check("BTCUSD", BIG + 1, BIG + 4) is None
    assert tracker.check("BTCUSD", BIG + 2, BIG + 3) is None  # stale
    assert tracker.check("ETHUSD", 7, 9) is None  # per symbol
    gap = tracker.check("BTCUSD", BIG + 6, BIG + 8)
    assert gap is not None and (gap.expected, gap.got) == (BIG + 5, BIG + 6)
    # After a gap the book waits for a new snapshot, as in the replay.
    assert tracker.books["BTCUSD"].last is None
    assert tracker.check("BTCUSD", BIG + 20, BIG + 30) is None


def test_tracker_follows_replies_to_our_requests_as_the_replayer_does() -> None:
    """A depth reply newer than the book becomes the book; an accepted subscribe to a
    symbol's diffs makes its next diff a fresh snapshot (tickrec.venues.gemini.ws_book)."""
    sent = [
        request(1, "subscribe", ["btcusd@depth@100ms", "btcusd@trade"]),
        request(2, "subscribe", ["ethusd@trade"]),
        request(3, "depth", {"symbol": "btcusd", "limit": 5000}),
        request(4, "depth", {"symbol": "ethusd", "limit": 5000}),
    ]
    tracker = UpdateTracker(sent)

    def reply(text: str) -> None:
        parsed = parse_reply(text)
        assert parsed is not None
        tracker.reply(parsed)

    assert tracker.check("BTCUSD", 10, 20) is None  # the snapshot
    reply('{"id":3,"status":200,"result":{"lastUpdateId":30,"bids":[],"asks":[]}}')
    assert tracker.check("BTCUSD", 21, 30) is None  # stale: the depth reply covers it
    assert tracker.check("BTCUSD", 31, 35) is None  # follows the depth reply
    reply('{"id":4,"status":200,"result":{"lastUpdateId":3,"bids":[],"asks":[]}}')
    assert tracker.check("ETHUSD", 4, 6) is None  # no book yet: the reply became it
    reply('{"id":1,"status":200,"result":null}')
    assert tracker.check("BTCUSD", 100, 110) is None  # the resubscription's snapshot
    reply('{"id":2,"status":200,"result":null}')  # names no diff stream: changes nothing
    assert tracker.check("ETHUSD", 9, 9) == Gap(7, 9)
    reply('{"id":3,"status":200,"result":{"lastUpdateId":500}}')  # answered already
    gap = tracker.check("BTCUSD", 112, 115)
    assert gap == Gap(111, 112)


# --- recorder and replay against the simulator's truth ------------------------------------


def _rows(tmp_path: Path, symbol: str) -> Rows:
    root = tmp_path / "data"
    (part,) = [p for p in contract.list_partitions(root) if p.symbol == symbol]
    rows: Rows = contract.read_partition(root, part.venue, part.date, symbol).to_pylist()
    return rows


def _events(rows: Rows, name: str) -> list[dict[str, Any]]:
    events = [json.loads(r["payload"]) for r in rows if r["source"] == "event"]
    return [e for e in events if e["event"] == name]


class TrueBook:
    """One symbol's true book after each of its update ids, from ``book.jsonl``."""

    def __init__(self, lines: Rows, symbol: str) -> None:
        self.after: dict[int, dict[str, dict[Decimal, Decimal]]] = {}
        book: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
        for line in lines:
            if line["symbol"] != symbol:
                continue
            price, size = Decimal(line["price"]), Decimal(line["size"])
            if size:
                book[line["side"]][price] = size
            else:
                book[line["side"]].pop(price, None)
            self.after[line["update_id"]] = {s: dict(levels) for s, levels in book.items()}

    def top(self, update_id: int, depth: int) -> list[tuple[Decimal, Decimal]]:
        book = self.after[update_id]
        bids = sorted(book["bid"].items(), reverse=True)[:depth]
        asks = sorted(book["ask"].items())[:depth]
        return bids + asks


def _as_decimal(levels: list[tuple[int, int]], px: int, sz: int) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(int(p)).scaleb(-px), Decimal(int(s)).scaleb(-sz)) for p, s in levels]


def test_capture_byte_for_byte_and_replay_equals_truth(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    sim = sim_factory(symbols=SYMS, update_id_base=BIG, truth_dir=tmp_path / "truth")
    record_sim(sim, tmp_path, duration=2.0, snapshot_every=0.5, rest_min_gap=0.05)
    truth = read_jsonl(tmp_path / "truth" / "messages.jsonl")
    book_lines = read_jsonl(tmp_path / "truth" / "book.jsonl")
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        ws = [r for r in rows if r["source"] == "ws"]
        # every frame of the symbol, and every connection-wide reply, byte for byte
        want = [
            m["msg"] for m in truth
            if json.loads(m["msg"]).get("s", symbol).upper() == symbol
        ]  # fmt: skip
        assert [r["payload"] for r in ws] == want
        assert all(r["protocol"] == "gemini.ws" and r["conn_id"] == 1 for r in ws)
        sent = [json.loads(r["payload"]) for r in rows if r["source"] == "ws_sent"]
        assert [s["method"] for s in sent][:4] == ["subscribe", "subscribe", "depth", "depth"]
        assert sent[0]["params"] == ["btcusd@depth@100ms", "btcusd@trade"]
        for r in ws:
            frame = json.loads(r["payload"])
            if frame.get("e") == "depthUpdate":
                assert r["venue_seq"] == frame["u"] >= BIG  # exact above 2**53
                assert r["exch_ts"].value == frame["E"]
        assert not _events(rows, "gap") and not _events(rows, "malformed")

        # replay: after every diff frame the book equals the true book after its u
        day = replay.Day(
            contract.read_partition(tmp_path / "data", "gemini", _date(rows), symbol),
            date=_date(rows),
            symbol=symbol,
        )
        assert day.decoded.counts["snapshot"] == 1 and day.decoded.counts["depthUpdate"] > 5
        # The only gap is the shutdown: from the shutdown event, or from the close
        # when frames still came after it (then it ends with the data, and is empty).
        (shutdown,) = [
            r["recv_ts"].value
            for r in rows
            if r["source"] == "event" and json.loads(r["payload"])["event"] == "shutdown"
        ]
        assert all(g.kind == "disconnect" and g.start >= shutdown for g in after_lead_in(day))
        diffs = [r for r in ws if json.loads(r["payload"]).get("e") == "depthUpdate"]
        true = TrueBook(book_lines, symbol)
        for k, r in enumerate(diffs):
            view = day.book_at(r["recv_ts"].value, depth=20)
            got = _as_decimal(
                [
                    *zip(view.bid_px, view.bid_sz, strict=True),
                    *zip(view.ask_px, view.ask_sz, strict=True),
                ],
                day.price_scale,
                day.size_scale,
            )
            assert got == true.top(r["venue_seq"], 20), f"frame {k}"
            assert view.valid
        # trades: ids, prices and taker sides from m (docs/venues/gemini.md section 5)
        trades = day.trades(exact=True)
        frames = [json.loads(r["payload"]) for r in ws if '"e":"trade"' in r["payload"]]
        assert trades["tid"].tolist() == [f["t"] for f in frames]
        assert trades["side"].tolist() == ["sell" if f["m"] else "buy" for f in frames]
        assert [int(t.value) for t in trades["exch_ts"]] == [f["E"] for f in frames]


def _date(rows: Rows) -> str:
    return str(rows[0]["recv_ts"].date())


def test_drops_are_sequence_gaps_and_the_recorder_reconnects(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(symbols=SYMS, drop=0.1, seed=4, update_id_base=BIG)
    record_sim(sim, tmp_path, duration=3.0)
    found = 0
    # per symbol: the time of its first break, and whether a replay gap holds it (a gap
    # event is stored in every partition of its connection: it names its symbol)
    firsts_seen: list[tuple[int, bool]] = []
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        gaps = [g for g in _events(rows, "gap") if g.get("symbol") == symbol]
        assert all(g["got"] > g["expected"] >= BIG for g in gaps)
        found += len(gaps)
        day = replay.Day(
            contract.read_partition(tmp_path / "data", "gemini", _date(rows), symbol),
            date=_date(rows),
            symbol=symbol,
        )
        seq = [g for g in day.gap_list() if g.kind == "sequence"]
        expected = {(b.expected, b.got) for b in day.decoded.breaks}
        # The first gap of each connection (after it that connection's book is invalid
        # anyway) is a break of the replay; or the replay's book is invalid then anyway,
        # inside a reported gap; or it follows another connection then (replay.overlap),
        # one in sync, so the book is valid through the break. Never is it valid on the
        # connection that broke.
        follows = [
            (m.ts, int(m.detail.rsplit(" ", 1)[1]))
            for m in day.decoded.markers
            if m.kind in ("follow", "reset")
        ]
        firsts = {}
        for r in reversed(rows):
            event = json.loads(r["payload"]) if r["source"] == "event" else {}
            if event.get("event") == "gap" and event.get("symbol") == symbol:
                firsts[r["conn_id"]] = (r["recv_ts"].value, event)
        for conn_id, (t, g) in firsts.items():
            if (g["expected"], g["got"]) in expected:
                continue
            if day.book_at(pd.Timestamp(t, unit="ns", tz="UTC"), depth=1).valid:
                followed = [c for ts, c in follows if ts <= t]
                assert followed and followed[-1] != conn_id, (symbol, conn_id, g)
            else:
                assert any(x.start <= t <= x.end for x in day.gap_list()), (symbol, g)
        if firsts:
            t = min(t for t, _ in firsts.values())
            firsts_seen.append((t, any(g.start <= t <= g.end for g in seq)))
    assert found  # and each one made the recorder reconnect
    # The run's first break has no other connection beside it, so the replay reports it; a
    # later one may fall while a successor (opened for a break of another symbol) already
    # has this symbol's book, and then the replay follows that one with no gap.
    assert min(firsts_seen)[1], "the run's first break is a sequence gap in the replay"
    rows = _rows(tmp_path, SYMS[0])
    reasons = [e["why"] for e in _events(rows, "disconnect")]
    # make-before-break: each connection with a gap is retired once its successor is in sync
    assert 1 <= reasons.count("resync handover") <= found
    assert len({r["conn_id"] for r in rows if r["source"] == "ws"}) >= 2


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def test_after_an_undecodable_frame_update_ids_bring_the_book_back(
    sim_factory: SimFactory, tmp_path: Path, read_jsonl: ReadJsonl
) -> None:
    """A frame cut short stops the book being trusted; the symbol's next diff with
    ``U == last u + 1`` proves nothing of it was lost (docs/venues/gemini.md section 3.4), so the
    book is valid again there, on the same connection, and equals the true book."""
    sim = sim_factory(
        symbols=SYMS, update_id_base=BIG, malformed=0.03, truth_dir=tmp_path / "truth"
    )
    record_sim(sim, tmp_path, duration=3.0)
    book_lines = read_jsonl(tmp_path / "truth" / "book.jsonl")
    resumed = others = 0
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        day = replay.Day(
            contract.read_partition(tmp_path / "data", "gemini", _date(rows), symbol),
            date=_date(rows),
            symbol=symbol,
        )
        seq_gaps = [g for g in day.gap_list() if g.kind == "sequence"]
        true = TrueBook(book_lines, symbol)
        last_u: dict[int, int] = {}  # u of the symbol's last readable diff, per connection
        unread: tuple[int, int] | None = None  # connection and time of the first unread frame
        ts = 0
        for r in rows:
            ts = max(ts, r["recv_ts"].value)  # replay time is the running maximum
            if r["source"] != "ws":
                continue
            conn, frame = r["conn_id"], _json_or_none(r["payload"])
            if frame is None:
                unread = unread if unread is not None and unread[0] == conn else (conn, ts)
                continue
            if frame.get("e") != "depthUpdate" or frame["s"].upper() != symbol:
                continue
            if unread is not None and unread[0] == conn and frame["U"] == last_u.get(conn, -2) + 1:
                here = [g for g in seq_gaps if g.start == unread[1]]
                assert len(here) <= 1
                if not here or here[0].end != ts:
                    # Not this connection's own resume: the frame fell inside a gap
                    # already open (an earlier break), or a successor opened for an
                    # earlier break was in sync, or got in sync first, and the replay
                    # follows that one.
                    others += 1
                    unread, last_u[conn] = None, frame["u"]
                    continue
                (g,) = here
                assert g.end == ts and "U follows the last u" in g.detail
                view = day.book_at(ts, depth=20)
                assert view.valid
                got = _as_decimal(
                    [
                        *zip(view.bid_px, view.bid_sz, strict=True),
                        *zip(view.ask_px, view.ask_sz, strict=True),
                    ],
                    day.price_scale,
                    day.size_scale,
                )
                assert got == true.top(frame["u"], 20)
                resumed += 1
            unread = None if unread is None or unread[0] == conn else unread
            last_u[conn] = frame["u"]
        assert day.decoded.counts["undecodable"] > 0
    # The run's first break has no successor beside it yet, so at least that one
    # is resumed on its own connection.
    assert resumed > 0, others


def test_replay_resyncs_on_update_ids_after_an_undecodable_frame() -> None:
    u = BIG
    day = _day(
        [
            ("ws_sent", {"id": 1, "method": "subscribe", "params": ["btcusd@depth@100ms"]}),
            ("ws", {"id": 1, "status": 200}),
            ("ws", _diff("btcusd", u, u, [["100.00", "1"]], [["101.00", "2"]])),
            ("ws", _diff("btcusd", u + 1, u + 2, [["100.00", "3"]], [])),
            ("ws", '{"e":"trade","E":17638596'),  # cut short: could have been anything
            ("ws", _diff("btcusd", u + 3, u + 4, [["100.00", "4"]], [])),  # follows: resync
            ("ws", '{"e":"depthUpdate","E":176'),  # this one was a diff of ours
            ("ws", _diff("btcusd", u + 7, u + 8, [["100.00", "5"]], [])),  # U skips u + 5, u + 6
            ("ws", _diff("btcusd", u + 9, u + 9, [["100.00", "6"]], [])),  # not in sync
        ]
    )  # fmt: skip
    valid = [day.book_at(T0 + i * 10**8).valid for i in range(2, 9)]
    assert valid == [True, True, False, True, False, False, False]
    assert day.book_at(T0 + 5 * 10**8).bids.tolist() == [[100.0, 4.0]]
    first, second = [g for g in day.gap_list() if g.kind == "sequence"]
    assert (first.start, first.end) == (T0 + 4 * 10**8, T0 + 5 * 10**8)
    assert (
        first.detail.startswith("undecodable message at") and "U follows the last u" in first.detail
    )
    assert second.start == T0 + 6 * 10**8 and second.end == day.decoded.last_ns
    details = [b.detail for b in day.decoded.breaks]
    assert details[2] == f"U expected {u + 5}, got {u + 7}"  # names the current API's ids


def test_refused_subscription_stops_the_run_with_a_clear_error(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    # The simulator lists BTCUSD only, so the ETHUSD subscription is refused. Its REST
    # answers 500, so the recorder's check of /v1/symbols cannot refuse ETHUSD first.
    sim = sim_factory(symbols=("BTCUSD",), rest_500=1.0)
    started = time.monotonic()
    with pytest.raises(ProtocolError, match=r"refused request 2 .*ethusd"):
        record_sim(sim, tmp_path, duration=10.0)
    assert time.monotonic() - started < 5.0
    rows = _rows(tmp_path, "ETHUSD")
    (error,) = _events(rows, "error")
    assert error["request_id"] == 2 and error["status"] == 400 and error["code"] == -1002
    assert _events(rows, "shutdown")[0]["why"] == "request refused"
    assert len(_events(rows, "connect")) == 1  # no retry


# --- replay on hand-written rows ----------------------------------------------------------

T0 = int(pd.Timestamp("2026-11-23T01:00:00Z").value)


def _row(i: int, source: str, payload: Any, conn: int = 1) -> Row:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    h = header_of(GEMINI_WS, text) if source == "ws" else None
    return Row(
        T0 + i * 10**8, i, "run-a", conn, GEMINI_WS, source, text,
        exch_ns=h.exch_ns if h else None, venue_seq=h.venue_seq if h else None,
    )  # fmt: skip


def _diff(s: str, first: int, last: int, b: list[list[str]], a: list[list[str]]) -> dict[str, Any]:
    return {"e": "depthUpdate", "E": 1763859600000, "s": s, "U": first, "u": last, "b": b, "a": a}


def _day(messages: list[tuple[str, Any]]) -> replay.Day:
    rows = [_row(i, src, msg) for i, (src, msg) in enumerate(messages)]
    return replay.Day(rows_to_table(rows), date="2026-11-23", symbol="BTCUSD")


@pytest.mark.parametrize("spelled", ["btcusd", "BTCUSD", "BtcUsd"])
def test_replay_sync_rules_and_symbol_case(spelled: str) -> None:
    u = BIG
    day = _day(
        [
            ("ws_sent", {"id": 1, "method": "subscribe", "params": ["btcusd@depth@100ms"]}),
            ("ws", {"id": 1, "status": 200}),
            ("ws", _diff(spelled, u, u, [["100.00", "1"]], [["101.00", "2"]])),
            ("ws", _diff(spelled, u + 1, u + 3, [["100.00", "3"]], [])),
            ("ws", _diff(spelled, u + 2, u + 3, [["100.00", "9"]], [])),  # stale: dropped
            ("ws", _diff("ethusd", u + 9, u + 9, [["1.00", "1"]], [])),  # another symbol
            ("ws", _diff(spelled, u + 6, u + 7, [["99.00", "1"]], [])),  # skips u+4, u+5
            ("ws", _diff(spelled, u + 8, u + 8, [["98.00", "1"]], [])),  # not in sync
            ("ws", {"e": "trade", "E": 1763859600000123456, "s": spelled, "t": 5,
                    "p": "100.00", "q": "0.5", "m": True}),
        ]
    )  # fmt: skip
    assert day.book_at(T0 + 2 * 10**8).valid
    # the sequence gap runs from the last frame applied (row 3) to the next snapshot
    assert day.book_at(T0 + 4 * 10**8).bids.tolist() == [[100.0, 3.0]]
    assert not day.book_at(T0 + 6 * 10**8).valid
    (br,) = day.decoded.breaks
    assert (br.expected, br.got) == (u + 4, u + 6)  # exact above 2**53
    lead_in, *rest = day.gap_list()  # subscribed, no snapshot yet
    assert (lead_in.kind, lead_in.start, lead_in.end) == ("unsynced", T0, T0 + 2 * 10**8)
    assert [(g.kind, g.detail) for g in rest][:1] == [
        ("sequence", f"U expected {u + 4}, got {u + 6}")
    ]
    assert day.decoded.counts["stale"] == 1
    trade = day.trades(exact=True).iloc[0]
    assert trade["side"] == "sell" and trade["tid"] == 5  # m: the seller took


def test_replay_lines_up_depth_reply_by_last_update_id() -> None:
    u = BIG
    book = {"lastUpdateId": u + 2, "bids": [["100.00", "5"]], "asks": [["101.00", "1"]]}
    depth = {"id": 2, "status": 200, "result": book}
    day = _day(
        [
            ("ws_sent", {"id": 1, "method": "subscribe", "params": ["btcusd@depth@100ms"]}),
            ("ws_sent", {"id": 2, "method": "depth", "params": {"symbol": "btcusd"}}),
            ("ws", {"id": 1, "status": 200}),
            # the snapshot frame was lost: the depth reply is the book, last = u + 2
            ("ws", depth),
            ("ws", _diff("btcusd", u + 1, u + 2, [["100.00", "7"]], [])),  # stale
            ("ws", _diff("btcusd", u + 2, u + 4, [["100.00", "6"]], [])),  # U <= L+1 <= u
        ]
    )  # fmt: skip
    assert day.book_at(T0 + 3 * 10**8).valid
    assert day.book_at(T0 + 4 * 10**8).bids.tolist() == [[100.0, 5.0]]
    final = day.book_at(T0 + 5 * 10**8)
    assert final.valid and final.bids.tolist() == [[100.0, 6.0]]
    assert not day.decoded.breaks and day.decoded.counts["depth"] == 1


class _Breaks:
    """An event sink that keeps only the sequence breaks."""

    ts = 0

    def __init__(self) -> None:
        self.breaks: list[tuple[int, int]] = []

    def change(self, side: int, price: str, size: str, exch: int | None, snapshot: bool) -> None:
        pass

    def control(self, op: int) -> None:
        pass

    def trade(self, *args: Any) -> None:
        pass

    def seq_break(self, prev_ts: int, expected: int, got: int, sequence: str) -> None:
        self.breaks.append((expected, got))


@pytest.mark.parametrize("seed", range(20))
def test_the_recorder_and_the_replay_break_at_the_same_diffs(seed: int) -> None:
    """One rule (DiffSync): random diffs with skips, repeats and depth replies give the
    recorder's tracker the gaps the replay's stream reports, at the same frames."""
    rng = random.Random(seed)
    sent = [request(1, "subscribe", ["btcusd@depth@100ms"])]
    tracker = UpdateTracker(sent)
    stream = GeminiWsStream("BTCUSD")
    sink = _Breaks()
    for text in sent:
        stream.on_sent(sink, json.loads(text))  # type: ignore[arg-type]
    frames: list[dict[str, Any]] = [{"id": 1, "status": 200, "result": None}]
    last, rid = 100, 2
    for _ in range(300):
        roll = rng.random()
        if roll < 0.05:
            depth = request(rid, "depth", {"symbol": "btcusd", "limit": 10})
            tracker.expect(depth)
            stream.on_sent(sink, json.loads(depth))  # type: ignore[arg-type]
            reply_id = last + rng.choice((-3, 0, 4))
            frames.append({"id": rid, "status": 200, "result": {"lastUpdateId": reply_id}})
            rid += 1
            continue
        first = last + 1 + (rng.choice((1, 3)) if roll < 0.12 else 0)
        if roll > 0.95:
            first = last - 2  # a repeat: stale, or overlapping
        u = max(first, last) + rng.randint(0, 3)
        frames.append({"e": "depthUpdate", "s": "BTCUSD", "U": first, "u": u, "b": [], "a": []})
        last = max(last, u)
    recorded = []
    for frame in frames:
        if frame.get("e") == "depthUpdate":
            gap = tracker.check("BTCUSD", frame["U"], frame["u"])
            if gap is not None:
                recorded.append((gap.expected, gap.got))
        else:
            parsed = parse_reply(json.dumps(frame))
            assert parsed is not None
            tracker.reply(parsed)
        stream.on_message(sink, frame, None)  # type: ignore[arg-type]
    assert recorded == sink.breaks and recorded
