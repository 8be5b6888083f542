"""Carrying the book over UTC midnight (docs/architecture.md section 2.5).

A connection that runs through midnight has its opening in day 1's rows and
only diffs in day 2's until the midnight snapshot. With carry, day 2 goes on
from day 1's end-of-day book and sequence state (day 1 replayed alone), so it
is valid from 00:00 and a break right after midnight is still a break;
without carry, day 2 is ``unsynced`` until its own snapshot. Datasets are
real part files written with :mod:`tickrec.contract`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import replay
from replay.cache import cache_dir, day_ends
from tickrec import contract
from tickrec.contract import Row, rows_to_table
from tickrec.errors import NotFoundError
from tickrec.venues import GEMINI_V1, GEMINI_WS, header_of

DAY1, DAY2 = "2026-11-23", "2026-11-24"
M = int(pd.Timestamp(DAY2, tz="UTC").value)  # the midnight between them
MS = 10**6

Spec = tuple[int, str, int, str, str, Any]  # ms from M, run, conn, protocol, source, payload


def _write(root: Path, rows: list[Spec], symbol: str = "BTCUSD") -> None:
    """Write *rows* as part files, one per (date, run), seq numbered per run in order."""
    by_part: dict[tuple[str, str], list[Row]] = {}
    seqs: dict[str, int] = {}
    for ms, run, conn, protocol, source, payload in rows:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        text = text.replace("btcusd", symbol.lower())
        h = header_of(protocol, text) if source == "ws" else None
        ts = M + ms * MS
        seq = seqs.get(run, 0)
        seqs[run] = seq + 1
        by_part.setdefault((contract.date_of_ns(ts), run), []).append(
            Row(ts, seq, run, conn, protocol, source, text,
                exch_ns=h.exch_ns if h else None, venue_seq=h.venue_seq if h else None)
        )  # fmt: skip
    for n, ((_, run), part) in enumerate(sorted(by_part.items())):
        contract.write_part(root, "gemini", symbol, run, n, rows_to_table(part))


def _diff(first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {"e": "depthUpdate", "E": 1764000000000, "s": "btcusd", "U": first, "u": last,
            "b": bids, "a": asks}  # fmt: skip


def _ws(ms: int, payload: Any, source: str = "ws", conn: int = 7, run: str = "run-a") -> Spec:
    return (ms, run, conn, GEMINI_WS, source, payload)


SUBSCRIBE = {"id": 1, "method": "subscribe", "params": ["btcusd@depth@100ms"]}
DEPTH = {"id": 9, "method": "depth", "params": {"symbol": "btcusd", "limit": 5000}}
DAY1_ROWS = [
    _ws(-900, SUBSCRIBE, "ws_sent"),
    _ws(-890, {"id": 1, "status": 200}),
    _ws(-800, _diff(500, 500, [["100.00", "1"], ["98.00", "4"]], [["101.00", "2"]])),
    _ws(-500, _diff(501, 503, [["100.00", "3"]], [["102.50", "1"]])),
    _ws(-100, _diff(504, 504, [["99.00", "1"], ["98.00", "0"]], [])),
]
# Day 2: diffs that follow on, then the midnight depth snapshot at 2.6 s.
DAY2_DIFFS = [
    _ws(500, _diff(505, 506, [], [["101.00", "1"]])),
    _ws(1500, _diff(507, 507, [["99.50", "2"]], [])),
]
DEPTH_REPLY = {"lastUpdateId": 510, "bids": [["99.50", "2"]], "asks": [["101.00", "1"]]}
DAY2_SNAPSHOT = [
    _ws(2500, DEPTH, "ws_sent"),
    _ws(2600, {"id": 9, "status": 200, "result": DEPTH_REPLY}),
    _ws(3000, _diff(511, 511, [["99.00", "5"]], [])),
]


def _truth(specs: list[Spec], until_ms: int) -> tuple[dict[float, float], dict[float, float]]:
    """The book after every diff before *until_ms*, applied with plain dicts (no replay code)."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for ms, *_, source, payload in specs:
        if ms > until_ms or source != "ws" or payload.get("e") != "depthUpdate":
            continue
        for book, levels in ((bids, payload["b"]), (asks, payload["a"])):
            for price, size in levels:
                if float(size) == 0:
                    book.pop(float(price), None)
                else:
                    book[float(price)] = float(size)
    return bids, asks


