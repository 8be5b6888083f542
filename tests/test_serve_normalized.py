"""Normalized streams of ``tickrec serve`` (``/replay-normalized``, ``/ws-replay-normalized``).

A recording from the simulator, with connections closed and messages
dropped (so the gap report has disconnects and sequence breaks), is replayed
through the normalized endpoints and compared with the Python replay API of
the same data: snapshots, quotes and trades row for row, the book rebuilt
from ``book_change`` messages with the replay's book, and the disconnect
messages with the gap report.
"""

from __future__ import annotations

import itertools
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
import requests
from conftest import SimFactory, record_sim
from test_midnight import DAY1, DAY2, MIDNIGHT, record_through_midnight
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

import replay
from replay import normalized
from replay.api import Day
from replay.serve import ServeConfig, Server
from tickrec import contract
from tickrec.errors import NotFoundError, UsageError
from tickrec.sim import FaultConfig, SimConfig, Simulator

SYMBOLS = ("BTCUSD", "ETHUSD")
TYPES = ["trade", "book_change", "book_snapshot_5_100ms", "quote", "book_snapshot_3_0ms"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("normalized")
    faults = FaultConfig(close_every=0.6, drop=0.005)
    sim = Simulator(SimConfig(rate=1000.0, seed=3, heartbeat_s=0.5, faults=faults)).start()
    record_sim(sim, tmp, protocol="v1", duration=2.0)
    return tmp / "data"


@pytest.fixture(scope="module")
def days(data: Path) -> dict[str, Day]:
    (date,) = {p.date for p in contract.list_partitions(data)}
    return {s: replay.open(date, s, data=data) for s in SYMBOLS}


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def _options(days: dict[str, Day], **extra: Any) -> dict[str, Any]:
    first = min(d.span[0] for d in days.values())
    last = max(d.span[1] for d in days.values())
    return {
        "exchange": "gemini",
        "symbols": [s.lower() for s in SYMBOLS],
        "from": _iso(first),
        "to": _iso(last + 1),
        "dataTypes": TYPES,
        "withDisconnectMessages": True,
        **extra,
    }


def _ns(text: str) -> int:
    return int(pd.Timestamp(text).value)


def _decoded(lines: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line, parse_float=Decimal) for line in lines]


@pytest.fixture(scope="module")
def lines(data: Path, days: dict[str, Day]) -> list[bytes]:
    return list(normalized.messages(json.dumps(_options(days)), data))


def _levels(px: Any, sz: Any, ps: int, ss: int) -> list[tuple[Decimal, Decimal]]:
    return [
        (Decimal(int(p)).scaleb(-ps), Decimal(int(s)).scaleb(-ss))
        for p, s in zip(px, sz, strict=True)
        if s > 0
    ]


def _side(msg: dict[str, Any], side: str) -> list[tuple[Decimal, Decimal]]:
    return [(lv["price"], lv["amount"]) for lv in msg[side]]


def _of(msgs: list[dict[str, Any]], symbol: str, type_: str, name: str | None = None) -> list[Any]:
    return [
        m
        for m in msgs
        if m["type"] == type_ and symbol in m.get("symbols", [m.get("symbol")])
        and (name is None or m.get("name") == name)
    ]  # fmt: skip


def test_snapshots_and_quotes_equal_the_replay(days: dict[str, Day], lines: list[bytes]) -> None:
    msgs = _decoded(lines)
    for symbol, day in days.items():
        ps, ss = day.price_scale, day.size_scale
        for name, depth, every in (("book_snapshot_5_100ms", 5, "100ms"), ("quote", 1, None)):
            if every is None:
                df = day.quotes(exact=True).rename(
                    columns={f"{s}_{k}": f"{s}_{k}_0" for s in ("bid", "ask") for k in ("px", "sz")}
                )
            else:
                df = day.book_snapshots(depth, every, exact=True)
            df = df[df["valid"]]
            want = [
                (
                    int(row.ts.value),
                    *(
                        _levels(
                            [getattr(row, f"{s}_px_{i}") for i in range(depth)],
                            [getattr(row, f"{s}_sz_{i}") for i in range(depth)],
                            ps,
                            ss,
                        )
                        for s in ("bid", "ask")
                    ),
                )
                for row in df.itertuples()
            ]
            got = [
                (_ns(m["localTimestamp"]), _side(m, "bids"), _side(m, "asks"))
                for m in _of(msgs, symbol, "book_snapshot", name)
            ]
            assert len(want) > 5, (symbol, name)
            assert got == want, (symbol, name)
            assert all(m["depth"] == depth for m in _of(msgs, symbol, "book_snapshot", name))
        grid = _of(msgs, symbol, "book_snapshot", "book_snapshot_5_100ms")
        assert all(_ns(m["timestamp"]) % 100_000_000 == 0 for m in grid)
        assert {m["interval"] for m in grid} == {100}


