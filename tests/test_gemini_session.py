"""Gemini's recording sessions, action by action: what each protocol's connection is asked
to do by the messages it stores (the recorder carries them out; tests/test_recorder.py,
tests/test_gemini_ws.py and tests/test_midnight.py run them against the simulator)."""

from __future__ import annotations

import json

from tickrec.venues import VENUES, header_of
from tickrec.venues.base import Fail, Gap, GapAt, Resync, Send
from tickrec.venues.gemini import v1, v2, ws
from tickrec.venues.gemini.session import WS_DEPTH_LIMIT, V1Session, V2Session, WsSession


def _v1(seq: int, kind: str = "update") -> bytes:
    events = [{"type": "change", "side": "bid", "price": "1", "remaining": "1", "delta": "1"}]
    body = {"type": kind, "eventId": seq, "socket_sequence": seq, "events": events}
    return json.dumps(body).encode()


def _say(session: V1Session | V2Session | WsSession, protocol: str, payload: bytes) -> list:
    return list(session.message(header_of(protocol, payload), payload))


def test_v1_a_socket_sequence_break_is_a_gap_of_the_connection_and_a_successor() -> None:
    session = V1Session(("BTCUSD",))
    assert session.opening() == [] and session.idle() == []
    assert session.booked == frozenset()
    assert _say(session, v1.PROTOCOL, _v1(0)) == []
    assert session.booked == {"BTCUSD"}  # the first update holds the initial book
    assert _say(session, v1.PROTOCOL, _v1(1)) == []
    assert _say(session, v1.PROTOCOL, _v1(3)) == [GapAt(None, Gap(2, 3)), Resync("sequence gap")]


def test_v2_subscribes_every_symbol_and_an_undecodable_frame_asks_for_a_successor() -> None:
    session = V2Session(("BTCUSD", "ETHUSD"))
    assert session.opening() == [Send((v2.subscribe_message(("BTCUSD", "ETHUSD")),))]
    update = {"type": "l2_updates", "symbol": "ETHUSD", "changes": [["buy", "1", "1"]]}
    assert _say(session, v2.PROTOCOL, json.dumps(update).encode()) == []
    assert session.booked == {"ETHUSD"}
    other = {"type": "l2_updates", "symbol": "SOLUSD", "changes": [["buy", "1", "1"]]}
    _say(session, v2.PROTOCOL, json.dumps(other).encode())
    assert session.booked == {"ETHUSD"}, "a symbol not asked for brings no book"
    assert _say(session, v2.PROTOCOL, b"{not json") == [Resync("undecodable frame")]


def _diff(symbol: str, first: int, last: int) -> bytes:
    body = {"e": "depthUpdate", "E": 1, "s": symbol, "U": first, "u": last, "b": [], "a": []}
    return json.dumps(body).encode()


def _reply(rid: int, result: object = None, status: int = 200, error: object = None) -> bytes:
    body: dict[str, object] = {"id": rid, "status": status, "result": result}
    if error is not None:
        body["error"] = error
    return json.dumps(body).encode()


def test_ws_opening_requests_then_gaps_replies_and_refusals() -> None:
    session = WsSession(("BTCUSD", "ETHUSD"))
    [opening] = session.opening()
    assert isinstance(opening, Send)
    sent = [json.loads(m) for m in opening.messages]
    assert [(m["id"], m["method"]) for m in sent] == [
        (1, "subscribe"),
        (2, "subscribe"),
        (3, "depth"),
        (4, "depth"),
    ]
    assert sent[0]["params"] == [ws.depth_stream("BTCUSD"), ws.trade_stream("BTCUSD")]
    assert sent[3]["params"] == {"symbol": "ethusd", "limit": WS_DEPTH_LIMIT}
    # After the accepted subscribe, the snapshot=-1 connection's first diff is the book;
    # then U must follow u.
    assert _say(session, ws.PROTOCOL, _reply(1)) == []
    assert _say(session, ws.PROTOCOL, _diff("btcusd", 1, 10)) == []
    assert session.booked == {"BTCUSD"}
    assert _say(session, ws.PROTOCOL, _diff("BTCUSD", 11, 12)) == []
    assert _say(session, ws.PROTOCOL, _diff("BTCUSD", 5, 12)) == [], "stale: ignored"
    assert _say(session, ws.PROTOCOL, _diff("BTCUSD", 15, 16)) == [
        GapAt("BTCUSD", Gap(13, 15)),
        Resync("sequence gap"),
    ]
    # A depth reply newer than the book is the book (recipe B): the next diff follows it.
    assert _say(session, ws.PROTOCOL, _reply(3, {"lastUpdateId": 30})) == []
    assert _say(session, ws.PROTOCOL, _diff("BTCUSD", 31, 32)) == []
    # Right after midnight: depth requests of their own ids, which move the books too.
    [refresh] = session.refresh()
    assert isinstance(refresh, Send)
    ids = [json.loads(m)["id"] for m in refresh.messages]
    assert ids == [1_000_000, 1_000_001]
    assert _say(session, ws.PROTOCOL, _reply(ids[0], {"lastUpdateId": 50})) == []
    assert _say(session, ws.PROTOCOL, _diff("BTCUSD", 51, 51)) == []
    [ping] = session.idle()
    assert isinstance(ping, Send) and json.loads(ping.messages[0])["method"] == "ping"
    # A refused request fails the run, with the reply's detail.
    refused = _reply(2, status=400, error={"code": -1121, "msg": "Invalid symbol."})
    [fail] = _say(session, ws.PROTOCOL, refused)
    assert isinstance(fail, Fail) and fail.why == "request refused"
    assert "-1121" in fail.error and "Invalid symbol." in fail.error
    assert fail.detail == {"request_id": 2, "status": 400, "code": -1121, "msg": "Invalid symbol."}


def test_gemini_declares_each_protocol_it_records_the_current_api_first() -> None:
    recordings = VENUES["gemini"].recordings
    assert [r.protocol for r in recordings] == [ws.PROTOCOL, v1.PROTOCOL, v2.PROTOCOL]
    by = {r.protocol: r for r in recordings}
    assert by[v1.PROTOCOL].per_symbol and by[v1.PROTOCOL].book_on_connect
    assert by[v1.PROTOCOL].stream_url("wss://x", ["BTCUSD"]) == v1.stream_url("wss://x", "BTCUSD")
    assert not by[v2.PROTOCOL].refreshes and by[ws.PROTOCOL].refreshes
