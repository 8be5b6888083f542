"""Binance spot's pure parts: the sync rule, the frame codec and the REST parsers.

The real capture (tests/data/real/binance: 30 s of combined streams and the
REST depth snapshot of each symbol taken during it) is the check against
what Binance really sends: every snapshot lines up with its symbol's diffs
by the rule, no ids are skipped, and the book rebuilt from snapshot and
diffs, written plainly here with Decimal levels, has at every ``bookTicker``
that names a diff's update id exactly the best bid and ask Binance gave.
"""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from realdata import REAL, read_cryptofeed

from tickrec.values import BadValue
from tickrec.venues import header_of
from tickrec.venues.base import Gap
from tickrec.venues.binance import APPLY, STALE, WAIT, UpdateIdSync, rest, spot

WS = REAL / "binance" / "BINANCE.ws.1.0"
HTTP = REAL / "binance" / "BINANCE.http.0.0"
SYMBOLS = ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")


@pytest.mark.parametrize(
    ("snapshot", "diffs", "verdicts"),
    [
        (None, [(1, 5)], [WAIT]),
        # Binance's procedure: drop u <= lastUpdateId, the first kept covers lastUpdateId + 1.
        (100, [(95, 100), (99, 101), (102, 105)], [STALE, APPLY, APPLY]),
        (100, [(101, 101), (102, 102)], [APPLY, APPLY]),
        (100, [(100, 100), (101, 103)], [STALE, APPLY]),
        (100, [(90, 100), (100, 120)], [STALE, APPLY]),
        # A later frame already in the book is stale, not a gap.
        (100, [(101, 110), (105, 110), (111, 111)], [APPLY, STALE, APPLY]),
        # Ids skipped: the gap names the id due and the first id received; then wait.
        (100, [(102, 103), (104, 105)], [Gap(101, 102), WAIT]),
        (100, [(101, 103), (105, 107), (108, 109)], [APPLY, Gap(104, 105), WAIT]),
    ],
)
def test_the_sync_rule(
    snapshot: int | None, diffs: list[tuple[int, int]], verdicts: list[object]
) -> None:
    sync = UpdateIdSync()
    if snapshot is not None:
        sync.snapshot(snapshot)
    assert [sync.diff(first, last) for first, last in diffs] == verdicts
    assert sync.synced == (verdicts[-1] not in (WAIT,) and not isinstance(verdicts[-1], Gap))


def test_a_snapshot_after_a_gap_makes_the_book_whole_again() -> None:
    sync = UpdateIdSync()
    sync.snapshot(10)
    assert sync.diff(12, 12) == Gap(11, 12)
    assert not sync.synced and sync.last is None
    sync.snapshot(20)
    assert (sync.diff(18, 20), sync.diff(21, 22), sync.last) == (STALE, APPLY, 22)


def _events() -> list[tuple[int, dict[str, object], str]]:
    """``(recv_ns, event, raw text)`` of the capture's received frames, unwrapped."""
    out = []
    for line in read_cryptofeed(WS):
        if line.kind == "recv":
            out.append((line.recv_ns, spot.unwrap(orjson.loads(line.text)), line.text))
    return out


def _snapshots() -> dict[str, rest.Depth]:
    out = {}
    for line in read_cryptofeed(HTTP):
        assert line.kind == "http" and "/api/v3/depth?" in line.url
        depth = rest.parse_depth(line.text)
        symbol = line.url.split("symbol=")[1].split("&")[0]
        assert depth.last_update_id == orjson.loads(line.text)["lastUpdateId"]
        out[symbol] = depth
    return out


def test_headers_of_the_real_frames() -> None:
    kinds: dict[str, int] = {}
    for _, event, text in _events():
        h = header_of(spot.PROTOCOL, text)
        kinds[h.kind] = kinds.get(h.kind, 0) + 1
        if h.kind == "kline":
            assert h.problem == "unknown message"  # not a stream tickrec records
            continue
        assert h.problem is None, text
        assert h.symbol == event["s"] and h.symbol in SYMBOLS
        if h.kind == "depthUpdate":
            assert (h.first_seq, h.venue_seq) == (event["U"], event["u"])
            assert h.exch_ns == int(str(event["E"])) * 1_000_000
        elif h.kind == "bookTicker":
            assert h.venue_seq == event["u"] and h.exch_ns is None
    assert kinds == {"depthUpdate": 177, "bookTicker": 84, "aggTrade": 2, "kline": 2}