def test_trades_equal_the_replay(days: dict[str, Day], lines: list[bytes]) -> None:
    msgs = _decoded(lines)
    for symbol, day in days.items():
        tr = day.trades(exact=True)
        want = [
            (
                int(t.ts.value),
                str(t.tid),
                Decimal(int(t.price)).scaleb(-day.price_scale),
                Decimal(int(t.size)).scaleb(-day.size_scale),
                str(t.side),
            )
            for t in tr.itertuples()
        ]
        got = [
            (_ns(m["localTimestamp"]), m["id"], m["price"], m["amount"], m["side"])
            for m in _of(msgs, symbol, "trade")
        ]
        assert len(want) > 10
        assert got == want, symbol


def test_disconnects_are_the_gap_report(days: dict[str, Day], lines: list[bytes]) -> None:
    msgs = _decoded(lines)
    for symbol, day in days.items():
        gaps = day.gap_list()
        kinds = {g.kind for g in gaps}
        assert {"disconnect", "sequence"} <= kinds, kinds
        got = [
            (m["kind"], _ns(m["start"]), _ns(m["end"]), m["detail"], _ns(m["localTimestamp"]))
            for m in _of(msgs, symbol, "disconnect")
        ]
        assert sorted(got) == sorted((g.kind, g.start, g.end, g.detail, g.start) for g in gaps)


def test_book_changes_rebuild_the_book_and_nothing_is_sent_while_invalid(
    days: dict[str, Day], lines: list[bytes]
) -> None:
    msgs = _decoded(lines)
    for symbol, day in days.items():
        ps, ss = day.price_scale, day.size_scale
        book: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
        changes = _of(msgs, symbol, "book_change")
        assert sum(m["isSnapshot"] for m in changes) >= 3  # one per reconnect and break
        for k, m in enumerate(changes):
            t = _ns(m["localTimestamp"])
            if m["isSnapshot"]:
                book = {"bids": {}, "asks": {}}
            for side in ("bids", "asks"):
                for lv in m[side]:
                    if lv["amount"] == 0:
                        book[side].pop(lv["price"], None)
                    else:
                        book[side][lv["price"]] = lv["amount"]
            if k + 1 < len(changes) and _ns(changes[k + 1]["localTimestamp"]) == t:
                continue  # compare after the last change of one time
            view = day.book_at(t)
            assert view.valid, (symbol, t)
            assert sorted(book["bids"].items(), reverse=True) == _levels(
                view.bid_px, view.bid_sz, ps, ss
            )
            assert sorted(book["asks"].items()) == _levels(view.ask_px, view.ask_sz, ps, ss)
        # After every disconnect message, the next book change is a whole book.
        order = [m for m in msgs if m["type"] in ("book_change", "disconnect")]
        order = [m for m in order if symbol in m.get("symbols", [m.get("symbol")])]
        for a, b in itertools.pairwise(order):
            if a["type"] == "disconnect" and b["type"] == "book_change":
                assert b["isSnapshot"], b
        for m in _of(msgs, symbol, "book_snapshot"):
            assert day.book_at(_ns(m["localTimestamp"])).valid


def test_order_and_determinism(data: Path, days: dict[str, Day], lines: list[bytes]) -> None:
    times = [_ns(m["localTimestamp"]) for m in _decoded(lines)]
    assert times == sorted(times)
    assert list(normalized.messages(json.dumps(_options(days)), data)) == lines
    # Dates around the recorded ones are no missing days: the same messages.
    wide = _options(days, **{"from": "2000-01-01", "to": "2100-01-01"})
    assert list(normalized.messages(json.dumps(wide), data)) == lines
    # A window: only messages inside it, and the first book change is a whole book.
    first = min(d.span[0] for d in days.values())
    lo, hi = first + 500_000_000, first + 1_200_000_000
    part = _decoded(
        list(
            normalized.messages(
                json.dumps(_options(days, **{"from": _iso(lo), "to": _iso(hi)})), data
            )
        )
    )
    assert part and all(lo <= _ns(m["localTimestamp"]) < hi for m in part)
    for symbol in SYMBOLS:
        assert _of(part, symbol, "book_change")[0]["isSnapshot"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataTypes": ["derivative_ticker"]}, "is not one of"),
        ({"dataTypes": []}, "at least one"),
        ({"symbols": ["DOGEUSD"]}, "no gemini data for DOGEUSD"),
        ({"exchange": "binance"}, "no binance data"),
        ({"to": "2000-01-01"}, "after from"),
    ],
)
def test_bad_options_are_refused(
    data: Path, days: dict[str, Day], change: dict[str, Any], message: str
) -> None:
    with pytest.raises((UsageError, NotFoundError)) as info:
        normalized.parse_options(json.dumps(_options(days, **change)), data)
    assert message in str(info.value)