def _levels(book: dict[float, float], reverse: bool) -> list[list[float]]:
    return [[p, book[p]] for p in sorted(book, reverse=reverse)]


def _kinds(day: replay.Day) -> list[tuple[str, int, int]]:
    return [(g.kind, g.start, g.end) for g in day.gap_list()]


@pytest.fixture
def ws_data(tmp_path: Path) -> Path:
    _write(tmp_path, DAY1_ROWS + DAY2_DIFFS + DAY2_SNAPSHOT)
    return tmp_path


@pytest.mark.parametrize("cache", [True, False])
def test_carried_book_is_valid_from_midnight(ws_data: Path, cache: bool) -> None:
    day = replay.open(DAY2, "BTCUSD", data=ws_data, cache=cache)
    assert day.carried == (("run-a", 7),)
    assert day.span == (M, M + 3000 * MS)
    assert _kinds(day) == []
    assert day.valid_ns == 3000 * MS
    # The carried book is the true book at 00:00:00 and, with the diffs, at 00:00:01.
    for t_ms in (0, 1000):
        bids, asks = _truth(DAY1_ROWS + DAY2_DIFFS, t_ms)
        view = day.book_at(M + t_ms * MS)
        assert view.valid
        assert view.bids.tolist() == _levels(bids, True)
        assert view.asks.tolist() == _levels(asks, False)
    snaps = day.book_snapshots(depth=2, every="1s")
    assert snaps["ts"].iloc[0] == pd.Timestamp(DAY2, tz="UTC")  # a grid row at midnight
    assert snaps["valid"].all()


def test_without_carry_day_two_is_unsynced_until_its_snapshot(ws_data: Path) -> None:
    day = replay.open(DAY2, "BTCUSD", data=ws_data, cache=False, carry=False)
    assert day.carried == ()
    assert day.span == (M + 500 * MS, M + 3000 * MS)
    assert _kinds(day) == [("unsynced", M + 500 * MS, M + 2600 * MS)]
    assert not day.book_at(M + 1000 * MS).valid


def test_the_end_of_day_checkpoint_is_cached(ws_data: Path) -> None:
    (end,) = day_ends(ws_data, "gemini", DAY1, "BTCUSD", cache=False)
    assert end.key == ("run-a", 7) and end.state == {"last": 504, "prev_ts": M - 100 * MS}
    assert end.protocol == GEMINI_WS
    cached = day_ends(ws_data, "gemini", DAY1, "BTCUSD", cache=True)
    assert [c.to_json() for c in cached] == [end.to_json()]
    path = cache_dir(ws_data, "gemini", DAY1, "BTCUSD") / "ends.json"
    assert json.loads(path.read_bytes())["ends"] == [end.to_json()]
    again = day_ends(ws_data, "gemini", DAY1, "BTCUSD", cache=True)  # read back
    assert [c.to_json() for c in again] == [end.to_json()]


def test_the_previous_date_is_replayed_alone_never_recursively(tmp_path: Path) -> None:
    """Day 1 holds only diffs of a connection opened on day 0: carried into day 1 it is in
    sync at day 1's end, but day 1 alone never is, so nothing is carried into day 2."""
    day = 86_400_000
    opening = [(ms - day, *rest) for ms, *rest in DAY1_ROWS[:3]]  # type: ignore[misc]
    diffs = [(ms - day, *rest) for ms, *rest in DAY1_ROWS[3:]]  # type: ignore[misc]
    _write(tmp_path, opening + [(ms + day, *rest) for ms, *rest in diffs] + DAY2_DIFFS)  # type: ignore[misc]
    day1 = replay.open(DAY1, "BTCUSD", data=tmp_path, cache=False)
    assert day1.carried == (("run-a", 7),)
    assert [g.kind for g in day1.gap_list()] == ["silence"]  # a day without a message
    assert day1.book_at(M - 1).valid
    assert day_ends(tmp_path, "gemini", DAY1, "BTCUSD", cache=False) == ()
    day2 = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False)
    assert day2.carried == () and day2.valid_ns == 0


