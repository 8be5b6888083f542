"""The benchmark harness on a tiny synthetic day: its shape, and peers that agree.

These check correctness only; nothing here is timed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# bench/ is a top-level directory, not an installed package: pytest's
# pythonpath setting (pyproject.toml) puts the repository root on sys.path.
import replay
from bench import peers, subject
from bench.changes import Changes, decode_changes, time_grid
from bench.synth import Day, DayParams, make_day
from tickrec.contract import list_partitions, list_parts, read_partition

PARAMS = DayParams(changes=12_000, seed=7, span_s=900, reconnects=2, part_rows=4_000)
PRICE = re.compile(r"^[0-9]+\.[0-9]{2}$")
SIZE = re.compile(r"^-?[0-9]+(\.[0-9]{0,7}[1-9])?$")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return make_day(PARAMS, cache=tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def table(day: Day) -> pa.Table:
    return read_partition(day.root, day.venue, day.date, day.symbol)


@pytest.fixture(scope="module")
def changes(table: pa.Table) -> Changes:
    return decode_changes(table)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    cols = {
        name: (
            table.column(name).cast(pa.int64())
            if pa.types.is_timestamp(table.column(name).type)
            else table.column(name)
        ).to_pylist()
        for name in table.column_names
    }
    return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def test_layout_and_counts(day: Day, table: pa.Table) -> None:
    (partition,) = list_partitions(day.root)
    assert (partition.venue, partition.date, partition.symbol) == ("gemini", PARAMS.date, "BTCUSD")
    parts = list_parts(day.root, partition)
    assert len(parts) == day.parts > 1
    assert {p.run_id for p in parts} == {PARAMS.run_id}
    assert PARAMS.run_id.startswith("bench-")
    assert table.num_rows == day.rows
    assert day.changes >= PARAMS.changes
    assert day.connections == PARAMS.reconnects + 1
    assert day.rest_snapshots == PARAMS.span_s // 60 - 1


def test_messages_are_gemini_v1(table: pa.Table) -> None:
    kinds: dict[str, int] = {}
    per_msg = []
    for row in _rows(table):
        if row["source"] != "ws":
            continue
        msg = json.loads(row["payload"])
        assert msg["socket_sequence"] == row["venue_seq"]
        kinds[msg["type"]] = kinds.get(msg["type"], 0) + 1
        if msg["type"] == "heartbeat":
            assert set(msg) == {"type", "socket_sequence"}
            continue
        assert msg["type"] == "update" and isinstance(msg["eventId"], int)
        events = msg["events"]
        initial = events[0].get("reason") == "initial"
        if initial:
            assert msg["socket_sequence"] == 0 and "timestampms" not in msg
        else:
            assert msg["timestampms"] * 1_000_000 == row["exch_ts"]
            assert msg["timestamp"] == msg["timestampms"] // 1000
            per_msg.append(sum(e["type"] == "change" for e in events))
        for k, e in enumerate(events):
            assert PRICE.match(e["price"])
            if e["type"] == "trade":
                assert SIZE.match(e["amount"]) and e["makerSide"] in ("bid", "ask")
                nxt = events[k + 1]
                assert nxt["reason"] == "trade" and nxt["price"] == e["price"]
                assert nxt["side"] == e["makerSide"]
            else:
                assert e["type"] == "change" and e["side"] in ("bid", "ask")
                assert SIZE.match(e["remaining"]) and SIZE.match(e["delta"])
                assert e["reason"] in ("place", "cancel", "trade", "initial")
    assert kinds["heartbeat"] > 0 and kinds["update"] > 0
    assert 1 <= np.mean(per_msg) <= 4


def test_sequences_restart_per_connection(table: pa.Table) -> None:
    rows = _rows(table)
    by_conn: dict[int, list[int]] = {}
    events: list[tuple[int, str]] = []
    for row in rows:
        if row["source"] == "ws":
            by_conn.setdefault(row["conn_id"], []).append(row["venue_seq"])
        elif row["source"] == "event":
            events.append((row["conn_id"], json.loads(row["payload"])["event"]))
    assert sorted(by_conn) == list(range(1, PARAMS.reconnects + 2))
    for seqs in by_conn.values():
        assert seqs == list(range(len(seqs)))
    for conn in by_conn:
        assert (conn, "connect") in events
        assert ((conn, "disconnect") in events) == (conn != max(by_conn))
    seq = [r["seq"] for r in rows]
    assert seq == sorted(seq) and len(set(seq)) == len(seq)


def test_rest_snapshots_match_a_plain_rebuild(table: pa.Table) -> None:
    rows = _rows(table)
    rests = sorted((r["sent_ts"], json.loads(r["payload"])) for r in rows if r["source"] == "rest")
    book: dict[str, dict[str, str]] = {"bid": {}, "ask": {}}
    k = 0
    checked = 0

    def compare(reply: dict[str, Any]) -> None:
        for side, key, high in (("bid", "bids", True), ("ask", "asks", False)):
            levels = [(lv["price"], lv["amount"]) for lv in reply[key]]
            assert len(levels) == 50
            best = sorted(book[side].items(), key=lambda kv: float(kv[0]), reverse=high)
            assert levels == best[:50]

    for row in rows:
        while k < len(rests) and row["recv_ts"] > rests[k][0]:
            compare(rests[k][1])
            k += 1
            checked += 1
        if row["source"] != "ws":
            continue
        msg = json.loads(row["payload"])
        for e in msg.get("events", ()):
            if e["type"] != "change":
                continue
            if e["remaining"] == "0":
                book[e["side"]].pop(e["price"], None)
            else:
                book[e["side"]][e["price"]] = e["remaining"]
    assert checked == len(rests) > 0


def test_generation_is_deterministic(day: Day, tmp_path: Path) -> None:
    again = make_day(PARAMS, cache=tmp_path)

    def payloads(root: Path) -> list[tuple[str, str]]:
        return [
            (
                f.name,
                hashlib.sha256(
                    "\n".join(pq.read_table(f)["payload"].to_pylist()).encode()
                ).hexdigest(),
            )
            for f in sorted(root.glob("raw/**/*.parquet"))
        ]

    assert payloads(again.root) == payloads(day.root)


@pytest.fixture(scope="module")
def grid(table: pa.Table) -> Any:
    recv = table.column("recv_ts").cast(pa.int64()).to_numpy()
    return time_grid(int(recv[0]), int(recv.max()))


def _job(mode: str, changes: Changes) -> Changes:
    # The naive book sorts a whole side after every change: keep its BBO job short
    # (the first 200 rows: the initial book and some updates).
    return changes.prefix(200) if mode == "bbo" else changes


@pytest.mark.parametrize("mode", peers.MODES)
@pytest.mark.parametrize("name", ["naive", "order-book"])
def test_peers_agree(name: str, mode: str, table: pa.Table, changes: Changes, grid: Any) -> None:
    pytest.importorskip("sortedcontainers", reason="the reference peer needs sortedcontainers")
    if name == "order-book":
        pytest.importorskip(
            "order_book", reason="order-book (pip install order-book) not installed"
        )
    job = _job(mode, changes)
    (ref,) = peers.run_peer("sortedcontainers", job, mode, grid, 1)
    naive_input = peers.NaiveInput.of(table, job) if name == "naive" else None
    (res,) = peers.run_peer(name, job, mode, grid, 1, naive_input)
    assert res.changes == ref.changes == job.n_changes > 0
    assert res.check == ref.check


@pytest.mark.parametrize("mode", peers.MODES)
def test_tickrec_agrees_with_peers(
    mode: str, table: pa.Table, changes: Changes, grid: Any, day: Day
) -> None:
    pytest.importorskip("sortedcontainers", reason="the reference peer needs sortedcontainers")
    dec, timed = subject.decode(table, day.symbol)
    assert timed.items == day.messages
    (ref,) = peers.run_peer("sortedcontainers", changes, mode, grid, 1)
    got = subject.rebuild_grid(dec, grid) if mode == "grid" else subject.rebuild_bbo(dec)
    assert got.items == changes.n_changes
    assert got.check == ref.check


def test_the_month_has_its_days_symbols_and_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import scale

    monkeypatch.setenv("TICKREC_BENCH_DATA", str(tmp_path))
    params = scale.MonthParams(days=2, symbols=3, changes=2_000, parts=8)
    month = scale.make_month(params)
    partitions = list_partitions(month.root)
    want = {(d, s) for d in params.dates() for s in scale.SYMBOLS[:3]}
    assert {(p.date, p.symbol) for p in partitions} == want
    counts = {p: len(list_parts(month.root, p)) for p in partitions}
    assert all(7 <= n <= 9 for n in counts.values()), counts
    assert month.files == sum(counts.values())
    assert scale.make_month(params) == month  # made once
    # DuckDB reads the same rows as tickrec does.
    date = params.dates()[0]
    read = scale._duck_read(month.root, date, reps=1)
    rows = sum(read_partition(month.root, "gemini", date, s).num_rows for s in scale.SYMBOLS[:3])
    assert read.files == sum(n for p, n in counts.items() if p.date == date)
    assert sum(int(r[2]) for r in read.answer) == rows


BINANCE = DayParams(
    changes=12_000, seed=7, span_s=900, reconnects=2, part_rows=4_000, venue="binance"
)


@pytest.fixture(scope="module")
def binance_day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return make_day(BINANCE, cache=tmp_path_factory.mktemp("bench-binance"))


def test_the_binance_day_is_the_combined_stream_synced_by_rest(binance_day: Day) -> None:
    """Frames of the real shape, update ids that follow each other on every connection,
    and each connection's sync reply lined up with its diffs as the recorder stores it."""
    assert PARAMS.key() != BINANCE.key()
    (partition,) = list_partitions(binance_day.root)
    assert (partition.venue, partition.symbol) == ("binance", "BTCUSDT")
    rows = _rows(read_partition(binance_day.root, "binance", BINANCE.date, "BTCUSDT"))
    last_u: dict[int, int] = {}
    synced: dict[int, int] = {}  # connection -> lastUpdateId of its sync reply
    kinds: dict[str, int] = {}
    for r in rows:
        if r["source"] == "rest" and r["conn_id"]:
            body = json.loads(r["payload"])
            assert r["protocol"] == "binance.rest" and r["conn_id"] not in synced
            # the reply shows the book as of a diff already received: the first one
            assert body["lastUpdateId"] < last_u[r["conn_id"]]
            synced[r["conn_id"]] = body["lastUpdateId"]
        if r["source"] != "ws":
            continue
        frame = json.loads(r["payload"])
        event = frame["data"]
        kinds[event["e"]] = kinds.get(event["e"], 0) + 1
        assert frame["stream"] == f"btcusdt@{'trade' if event['e'] == 'trade' else 'depth@100ms'}"
        assert r["exch_ts"] == event["E"] * 1_000_000
        if event["e"] != "depthUpdate":
            continue
        assert r["venue_seq"] == event["u"] >= event["U"]
        for side in ("b", "a"):
            prices = [p for p, _ in event[side]]
            assert prices == sorted(set(prices), key=float)  # each level once, in price order
            assert all(re.fullmatch(r"[0-9]+\.[0-9]{8}", v) for lv in event[side] for v in lv)
        conn = r["conn_id"]
        if conn in last_u:
            assert event["U"] == last_u[conn] + 1
        last_u[conn] = event["u"]
    assert set(synced) == set(last_u) and len(synced) == 1 + BINANCE.reconnects
    assert kinds["trade"] == binance_day.trades > 0 and kinds["depthUpdate"] > 0


