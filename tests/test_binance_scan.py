"""The compiled Binance scanner decodes exactly as the stream does frame by frame.

Each partition here is decoded twice: as the replay does (runs of frames of
a book in sync through :mod:`tickrec.venues.binance.spot_scan`), and with
the scanner turned off, every frame through ``BinanceSpotStream.on_message``.
Everything decoded must be equal: operations, trades, breaks, markers and
counts. The frames mix what the scanner reads with what it must decline:
stale diffs, gaps, other layouts, other symbols, bad values, cut frames.
"""

from __future__ import annotations

import json
import random
from dataclasses import fields
from typing import Any

import numpy as np
import pytest

from replay.decode import decode
from replay.events import Decoded
from tickrec.contract import Row, rows_to_table
from tickrec.events import RawRows, RunSink
from tickrec.venues.binance import spot_book

T0 = 1_763_859_600_000_000_000
MS = 1_000_000


def _depth(
    first: int, last: int, b: list[list[str]], a: list[list[str]], s: str = "BTCUSDT"
) -> str:
    data = {"e": "depthUpdate", "E": 1763859600123, "s": s, "U": first, "u": last, "b": b, "a": a}
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data}, separators=(",", ":"))


def _trade(tid: int, p: str, q: str, maker: bool, agg: bool = False) -> str:
    if agg:
        ev: dict[str, Any] = {"e": "aggTrade", "E": 1763859600123, "s": "BTCUSDT", "a": tid}
        ev |= {"p": p, "q": q, "f": tid, "l": tid + 2, "T": 1763859600120, "m": maker, "M": True}
    else:
        ev = {"e": "trade", "E": 1763859600123, "s": "BTCUSDT", "t": tid, "p": p, "q": q}
        ev |= {"T": 1763859600120, "m": maker, "M": True}
    return json.dumps({"stream": "btcusdt@trade", "data": ev}, separators=(",", ":"))


def _snapshot(last: int) -> str:
    bids = [[f"{100 - k}.00000000", "1.00000000"] for k in range(5)]
    asks = [[f"{101 + k}.00000000", "2.00000000"] for k in range(5)]
    return json.dumps({"lastUpdateId": last, "bids": bids, "asks": asks})


def _frames(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """``(source, payload)`` rows of one connection: a sync, then a mixed stream."""
    u = 5_000
    out = [("ws", _depth(u - 3, u + 1, [["99.00000000", "3.00000000"]], []))]
    out.append(("rest", _snapshot(u)))
    for _ in range(n):
        r = rng.random()
        px = f"{rng.randint(95, 106)}.{rng.randint(0, 99):02d}000000"
        sz = f"{rng.randint(0, 5)}.{rng.randint(0, 9999):04d}0000"
        if r < 0.55:
            k = rng.randint(1, 3)
            out.append(("ws", _depth(u + 1, u + k, [[px, sz]], [[px, "0.00000000"]] * (k > 1))))
            u += k
        elif r < 0.75:
            out.append(("ws", _trade(rng.randint(1, 10**9), px, sz, rng.random() < 0.5, r < 0.6)))
        elif r < 0.8:
            out.append(("ws", _depth(u - 4, u - 1, [[px, sz]], [])))  # stale
        elif r < 0.83:
            u += 5  # a gap; then a sync snapshot after the next diff
            out.append(("ws", _depth(u + 1, u + 2, [[px, sz]], [])))
            out.append(("rest", _snapshot(u + 2)))
            u += 2
        elif r < 0.86:
            spaced = _depth(u + 1, u + 1, [[px, sz]], []).replace(",", ", ")
            out.append(("ws", spaced))  # another layout: the general path reads it
            u += 1
        elif r < 0.88:
            out.append(("ws", _depth(u + 1, u + 1, [[px, sz]], [], s="ETHUSDT")))
        elif r < 0.9:
            out.append(("ws", _depth(u + 1, u + 1, [["-1.00000000", sz]], [])))  # bad price
        elif r < 0.92:
            out.append(("ws", _depth(u + 1, u + 1, [[px, sz]], [])[:40]))  # cut short
        elif r < 0.94:
            bare = json.loads(_depth(u + 1, u + 1, [[px, sz]], []))["data"]
            out.append(("ws", json.dumps(bare, separators=(",", ":"))))  # a raw /ws frame
            u += 1
        elif r < 0.96:
            micro = _depth(u + 1, u + 1, [[px, sz]], []).replace(
                "1763859600123", "1763859600123456"
            )
            out.append(("ws", micro))  # timeUnit=MICROSECOND
            u += 1
        else:
            out.append(("ws", '{"result":null,"id":1}'))
    return out


def _table(frames: list[tuple[str, str]]) -> Any:
    rows = [Row(T0, 0, "r", 1, "binance.spot", "event", '{"event":"connect","url":"x"}')]
    for i, (source, payload) in enumerate(frames, 1):
        protocol = "binance.rest" if source == "rest" else "binance.spot"
        rows.append(Row(T0 + i * MS, i, "r", 1, protocol, source, payload))
    return rows_to_table(rows)


def _general_only(self: Any, out: RunSink, rows: RawRows, start: int, stop: int) -> int:
    while start < stop and not rows.received[start]:
        start += 1
    return start


def _equal(a: Decoded, b: Decoded) -> None:
    for f in fields(a.ops):
        assert np.array_equal(getattr(a.ops, f.name), getattr(b.ops, f.name)), f.name
    for f in fields(a.trades):
        assert np.array_equal(getattr(a.trades, f.name), getattr(b.trades, f.name)), f.name
    assert a.breaks == b.breaks and a.markers == b.markers and a.counts == b.counts
    assert (a.price_scale, a.size_scale, a.ends) == (b.price_scale, b.size_scale, b.ends)


@pytest.mark.parametrize("seed", range(6))
def test_the_scanner_decodes_as_the_stream_does(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(_frames(random.Random(seed), 400))
    scanned = decode(table, "BTCUSDT")
    monkeypatch.setattr(spot_book.BinanceSpotStream, "decode_run", _general_only)
    general = decode(table, "BTCUSDT")
    _equal(scanned, general)
    # the mix reached every path: applied, stale, trades, gaps, declined frames
    for kind in ("depthUpdate", "stale", "trade", "undecodable", "other"):
        assert scanned.counts.get(kind, 0) > 0, (kind, scanned.counts)
    assert scanned.breaks


def test_the_scanner_reads_a_run_in_one_call() -> None:
    """A clean stream after its sync goes through the scanner, not frame by frame."""
    frames = _frames(random.Random(1), 0)
    u = 5_001
    for k in range(300):
        frames.append(("ws", _depth(u + 1, u + 1, [[f"{99 + k % 3}.00000000", "1.00000000"]], [])))
        u += 1
    table = _table(frames)
    calls: list[int] = []
    real = spot_book.scan

    def counting(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(spot_book, "scan", counting)
        dec = decode(table, "BTCUSDT")
    assert dec.counts["depthUpdate"] == 300 and len(calls) == 1