def test_a_sequence_break_right_after_midnight_is_still_detected(tmp_path: Path) -> None:
    broken = [_ws(500, _diff(507, 508, [["97.00", "1"]], []))]  # 505-506 never came
    _write(tmp_path, DAY1_ROWS + broken + DAY2_SNAPSHOT)
    day = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False)
    assert day.carried == (("run-a", 7),)
    assert [(b.expected, b.got) for b in day.decoded.breaks] == [(505, 507)]
    # Lost somewhere after the last good diff, before midnight: invalid from midnight.
    assert _kinds(day) == [("sequence", M, M + 2600 * MS)]
    assert not day.book_at(M + 600 * MS).valid and day.book_at(M + 2600 * MS).valid
    alone = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False, carry=False)
    assert alone.decoded.breaks == []  # alone, the diffs were never a book: nothing to break


def test_a_connection_lost_before_midnight_is_not_carried(tmp_path: Path) -> None:
    lost = [(-50, "run-a", 7, "", "event", contract.event_payload("disconnect", code=1006))]
    _write(tmp_path, DAY1_ROWS + lost + DAY2_DIFFS + DAY2_SNAPSHOT)
    assert day_ends(tmp_path, "gemini", DAY1, "BTCUSD", cache=False) == ()
    day = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False)
    assert day.carried == () and day.span[0] == M + 500 * MS


def test_a_loss_after_midnight_ends_the_carried_book(tmp_path: Path) -> None:
    shutdown = [
        (1000, "run-a", 0, "", "event", contract.event_payload("shutdown")),
        (2000, "run-b", 0, "", "event", contract.event_payload("run_start")),
    ]
    _write(tmp_path, DAY1_ROWS + DAY2_DIFFS[:1] + shutdown)
    day = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False)
    assert day.carried == (("run-a", 7),)
    assert day.book_at(M + 900 * MS).valid and not day.book_at(M + 1000 * MS).valid
    assert day.valid_ns == 1000 * MS
    assert _kinds(day) == [("disconnect", M + 1000 * MS, M + 2000 * MS)]


def _v1(seq: int, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "update", "eventId": seq + 1000, "socket_sequence": seq, "events": events}


def _chg(side: str, price: str, remaining: str, reason: str = "place") -> dict[str, Any]:
    return {"type": "change", "side": side, "price": price, "remaining": remaining,
            "delta": remaining, "reason": reason}  # fmt: skip


def _v1_rows(day2_seqs: list[int]) -> list[Spec]:
    rows: list[Spec] = [
        (-900, "run-v", 3, GEMINI_V1, "ws",
         _v1(0, [_chg("bid", "100", "1", "initial"), _chg("ask", "101", "2", "initial")])),
        (-400, "run-v", 3, GEMINI_V1, "ws", _v1(1, [_chg("bid", "99", "3")])),
    ]  # fmt: skip
    for k, seq in enumerate(day2_seqs):
        update = _v1(seq, [_chg("ask", "102", str(k + 1))])
        rows.append((100 + 100 * k, "run-v", 3, GEMINI_V1, "ws", update))
    return rows


def test_v1_carries_the_socket_sequence(tmp_path: Path) -> None:
    _write(tmp_path, _v1_rows([2, 3, 4]))
    day = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False)
    assert day.carried == (("run-v", 3),) and _kinds(day) == []
    assert day.book_at(M).bids.tolist() == [[100.0, 1.0], [99.0, 3.0]]
    broken = tmp_path / "broken"
    _write(broken, _v1_rows([4, 5, 6]))  # 2 and 3 lost over midnight
    day = replay.open(DAY2, "BTCUSD", data=broken, cache=False)
    assert [(b.expected, b.got) for b in day.decoded.breaks] == [(2, 4)]
    assert _kinds(day) == [("sequence", M, M + 300 * MS)]  # until the data ends