@pytest.mark.parametrize("mode", peers.MODES)
def test_tickrec_agrees_with_peers_on_the_binance_day(mode: str, binance_day: Day) -> None:
    """tickrec's decoder against the bench's own reading of Binance's procedure, and
    the replay finds the day clean: no sequence gap, no REST check that disagrees."""
    pytest.importorskip("sortedcontainers", reason="the reference peer needs sortedcontainers")
    table = read_partition(binance_day.root, "binance", BINANCE.date, "BTCUSDT")
    changes = decode_changes(table)
    recv = table.column("recv_ts").cast(pa.int64()).to_numpy()
    grid = time_grid(int(recv[0]), int(recv.max()))
    dec, timed = subject.decode(table, binance_day.symbol)
    assert timed.items == binance_day.messages
    (ref,) = peers.run_peer("sortedcontainers", changes, mode, grid, 1)
    got = subject.rebuild_grid(dec, grid) if mode == "grid" else subject.rebuild_bbo(dec)
    assert got.items == changes.n_changes > 0
    assert got.check == ref.check
    day = replay.open(BINANCE.date, "BTCUSDT", data=binance_day.root, venue="binance")
    kinds = {g.kind for g in day.gap_list()}
    assert kinds <= {"no_connection", "unsynced", "disconnect"}, day.gap_list()
    assert day.decoded.counts.get("undecodable", 0) == 0
