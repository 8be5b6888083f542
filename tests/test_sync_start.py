"""A book is valid only from a snapshot seen in the replayed rows (docs/architecture.md 2.5).

A partition that starts mid-connection (day 2 of a recording that runs
through UTC midnight) holds the connection's diffs but not its opening: on
every protocol those diffs alone are never a book, and the time is an
``unsynced`` gap. With the opening in the rows, or a snapshot taken later on
the same connection, the book is valid from that snapshot. Partitions are
real part files, replayed through ``replay.open``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

import replay
from tickrec import contract
from tickrec.contract import Row, rows_to_table
from tickrec.venues import GEMINI_WS, header_of

DATE = "2026-11-24"
T0 = int(pd.Timestamp(DATE, tz="UTC").value)  # midnight: the rows continue a connection
MS = 10**6


def _open(tmp_path: Path, rows: list[tuple[int, str, str, Any]]) -> replay.Day:
    """Write *rows* ``(ms after T0, protocol, source, payload)`` as one part of one run."""
    out = []
    for seq, (ms, protocol, source, payload) in enumerate(rows):
        text = payload if isinstance(payload, str) else json.dumps(payload)
        h = header_of(protocol, text) if source == "ws" else None
        out.append(
            Row(
                T0 + ms * MS,
                seq,
                "run-a",
                7,
                protocol,
                source,
                text,
                exch_ns=h.exch_ns if h else None,
                venue_seq=h.venue_seq if h else None,
            )
        )
    contract.write_part(tmp_path, "gemini", "BTCUSD", "run-a", 0, rows_to_table(out))
    return replay.open(DATE, "BTCUSD", data=tmp_path, cache=False)


def _kinds(day: replay.Day) -> list[tuple[str, int, int]]:
    return [(g.kind, g.start, g.end) for g in day.gap_list()]


def _never_valid(day: replay.Day) -> None:
    assert _kinds(day) == [("unsynced", *day.span)]
    assert day.valid_ns == 0 and day.coverage == 0.0
    assert not day.book_snapshots(depth=1, every="100ms")["valid"].any()


def _valid_from(day: replay.Day, ms: int) -> None:
    first = day.span[0]
    assert _kinds(day) == ([("unsynced", first, T0 + ms * MS)] if ms * MS > first - T0 else [])
    assert not day.book_at(T0 + ms * MS - 1).valid and day.book_at(T0 + ms * MS).valid
    assert day.valid_ns == day.span[1] - (T0 + ms * MS)


# --- the current API (gemini.md section 3.4) -----------------------------------------------


def _diff(first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {"e": "depthUpdate", "E": 1764000000000, "s": "btcusd", "U": first, "u": last,
            "b": bids, "a": asks}  # fmt: skip


SUBSCRIBE = {"id": 1, "method": "subscribe", "params": ["btcusd@depth@100ms"]}
WS_DIFFS = [
    (100, _diff(500, 500, [["100.00", "1"]], [["101.00", "2"]])),
    (200, _diff(501, 503, [["100.00", "3"]], [])),
    (300, _diff(504, 504, [["99.00", "1"]], [])),
    (400, _diff(505, 506, [], [["101.00", "1"]])),
]


def test_ws_diffs_without_the_opening_are_never_a_book(tmp_path: Path) -> None:
    day = _open(tmp_path, [(ms, GEMINI_WS, "ws", d) for ms, d in WS_DIFFS])
    _never_valid(day)
    assert day.decoded.counts.get("snapshot", 0) == 0


def test_ws_opening_in_the_rows_makes_the_first_diff_the_snapshot(tmp_path: Path) -> None:
    day = _open(
        tmp_path,
        [(10, GEMINI_WS, "ws_sent", SUBSCRIBE), (20, GEMINI_WS, "ws", {"id": 1, "status": 200})]
        + [(ms, GEMINI_WS, "ws", d) for ms, d in WS_DIFFS],
    )
    _valid_from(day, 100)
    assert day.book_at(T0 + 400 * MS).bids.tolist() == [[100.0, 3.0], [99.0, 1.0]]


def test_ws_refused_subscription_is_no_opening(tmp_path: Path) -> None:
    refused = {"id": 1, "status": 400, "error": {"code": -1002, "msg": "no"}}
    day = _open(
        tmp_path,
        [(10, GEMINI_WS, "ws_sent", SUBSCRIBE), (20, GEMINI_WS, "ws", refused)]
        + [(ms, GEMINI_WS, "ws", d) for ms, d in WS_DIFFS],
    )
    _never_valid(day)


def test_ws_depth_reply_mid_connection_is_the_snapshot(tmp_path: Path) -> None:
    depth = {"id": 9, "method": "depth", "params": {"symbol": "btcusd", "limit": 5000}}
    book = {"lastUpdateId": 503, "bids": [["100.00", "3"]], "asks": [["101.00", "2"]]}
    rows = [(ms, GEMINI_WS, "ws", d) for ms, d in WS_DIFFS[:2]]
    rows += [(250, GEMINI_WS, "ws_sent", depth), (260, GEMINI_WS, "ws", {"id": 9, "status": 200,
             "result": book})]  # fmt: skip
    rows += [(ms, GEMINI_WS, "ws", d) for ms, d in WS_DIFFS[2:]]
    day = _open(tmp_path, rows)
    _valid_from(day, 260)
    assert day.book_at(T0 + 400 * MS).asks.tolist() == [[101.0, 1.0]]


# --- v1 (gemini.md section 1) ----------------------------------------------------------------


def _v1(seq: int, reason: str, bid: str, ms: int) -> tuple[int, str, str, Any]:
    change = {"type": "change", "reason": reason, "side": "bid", "price": bid,
              "remaining": "1", "delta": "1"}  # fmt: skip
    ask = {**change, "side": "ask", "price": "101.00"}
    events = [change, ask] if reason == "initial" else [change]
    msg = {"type": "update", "eventId": seq, "socket_sequence": seq, "events": events}
    return (ms, "gemini.v1", "ws", msg)


def test_v1_updates_without_initial_are_never_a_book(tmp_path: Path) -> None:
    # socket_sequence far from 0: the connection began on the previous date
    day = _open(tmp_path, [_v1(9000 + k, "place", f"9{k}.00", 100 * (k + 1)) for k in range(5)])
    _never_valid(day)
    assert day.decoded.breaks == []  # the first message is the baseline, not a break


def test_v1_initial_in_the_rows_is_the_snapshot(tmp_path: Path) -> None:
    rows = [_v1(0, "initial", "100.00", 150)]
    rows += [_v1(k, "place", f"9{k}.00", 150 + 100 * k) for k in range(1, 5)]
    connect = contract.event_payload("connect", url="wss://api.gemini.com/v1/marketdata/BTCUSD")
    day = _open(tmp_path, [(50, "gemini.v1", "event", connect), *rows])
    _valid_from(day, 150)


# --- v2 (gemini.md section 2) ----------------------------------------------------------------

V2_SUBSCRIBE = {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD"]}]}


def _l2(changes: list[list[str]], trades: bool = False) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "l2_updates", "symbol": "BTCUSD", "changes": changes}
    if trades:
        msg["trades"] = [{"type": "trade", "symbol": "BTCUSD", "event_id": 1, "timestamp": 1,
                          "price": "100.50", "quantity": "1", "side": "buy", "tid": 1}]  # fmt: skip
    return msg


V2_UPDATES = [
    (100, _l2([["buy", "100.00", "1"], ["sell", "101.00", "2"]])),
    (200, _l2([["buy", "99.00", "1"]])),
    (300, _l2([["sell", "101.00", "0"], ["sell", "102.00", "1"]])),
]


def test_v2_updates_without_subscribe_are_never_a_book(tmp_path: Path) -> None:
    day = _open(tmp_path, [(ms, "gemini.v2", "ws", m) for ms, m in V2_UPDATES])
    _never_valid(day)


def test_v2_first_update_after_our_subscribe_is_the_snapshot(tmp_path: Path) -> None:
    rows = [(50, "gemini.v2", "ws_sent", V2_SUBSCRIBE)]
    day = _open(tmp_path, rows + [(ms, "gemini.v2", "ws", m) for ms, m in V2_UPDATES])
    _valid_from(day, 100)
    assert day.book_at(T0 + 300 * MS).asks.tolist() == [[102.0, 1.0]]


def test_v2_update_with_the_snapshot_trades_is_the_snapshot(tmp_path: Path) -> None:
    rows = [(ms, "gemini.v2", "ws", m) for ms, m in V2_UPDATES[:1]]
    rows += [(150, "gemini.v2", "ws", _l2([["buy", "100.00", "2"], ["sell", "101.00", "1"]], True))]
    rows += [(ms, "gemini.v2", "ws", m) for ms, m in V2_UPDATES[1:]]
    day = _open(tmp_path, rows)
    _valid_from(day, 150)
    assert day.book_at(T0 + 150 * MS).bids.tolist() == [[100.0, 2.0]]
