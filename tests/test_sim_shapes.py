"""The simulator's messages have the shape of real Gemini messages.

The real captures are in ``tests/data/real`` (see its SOURCES.md): twelve v1
updates for BTCUSD, one v2 session in cryptofeed's raw-log line format, and
the REST symbol replies of the same run. For each kind of message the
simulator must use the same keys in the same order, the same JSON value
types, and the same side spellings (v1 ``bid``/``ask``, v2 ``buy``/``sell``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from conftest import SimFactory
from realdata import GEMINI_V1, GEMINI_V2, REAL
from websockets.sync.client import connect

V1_FILE = GEMINI_V1
V2_FILE = GEMINI_V2
REST_FILE = REAL / "gemini_v2" / "GEMINI.0"

# cryptofeed raw log lines: "<epoch>: <message>" (received) and
# "<url> -> <epoch>: <body>" (HTTP response); see tests/data/real/SOURCES.md.
_RECEIVED = re.compile(r"^\d+(?:\.\d+)?: (.*)$")
_HTTP = re.compile(r"^(\S+) -> \d+(?:\.\d+)?: (.*)$")


def _cryptofeed_received(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if m := _RECEIVED.match(line.rstrip("\n")):
                yield json.loads(m.group(1))


def _cryptofeed_http(path: Path) -> dict[str, Any]:
    replies = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if m := _HTTP.match(line.rstrip("\n")):
                replies[m.group(1)] = json.loads(m.group(2))
    return replies


def _shape(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """Keys in order, each with its JSON value type."""
    return [(k, type(v).__name__) for k, v in obj.items()]


def _one_shape(objs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    shapes = {tuple(_shape(o)) for o in objs}
    assert len(shapes) == 1, shapes
    return list(shapes.pop())


def test_v1_matches_real_capture(sim_factory: SimFactory) -> None:
    with open(V1_FILE, encoding="utf-8") as fh:
        real = [json.loads(line) for line in fh if line.strip()]
    sim = sim_factory(rate=3000)
    with connect(f"{sim.ws_url}/v1/marketdata/btcusd") as ws:
        ours = [json.loads(ws.recv(timeout=5)) for _ in range(500)]
    assert _one_shape(ours) == _one_shape(real)

    def events(msgs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
        return [e for m in msgs for e in m["events"] if e["type"] == kind]

    for kind in ("change", "trade"):
        assert _one_shape(events(ours, kind)) == _one_shape(events(real, kind))
    for msgs in (real, ours):
        assert {e["side"] for e in events(msgs, "change")} == {"bid", "ask"}
        assert {e["makerSide"] for e in events(msgs, "trade")} <= {"bid", "ask"}
    real_reasons = {e["reason"] for e in events(real, "change")}
    assert real_reasons <= {e["reason"] for e in events(ours, "change")}
    # Sizes print without trailing zeros and prices with every decimal, as in the capture.
    for e in events(ours, "change"):
        assert re.fullmatch(r"\d+\.\d\d", e["price"])
        assert re.fullmatch(r"-?\d+(\.\d*[1-9])?", e["remaining"]) and re.fullmatch(
            r"-?\d+(\.\d*[1-9])?", e["delta"]
        )


def test_v2_matches_real_capture(sim_factory: SimFactory) -> None:
    real = list(_cryptofeed_received(V2_FILE))
    sim = sim_factory(rate=3000, heartbeat_s=0.05)
    sub = {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD", "ETHUSD"]}]}
    with connect(f"{sim.ws_url}/v2/marketdata") as ws:
        ws.send(json.dumps(sub))
        ours = [json.loads(ws.recv(timeout=5)) for _ in range(1500)]

    def split(msgs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        kinds: dict[str, list[dict[str, Any]]] = {}
        for m in msgs:
            kind = "snapshot" if m["type"] == "l2_updates" and "trades" in m else m["type"]
            kinds.setdefault(kind, []).append(m)
        return kinds

    theirs, mine = split(real), split(ours)
    assert set(theirs) == set(mine) == {"snapshot", "l2_updates", "trade", "heartbeat"}
    for kind in ("snapshot", "l2_updates", "heartbeat"):
        assert _one_shape(mine[kind]) == _one_shape(theirs[kind]), kind
    # Trades carry tid as docs/venues/gemini.md section 2 documents it; the 2021 capture has
    # only event_id. Apart from that extra key the shape is the same.
    snapshot_trades = [t for m in mine["snapshot"] for t in m["trades"]]
    for our_trades, real_trades in (
        (mine["trade"], theirs["trade"]),
        (snapshot_trades, [t for m in theirs["snapshot"] for t in m["trades"]]),
    ):
        shape = _one_shape(our_trades)
        assert shape[-1] == ("tid", "int")
        assert shape[:-1] == _one_shape(real_trades)
    for msgs in (theirs, mine):
        changes = [c for m in msgs["snapshot"] + msgs["l2_updates"] for c in m["changes"]]
        assert {c[0] for c in changes} == {"buy", "sell"}
        assert all(len(c) == 3 and all(isinstance(x, str) for x in c) for c in changes)
        assert {t["side"] for t in msgs["trade"]} <= {"buy", "sell"}
        assert all(m["auction_events"] == [] for m in msgs["snapshot"])


def test_rest_symbols_match_real_capture(sim_factory: SimFactory) -> None:
    real = _cryptofeed_http(REST_FILE)
    sim = sim_factory()
    symbols = requests.get(sim.rest_url + "/v1/symbols", timeout=5).json()
    real_symbols = real["https://api.gemini.com/v1/symbols"]
    assert {type(s) for s in symbols} == {type(s) for s in real_symbols} == {str}
    assert all(s == s.lower() for s in symbols + real_symbols)
    for symbol in ("btcusd", "ethusd"):
        theirs = real[f"https://api.gemini.com/v1/symbols/details/{symbol}"]
        ours = requests.get(sim.rest_url + f"/v1/symbols/details/{symbol}", timeout=5).json()
        # Same keys, order and types as the capture; then the fields docs/venues/gemini.md
        # section 4 adds since.
        assert _shape(ours)[: len(theirs)] == _shape(theirs)
        for key in ("tick_size", "quote_increment", "symbol", "base_currency", "quote_currency"):
            assert ours[key] == theirs[key], key
