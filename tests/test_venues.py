"""Venue header codecs on real captured Gemini messages and on malformed input."""

from __future__ import annotations

import json
from typing import Any

import pytest
import realdata
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.rest import retry_after_seconds
from tickrec.errors import UsageError
from tickrec.venues import GEMINI_V1, GEMINI_V2, SequenceTracker, header_of, subscribe_message
from tickrec.venues.base import Gap
from tickrec.venues.gemini.rest import book_url
from tickrec.venues.gemini.v1 import stream_url
from tickrec.venues.limits import MessageRate, WeightWindow


def test_v1_real_messages_give_sequence_and_time() -> None:
    path = realdata.GEMINI_V1
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


def _v1_reference(payload: str) -> tuple[str, int | None, int | None, bool]:
    """What a v1 header must say, read the plain way: (kind, exch_ns, venue_seq, problem?)."""
    try:
        obj = json.loads(payload)
    except ValueError:
        return "", None, None, True
    if not isinstance(obj, dict):
        return "", None, None, True

    def int64(v: Any) -> int | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63
        return v if ok else None

    kind, seq, ms = (
        obj.get("type"),
        int64(obj.get("socket_sequence")),
        int64(obj.get("timestampms")),
    )
    exch_ns = ms * 1_000_000 if ms is not None and ms * 1_000_000 < 2**63 else None
    if kind not in ("update", "heartbeat"):
        return str(kind), exch_ns, seq, True
    if seq is None:
        return kind, exch_ns, None, True
    return kind, exch_ns, seq, False


_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 2**63 - 1, 2**63, 9_223_372_036_854, 9_223_372_036_855]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["update", "heartbeat", "Update"]),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["type", "socket_sequence", "timestampms", "events", "eventId"]),
        _JSON_VALUES,
    ),
    cut=st.integers(min_value=0, max_value=3),
)
def test_v1_header_agrees_with_a_plain_reading(fields: dict[str, Any], cut: int) -> None:
    """The fast header path and its fallback say what a plain JSON reading says.

    *cut* > 0 truncates the frame (malformed JSON); float-valued fields must
    not be taken as sequence numbers or times, nor ints beyond int64.
    """
    payload = json.dumps(fields)
    if cut:
        payload = payload[:-cut]
    h = header_of(GEMINI_V1, payload)
    kind, exch_ns, seq, problem = _v1_reference(payload)
    assert (h.kind, h.exch_ns, h.venue_seq, h.problem is not None) == (kind, exch_ns, seq, problem)


def test_v2_real_messages_route_by_symbol() -> None:
    path = realdata.GEMINI_V2
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


def test_limit_counters_refuse_past_the_limit_and_reset_each_window() -> None:
    minute = 60 * 10**9
    weight = WeightWindow(10)
    assert weight.spend(6, 5 * minute) is None
    assert weight.spend(6, 5 * minute + 15 * 10**9) == 45  # seconds to the next minute
    assert weight.used == 12
    assert weight.spend(6, 6 * minute) is None and weight.used == 6
    unlimited = WeightWindow(0)
    assert all(unlimited.spend(1000, 0) is None for _ in range(100))
    rate = MessageRate(5)
    assert [rate.allows(10**9 + i) for i in range(6)] == [True] * 5 + [False]
    assert rate.allows(2 * 10**9)
    assert all(MessageRate(0).allows(0) for _ in range(100))
