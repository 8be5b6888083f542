"""Venue header codecs on real captured Gemini messages and on malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tickrec.errors import UsageError
from tickrec.venues import GEMINI_V1, GEMINI_V2, SequenceTracker, header_of, subscribe_message
from tickrec.venues.gemini_rest import book_url, retry_after_seconds
from tickrec.venues.gemini_v1 import Gap, stream_url

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def test_v1_real_messages_give_sequence_and_time() -> None:
    path = REAL / "gemini_v1" / "btcusd_v1_2018-09-26.jsonl"
    if not path.exists():
        pytest.skip("real capture not available")
    lines = path.read_text().splitlines()
    tracker = SequenceTracker()
    tracker.expected = 1  # the capture starts at socket_sequence 1
    for line in lines:
        h = header_of(GEMINI_V1, line)
        obj = json.loads(line)
        assert h.problem is None
        assert h.venue_seq == obj["socket_sequence"]
        assert h.exch_ns == obj["timestampms"] * 1_000_000
        assert h.symbol is None
        assert tracker.check(h.venue_seq) is None


def test_v1_heartbeat_initial_and_gap() -> None:
    assert header_of(GEMINI_V1, '{"type":"heartbeat","socket_sequence":2}').venue_seq == 2
    initial = '{"type":"update","eventId":1,"socket_sequence":0,"events":[]}'
    h = header_of(GEMINI_V1, initial)
    assert (h.kind, h.exch_ns, h.venue_seq, h.problem) == ("update", None, 0, None)
    t = SequenceTracker()
    assert t.check(0) is None and t.check(1) is None
    assert t.check(3) == Gap(2, 3)
    assert t.check(4) is None


@pytest.mark.parametrize(
    "payload",
    ["{not json", "[1,2]", '{"type":"bogus","socket_sequence":1}', '{"type":"update"}', ""],
)
def test_v1_malformed_is_a_problem_not_an_exception(payload: str) -> None:
    assert header_of(GEMINI_V1, payload).problem


def test_v2_real_messages_route_by_symbol() -> None:
    path = REAL / "gemini_v2" / "GEMINI.ws.1.0"
    if not path.exists():
        pytest.skip("real capture not available")
    kinds: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("wss://"):
            continue
        payload = line.split(": ", 1)[1]
        h = header_of(GEMINI_V2, payload)
        obj = json.loads(payload)
        assert h.problem is None, payload[:100]
        kinds[h.kind] = kinds.get(h.kind, 0) + 1
        if h.kind == "heartbeat":
            assert h.symbol is None and h.exch_ns == obj["timestamp"] * 1_000_000
        else:
            assert h.symbol == obj["symbol"]
        if h.kind == "trade":
            assert h.exch_ns == obj["timestamp"] * 1_000_000
    assert kinds == {"l2_updates": 655, "trade": 16, "heartbeat": 7}


def test_v2_unexpected_and_helpers() -> None:
    assert header_of(GEMINI_V2, '{"type":"l2_updates","changes":[]}').problem
    assert header_of(GEMINI_V2, '{"type":"what","symbol":"X"}').problem
    msg = subscribe_message(["BTCUSD", "ETHUSD"])
    assert json.loads(msg) == {
        "type": "subscribe",
        "subscriptions": [{"name": "l2", "symbols": ["BTCUSD", "ETHUSD"]}],
    }
    assert stream_url("ws://h:1/", "BTCUSD") == "ws://h:1/v1/marketdata/BTCUSD?heartbeat=true"
    assert book_url("http://h", "BTCUSD", 0).endswith("/v1/book/BTCUSD?limit_bids=0&limit_asks=0")
    assert retry_after_seconds("3", 1.0) == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1.5) == 1.5
    assert retry_after_seconds(None, 2.0) == 2.0
    with pytest.raises(UsageError):
        header_of("nope", "{}")