def test_overlapping_connections_at_midnight_are_all_carried(tmp_path: Path) -> None:
    """Make-before-break at midnight: both connections in sync at day 1's end go on."""
    second = [
        _ws(-700, SUBSCRIBE, "ws_sent", conn=8),
        _ws(-690, {"id": 1, "status": 200}, conn=8),
        _ws(-600, _diff(502, 503, [["100.00", "3"], ["98.00", "4"]],
                        [["101.00", "2"], ["102.50", "1"]]), conn=8),
        _ws(-90, _diff(504, 504, [["99.00", "1"], ["98.00", "0"]], []), conn=8),
        _ws(520, _diff(505, 506, [], [["101.00", "1"]]), conn=8),
        _ws(1600, _diff(507, 507, [["99.50", "2"]], []), conn=8),
    ]  # fmt: skip
    rows = sorted(DAY1_ROWS + DAY2_DIFFS + second, key=lambda r: r[0])
    _write(tmp_path, rows)
    ends = day_ends(tmp_path, "gemini", DAY1, "BTCUSD", cache=False)
    assert [e.key for e in ends] == [("run-a", 7), ("run-a", 8)]
    day = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False)
    assert day.carried == (("run-a", 7), ("run-a", 8))
    assert day.span[0] == M and _kinds(day) == []
    bids, asks = _truth(DAY1_ROWS + DAY2_DIFFS, 1000)
    view = day.book_at(M + 1000 * MS)
    assert view.bids.tolist() == _levels(bids, True)
    assert view.asks.tolist() == _levels(asks, False)


def test_outputs_are_the_same_with_and_without_the_cache(ws_data: Path) -> None:
    def outputs(cache: bool) -> list[Any]:
        day = replay.open(DAY2, "BTCUSD", data=ws_data, cache=cache)
        return [
            day.snapshot_table(depth=3, every="100ms"),
            day.gaps(),
            day.book_changes(),
            [(e, v.bids.tolist(), v.asks.tolist(), v.valid) for e, v in day.events()],
        ]

    cold, warm, raw = outputs(True), outputs(True), outputs(False)
    # The cache holds one variant at a time; switching between carried and alone is exact.
    alone_raw = replay.open(DAY2, "BTCUSD", data=ws_data, cache=False, carry=False)
    alone_cached = replay.open(DAY2, "BTCUSD", data=ws_data, carry=False)
    assert alone_cached.gap_list() == alone_raw.gap_list() != []
    assert outputs(True)[0].equals(cold[0])
    chunked = replay.open(DAY2, "BTCUSD", data=ws_data, chunk_size=2)
    assert chunked.snapshot_table(depth=3, every="100ms").equals(cold[0])
    for a, b, c in zip(cold, warm, raw, strict=True):
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b)
            pd.testing.assert_frame_equal(a, c)
        elif isinstance(a, list):
            assert a == b == c
        else:
            assert a.equals(b) and a.equals(c)
    assert np.array_equal(cold[0].column("valid").to_numpy(), np.ones(len(cold[0]), bool))


# --- a range of dates as one book ----------------------------------------------------------


def _same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    else:
        assert a == b


def test_a_range_equals_the_days_one_by_one_with_carry(ws_data: Path) -> None:
    days = replay.open_range(DAY1, DAY2, "btcusd", data=ws_data, cache=False)
    one = [replay.open(d, "BTCUSD", data=ws_data, cache=False) for d in (DAY1, DAY2)]
    assert [d.date for d in days.days] == [DAY1, DAY2] and days.missing == []
    assert days.days[1].carried == (("run-a", 7),)
    snaps = days.book_snapshots(depth=3, every="250ms")
    by_day = [one[0].book_snapshots(3, "250ms"), one[1].book_snapshots(3, "250ms", start=M)]
    _same(snaps, pd.concat(by_day, ignore_index=True))
    assert pd.Timestamp(DAY2, tz="UTC") in set(snaps["ts"])  # the grid row at midnight
    tables = [one[0].snapshot_table(3, "250ms"), one[1].snapshot_table(3, "250ms", start=M)]
    assert days.snapshot_table(3, "250ms").equals(pa.concat_tables(tables))
    for name in ("trades", "quotes", "book_changes"):
        whole = pd.concat([getattr(d, name)() for d in one], ignore_index=True)
        _same(getattr(days, name)(), whole)
    assert days.gap_list() == one[0].gap_list() + one[1].gap_list()
    events = [(e, v.bids.tolist(), v.asks.tolist(), v.valid) for e, v in days.events()]
    assert events == [(e, v.bids.tolist(), v.asks.tolist(), v.valid) for d in one
                      for e, v in d.events()]  # fmt: skip
    # Valid across midnight: from day 1's snapshot to day 2's end, but for nothing.
    assert days.valid_ns == one[0].valid_ns + one[1].valid_ns
    assert days.span == (one[0].span[0], one[1].span[1])
    assert snaps["valid"][snaps["ts"] >= pd.Timestamp(DAY2, tz="UTC")].all()


