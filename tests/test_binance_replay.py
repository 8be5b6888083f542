"""The real Binance capture, imported and replayed, against an independent rebuild.

``tickrec import cryptofeed BINANCE.ws.1.0 BINANCE.http.0.0`` makes one run of
the pair: each REST depth reply becomes the sync snapshot of the connection
that carries its symbol (docs/architecture.md section 2.6). The rebuild here
follows Binance's documented procedure with ``json``, ``Decimal`` and dicts,
sharing no code with tickrec: buffer the diffs, take the snapshot, drop
``u <= lastUpdateId``, require the first kept diff to hold
``U <= lastUpdateId + 1 <= u``, then apply every diff in order.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from realdata import REAL, read_cryptofeed
from test_replay_realdata import kernel_tops

import replay
from recorder.importer import import_cryptofeed, import_lines
from tickrec.errors import ProtocolError, UsageError

WS = REAL / "binance" / "BINANCE.ws.1.0"
HTTP = REAL / "binance" / "BINANCE.http.0.0"
SYMBOLS = ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")
DATE = "2021-10-12"

Top = tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]


def independent_tops(symbol: str, ws: Path = WS, depth: int = 10) -> list[tuple[int, Top]]:
    """The top *depth* levels at the snapshot and after each diff that moves the book."""
    [(snap_ns, snap)] = [
        (line.recv_ns, json.loads(line.text))
        for line in read_cryptofeed(HTTP)
        if f"symbol={symbol}&" in line.url
    ]
    diffs = []
    for line in read_cryptofeed(ws):
        if line.kind == "recv":
            data = json.loads(line.text)["data"]
            if data.get("e") == "depthUpdate" and data["s"] == symbol:
                diffs.append((line.recv_ns, data))
    book = {
        "b": {Decimal(p): Decimal(q) for p, q in snap["bids"]},
        "a": {Decimal(p): Decimal(q) for p, q in snap["asks"]},
    }
    last = snap["lastUpdateId"]

    def top() -> Top:
        bids = tuple(sorted(book["b"].items(), reverse=True)[:depth])
        asks = tuple(sorted(book["a"].items())[:depth])
        return bids, asks

    tops: list[tuple[int, Top]] = []
    first = True
    for ns, d in diffs:
        if ns > snap_ns and not tops:
            tops.append((snap_ns, top()))  # the snapshot and the diffs held for it
        if d["u"] <= last:
            continue
        if first:
            assert d["U"] <= last + 1 <= d["u"], "the first kept diff covers lastUpdateId + 1"
            first = False
        elif d["U"] != last + 1:
            break  # ids skipped: the book is lost, and no later snapshot comes
        for side in ("b", "a"):
            for p, q in d[side]:
                if Decimal(q) == 0:
                    book[side].pop(Decimal(p), None)
                else:
                    book[side][Decimal(p)] = Decimal(q)
        last = d["u"]
        if ns <= snap_ns:
            continue  # held until the snapshot, applied there
        if d["b"] or d["a"]:
            tops.append((ns, top()))
    return tops or [(snap_ns, top())]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("binance")
    [result] = import_cryptofeed([WS, HTTP], out, strict=False)
    assert result.with_files == (HTTP,) and result.rows == 273
    return out


def valid_tops(day: replay.Day) -> list[tuple[int, Top]]:
    snaps = day.book_snapshots(depth=10, every=0, exact=True)
    return kernel_tops(snaps[snaps["valid"]], day.price_scale, day.size_scale)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_each_symbol_equals_the_independent_rebuild(root: Path, symbol: str) -> None:
    day = replay.open(DATE, symbol, venue="binance", data=root)
    assert day.protocols == ("binance.spot",)
    got = valid_tops(day)
    # A book is not trusted while its stream is silent (RUNEEUR: 19 s with no message).
    quiet = [g for g in day.gap_list() if g.kind == "silence"]
    expected = [
        (ns, top)
        for ns, top in independent_tops(symbol)
        if not any(g.start <= ns < g.end for g in quiet)
    ]
    assert got == expected and len(got) >= 1
    # Valid from the snapshot's row on, never before it.
    snap_ns = next(x.recv_ns for x in read_cryptofeed(HTTP) if f"symbol={symbol}&" in x.url)
    assert got[0][0] >= snap_ns
    assert (got[0][0] == snap_ns) == (not quiet)
    kinds = {g.kind for g in day.gap_list()}
    assert "sequence" not in kinds and "unsynced" in kinds


def test_trades_carry_the_taker_side(root: Path) -> None:
    live = [
        json.loads(x.text)["data"]
        for x in read_cryptofeed(WS)
        if x.kind == "recv" and '"aggTrade"' in x.text
    ]
    assert len(live) == 2
    for data in live:
        trades = replay.open(DATE, data["s"], venue="binance", data=root).trades(exact=True)
        assert trades["tid"].tolist() == [data["a"]]
        # m: the buyer was the maker, so the taker sold.
        assert trades["side"].tolist() == ["sell" if data["m"] else "buy"]


def test_a_dropped_diff_is_a_sequence_gap_and_no_wrong_book_is_valid(tmp_path: Path) -> None:
    lines = WS.read_text().splitlines(keepends=True)
    nkn = [
        k for k, line in enumerate(lines) if '"e":"depthUpdate"' in line and '"s":"NKNUSDT"' in line
    ]
    dropped = json.loads(lines[nkn[40]].partition(": ")[2])["data"]
    ws = tmp_path / "BINANCE.ws.1.0"
    ws.write_text("".join(line for k, line in enumerate(lines) if k != nkn[40]))
    http = tmp_path / "BINANCE.http.0.0"
    http.write_bytes(HTTP.read_bytes())
    import_cryptofeed([ws, http], tmp_path / "d")
    day = replay.open(DATE, "NKNUSDT", venue="binance", data=tmp_path / "d")
    [gap] = [g for g in day.gap_list() if g.kind == "sequence"]
    assert f"U expected {dropped['U']}" in gap.detail
    # Every valid book is the true one, up to the drop; none is valid after it.
    truth = independent_tops("NKNUSDT", ws)
    got = valid_tops(day)
    assert got and got == truth[: len(got)]
    assert got[-1][0] <= gap.start  # the break covers all after the last diff that followed on


def payloads(root: Path, symbol: str) -> list[tuple[int, str, str, str]]:
    parts = sorted((root / "raw" / "venue=binance").glob(f"date=*/symbol={symbol}/*.parquet"))
    table = pa.concat_tables(pq.read_table(p) for p in parts)
    ts = table.column("recv_ts").cast(pa.int64()).to_pylist()
    cols = [table.column(c).to_pylist() for c in ("protocol", "source", "payload")]
    return list(zip(ts, *cols, strict=True))


def test_a_capture_through_a_proxy_imports_with_venue_given(root: Path, tmp_path: Path) -> None:
    ws = tmp_path / "BINANCE.ws.1.0"
    ws.write_text(WS.read_text().replace("wss://stream.binance.com:9443/", "ws://127.0.0.1:9/"))
    http = tmp_path / "BINANCE.http.0.0"
    http.write_text(HTTP.read_text().replace("https://api.binance.com/", "http://127.0.0.1:9/"))
    with pytest.raises(ProtocolError, match=r"not a known venue.*--venue"):
        import_cryptofeed([ws, http], tmp_path / "no")
    import_cryptofeed([ws, http], tmp_path / "d", venue="binance", protocol="spot")
    for symbol in SYMBOLS:
        ours, theirs = payloads(tmp_path / "d", symbol), payloads(root, symbol)
        assert [r[1:] for r in ours[1:]] == [r[1:] for r in theirs[1:]]  # all but the URL
        day = replay.open(DATE, symbol, venue="binance", data=tmp_path / "d")
        assert valid_tops(day) == valid_tops(replay.open(DATE, symbol, venue="binance", data=root))


def test_tardis_style_lines_with_generated_snapshots(root: Path, tmp_path: Path) -> None:
    """``import lines --venue binance``: the depthSnapshot frames sync the book."""
    out = []
    for line in sorted(
        (x for f in (WS, HTTP) for x in read_cryptofeed(f) if x.kind in ("recv", "http")),
        key=lambda x: x.recv_ns,
    ):
        stamp = pd.Timestamp(line.recv_ns, tz="UTC").isoformat().replace("+00:00", "Z")
        text = line.text
        if line.kind == "http":
            symbol = line.url.split("symbol=")[1].split("&")[0].lower()
            text = f'{{"stream":"{symbol}@depthSnapshot","generated":true,"data":{text}}}'
        elif '"kline"' in text:
            continue  # a stream tickrec does not record
        out.append(f"{stamp} {text}\n")
    src = tmp_path / "binance.lines"
    src.write_text("".join(out))
    [result] = import_lines([src], tmp_path / "d", "binance", strict=True)
    assert not result.skipped
    for symbol in SYMBOLS:
        day = replay.open(DATE, symbol, venue="binance", data=tmp_path / "d")
        assert valid_tops(day) == valid_tops(replay.open(DATE, symbol, venue="binance", data=root))
        rest = [r for r in payloads(tmp_path / "d", symbol) if r[2] == "rest"]
        assert len(rest) == 1 and rest[0][1] == "binance.rest"
    with pytest.raises(UsageError, match="known: spot"):
        import_lines([src], tmp_path / "e", "binance", "v1")