def _decimal(pair: tuple[int, int]) -> Decimal:
    mantissa, decimals = pair
    return Decimal(mantissa).scaleb(-decimals)


def test_the_real_capture_lines_up_and_rebuilds_bookticker_exactly() -> None:
    snapshots = _snapshots()
    assert sorted(snapshots) == sorted(SYMBOLS)
    events = _events()
    checked = 0
    for symbol, depth in snapshots.items():
        book = {
            "b": {_decimal(p): _decimal(s) for p, s in depth.bids},
            "a": {_decimal(p): _decimal(s) for p, s in depth.asks},
        }
        sync = UpdateIdSync()
        sync.snapshot(depth.last_update_id)
        tops: dict[int, tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]] = {}
        verdicts = []
        for _, event, _ in events:
            if event.get("s") != symbol or event.get("e") != "depthUpdate":
                continue
            verdict = sync.diff(int(str(event["U"])), int(str(event["u"])))
            verdicts.append(verdict)
            if verdict != APPLY:
                continue
            for side in ("b", "a"):
                for price, size in event[side]:  # type: ignore[attr-defined]
                    if Decimal(size) == 0:
                        book[side].pop(Decimal(price), None)
                    else:
                        book[side][Decimal(price)] = Decimal(size)
            bid = max(book["b"])
            ask = min(book["a"])
            tops[int(str(event["u"]))] = ((bid, book["b"][bid]), (ask, book["a"][ask]))
        # Only older diffs are dropped (1 or 2 a symbol), then every diff follows on.
        stale = verdicts.index(APPLY)
        assert 1 <= stale <= 2 and set(verdicts[:stale]) == {STALE}, (symbol, verdicts)
        assert set(verdicts[stale:]) == {APPLY}, (symbol, verdicts)
        for _, event, _ in events:
            if event.get("s") == symbol and "e" not in event and event["u"] in tops:
                (bid, bid_size), (ask, ask_size) = tops[int(str(event["u"]))]
                given = [Decimal(str(event[k])) for k in ("b", "B", "a", "A")]
                assert given == [bid, bid_size, ask, ask_size], (symbol, event)
                checked += 1
    assert checked >= 10


def test_rest_requests_and_replies() -> None:
    assert rest.depth_url("https://api.binance.com/", "btcusdt", 1000) == (
        "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"
    )
    assert [rest.depth_weight(n) for n in (1, 100, 101, 500, 1000, 5000)] == [5, 5, 25, 25, 50, 250]
    with pytest.raises(ValueError, match="5000"):
        rest.depth_url("http://127.0.0.1:1", "BTCUSDT", 5001)
    listed = [{"symbol": "BTCUSDT", "status": "TRADING"}, {"symbol": "X", "status": "BREAK"}]
    info = orjson.dumps({"symbols": listed})
    assert rest.parse_symbols(info) == {"BTCUSDT": "TRADING", "X": "BREAK"}
    depth = rest.parse_depth(b'{"lastUpdateId":7,"bids":[["1.50","2"]],"asks":[["1.6","0.10"]]}')
    assert depth == rest.Depth(7, (((15, 1), (2, 0)),), (((16, 1), (1, 1)),))
    exponent = b'{"lastUpdateId":1,"bids":[["1e3","1"]],"asks":[]}'
    for bad in (b"[]", b'{"bids":[],"asks":[]}', exponent):
        with pytest.raises(BadValue):
            rest.parse_depth(bad)


def test_stream_url_and_odd_frames() -> None:
    assert spot.stream_url("ws://127.0.0.1:9/", ["BTCUSDT", "ethusdt"]) == (
        "ws://127.0.0.1:9/stream?streams="
        "btcusdt@depth@100ms/btcusdt@trade/ethusdt@depth@100ms/ethusdt@trade"
    )
    assert header_of(spot.PROTOCOL, b'{"result":null,"id":1}').kind == "reply"
    shutdown = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}'
    assert header_of(spot.PROTOCOL, shutdown).kind == "serverShutdown"
    bad = b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":4,"b":[],"a":[]}'
    assert header_of(spot.PROTOCOL, bad).problem == "no int64 update ids U <= u"
    assert header_of(spot.PROTOCOL, b"{").problem is not None