def test_a_missing_date_in_the_range_is_said_and_counted(tmp_path: Path) -> None:
    day3 = [(ms + 2 * 86_400_000, *rest) for ms, *rest in DAY1_ROWS]  # type: ignore[misc]
    _write(tmp_path, DAY1_ROWS + day3)
    days = replay.open_range(DAY1, "2026-11-25", "BTCUSD", data=tmp_path, cache=False)
    assert days.missing == ["2026-11-24"]
    gap = next(g for g in days.gap_list() if g.kind == "no_data")
    assert (gap.start, gap.end) == (M, M + 86_400 * 10**9)
    assert "2026-11-24" in gap.detail
    assert days.coverage == days.valid_ns / (3 * 86_400 * 10**9)
    assert days.summary()["gaps"]["no_data"] == 1
    assert days.gaps()["kind"].tolist().count("no_data") == 1
    with pytest.raises(NotFoundError):
        replay.open_range("2026-11-20", "2026-11-21", "BTCUSD", data=tmp_path)


# --- the command line -------------------------------------------------------------------

TICKREC = str(Path(sys.executable).with_name("tickrec"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TICKREC, *args], capture_output=True, text=True, timeout=300)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def two_symbols(tmp_path: Path) -> Path:
    for symbol in ("BTCUSD", "ETHUSD"):
        _write(tmp_path, DAY1_ROWS + DAY2_DIFFS + DAY2_SNAPSHOT, symbol)
    return tmp_path


def test_cli_carry_workers_cache_and_range(two_symbols: Path, tmp_path: Path) -> None:
    root = str(two_symbols)
    outs = {}
    for name, extra in {
        "raw": ("--no-cache",),
        "cold": (),
        "warm": (),
        "parallel": ("--workers", "2"),
        "alone": ("--no-carry", "--no-cache"),
    }.items():
        out = tmp_path / f"{name}.parquet"
        done = _cli("replay", "--date", DAY2, "--data", root, "--out", str(out), *extra)
        assert done.returncode == 0, done.stderr
        outs[name] = (_digest(out), done.stdout.replace(str(out), ""))
    assert outs["raw"] == outs["cold"] == outs["warm"] == outs["parallel"]
    assert _unsynced(outs["raw"][1]) == 0 and _unsynced(outs["alone"][1]) == 1
    valid = pq_valid(tmp_path / "raw.parquet")
    assert valid.all() and not pq_valid(tmp_path / "alone.parquet")[:2].any()

    ranged = {}
    runs = {"serial": (), "parallel": ("--workers", "2"), "raw": ("--no-cache",)}
    for name, extra in runs.items():
        out = tmp_path / f"range-{name}.parquet"
        args = ("replay", "--from", DAY1, "--to", DAY2, "--data", root, "--out", str(out))
        done = _cli(*args, *extra)
        assert done.returncode == 0, done.stderr
        ranged[name] = (_digest(out), done.stdout.replace(str(out), ""))
    assert ranged["serial"] == ranged["parallel"] == ranged["raw"]
    table = pq.read_table(tmp_path / "range-serial.parquet")
    one = replay.open_range(DAY1, DAY2, "BTCUSD", data=root).snapshot_table()
    assert table.num_rows == 2 * one.num_rows
    gaps = _cli("gaps", "--from", DAY1, "--to", DAY2, "--symbol", "btcusd", "--data", root)
    assert gaps.returncode == 0 and "BTCUSD:" in gaps.stdout
    alone = _cli("gaps", "--date", DAY2, "--no-carry", "--symbol", "btcusd", "--data", root)
    assert "\n  unsynced " in alone.stdout
    both = _cli("replay", "--date", DAY2, "--from", DAY1, "--to", DAY2, "--data", root)
    assert both.returncode != 0 and "exclude each other" in both.stderr


