"""The Day API: v2 connections and snapshots, exact values, events, intervals, ticks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import V2_DATE

import replay
from replay import BookView, Day, Event
from replay.api import parse_interval_ns, to_ns
from replay.ticks import decimals_of, format_units, to_units
from tickrec.contract import Row, rows_to_table
from tickrec.errors import DatasetError, UsageError

DATE = "2026-11-23"
T0 = int(pd.Timestamp(DATE, tz="UTC").value)
S = 10**9


def v2_rows() -> list[Row]:
    """Two v2 connections for BTCUSD; the second repeats a historical trade seen live."""
    trade = {
        "type": "trade",
        "symbol": "BTCUSD",
        "event_id": 7,
        "timestamp": 1000,
        "price": "100.5",
        "quantity": "0.25",
        "side": "sell",
    }
    msgs = [
        (
            1,
            1,
            "ws_sent",
            {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD"]}]},
        ),
        (
            2,
            1,
            "ws",
            {
                "type": "l2_updates",
                "symbol": "BTCUSD",
                "changes": [["buy", "100", "1"], ["sell", "101", "2"]],
                "trades": [{**trade, "event_id": 5}],
            },
        ),
        (
            3,
            1,
            "ws",
            {"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "100.5", "3"]]},
        ),
        (4, 1, "ws", trade),
        (5, 1, "ws", {"type": "l2_updates", "symbol": "ETHUSD", "changes": [["buy", "1", "1"]]}),
        (
            7,
            2,
            "ws_sent",
            {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD"]}]},
        ),
        (8, 2, "ws", {"type": "heartbeat", "timestamp": 8000}),
        (
            9,
            2,
            "ws",
            {
                "type": "l2_updates",
                "symbol": "BTCUSD",
                "changes": [["buy", "99", "4"], ["sell", "101", "1"]],
                "trades": [trade, {**trade, "event_id": 6}],
            },
        ),
    ]
    return [
        Row(T0 + t * S, k, "run", conn, "gemini.v2", src, json.dumps(m))
        for k, (t, conn, src, m) in enumerate(msgs)
    ]


@pytest.fixture
def day() -> Day:
    return Day(rows_to_table(v2_rows()), date=DATE, symbol="BTCUSD")


def test_new_connection_clears_book_until_its_snapshot(day: Day):
    assert day.book_at(T0 + 3 * S).bids.tolist() == [[100.5, 3.0], [100.0, 1.0]]
    at7 = day.book_at(T0 + 7 * S)
    assert not at7.valid and at7.bids.size == 0
    assert not day.book_at(T0 + 8 * S).valid
    at9 = day.book_at(T0 + 9 * S)
    assert at9.valid and at9.bids.tolist() == [[99.0, 4.0]]
    assert [(g.kind, g.start, g.end) for g in day.gap_list()] == [
        ("unsynced", T0 + 1 * S, T0 + 2 * S),  # subscribed, no snapshot yet
        ("disconnect", T0 + 5 * S, T0 + 9 * S),
    ]


def test_snapshots_on_grid_are_multiples_since_midnight(day: Day):
    snaps = day.book_snapshots(depth=2, every="2s")
    assert [t.value for t in snaps["ts"]] == [T0 + k * S for k in (2, 4, 6, 8)]
    assert snaps["valid"].tolist() == [True, True, False, False]
    exact = day.book_snapshots(depth=2, every="2s", exact=True)
    assert exact.attrs["price_scale"] == 1
    assert exact["bid_px_0"].tolist() == [1000, 1005, 1005, 0]
    assert list(exact.columns) == [
        "ts",
        "bid_px_0",
        "bid_px_1",
        "bid_sz_0",
        "bid_sz_1",
        "ask_px_0",
        "ask_px_1",
        "ask_sz_0",
        "ask_sz_1",
        "valid",
    ]


def test_trades_exclude_history_unless_asked_and_never_double_count(day: Day):
    live = day.trades()
    assert live["tid"].tolist() == [7] and live["side"].tolist() == ["sell"]
    assert live["exch_ts"].iloc[0] == pd.Timestamp(10**9, tz="UTC")
    both = day.trades(historical=True)
    assert both["tid"].tolist() == [5, 7, 6]  # the repeated 7 is not listed twice
    assert both["historical"].tolist() == [True, False, True]


def test_book_changes_and_quotes(day: Day):
    ch = day.book_changes()
    assert ch["is_snapshot"].tolist() == [True, True, False, True, True]
    assert ch["side"].tolist() == ["bid", "ask", "bid", "bid", "ask"]
    q = day.quotes()
    # the new connection's reset shows as an empty, invalid quote
    assert q["bid_px"].fillna(-1).tolist() == [-1, 100.0, 100.5, -1, 99.0]
    assert q["valid"].tolist() == [False, True, True, False, True]


def test_events_and_callback(day: Day):
    seen: list[tuple[Event, BookView]] = []
    n = day.replay(lambda e, b: seen.append((e, b)))
    kinds = [e.kind for e, _ in seen]
    assert n == len(seen)
    # a reset clears the book, so it comes with a "book" event of its own
    assert kinds == ["reset", "book", "book", "book", "trade", "lost", "reset", "book", "book"]
    trade_event, book = seen[4]
    assert (trade_event.price, trade_event.size, trade_event.side) == (100.5, 0.25, -1)
    assert book.best_bid == 100.5 and book.mid == pytest.approx(100.75)


def test_chunking_does_not_change_outputs():
    tables = [
        Day(rows_to_table(v2_rows()), date=DATE, symbol="BTCUSD", chunk_size=n) for n in (1, 2, 100)
    ]
    frames = [d.book_snapshots(depth=3, every=0) for d in tables]
    for f in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], f)


def test_intervals_and_times():
    assert parse_interval_ns("1s") == S
    assert parse_interval_ns("100ms") == 10**8
    assert parse_interval_ns("0.1") == 10**8
    assert parse_interval_ns("250us") == 250_000
    assert parse_interval_ns(pd.Timedelta("1min")) == 60 * S
    assert parse_interval_ns(0) == 0
    for bad in ("1x", "-1s", "0.5ns"):
        with pytest.raises(UsageError):
            parse_interval_ns(bad)
    assert to_ns("2026-11-23 00:00:01") == T0 + S
    assert to_ns(pd.Timestamp("2026-11-23T01:00:00+01:00")) == T0


def test_ticks_exact_and_overflow_is_an_error():
    assert decimals_of("0.10") == 1 and decimals_of("5") == 0 and decimals_of("1e-8") == 8
    assert to_units(["1.5", "0.00000001", "3"], 8).tolist() == [150_000_000, 1, 300_000_000]
    assert format_units(10150, 2) == "101.5" and format_units(-5, 0) == "-5"
    with pytest.raises(DatasetError, match="does not fit a 64-bit integer"):
        to_units(["123456789012.123456789"], 9)
    with pytest.raises(DatasetError, match="not a decimal"):
        to_units(["abc"], 2)
    assert np.array_equal(to_units([], 3), np.zeros(0, np.int64))


def test_open_takes_any_case_and_date_objects(v2_root: Path):
    day = replay.open(V2_DATE, "FILUSD", data=v2_root)
    for date in (dt.date(2021, 6, 24), dt.datetime(2021, 6, 24, 12, tzinfo=dt.UTC)):
        other = replay.open(date, "filusd", data=v2_root)
        assert (other.date, other.symbol) == (V2_DATE, "FILUSD")
        assert other.gap_list() == day.gap_list() and other.valid_ns == day.valid_ns
    # a zoned time is taken at its UTC date: 01:00 in UTC+2 is the day before
    east = dt.datetime(2021, 6, 25, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert replay.open(east, "FILUSD", data=v2_root).date == V2_DATE
    with pytest.raises(UsageError, match="YYYY-MM-DD"):
        replay.open("24/06/2021", "FILUSD", data=v2_root)


def test_book_at_outside_the_date_is_refused(v2_root: Path):
    day = replay.open(V2_DATE, "FILUSD", data=v2_root)
    last = day.span[1]
    assert day.book_at(last).valid
    assert not day.book_at(day.midnight_ns).valid  # on the date, before the first message
    for ts in ("2021-06-23T23:59:59.999999999Z", "2021-06-25T00:00:00Z"):
        with pytest.raises(UsageError, match="is not on 2021-06-24"):
            day.book_at(ts)