def test_http_and_websocket_send_the_same_messages(
    data: Path, days: dict[str, Day], lines: list[bytes]
) -> None:
    options = json.dumps(_options(days))
    with Server(ServeConfig(data=data)) as server:
        reply = requests.get(
            server.url.rest_url + "/replay-normalized", params={"options": options}, timeout=30
        )
        assert reply.status_code == 200
        assert reply.headers["Content-Type"] == "application/x-json-stream"
        http_lines = reply.content.split(b"\n")
        assert http_lines[-1] == b""
        assert http_lines[:-1] == lines
        url = server.url.ws_url + "/ws-replay-normalized?options=" + quote(options)
        with connect(url, max_size=None) as client:
            frames = list(client)
        assert [f.encode() if isinstance(f, str) else f for f in frames] == lines
        assert client.close_code == 1000
        bad = json.dumps(_options(days, dataTypes=["liquidation"]))
        reply = requests.get(
            server.url.rest_url + "/replay-normalized", params={"options": bad}, timeout=30
        )
        assert reply.status_code == 400 and "liquidation" in reply.json()["message"]
        url = server.url.ws_url + "/ws-replay-normalized?options=" + quote(bad)
        with connect(url) as client, pytest.raises(ConnectionClosedError):
            client.recv()
        assert client.close_code == 1008
        assert "liquidation" in (client.close_reason or "")


def test_the_websocket_follows_speed(data: Path, days: dict[str, Day], lines: list[bytes]) -> None:
    local = [_ns(m["localTimestamp"]) for m in _decoded(lines)]
    span = (local[-1] - local[0]) / 1e9
    assert span > 1.0
    speed = 2.0
    options = json.dumps(_options(days))
    with Server(ServeConfig(data=data, speed=speed)) as server:
        url = server.url.ws_url + "/ws-replay-normalized?options=" + quote(options)
        with connect(url, max_size=None) as client:
            start = time.monotonic()
            frames, arrived = [], []
            for frame in client:
                frames.append(frame.encode() if isinstance(frame, str) else frame)
                arrived.append(time.monotonic() - start)
    assert frames == lines
    # No message comes before its time; the last comes on time.
    due = [(t - local[0]) / 1e9 / speed for t in local]
    assert all(a >= d - 0.05 for a, d in zip(arrived, due, strict=True))
    assert span / speed - 0.05 <= arrived[-1] <= span / speed + 0.5, (arrived[-1], span)


def test_a_range_through_midnight_is_one_book(sim_factory: SimFactory, tmp_path: Path) -> None:
    run = record_through_midnight(sim_factory, tmp_path, "v2")
    symbol = SYMBOLS[0]
    days = replay.open_range(DAY1, DAY2, symbol, data=run.root)
    options = {
        "exchange": "gemini",
        "symbols": [symbol],
        "from": DAY1,
        "to": "2026-01-03",
        "dataTypes": ["book_change", "book_snapshot_10_100ms"],
        "withDisconnectMessages": True,
    }
    msgs = _decoded(list(normalized.messages(json.dumps(options), run.root)))
    (ps, ss), *_ = {(d.price_scale, d.size_scale) for d in days.days}
    df = days.book_snapshots(10, "100ms", exact=True)
    df = df[df["valid"]]
    want = [
        (
            int(row.ts.value),
            *(
                _levels(
                    [getattr(row, f"{s}_px_{i}") for i in range(10)],
                    [getattr(row, f"{s}_sz_{i}") for i in range(10)],
                    ps,
                    ss,
                )
                for s in ("bid", "ask")
            ),
        )
        for row in df.itertuples()
    ]
    got = [
        (_ns(m["localTimestamp"]), _side(m, "bids"), _side(m, "asks"))
        for m in _of(msgs, symbol, "book_snapshot")
    ]
    assert got == want
    assert any(t == MIDNIGHT for t, *_ in got)  # the grid row at midnight, on the carried book
    # The carried book is sent whole at midnight: the book the changes had built by then.
    changes = _of(msgs, symbol, "book_change")
    book: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
    carried = 0
    for m in changes:
        if m["isSnapshot"]:
            if _ns(m["localTimestamp"]) == MIDNIGHT:
                carried += 1
                assert sorted(book["bids"].items(), reverse=True) == _side(m, "bids")
                assert sorted(book["asks"].items()) == _side(m, "asks")
            book = {"bids": {}, "asks": {}}
        for side in ("bids", "asks"):
            for lv in m[side]:
                if lv["amount"] == 0:
                    book[side].pop(lv["price"], None)
                else:
                    book[side][lv["price"]] = lv["amount"]
    assert carried == 1
    view = days.book_at(_ns(changes[-1]["localTimestamp"]))
    assert sorted(book["bids"].items(), reverse=True) == _levels(view.bid_px, view.bid_sz, ps, ss)
    assert sorted(book["asks"].items()) == _levels(view.ask_px, view.ask_sz, ps, ss)
    assert [m["kind"] for m in _of(msgs, symbol, "disconnect")] == [g.kind for g in days.gap_list()]
