"""Each gap kind on small synthetic partitions, with exact intervals and validity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from replay import Day
from replay.gaps import Gap, analyze, valid_ns
from tickrec.contract import Row, event_payload, rows_to_table

DATE = "2026-11-23"
T0 = int(pd.Timestamp(DATE, tz="UTC").value) + 3600 * 10**9  # 01:00 UTC
S = 10**9


def at(seconds: float) -> int:
    return T0 + round(seconds * S)


class Feed:
    """Builds contract rows for one symbol; each connection counts its own socket_sequence."""

    def __init__(self, protocol: str = "gemini.v1") -> None:
        self.rows: list[Row] = []
        self.protocol = protocol
        self.conn = 1
        self.sock = 0

    def _row(self, t: float, source: str, payload: str, **kw: object) -> None:
        self.rows.append(
            Row(at(t), len(self.rows), "run-a", self.conn, self.protocol, source, payload, **kw)
        )

    def ws(self, t: float, msg: dict, seq: int | None = None) -> None:
        if self.protocol == "gemini.v1":
            msg = {**msg, "socket_sequence": self.sock if seq is None else seq}
            self.sock = msg["socket_sequence"] + 1
        self._row(t, "ws", json.dumps(msg), venue_seq=msg.get("socket_sequence"))

    def initial(self, t: float, bids: dict[str, str], asks: dict[str, str]) -> None:
        events = [
            {
                "type": "change",
                "reason": "initial",
                "side": side,
                "price": p,
                "remaining": z,
                "delta": z,
            }
            for side, levels in (("bid", bids), ("ask", asks))
            for p, z in levels.items()
        ]
        self.ws(t, {"type": "update", "eventId": 1, "events": events})

    def change(self, t: float, side: str, price: str, size: str, seq: int | None = None) -> None:
        ev = {
            "type": "change",
            "reason": "place",
            "side": side,
            "price": price,
            "remaining": size,
            "delta": size,
        }
        self.ws(
            t, {"type": "update", "eventId": 2, "timestampms": at(t) // 10**6, "events": [ev]}, seq
        )

    def heartbeat(self, t: float) -> None:
        self.ws(t, {"type": "heartbeat"})

    def event(self, t: float, kind: str, **details: object) -> None:
        self._row(t, "event", event_payload(kind, **details))

    def reconnect(self) -> None:
        self.conn += 1
        self.sock = 0

    def rest(self, sent: float, recv: float, bids: dict[str, str], asks: dict[str, str]) -> None:
        body = {
            "bids": [{"price": p, "amount": z, "timestamp": "0"} for p, z in bids.items()],
            "asks": [{"price": p, "amount": z, "timestamp": "0"} for p, z in asks.items()],
        }
        self.rows.append(
            Row(
                at(recv),
                len(self.rows),
                "run-a",
                0,
                "gemini.rest",
                "rest",
                json.dumps(body),
                sent_ns=at(sent),
            )
        )

    def day(self, **kw: object) -> Day:
        return Day(rows_to_table(self.rows), date=DATE, symbol="BTCUSD", **kw)  # type: ignore[arg-type]


BOOK = ({"100.00": "1"}, {"101.00": "1"})


def gaps(day: Day) -> list[tuple[str, int, int]]:
    return [(g.kind, g.start, g.end) for g in day.gap_list()]


def valid_at(day: Day, *seconds: float) -> list[bool]:
    return [day.book_at(at(s)).valid for s in seconds]


def test_disconnect_event_to_next_snapshot():
    f = Feed()
    f.initial(1, *BOOK)
    f.change(2, "bid", "100.00", "2")
    f.event(4, "disconnect", reason="closed by peer")
    f.reconnect()
    f.event(5, "connect")
    f.initial(6, *BOOK)
    f.heartbeat(8)
    day = f.day()
    assert gaps(day) == [("disconnect", at(4), at(6))]
    assert "disconnect" in day.gap_list()[0].detail
    assert valid_at(day, 0.5, 1, 3.9, 4, 5, 5.9, 6, 8) == [
        False,
        True,
        True,
        False,
        False,
        False,
        True,
        True,
    ]
    assert day.valid_ns == (at(4) - at(1)) + (at(8) - at(6))
    snaps = day.book_snapshots(depth=1, every="1s")
    assert snaps["valid"].tolist() == [True, True, True, False, False, True, True, True]
    assert snaps["ts"].iloc[0] == pd.Timestamp(at(1), tz="UTC")


def test_connection_that_just_stops_is_lost_at_its_last_row():
    f = Feed()
    f.initial(1, *BOOK)
    f.change(3, "bid", "100.00", "2")
    f.reconnect()
    f.initial(7, *BOOK)
    day = f.day()
    assert gaps(day) == [("disconnect", at(3), at(7))]
    assert valid_at(day, 3, 3.5, 6.9, 7) == [True, False, False, True]


def test_error_followed_by_data_is_not_a_disconnect():
    f = Feed()
    f.initial(1, *BOOK)
    f.event(2, "error", message="REST timeout")
    f.change(3, "bid", "100.00", "2")
    assert gaps(f.day()) == []


def test_sequence_break_until_reconnect():
    f = Feed()
    f.initial(1, *BOOK)
    f.change(2, "bid", "100.00", "2")
    f.change(3, "bid", "100.00", "3", seq=3)  # socket_sequence 2 never arrived
    f.change(4, "bid", "100.00", "4")
    f.event(4.5, "disconnect")
    f.reconnect()
    f.initial(5, *BOOK)
    day = f.day()
    assert gaps(day) == [("sequence", at(2), at(4.5)), ("disconnect", at(4.5), at(5))]
    assert day.gap_list()[0].detail == "socket_sequence expected 2, got 3"
    assert valid_at(day, 2, 2.5, 3, 4.9, 5) == [True, False, False, False, True]


def test_sequence_break_without_reconnect_lasts_to_end_of_data():
    f = Feed()
    f.initial(1, *BOOK)
    f.heartbeat(2)
    f.heartbeat(
        3,
    )
    f.rows.pop()  # lose socket_sequence 2
    f.heartbeat(4)
    f.change(5, "bid", "100.00", "2", seq=7)
    day = f.day()
    assert gaps(day) == [("sequence", at(2), at(5))]
    assert day.gap_list()[0].detail == "2 breaks; first: socket_sequence expected 2, got 3"


def test_silence_inside_one_connection():
    f = Feed()
    f.initial(1, *BOOK)
    for t in (2, 3, 15, 16):
        f.heartbeat(t)
    day = f.day()
    assert gaps(day) == [("silence", at(3), at(15))]
    assert day.gap_list()[0].detail == "no message for 12.000 s"
    assert valid_at(day, 3, 3.001, 14.999, 15) == [True, False, False, True]
    assert gaps(f.day(silence="12s")) == []
    assert gaps(f.day(silence="11.999s")) == [("silence", at(3), at(15))]


def test_snapshot_mismatch_compares_every_state_in_the_window():
    f = Feed()
    f.initial(1, *BOOK)
    f.change(2, "bid", "100.00", "2")
    # taken while 100.00 was 2: the window (1.9, 2.1] holds the state after the change
    f.rest(1.9, 2.1, {"100.00": "2"}, {"101.00": "1"})
    # taken before the change and matching the state then: also fine
    f.rest(1.5, 2.2, {"100.00": "1"}, {"101.00": "1"})
    # no state in (3.0, 3.5] has 100.00 at 5, nor 99.00 at 1: two levels differ
    f.rest(3.0, 3.5, {"100.00": "5", "99.00": "1"}, {"101.00": "1"})
    f.change(4, "ask", "101.00", "3")
    f.rest(5.0, 5.2, {"100.00": "2"}, {"101.00": "3"})  # confirmed again
    f.heartbeat(6)
    day = f.day()
    assert gaps(day) == [("snapshot_mismatch", at(3.0), at(5.0))]
    assert day.gap_list()[0].detail.startswith("2 levels differ")
    assert valid_at(day, 3.0, 3.1, 4.9, 5.0, 6) == [True, False, False, True, True]


def test_snapshot_mismatch_ignores_levels_beyond_the_reply():
    f = Feed()
    f.initial(1, {"100.00": "1", "90.00": "7"}, {"101.00": "1", "111.00": "2"})
    f.rest(2.0, 2.1, {"100.00": "1"}, {"101.00": "1"})
    f.heartbeat(3)
    assert gaps(f.day()) == []


def test_crossed_interval():
    f = Feed()
    f.initial(1, *BOOK)
    f.change(2, "bid", "101.50", "1")
    f.change(3, "ask", "102.00", "1")  # still crossed: 101.00 ask remains
    f.change(4, "ask", "101.00", "0")
    day = f.day()
    assert gaps(day) == [("crossed", at(2), at(4))]
    assert "best bid 101.5 >= best ask 101" in day.gap_list()[0].detail
    assert valid_at(day, 1.5, 2, 3.5, 4) == [True, False, False, True]
    q = day.quotes()
    assert q["valid"].tolist() == [True, False, True]  # 3 s left the top unchanged


def test_journal_loss_from_event_payload():
    f = Feed()
    f.initial(1, *BOOK)
    f.heartbeat(2)
    f.event(9, "journal_loss", start_ns=at(3), end_ns=at(5), records=12)
    f.heartbeat(9.5)
    day = f.day()
    assert gaps(day) == [("journal_loss", at(3), at(5))]
    assert '"records":12' in day.gap_list()[0].detail
    assert valid_at(day, 2.9, 4, 5) == [True, False, True]


def test_unknown_and_malformed_events_are_markers_only():
    f = Feed()
    f.initial(1, *BOOK)
    f.rows.append(Row(at(2), len(f.rows), "run-a", 1, "gemini.v1", "event", '{"event":"x"}'))
    f.rows.append(Row(at(3), len(f.rows), "run-a", 1, "gemini.v1", "event", "not json"))
    f.heartbeat(4)
    day = f.day()
    assert gaps(day) == []
    kinds = [e.kind for e, _ in day.events()]
    assert kinds == ["reset", "book", "x", "unknown"]


def test_undecodable_message_breaks_the_book():
    f = Feed()
    f.initial(1, *BOOK)
    f.rows.append(Row(at(2), len(f.rows), "run-a", 1, "gemini.v1", "ws", "{torn"))
    f.heartbeat(
        3,
    )
    day = f.day()
    assert [(g.kind, g.start, g.end, g.detail) for g in day.gap_list()] == [
        (
            "sequence",
            at(2),
            at(3),
            "undecodable message at run run-a seq 1 (not JSON); "
            "the book waits for the next initial book",
        )
    ]
    assert valid_at(day, 1, 2, 3) == [True, False, False]


BAD_VALUES = {
    "negative size": ("100.00", "-3"),
    "10,000-digit price": ("1" * 10_000, "3"),
    "40 decimals": ("100." + "1" * 40, "3"),
    "NaN": ("NaN", "3"),
    "Infinity": ("100.00", "Infinity"),
    "huge exponent": ("1e999999999", "3"),
    "tiny exponent": ("1e-999999999", "3"),
    "number, not string": (100, "3"),
}


@pytest.mark.parametrize("price,size", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_value_is_a_gap_naming_the_row(price: object, size: str):
    f = Feed()
    f.initial(1, *BOOK)
    f.change(2, "bid", "100.00", "2")
    f.change(3, "bid", price, size)  # type: ignore[arg-type]
    f.heartbeat(4)
    f.initial(5, *BOOK)
    f.heartbeat(6)
    day = f.day()
    (gap,) = day.gap_list()
    assert (gap.kind, gap.start, gap.end) == ("sequence", at(3), at(5))
    assert "undecodable message at run run-a seq 2 (" in gap.detail
    assert valid_at(day, 2, 3, 4, 5) == [True, False, False, True]
    snaps = day.book_snapshots(depth=1, every=0)
    assert snaps["bid_sz_0"].tolist()[:2] == [1.0, 2.0]


def test_a_bad_value_drops_the_whole_message():
    """A message with one bad change among good ones adds none of them to the book."""
    f = Feed()
    f.initial(1, *BOOK)
    events = [
        {
            "type": "change",
            "reason": "place",
            "side": "bid",
            "price": "99.00",
            "remaining": "5",
            "delta": "5",
        },
        {
            "type": "change",
            "reason": "place",
            "side": "bid",
            "price": "98.00",
            "remaining": "-5",
            "delta": "-5",
        },
    ]
    f.ws(2, {"type": "update", "eventId": 2, "events": events})
    f.initial(3, *BOOK)
    day = f.day()
    snaps = day.book_snapshots(depth=3, every=0)
    assert snaps["bid_px_1"].isna().all()
    assert "negative size" in day.gap_list()[0].detail


def test_gaps_frame_columns():
    f = Feed()
    f.initial(1, *BOOK)
    f.heartbeat(2)
    f.heartbeat(20)
    g = f.day().gaps()
    assert list(g.columns) == ["kind", "start", "end", "duration", "detail"]
    assert g["duration"].iloc[0] == pd.Timedelta(seconds=18)
    assert isinstance(Gap("silence", 0, 5, "").duration, int)


@pytest.mark.parametrize("every", ["0", 0])
def test_per_message_rows(every: object):
    f = Feed()
    f.initial(1, *BOOK)
    f.change(2, "bid", "100.00", "3")
    f.heartbeat(3)
    snaps = f.day().book_snapshots(depth=2, every=every)  # type: ignore[arg-type]
    assert snaps["ts"].tolist() == [pd.Timestamp(at(t), tz="UTC") for t in (1, 2)]
    assert snaps["bid_sz_0"].tolist() == [1.0, 3.0]
    assert np.isnan(snaps["bid_px_1"]).all()


def test_run_level_shutdown_ends_the_open_connection():
    f = Feed()
    f.initial(1, *BOOK)
    f.heartbeat(2)
    f.rows.append(
        Row(
            at(3),
            len(f.rows),
            "run-a",
            0,
            "gemini.v1",
            "event",
            event_payload("shutdown", why="SIGTERM"),
        )
    )
    f.reconnect()
    f.initial(9, *BOOK)
    day = f.day()
    assert gaps(day) == [("disconnect", at(3), at(9))]
    assert day.gap_list()[0].detail == "connection lost (shutdown event)"
    assert valid_at(day, 2.9, 3, 8.9, 9) == [True, False, False, True]


def _run_event(f: Feed, t: float, **payload: object) -> None:
    f.rows.append(Row(at(t), len(f.rows), "run-a", 0, "gemini.v1", "event", json.dumps(payload)))


def test_a_disk_error_with_nothing_lost_is_no_gap():
    """Held records written late keep their receive times: the book lost nothing."""
    f = Feed()
    f.initial(1, *BOOK)
    f.heartbeat(2)
    f.heartbeat(3)
    _run_event(f, 8, event="disk_error", since_ns=at(4), resumed_ns=at(7), lost=0)
    f.heartbeat(8)
    assert gaps(f.day()) == []


def test_records_dropped_on_a_full_disk_are_a_journal_loss_of_their_span():
    f = Feed()
    f.initial(1, *BOOK)
    f.heartbeat(2)
    f.heartbeat(3)
    _run_event(f, 8, event="journal_loss", since_ns=at(3.5), start_ns=at(4), end_ns=at(7), lost=120)
    f.heartbeat(8)
    day = f.day()
    assert gaps(day) == [("journal_loss", at(4), at(7))]
    assert "journal_loss" in day.gap_list()[0].detail


def test_v2_undecodable_message_keeps_the_book_invalid_until_a_snapshot():
    """An incremental v2 update after an unreadable frame is not taken for a snapshot."""
    f = Feed("gemini.v2")
    snap = [["buy", "100.00", "1"], ["sell", "101.00", "1"]]
    f.ws(1, {"type": "l2_updates", "symbol": "BTCUSD", "changes": snap, "trades": []})
    f.rows.append(Row(at(2), len(f.rows), "run-a", 1, "gemini.v2", "ws", '{"type":"l2_upd'))
    f.ws(3, {"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "99.00", "2"]]})
    f.heartbeat(4)
    day = f.day()
    assert gaps(day) == [("sequence", at(2), at(4))]
    assert "v2 has no sequence numbers" in day.gap_list()[0].detail
    assert valid_at(day, 1, 3, 4) == [True, False, False]


def test_silence_until_the_watchdog_drops_the_connection():
    """A feed that goes quiet and is dropped as stale is a silence up to the drop."""
    f = Feed()
    f.initial(1, *BOOK)
    f.heartbeat(2)
    f.event(14, "stale", silent_s=12.0)
    f.event(14.01, "disconnect", code=None, reason=None, why="stale")
    f.reconnect()
    f.initial(15, *BOOK)
    day = f.day()
    assert gaps(day) == [("silence", at(2), at(14)), ("disconnect", at(14), at(15))]
    assert valid_at(day, 2, 2.5, 15) == [True, False, True]


def test_rest_reply_that_overtakes_the_websocket_is_no_mismatch():
    """The websocket frame of the state a REST reply shows may arrive just after the reply."""
    f = Feed()
    f.initial(1, *BOOK)
    f.rest(2.0, 2.1, {"100.00": "2"}, {"101.00": "1"})
    f.change(2.101, "bid", "100.00", "2")
    f.heartbeat(3)
    assert gaps(f.day()) == []


def test_rest_reply_during_a_disconnect_is_not_held_against_the_next_connection():
    """The lag allowance stops at the connection's end: later connections show later states."""
    f = Feed()
    f.initial(1, *BOOK)
    f.event(2, "disconnect", code=None, reason=None, why="closed")
    f.rest(2.5, 2.6, {"100.00": "7"}, {"101.00": "1"})
    f.reconnect()
    f.initial(3, {"100.00": "8"}, {"101.00": "1"})
    f.heartbeat(4)
    assert gaps(f.day()) == [("disconnect", at(2), at(3))]


