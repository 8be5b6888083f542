"""The compiled Gemini v1 scanner gives exactly what the general path (orjson + stream) gives.

Every case decodes the same rows twice: with the scanner, and with a v1
stream that has no ``decode_run`` (so every message goes through
``orjson`` and ``on_message``). Outcomes must be equal field by field, or
both must raise the same error.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import realdata

from bench.synth import DayParams, make_day
from replay import decode as decode_module
from replay.decode import PartitionDecoder, _payload_buffers, connection_rows, decode
from replay.events import Decoded
from replay.streams import stream_class
from tickrec.contract import Row, read_partition, rows_to_table
from tickrec.events import (
    BREAK_COLUMNS,
    OP_COLUMNS,
    OP_TYPES,
    TRADE_COLUMNS,
    TRADE_TYPES,
    Columns,
    EventSink,
    RawRows,
)
from tickrec.venues.gemini.v1_book import GeminiV1Stream
from tickrec.venues.gemini.v1_scan import scan

T0 = 1_768_435_200_000_000_000


class GeneralV1:
    """The v1 stream without its run decoder: the general path only."""

    def __init__(self, symbol: str) -> None:
        self._stream = GeminiV1Stream(symbol)

    def on_sent(self, out: EventSink, msg: Any) -> None:
        self._stream.on_sent(out, msg)

    def on_message(self, out: EventSink, msg: Any, venue_seq: int | None) -> str:
        return self._stream.on_message(out, msg, venue_seq)

    def sync_state(self) -> dict[str, int] | None:
        return self._stream.sync_state()

    def resume(self, state: dict[str, int]) -> None:
        self._stream.resume(state)

    def on_undecodable(self) -> str:
        return self._stream.on_undecodable()


def outcome(table: pa.Table, monkeypatch: pytest.MonkeyPatch, general: bool) -> Any:
    with monkeypatch.context() as m:
        if general:
            m.setattr(
                decode_module,
                "stream_class",
                lambda p: GeneralV1 if p == "gemini.v1" else stream_class(p),
            )
        try:
            return decode(table, "BTCUSD")
        except Exception as exc:
            return type(exc), str(exc)


def assert_same(a: Any, b: Any) -> None:
    if not isinstance(a, Decoded) or not isinstance(b, Decoded):
        assert a == b
        return
    for f in fields(Decoded):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in ("ops", "trades"):
            for g in fields(x):
                u, v = getattr(x, g.name), getattr(y, g.name)
                assert u.dtype == v.dtype and np.array_equal(u, v), (f.name, g.name)
        elif f.name == "rest":
            assert len(x) == len(y)
            for r, s in zip(x, y, strict=True):
                for g in fields(r):
                    assert np.array_equal(getattr(r, g.name), getattr(s, g.name))
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


def check(table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> Any:
    fast = outcome(table, monkeypatch, general=False)
    assert_same(fast, outcome(table, monkeypatch, general=True))
    return fast


def v1_table(payloads: list[str], venue_seq: bool = False) -> pa.Table:
    rows = [Row(T0, 0, "run", 1, "gemini.v1", "event", json.dumps({"event": "connect"}))]
    for k, text in enumerate(payloads, 1):
        rows.append(
            Row(T0 + k * 1000, k, "run", 1, "gemini.v1", "ws", text, None, k if venue_seq else None)
        )
    return rows_to_table(rows)


INITIAL = (
    '{"type":"update","eventId":1,"socket_sequence":0,"events":['
    '{"type":"change","reason":"initial","side":"bid","price":"100.50","remaining":"2",'
    '"delta":"2"},{"type":"change","reason":"initial","side":"ask","price":"101","remaining":'
    '"0.5","delta":"0.5"}]}'
)


def update(seq: int, events: str, extra: str = "") -> str:
    return (
        f'{{"type":"update","eventId":{seq},"timestamp":1768435201,'
        f'"timestampms":1768435201{seq:03d},"socket_sequence":{seq}{extra},"events":[{events}]}}'
    )


CHANGE = (
    '{"type":"change","side":"bid","price":"100.4","remaining":"1.25","delta":"1.25",'
    '"reason":"place"}'
)
TRADE = '{"type":"trade","tid":77,"price":"100.5","amount":"0.1","makerSide":"bid"}'

ODD = [
    '{"type":"heartbeat","socket_sequence":%d}',
    update(0, CHANGE).replace('"socket_sequence":0', '"socket_sequence":%d'),
    update(0, f"{TRADE},{CHANGE}").replace('"socket_sequence":0', '"socket_sequence":%d'),
    # key order, whitespace, extra keys of every scalar kind
    '{ "events" : [ {"price":"99.9","side":"ask","type":"change","remaining":"3"} ] ,'
    ' "socket_sequence" : %d, "type" : "update", "x": null, "y": true, "z": -1.5e0 }',
    '{"socket_sequence":%d,"type":"update","f":false,"n":-0.25,"s":"","events":[]}',
    # escapes and unicode, in keys and values (declined by the scanner)
    '{"type":"update","socket_sequence":%d,"note":"caf\\u00e9","events":[]}',
    '{"type":"update","socket_sequence":%d,"note":"café","events":[]}',
    '{"type":"upd\\u0061te","socket_sequence":%d,"events":[' + CHANGE + "]}",
    # malformed JSON, not an object, null, empty, trailing garbage
    '{"type":"update","socket_sequence":%d,"events":[',
    "[1, %d]",
    "null",
    "",
    '{"type":"heartbeat","socket_sequence":%d} x',
    # duplicate keys: the last one wins in orjson
    '{"type":"heartbeat","type":"update","socket_sequence":%d,"events":[' + CHANGE + "]}",
    '{"type":"update","socket_sequence":%d,"events":[{"type":"change","side":"bid",'
    '"side":"ask","price":"1","remaining":"1"}]}',
    # numbers that are not plain integers where integers are expected
    '{"type":"heartbeat","socket_sequence":%d.0}',
    '{"type":"heartbeat","socket_sequence":1e%d}',
    '{"type":"update","socket_sequence":%d,"timestampms":99999999999999999999,"events":[]}',
    '{"type":"heartbeat","socket_sequence":0%d}',
    # odd decimals: exponent, leading dot, trailing dot, negative zero, many digits
    update(0, CHANGE.replace('"100.4"', '"1e2"')).replace(":0,", ":%d,", 1),
    update(0, CHANGE.replace('"1.25"', '".5"')).replace(":0,", ":%d,", 1),
    update(0, CHANGE.replace('"1.25"', '"5."')).replace(":0,", ":%d,", 1),
    update(0, CHANGE.replace('"100.4"', '"-0"')).replace(":0,", ":%d,", 1),
    update(0, CHANGE.replace('"1.25"', '"0.000000000000000000001"')).replace(":0,", ":%d,", 1),
    update(0, CHANGE.replace('"1.25"', '"1.2500000000000000000000000"')).replace(":0,", ":%d,", 1),
    # events of other kinds, sides and shapes
    update(0, '{"type":"auction_result","price":"1"},{"type":"block_trade"}').replace(
        ":0,", ":%d,", 1
    ),
    update(0, CHANGE.replace('"bid"', '"buy"')).replace(":0,", ":%d,", 1),
    update(0, TRADE.replace('"bid"', '"auction"').replace("77", '"77"')).replace(":0,", ":%d,", 1),
    update(0, '{"type":"change","side":"bid","price":{"a":1},"remaining":"1"}').replace(
        ":0,", ":%d,", 1
    ),
    '{"type":"update","socket_sequence":%d,"events":{"a":1}}',
    '{"type":"update","socket_sequence":%d,"events":null}',
    '{"type":5,"socket_sequence":%d}',
    '{"type":"status","socket_sequence":%d}',
    '{"socket_sequence":%d}',
    '{"type":"update","events":[' + CHANGE + "]}",
    # near misses of Gemini's own layouts, read by the general parser instead
    update(0, CHANGE.replace('"place"', '"initial"') + "," + CHANGE).replace(
        '"socket_sequence":0', '"socket_sequence":%d'
    ),
    update(0, CHANGE.replace('"place"', '"initial"') + "," + TRADE + "," + CHANGE),
    update(0, "").replace('"timestamp":1768435201', '"timestamp":"x"').replace(":0,", ":%d,", 1),
    update(0, CHANGE).replace('"eventId":0', '"eventId":-1.5').replace(":0,", ":%d,", 1),
    update(0, CHANGE, ',"x":[1]').replace('"socket_sequence":0', '"socket_sequence":%d'),
    update(0, CHANGE).replace("]}", '],"x":1}').replace(":0,", ":%d,", 1),
    update(0, CHANGE).replace("]}", '],"type":"heartbeat"}').replace(":0,", ":%d,", 1),
    update(0, CHANGE.replace('"delta":"1.25"', '"delta":1.25')).replace(":0,", ":%d,", 1),
    update(0, CHANGE.replace('"place"', '"pl\\u0061ce"')).replace(":0,", ":%d,", 1),
    update(0, CHANGE.replace("}", ',"x":1}')).replace(":0,", ":%d,", 1),
    update(0, TRADE.replace('"bid"', '"auction"')).replace(":0,", ":%d,", 1),
    update(0, TRADE.replace("77", "-77")).replace(":0,", ":%d,", 1),
    update(0, TRADE.replace("77", "7" * 19)).replace(":0,", ":%d,", 1),
    update(0, TRADE.replace('"0.1"', '"1e-1"')).replace(":0,", ":%d,", 1),
    update(0, TRADE.replace(",", ", ")).replace(":0,", ":%d,", 1),
    update(0, TRADE.replace("}", ',"x":1}')).replace(":0,", ":%d,", 1),
    update(0, TRADE.replace('"bid"', '"bid" ')).replace(":0,", ":%d,", 1),
]


@pytest.mark.parametrize("text", ODD)
def test_odd_messages(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = [INITIAL, update(1, CHANGE)]
    payloads.append(text % 2 if "%d" in text else text)
    payloads += [update(3, TRADE), '{"type":"heartbeat","socket_sequence":4}']
    for venue_seq in (False, True):
        check(v1_table(payloads, venue_seq), monkeypatch)


def test_a_bad_price_costs_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = update(1, CHANGE.replace('"100.4"', '"abc"'))
    got = check(v1_table([INITIAL, bad, update(2, CHANGE)]), monkeypatch)
    assert got.counts["undecodable"] == 1 and "not a plain decimal" in got.breaks[0].detail


def test_sequence_breaks_and_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = [INITIAL, update(1, CHANGE), update(5, TRADE), update(6, CHANGE)]
    got = check(v1_table(payloads), monkeypatch)
    assert [(b.expected, b.got) for b in got.breaks] == [(2, 5)]


def test_real_v1_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    realdata.import_gemini_v1(tmp_path, drop=[3])
    table = read_partition(tmp_path, "gemini", "2018-09-26", "BTCUSD")
    got = check(table, monkeypatch)
    assert got.counts["update"] > 0 and len(got.breaks) == 1


def test_synthetic_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    day = make_day(DayParams(changes=5_000, seed=3, span_s=600, reconnects=1), cache=tmp_path)
    table = read_partition(day.root, day.venue, day.date, day.symbol)
    got = check(table, monkeypatch)
    assert int(got.ops.snapshot.sum()) > 0 and len(got.trades) > 0
    # Batch boundaries fall anywhere: the result is the same.
    assert_same(got, decode(pa.Table.from_batches(table.to_batches(max_chunksize=97)), "BTCUSD"))
    # So does knowing only the number of rows in advance, or nothing (the columns
    # are then sized from the events per row, or grow as they fill).
    batches = table.to_batches(max_chunksize=1000)
    for rows in (table.num_rows, None):
        decoder = PartitionDecoder("BTCUSD", connection_rows(batches).last_ws, rows)
        for batch in batches:
            decoder.feed(batch)
        assert_same(got, decoder.finish())


def test_gemini_layouts_are_scanned() -> None:
    """Messages as Gemini lays them out are all decoded by the scanner, none declined."""
    payloads = [
        INITIAL,
        update(1, CHANGE),
        update(2, f"{TRADE},{CHANGE},{CHANGE.replace('bid', 'ask')}"),
        '{"type":"heartbeat","socket_sequence":3}',
        update(4, CHANGE.replace('"place"', '"initial"')),
    ]
    table = v1_table(payloads).slice(1)
    data, offsets = _payload_buffers(table.column("payload").combine_chunks())
    recv = table.column("recv_ts").cast(pa.int64()).to_numpy().copy()  # writable, as in decode
    n = len(recv)
    no_seq = np.zeros(n, np.int64), np.zeros(n, bool)
    rows = RawRows(data, offsets, recv, *no_seq, np.ones(n, bool), 0)
    ops = Columns(OP_COLUMNS, OP_TYPES)
    trades = Columns(TRADE_COLUMNS, TRADE_TYPES)
    breaks = Columns(BREAK_COLUMNS, "qqqqq")
    counts = np.zeros(3, np.int64)
    state = np.zeros(3, np.int64)
    got = scan(rows, 0, len(payloads), state, ops, trades, breaks, counts)
    assert got == (len(payloads), False)
    assert counts.tolist() == [4, 1, 0] and trades.n == 1 and breaks.n == 0
    # Two snapshot messages, each with a clear before and a valid after its changes.
    assert ops.n == 4 + 1 + 2 + 3 and ops.arrays[OP_COLUMNS.index("snap")][: ops.n].sum() == 3


def test_rest_replies_among_the_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """REST replies between messages of a connection are read as books, not as messages."""
    book = '{"bids":[{"price":"100.5","amount":"2","timestamp":"1"}],"asks":[]}'
    messages = [INITIAL, update(1, CHANGE), "not json", update(3, TRADE), update(4, CHANGE)]
    rows = [Row(T0, 0, "run", 1, "gemini.v1", "event", json.dumps({"event": "connect"}))]
    for k, text in enumerate(messages, 1):
        rest = Row(T0 + k * 1000 - 1, 2 * k - 1, "run", 1, "gemini.rest", "rest", book, None, None)
        rows += [rest, Row(T0 + k * 1000, 2 * k, "run", 1, "gemini.v1", "ws", text)]
    table = rows_to_table(rows)
    got = check(table, monkeypatch)
    assert len(got.rest) == len(messages) and got.counts["messages"] == len(messages)
    assert got.counts["undecodable"] == 1 and [b.got for b in got.breaks] == [-1, 3]
    # The same events as from the messages alone, at their own rows.
    no_rest = check(v1_table(messages), monkeypatch)
    assert np.array_equal(got.ops.price, no_rest.ops.price)
    assert np.array_equal(got.ops.grp, 2 * no_rest.ops.grp)


@pytest.mark.parametrize("size", ["1e-130", "0." + "0" * 129 + "1", "-1.25", "NaN"])
def test_a_bad_size_costs_its_message(monkeypatch: pytest.MonkeyPatch, size: str) -> None:
    """A size no fixed-point column holds is a bad message on both paths; the rest decodes."""
    tiny = update(1, CHANGE.replace('"1.25"', f'"{size}"'))
    good = update(2, CHANGE)
    got = check(v1_table([INITIAL, tiny, good]), monkeypatch)
    assert got.counts["undecodable"] == 1 and got.counts["update"] == 2
    assert got.size_scale == 2 and 125 in got.ops.size.tolist()
