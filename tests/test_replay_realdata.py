"""Replay of real Gemini captures (tests/data/real), against an independent rebuild."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import realdata
from conftest import V2_DATE, after_lead_in

import replay

V1_DATE = "2018-09-26"
SYMBOLS = [
    "BTCGBP",
    "LINKETH",
    "FILUSD",
    "ZECLTC",
    "BATBTC",
    "ETHEUR",
    "LTCETH",
    "GRTUSD",
    "ANKRUSD",
    "ALCXUSD",
]

Top = tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]


def independent_tops(symbol: str, depth: int = 10) -> list[tuple[int, Top]]:
    """Top *depth* after each l2_updates of *symbol*: json, Decimal and dicts, nothing shared."""
    book: dict[str, dict[Decimal, Decimal]] = {}
    tops = []
    for line in realdata.read_cryptofeed(realdata.GEMINI_V2):
        if line.kind != "recv":
            continue
        msg = json.loads(line.text)
        if msg.get("type") != "l2_updates" or msg["symbol"] != symbol:
            continue
        if "trades" in msg:  # the snapshot
            book = {"buy": {}, "sell": {}}
        for side, price, qty in msg["changes"]:
            if Decimal(qty) == 0:
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = Decimal(qty)
        bids = tuple(sorted(book["buy"].items(), reverse=True)[:depth])
        asks = tuple(sorted(book["sell"].items())[:depth])
        tops.append((line.recv_ns, (bids, asks)))
    return tops


def kernel_tops(snaps: pd.DataFrame, price_scale: int, size_scale: int, depth: int = 10):
    out = []
    for row in snaps.itertuples(index=False):
        r = row._asdict()
        sides = []
        for side in ("bid", "ask"):
            levels = []
            for i in range(depth):
                size = int(r[f"{side}_sz_{i}"])
                if size:
                    price = Decimal(int(r[f"{side}_px_{i}"])).scaleb(-price_scale)
                    levels.append((price, Decimal(size).scaleb(-size_scale)))
            sides.append(tuple(levels))
        out.append((r["ts"].value, tuple(sides)))
    return out


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_v2_top10_equals_independent_rebuild_at_every_message(v2_root: Path, symbol: str):
    day = replay.open(V2_DATE, symbol, data=v2_root)
    snaps = day.book_snapshots(depth=10, every=0, exact=True)
    # the first row is the new connection's reset (empty, invalid); then one per l2_updates
    assert not snaps["valid"].iloc[0]
    assert snaps["valid"].iloc[1:].all(), "valid from the first l2_updates on"
    expected = independent_tops(symbol)
    assert kernel_tops(snaps.iloc[1:], day.price_scale, day.size_scale) == expected


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_v2_never_crossed_no_gaps_and_grid_valid_after_snapshot(v2_root: Path, symbol: str):
    day = replay.open(V2_DATE, symbol, data=v2_root)
    assert day.protocols == ("gemini.v2",)
    assert after_lead_in(day) == []
    tl = day.timeline
    both = (tl.sz[:, 0, 0] > 0) & (tl.sz[:, 1, 0] > 0)
    assert (tl.px[both, 0, 0] < tl.px[both, 1, 0]).all()
    snaps = day.book_snapshots(depth=10, every="1s")
    first_snapshot = day.book_changes()["recv_ts"].iloc[0]
    assert (snaps["valid"] == (snaps["ts"] >= first_snapshot)).all()
    valid = snaps[snaps["valid"]]
    assert (valid["bid_px_0"] < valid["ask_px_0"]).all()
    assert 0.98 < day.span_coverage <= 1.0
    assert snaps["ts"].dt.nanosecond.eq(0).all() and snaps["ts"].dt.microsecond.eq(0).all()


def test_v2_trades_live_and_historical(v2_root: Path):
    lines = [
        json.loads(x.text) for x in realdata.read_cryptofeed(realdata.GEMINI_V2) if x.kind == "recv"
    ]
    for symbol in SYMBOLS:
        day = replay.open(V2_DATE, symbol, data=v2_root)
        live = [m for m in lines if m.get("type") == "trade" and m["symbol"] == symbol]
        trades = day.trades(exact=True)
        assert len(trades) == len(live)
        assert trades["tid"].tolist() == [m["event_id"] for m in live]
        assert trades["side"].tolist() == [m["side"] for m in live]
        assert [Decimal(int(p)).scaleb(-day.price_scale) for p in trades["price"]] == [
            Decimal(m["price"]) for m in live
        ]
        hist = day.trades(historical=True)
        snap = next(m for m in lines if m.get("type") == "l2_updates" and m["symbol"] == symbol)
        assert int(hist["historical"].sum()) == len(snap["trades"])
    # prices stay exact at the partition's own scale (BATBTC quotes 0.0000158)
    day = replay.open(V2_DATE, "BATBTC", data=v2_root)
    assert day.price_scale == 8
    assert 1580 in day.book_changes(exact=True)["price"].tolist()


def test_v1_without_initial_is_never_valid_and_all_unsynced(tmp_path: Path):
    recv = realdata.import_gemini_v1(tmp_path)
    day = replay.open(V1_DATE, "BTCUSD", data=tmp_path)
    # connected (the capture's connect line) and never a snapshot: one gap, the whole span
    assert [(g.kind, g.start, g.end) for g in day.gap_list()] == [("unsynced", *day.span)]
    assert day.span[1] == recv[-1]
    assert day.coverage == 0.0
    assert not day.book_snapshots(every="100ms")["valid"].any()
    assert not day.book_at(recv[-1]).valid
    # the stray bid at 1.00 is one level among the others, not a dense range
    assert 1.0 in day.book_at(recv[-1]).bids[:, 0]
    trades = day.trades()
    assert trades["side"].tolist() == ["buy"]  # makerSide ask: the taker bought
    assert trades["exch_ts"].iloc[0] == pd.Timestamp(1537974020197 * 10**6, tz="UTC")


def test_v1_dropped_line_is_a_sequence_gap(tmp_path: Path):
    recv = realdata.import_gemini_v1(tmp_path, drop=[5])
    day = replay.open(V1_DATE, "BTCUSD", data=tmp_path)
    gaps = day.gap_list()
    assert [(g.kind, g.start, g.end) for g in gaps] == [
        ("unsynced", day.span[0], recv[4]),
        ("sequence", recv[4], recv[-1]),
    ]
    assert gaps[1].detail == "socket_sequence expected 6, got 7"