def test_rest_reply_just_before_the_connection_ends_is_inconclusive():
    """When the feed ends within the lag allowance, the frames that would confirm are gone."""
    f = Feed()
    f.initial(1, *BOOK)
    f.rest(2.0, 2.1, {"100.00": "2"}, {"101.00": "1"})  # its frame never arrives
    f.event(2.5, "disconnect", code=1000, reason="", why="closed by server")
    f.reconnect()
    f.heartbeat(3)
    assert gaps(f.day()) == [("disconnect", at(2.5), at(3))]


def test_rest_reply_taken_before_the_stream_snapshot_is_inconclusive():
    """A reply sent while the book was still unknown may show a state the stream never will."""
    f = Feed()
    f.initial(1, *BOOK)
    f.rest(0.9, 1.2, {"100.00": "3"}, {"101.00": "1"})  # taken before the snapshot's state
    f.heartbeat(3)
    assert gaps(f.day()) == []


def test_book_status_answers_as_the_full_timeline_does():
    f = Feed()
    f.initial(1, *BOOK)
    for k in range(8):  # changes away from the touch: no new state
        f.change(1.1 + k / 10, "bid", f"9{k}.00", "1")
    f.rest(1.5, 1.6, {"100.00": "3"}, {"101.00": "1"})  # a mismatch
    f.change(2, "bid", "101.50", "1")
    f.change(3, "ask", "102.00", "1")
    f.change(4, "ask", "101.00", "0")
    f.change(5, "bid", "99.00", "2", seq=99)  # a sequence break
    f.reconnect()
    f.initial(6, *BOOK)
    f.heartbeat(30)
    day = f.day()
    assert day._rest is None and day.gap_list()
    status, timeline = day._book_status, day.timeline
    assert len(status) < len(timeline)
    assert analyze(day.decoded, timeline, *day._rest, day.silence_ns) == day.gap_list()
    assert {g.kind for g in day.gap_list()} >= {"snapshot_mismatch", "crossed", "sequence"}
    span = day.span
    assert valid_ns(day.gap_list(), *span) == day.valid_ns > 0


def test_bad_and_unknown_messages_are_counted_in_the_summary():
    from replay.report import format_summary

    f = Feed()
    f.initial(1, *BOOK)
    f.ws(2, {"type": "mystery"})
    f.change(3, "bid", "NaN", "1")
    f.initial(4, *BOOK)
    summary = f.day().summary()
    assert (summary["bad_messages"], summary["unknown_messages"]) == (1, 1)
    last = format_summary([summary]).splitlines()[-1]
    assert last == "BTCUSD: 1 bad message (each a gap), 1 message of a kind not read"