def _unsynced(summary: str) -> int:
    """The BTCUSD row's ``unsynced`` count in a ``tickrec replay`` summary."""
    head, *rows = summary.splitlines()
    row = next(r for r in rows if r.startswith("BTCUSD"))
    return int(row.split()[head.split().index("unsynced")])


def pq_valid(path: Path) -> np.ndarray:
    t = pq.read_table(path)
    return t.column("valid").to_numpy()[np.asarray(t.column("symbol").to_pylist()) == "BTCUSD"]


# --- recorded from the simulator through midnight -----------------------------------------


def test_recorded_through_midnight_the_carried_book_is_the_true_book(
    sim_factory: Any, tmp_path: Path
) -> None:
    """The current API recorded through midnight with the shifted clock: day 2 with carry is
    valid from 00:00, its book before the midnight ``depth`` reply and at 00:00:01 is the
    simulator's true book; without carry it is ``unsynced`` until that reply."""
    from decimal import Decimal

    from test_midnight import DAY2 as REC_DAY2
    from test_midnight import MIDNIGHT, record_through_midnight, ws_depth_after_midnight
    from truth import TrueBooks, read_jsonl

    run = record_through_midnight(sim_factory, tmp_path, "ws")
    books = TrueBooks(run.truth_dir)
    event_of = {
        (line["symbol"], line["update_id"]): line["event_id"]
        for line in read_jsonl(run.truth_dir / "book.jsonl")
    }
    for symbol in ("BTCUSD", "ETHUSD"):
        rows = run.rows(REC_DAY2, symbol)
        _, reply = ws_depth_after_midnight(rows, symbol)
        day = replay.open(REC_DAY2, symbol, data=run.root, silence="1s", cache=False)
        assert day.carried and day.span[0] == MIDNIGHT
        assert not [g for g in day.gap_list() if g.kind == "unsynced"]
        conns = {c for _, c in day.carried}
        diffs = [
            r for r in run.both_days(symbol)
            if r["source"] == "ws" and r["conn_id"] in conns and isinstance(r["obj"], dict)
            and r["obj"].get("e") == "depthUpdate" and r["obj"]["s"].upper() == symbol
        ]  # fmt: skip
        for t in (reply["recv"] - 1, MIDNIGHT + 10**9):
            view = day.book_at(t)
            assert view.valid, t
            last = max(r["obj"]["u"] for r in diffs if r["recv"] <= t)
            if reply["recv"] <= t:
                last = max(last, reply["obj"]["result"]["lastUpdateId"])
            want = books.after(symbol, event_of[(symbol, last)])
            ps, zs = -day.price_scale, -day.size_scale
            got = {
                side: {
                    Decimal(int(p)).scaleb(ps): Decimal(int(z)).scaleb(zs)
                    for p, z in zip(px.tolist(), sz.tolist(), strict=True)
                }
                for side, px, sz in (
                    ("bid", view.bid_px, view.bid_sz), ("ask", view.ask_px, view.ask_sz)
                )
            }  # fmt: skip
            assert got == want, (symbol, t)
        alone = replay.open(REC_DAY2, symbol, data=run.root, silence="1s", cache=False, carry=False)
        unsynced = [g for g in alone.gap_list() if g.kind == "unsynced"]
        assert unsynced and unsynced[0].start == alone.span[0]
        assert not alone.book_at(reply["recv"] - 1).valid


def test_silence_over_midnight_is_measured_from_the_last_message_before_it(
    tmp_path: Path,
) -> None:
    late = [_ws(12_000, _diff(505, 506, [], [["101.00", "1"]]))]  # 12.1 s after the last diff
    _write(tmp_path, DAY1_ROWS + late + [_ws(13_000, _diff(507, 507, [["99.5", "2"]], []))])
    day = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False)
    assert day.carried == (("run-a", 7),)
    assert [(g.kind, g.start, g.end) for g in day.gap_list()] == [
        ("silence", M, M + 12_000 * MS)
    ]
    assert day.gap_list()[0].detail == "no message for 12.100 s"
    quiet = replay.open(DAY2, "BTCUSD", data=tmp_path, cache=False, silence="20s")
    assert quiet.gap_list() == []
