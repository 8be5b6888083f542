"""Binance spot on the simulator, captured, imported and replayed against its ground truth.

A plain websocket client (``websocket-client`` and ``requests``, as a home-made
crawler would be) reads ``/stream?streams=`` of two symbols and takes one
``/api/v3/depth`` snapshot of each while the stream runs, writing the lines
cryptofeed would (``BINANCE.ws.1.0``, ``BINANCE.http.0.0``). ``tickrec import
cryptofeed`` and the replay then rebuild each book; every valid book must be
the simulator's true book after the last update id the replay applied.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import websocket
from test_replay_realdata import kernel_tops
from truth import read_jsonl

import replay
from recorder.importer import import_cryptofeed
from tickrec import contract
from tickrec.sim import FaultConfig, SimConfig, Simulator

SYMBOLS = ("BTCUSDT", "ETHUSDT")
STREAMS = "/".join(f"{s.lower()}@depth@100ms/{s.lower()}@trade" for s in SYMBOLS)


def capture(root: Path, faults: FaultConfig, seconds: float = 3.0) -> Path:
    """Capture from a simulator into cryptofeed logs under *root*; return its truth dir.

    Each snapshot is fetched on its own thread while the stream is read on,
    so diffs that arrive while a reply is on its way precede it in the log.
    """
    truth = root / "truth"
    config = SimConfig(symbols=SYMBOLS, rate=300.0, seed=11, faults=faults, truth_dir=truth)
    ws_lines: list[str] = []
    http_lines: list[str] = []

    def snapshot(url: str) -> None:
        reply = requests.get(url, timeout=5)
        assert reply.status_code == 200
        assert int(reply.headers["X-MBX-USED-WEIGHT-1M"]) >= 50
        http_lines.append(f"{url} -> {time.time_ns() // 1000 / 1e6:.6f}: {reply.text}\n")

    with Simulator(config) as sim, ThreadPoolExecutor(len(SYMBOLS)) as pool:
        url = f"{sim.ws_url}/stream?streams={STREAMS}"
        ws = websocket.create_connection(url, timeout=5)
        ws_lines.append(f"{url} <-> {time.time_ns() / 1e9:.6f}\n")
        start, asked = time.monotonic(), []
        while time.monotonic() - start < seconds:
            text = ws.recv()
            ws_lines.append(f"{time.time_ns() // 1000 / 1e6:.6f}: {text}\n")
            k = len(asked)
            if k < len(SYMBOLS) and time.monotonic() - start > 0.5 + k * 0.3:
                depth = f"{sim.rest_url}/api/v3/depth?symbol={SYMBOLS[k]}&limit=1000"
                asked.append(pool.submit(snapshot, depth))
        for future in asked:
            future.result()
        ws.close()
    (root / "BINANCE.ws.1.0").write_text("".join(ws_lines))
    (root / "BINANCE.http.0.0").write_text("".join(http_lines))
    return truth


def true_tops(truth: Path, symbol: str, depth: int = 10) -> dict[int, tuple]:
    """The true top *depth* levels after each update id of *symbol*."""
    book: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
    out: dict[int, tuple] = {}
    for line in read_jsonl(truth / "book.jsonl"):
        if line["symbol"] != symbol:
            continue
        side, price, size = line["side"], Decimal(line["price"]), Decimal(line["size"])
        if size == 0:
            book[side].pop(price, None)
        else:
            book[side][price] = size
        bids = tuple(sorted(book["bid"].items(), reverse=True)[:depth])
        asks = tuple(sorted(book["ask"].items())[:depth])
        out[line["update_id"]] = (bids, asks)
    return out


def applied_ids(root: Path, symbol: str) -> list[tuple[int, int]]:
    """``(recv_ns, update id the book holds by then)`` at each diff and snapshot of *symbol*."""
    marks = []
    for line in (root / "BINANCE.ws.1.0").read_text().splitlines()[1:]:
        head, _, text = line.partition(": ")
        data = json.loads(text)["data"]
        if data.get("e") == "depthUpdate" and data["s"] == symbol:
            marks.append((contract_ns(head), data["u"]))
    for line in (root / "BINANCE.http.0.0").read_text().splitlines():
        head, _, text = line.partition(": ")
        if f"symbol={symbol}&" in head:
            marks.append(
                (contract_ns(head.rpartition(" -> ")[2]), json.loads(text)["lastUpdateId"])
            )
    marks.sort()
    held, out = 0, []
    for ns, uid in marks:
        held = max(held, uid)
        out.append((ns, held))
    return out


def contract_ns(epoch: str) -> int:
    whole, _, frac = epoch.partition(".")
    return int(whole) * 1_000_000_000 + int(frac.ljust(9, "0"))


def check_against_truth(root: Path, symbol: str) -> replay.Day:
    files = [root / "BINANCE.ws.1.0", root / "BINANCE.http.0.0"]
    import_cryptofeed(files, root / "data", venue="binance")  # loopback URLs name no venue
    [part] = contract.list_partitions(root / "data", venue="binance", symbol=symbol)
    day = replay.open(part.date, symbol, venue="binance", data=root / "data")
    snaps = day.book_snapshots(depth=10, every=0, exact=True)
    valid = kernel_tops(snaps[snaps["valid"]], day.price_scale, day.size_scale)
    truth = true_tops(root / "truth", symbol)
    ids = applied_ids(root, symbol)
    assert valid, "the book is valid after its snapshot"
    for ns, top in valid:
        held = max(uid for t, uid in ids if t <= ns)
        assert top == truth[held], (symbol, ns, held)
    return day


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_clean_capture_replays_equal_to_the_truth(tmp_path: Path, symbol: str) -> None:
    capture(tmp_path, FaultConfig())
    day = check_against_truth(tmp_path, symbol)
    assert "sequence" not in {g.kind for g in day.gap_list()}
    assert len(day.trades()) > 0


def test_dropped_frames_are_sequence_gaps_and_no_wrong_book_is_valid(tmp_path: Path) -> None:
    capture(tmp_path, FaultConfig(drop=0.05), seconds=4.0)
    dropped = [f for f in read_jsonl(tmp_path / "truth" / "faults.jsonl") if f["fault"] == "drop"]
    assert dropped
    gaps = 0
    for symbol in SYMBOLS:
        day = check_against_truth(tmp_path, symbol)
        breaks = [g for g in day.gap_list() if g.kind == "sequence"]
        assert all(g.detail.startswith("U expected ") for g in breaks)
        gaps += len(breaks)
    assert gaps >= 1


def test_diffs_that_arrive_before_a_stale_snapshot_are_applied_after_it(tmp_path: Path) -> None:
    """A snapshot delivered 0.4 s late is older than the diffs that came meanwhile:
    the replay applies those held diffs on top of it (exchanges.md 1, the sync procedure)."""
    capture(tmp_path, FaultConfig(rest_slow=1.0, rest_slow_for=0.4))
    for symbol in SYMBOLS:
        [snap] = [
            line
            for line in (tmp_path / "BINANCE.http.0.0").read_text().splitlines()
            if f"symbol={symbol}&" in line
        ]
        head, _, body = snap.partition(": ")
        snap_ns, last = contract_ns(head.rpartition(" -> ")[2]), json.loads(body)["lastUpdateId"]
        held = [ns for ns, uid in applied_ids(tmp_path, symbol) if ns < snap_ns and uid > last]
        assert held, "diffs newer than the snapshot arrived before it"
        check_against_truth(tmp_path, symbol)
