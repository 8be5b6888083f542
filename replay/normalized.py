"""Normalized streams of recorded data, in tardis-machine's message shapes.

``tickrec serve`` answers ``GET /replay-normalized?options=<json>`` with NDJSON
and ``WS /ws-replay-normalized?options=<json>`` with one text frame per
message, as tardis-machine does (its ``replay-normalized`` endpoints). The
options are tardis-machine's: an object, or an array of them merged by time::

    {"exchange": "gemini", "symbols": ["BTCUSD"], "from": "2026-11-23",
     "to": "2026-11-24", "dataTypes": ["trade", "book_snapshot_10_1s"],
     "withDisconnectMessages": true}

``from`` is included and ``to`` excluded; ``symbols`` defaults to every symbol
of the exchange in the dataset. Data types:

``trade``
    Every trade received live (:meth:`replay.api.Day.trades`).
``book_change``
    The levels each message set, while the book is valid. The first message
    after the start, after an invalid stretch or after a ``disconnect``
    message, and a message that cleared the book (a new connection's
    snapshot, the book carried over midnight) are sent as the whole book
    after them, with ``isSnapshot: true``, so a client that applies the
    changes always holds the replay's book.
``book_snapshot_{depth}_{interval}``
    The top *depth* levels at every time of the interval grid (multiples of
    *interval* since UTC midnight, ``ms``, ``s`` or ``m``) where the book is
    valid: the rows of :meth:`replay.api.Day.book_snapshots`. Interval 0
    (``book_snapshot_10_0ms``) gives one snapshot per message that changed
    the top *depth* levels.
``quote``, ``quote_{interval}``
    Depth-1 snapshots named ``quote``, as tardis-machine has them: ``quote``
    at every change of the best bid or offer (:meth:`replay.api.Day.quotes`).
``disconnect``
    One message per gap of the gap report (:meth:`replay.api.Day.gap_list`;
    with a range, :meth:`replay.days.Days.gap_list`, ``no_data`` included)
    that meets ``[from, to)``, at its start (or at ``from``, for one already
    open), with the gap's ``kind``, ``start``, ``end`` and ``detail`` (the
    range taken within the symbol's recorded dates: a date before its first
    partition or after its last is no ``no_data`` gap). Sent
    when ``withDisconnectMessages`` is true or ``disconnect`` is a data type.

No ``book_change``, snapshot or quote is sent while the book is invalid
(:mod:`replay.gaps`): the disconnect messages say when and why, and each
stretch of invalid time lies inside the gap of one of them.

Numbers. Prices and amounts are the exact decimals of the stored ticks and
units (:func:`replay.ticks.format_units`), written as JSON number literals:
``101.5``, never ``101.49999999999999``. A JavaScript client reads the
nearest double, as tardis-machine's own ``Number()`` gives; a Python client
may keep them exact with ``json.loads(line, parse_float=decimal.Decimal)``.
Times are ISO 8601 UTC with nanoseconds (``2026-11-23T00:00:01.000000000Z``),
the stored times exactly.

Order. Messages come by ``localTimestamp``; at one time, those of received
messages first (in recorded order: the book change, then the message's
trades and per-message snapshots), then grid snapshots, then disconnect
messages; between symbols, in the order of the options' symbols. The output
is a pure function of the dataset and the options.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import heapq
import http
import logging
import re
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from replay.api import Day, to_ns
from replay.book import BookEngine
from replay.days import Days, open_range
from replay.gaps import Gap
from replay.http_body import send_chunked
from replay.pacing import send_paced
from replay.ticks import format_units
from tickrec import contract
from tickrec.errors import NotFoundError, TickrecError, UsageError
from tickrec.events import ASK, BID, NO_ID, NO_TS, OP_CLEAR, OP_SET
from tickrec.store import Root, RootLike, as_root

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from replay.serve import ServeConfig

__all__ = [
    "HTTP_PATH",
    "WS_PATH",
    "DataType",
    "Options",
    "messages",
    "parse_options",
    "respond",
    "send",
    "stream",
    "timed",
]

log = logging.getLogger("tickrec.serve")

I64 = npt.NDArray[np.int64]

HTTP_PATH = re.compile(r"^/replay-normalized/?$")
WS_PATH = re.compile(r"^/ws-replay-normalized/?$")

_SNAPSHOT = re.compile(r"^book_snapshot_(\d+)_(\d+)(ms|s|m)$")
_QUOTE = re.compile(r"^quote(?:_(\d+)(ms|s|m))?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000}
_NS_PER_MS = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1)
_NAMES = ("bid", "ask")
_SIDES = {1: b'"buy"', -1: b'"sell"', 0: b'"unknown"'}
# Ranks at one time: received messages, then grid snapshots, then disconnects.
_MESSAGE, _GRID, _DISCONNECT = range(3)


class DataType(NamedTuple):
    """A computed snapshot data type: its name, depth and interval (ms; 0: per change)."""

    name: str
    depth: int
    interval_ms: int


@dataclass(frozen=True)
class Options:
    """One object of a request's options, checked."""

    exchange: str
    symbols: tuple[str, ...]
    from_ns: int
    to_ns: int
    trades: bool
    book_changes: bool
    snapshots: tuple[DataType, ...]
    disconnects: bool


def _data_types(names: Sequence[str]) -> tuple[bool, bool, tuple[DataType, ...], bool]:
    trades = book_changes = disconnects = False
    snapshots: list[DataType] = []
    for name in names:
        if not isinstance(name, str):
            raise UsageError(f"dataTypes: {name!r} is not a string")
        if name == "trade":
            trades = True
        elif name == "book_change":
            book_changes = True
        elif name == "disconnect":
            disconnects = True
        elif m := _SNAPSHOT.match(name):
            depth = int(m.group(1))
            if depth < 1:
                raise UsageError(f"dataTypes: {name}: the depth must be at least 1")
            snapshots.append(DataType(name, depth, int(m.group(2)) * _UNIT_MS[m.group(3)]))
        elif m := _QUOTE.match(name):
            ms = int(m.group(1)) * _UNIT_MS[m.group(2)] if m.group(1) else 0
            snapshots.append(DataType(name, 1, ms))
        else:
            raise UsageError(
                f"dataTypes: {name!r} is not one of trade, book_change, "
                "book_snapshot_{depth}_{interval}{ms|s|m}, quote, quote_{interval}, disconnect"
            )
    if not names:
        raise UsageError("dataTypes: give at least one data type")
    return trades, book_changes, tuple(dict.fromkeys(snapshots)), disconnects


def _time(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, str):
        raise UsageError(f'{key}: give a date or an ISO 8601 time, such as "2026-11-23"')
    try:
        return to_ns(value)
    except ValueError as exc:
        raise UsageError(f"{key}: {value!r} is not a time: {exc}") from None


def _one(obj: Any, data: Root) -> Options:
    if not isinstance(obj, dict):
        raise UsageError("options: give an object, or an array of objects")
    exchange = obj.get("exchange")
    if not isinstance(exchange, str):
        raise UsageError("exchange: missing")
    exchange = contract.check_name("exchange", exchange)
    have = sorted({p.symbol for p in contract.list_partitions(data, exchange)})
    if not have:
        raise NotFoundError(f"exchange: no {exchange} data under {data}")
    wanted = obj.get("symbols")
    if wanted is None or wanted == []:
        symbols = tuple(have)
    else:
        if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
            raise UsageError("symbols: give an array of symbol names")
        symbols = tuple(dict.fromkeys(s.upper() for s in wanted))
        unknown = [s for s in symbols if s not in have]
        if unknown:
            raise NotFoundError(
                f"symbols: no {exchange} data for {', '.join(unknown)} (have {', '.join(have)})"
            )
    start, end = _time(obj, "from"), _time(obj, "to")
    if end <= start:
        raise UsageError("to: must be after from")
    types = obj.get("dataTypes")
    if not isinstance(types, list):
        raise UsageError("dataTypes: give an array of data types")
    trades, changes, snapshots, disconnects = _data_types(types)
    flag = obj.get("withDisconnectMessages", False)
    if not isinstance(flag, bool):
        raise UsageError("withDisconnectMessages: give true or false")
    return Options(exchange, symbols, start, end, trades, changes, snapshots, disconnects or flag)


def parse_options(text: str | bytes, data: Root) -> list[Options]:
    """The options of a request (tardis-machine's JSON), checked against the dataset.

    Raises :class:`~tickrec.errors.UsageError` for malformed options and
    :class:`~tickrec.errors.NotFoundError` for an exchange or symbol with no data.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"options: not JSON: {exc}") from None
    objs = obj if isinstance(obj, list) else [obj]
    if not objs:
        raise UsageError("options: an empty array")
    return [_one(o, data) for o in objs]


# --- formatting -------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _second(sec: int) -> bytes:
    return (_EPOCH + dt.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S").encode()


def iso(ns: int) -> bytes:
    """ISO 8601 UTC text of *ns*, to the nanosecond, as a JSON string."""
    sec, frac = divmod(ns, 1_000_000_000)
    return b'"%s.%09dZ"' % (_second(sec), frac)


class _Decimals:
    """Exact decimal texts of integers at one scale, kept once made (prices and sizes repeat)."""

    _LIMIT = 1 << 20  # texts kept at most, then forgotten at once

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self._texts: dict[int, bytes] = {}

    def __call__(self, value: int) -> bytes:
        got = self._texts.get(value)
        if got is None:
            if len(self._texts) >= self._LIMIT:
                self._texts.clear()
            got = self._texts[value] = format_units(value, self.scale).encode()
        return got


class _Format:
    """Message bytes for one (exchange, symbol) at one pair of scales."""

    def __init__(self, exchange: str, symbol: str, price_scale: int, size_scale: int) -> None:
        self.head = b'"symbol":%s,"exchange":%s' % (orjson.dumps(symbol), orjson.dumps(exchange))
        self.px, self.sz = _Decimals(price_scale), _Decimals(size_scale)

    def levels(self, px: Iterable[int], sz: Iterable[int]) -> bytes:
        price, amount = self.px, self.sz
        return b"[%s]" % b",".join(
            b'{"price":%s,"amount":%s}' % (price(p), amount(s)) for p, s in zip(px, sz, strict=True)
        )

    def trade(self, tid: int, price: int, size: int, side: int, exch: int, local: int) -> bytes:
        return (
            b'{"type":"trade",%s,"id":%s,"price":%s,"amount":%s,"side":%s,'
            b'"timestamp":%s,"localTimestamp":%s}'
            % (
                self.head,
                b"null" if tid == NO_ID else b'"%d"' % tid,
                self.px(price),
                self.sz(size),
                _SIDES[side],
                iso(local if exch == NO_TS else exch),
                iso(local),
            )
        )

    def change(self, snapshot: bool, bids: bytes, asks: bytes, exch: int, local: int) -> bytes:
        return (
            b'{"type":"book_change",%s,"isSnapshot":%s,"bids":%s,"asks":%s,'
            b'"timestamp":%s,"localTimestamp":%s}'
            % (
                self.head,
                b"true" if snapshot else b"false",
                bids,
                asks,
                iso(local if exch == NO_TS else exch),
                iso(local),
            )
        )

    def snapshot(self, kind: DataType, bids: bytes, asks: bytes, local: int) -> bytes:
        return (
            b'{"type":"book_snapshot",%s,"name":%s,"depth":%d,"interval":%d,"bids":%s,'
            b'"asks":%s,"timestamp":%s,"localTimestamp":%s}'
            % (
                self.head,
                orjson.dumps(kind.name),
                kind.depth,
                kind.interval_ms,
                bids,
                asks,
                iso(local),
                iso(local),
            )
        )


def _disconnect(exchange: str, symbol: str, gap: Gap, at: int) -> bytes:
    return (
        b'{"type":"disconnect","exchange":%s,"symbols":[%s],"kind":%s,"start":%s,"end":%s,'
        b'"detail":%s,"localTimestamp":%s}'
        % (
            orjson.dumps(exchange),
            orjson.dumps(symbol),
            orjson.dumps(gap.kind),
            iso(gap.start),
            iso(gap.end),
            orjson.dumps(gap.detail),
            iso(at),
        )
    )


# --- computation ------------------------------------------------------------------------

# (localTimestamp, rank, symbol index, order within the symbol at that time, bytes)
_Item = tuple[int, int, int, int, int, bytes]


def _column(table: pa.Table, name: str) -> Any:
    return table.column(name).to_numpy()


def _snapshot_items(
    day: Day, kind: DataType, start: int, end: int, fmt: _Format, sym: int, order: int
) -> Iterator[_Item]:
    """The valid snapshots of *kind* in ``[start, end]`` (grid times, or per message)."""
    table = day.snapshot_table(
        kind.depth, f"{kind.interval_ms}ms", start=start, end=end, exact=True
    )
    ts = _column(table, "ts").astype(np.int64)
    valid = _column(table, "valid")
    levels = range(kind.depth)
    px = {s: np.column_stack([_column(table, f"{s}_px_{i}") for i in levels]) for s in _NAMES}
    sz = {s: np.column_stack([_column(table, f"{s}_sz_{i}") for i in levels]) for s in _NAMES}
    keep = (ts >= start) & (ts <= end)
    per_message = kind.interval_ms == 0
    if per_message:
        # One row per message; keep those that changed the top levels (or the validity).
        key = np.column_stack([valid.astype(np.int64), *px.values(), *sz.values()])
        change = np.ones(len(ts), bool)
        change[1:] = (key[1:] != key[:-1]).any(axis=1)
        keep &= change
        grps = _message_bounds(day)[2]
    for r in np.nonzero(keep & valid)[0].tolist():
        bids, asks = (
            fmt.levels(px[s][r][sz[s][r] > 0].tolist(), sz[s][r][sz[s][r] > 0].tolist())
            for s in _NAMES
        )
        t = int(ts[r])
        body = fmt.snapshot(kind, bids, asks, t)
        if per_message:
            yield t, _MESSAGE, sym, int(grps[r]) * 4 + 2, order, body
        else:
            yield t, _GRID, sym, order, 0, body


def _message_bounds(day: Day) -> tuple[I64, I64, I64]:
    """Start and stop (in the book operations) and ``grp`` of each message that has any."""
    grp = day.decoded.ops.grp
    if len(grp) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    starts = np.concatenate([[0], np.nonzero(grp[1:] != grp[:-1])[0] + 1]).astype(np.int64)
    stops = np.concatenate([starts[1:], [len(grp)]]).astype(np.int64)
    return starts, stops, grp[starts].astype(np.int64)


def _change_items(
    day: Day, start: int, end: int, fresh: I64, fmt: _Format, sym: int, state: dict[str, Any]
) -> Iterator[_Item]:
    """``book_change`` messages in ``[start, end]``: each message's levels while valid, the
    whole book when the client's book must be rebuilt (see the module docstring)."""
    ops = day.decoded.ops
    starts, stops, grps = _message_bounds(day)
    after = day.snapshot_table(1, 0, exact=True)  # one row per message, with its validity
    valid = _column(after, "valid")
    if len(valid) != len(starts):
        raise AssertionError("the book kernel gave a row count other than the messages'")
    engine = BookEngine(depth=0)
    fed = 0
    for k in range(len(starts)):
        a, z = int(starts[k]), int(stops[k])
        t = int(ops.ts[a])
        if t > end:
            break
        if t < start or not valid[k]:
            state["need_full"] = state["need_full"] or not valid[k]
            state["last"] = t
            continue
        # A disconnect message sent since the last message: the client drops its book.
        lost = np.searchsorted(fresh, t, "left") > np.searchsorted(fresh, state["last"], "left")
        whole = state["need_full"] or bool(lost) or bool((ops.op[a:z] == OP_CLEAR).any())
        state["last"] = t
        exch = int(ops.exch[a])
        order = int(grps[k]) * 4
        if whole:
            engine.feed(ops.slice(fed, z))
            fed = z
            (bp, bs), (ap, az) = engine.levels(BID), engine.levels(ASK)
            state["need_full"] = False
            yield (
                t, _MESSAGE, sym, order, 0,
                fmt.change(True, fmt.levels(bp.tolist(), bs.tolist()),
                           fmt.levels(ap.tolist(), az.tolist()), exch, t),
            )  # fmt: skip
            continue
        sel = np.nonzero(ops.op[a:z] == OP_SET)[0] + a
        if len(sel) == 0:
            continue
        side = ops.side[sel]
        bid, ask = sel[side == BID], sel[side == ASK]
        yield (
            t, _MESSAGE, sym, order, 0,
            fmt.change(False, fmt.levels(ops.price[bid].tolist(), ops.size[bid].tolist()),
                       fmt.levels(ops.price[ask].tolist(), ops.size[ask].tolist()), exch, t),
        )  # fmt: skip
    # The engine is only fed up to the last whole book; nothing reads it afterwards.


def _trade_items(day: Day, start: int, end: int, fmt: _Format, sym: int) -> Iterator[_Item]:
    tr = day.decoded.trades
    idx = np.nonzero(~tr.historical & (tr.ts >= start) & (tr.ts <= end))[0]
    for j in idx.tolist():
        t = int(tr.ts[j])
        yield (
            t, _MESSAGE, sym, int(tr.grp[j]) * 4 + 1, j,
            fmt.trade(int(tr.tid[j]), int(tr.price[j]), int(tr.size[j]), int(tr.side[j]),
                      int(tr.exch[j]), t),
        )  # fmt: skip


def _gaps(days: Days, start: int, end: int) -> list[tuple[int, Gap]]:
    """The gaps that meet ``[start, end]``, each with the time its disconnect message is sent."""
    out = []
    for g in days.gap_list():
        if g.start <= end and (g.end > start or g.start >= start):
            out.append((max(g.start, start), g))
    return out


def _symbol_items(opts: Options, data: Root, symbol: str, sym: int) -> list[_Item]:
    start, end = opts.from_ns, opts.to_ns - 1
    # The request's dates within the symbol's recorded ones: a date before the first or
    # after the last is not a missing day of the recording.
    dates = sorted({p.date for p in contract.list_partitions(data, opts.exchange, symbol=symbol)})
    first = max(contract.date_of_ns(start), dates[0])
    last = min(contract.date_of_ns(end), dates[-1])
    if first > last:
        return []
    days = open_range(first, last, symbol, opts.exchange, data)
    gaps = _gaps(days, start, end)
    fresh = np.array(sorted({at for at, _ in gaps}), np.int64)
    items: list[_Item] = []
    if opts.disconnects:
        items.extend(
            (at, _DISCONNECT, sym, k, 0, _disconnect(opts.exchange, symbol, g, at))
            for k, (at, g) in enumerate(gaps)
        )
    state: dict[str, Any] = {"need_full": True, "last": start}
    for k, day in enumerate(days.days):
        fmt = _Format(opts.exchange, symbol, day.price_scale, day.size_scale)
        # The day's own span (from midnight after the first day), within the request.
        lo = max(start, day.midnight_ns if k else day.span[0])
        hi = min(end, day.span[1])
        if lo > hi:
            continue
        if opts.trades:
            items.extend(_trade_items(day, lo, hi, fmt, sym))
        if opts.book_changes:
            items.extend(_change_items(day, lo, hi, fresh, fmt, sym, state))
        for order, kind in enumerate(opts.snapshots):
            items.extend(_snapshot_items(day, kind, lo, hi, fmt, sym, order))
    items.sort(key=lambda it: it[:5])
    return items


def _option_items(opts: Options, data: Root, index: int) -> Iterator[tuple[Any, ...]]:
    streams = [_symbol_items(opts, data, symbol, sym) for sym, symbol in enumerate(opts.symbols)]
    for it in heapq.merge(*streams, key=lambda it: (it[0], it[1], it[2], it[3], it[4])):
        yield it[0], index, it


def timed(options: Sequence[Options], data: Root) -> Iterator[tuple[int, bytes]]:
    """:func:`stream`, each message with its ``localTimestamp`` in ns."""
    merged = heapq.merge(
        *(_option_items(o, data, i) for i, o in enumerate(options)),
        key=lambda x: (x[0], x[2][1], x[1], x[2][2:5]),
    )
    for local, _, it in merged:
        yield local, it[5]


def stream(options: Sequence[Options], data: Root) -> Iterator[bytes]:
    """The normalized messages of *options* (:func:`parse_options`), in order, as JSON bytes."""
    for _, message in timed(options, data):
        yield message


def messages(options: str | bytes, data: RootLike) -> Iterator[bytes]:
    """:func:`stream` of the options' JSON text (tardis-machine's ``options`` parameter)."""
    root = as_root(data)
    return stream(parse_options(options, root), root)


# --- the server's edges -----------------------------------------------------------------

_POLICY, _NORMAL = 1008, 1000
_NDJSON = "application/x-json-stream"  # tardis-machine's content type
_REASON = 120  # a close reason must fit 123 bytes (RFC 6455 section 5.5)
_PIECE = 65_536  # lines per chunk of an HTTP answer


def _request_options(path: str, config: ServeConfig) -> list[Options]:
    """The options of a request's query, within the server's ``--from``/``--to``."""
    given = parse_qs(urlsplit(path).query).get("options")
    if not given:
        raise UsageError("options: missing (?options=<json>)")
    out = []
    for o in parse_options(given[0], config.data):
        lo = max(o.from_ns, config.start_ns) if config.start_ns is not None else o.from_ns
        hi = min(o.to_ns, config.end_ns) if config.end_ns is not None else o.to_ns
        out.append(dataclasses.replace(o, from_ns=lo, to_ns=max(hi, lo + 1)))
    return out


def _compute(path: str, config: ServeConfig) -> tuple[npt.NDArray[np.int64], list[bytes]]:
    """The messages of a request, and their ``localTimestamp`` in ns."""
    pairs = list(timed(_request_options(path, config), config.data))
    return np.array([t for t, _ in pairs], np.int64), [m for _, m in pairs]


async def respond(connection: ServerConnection, request: Request, config: ServeConfig) -> Response:
    """``GET /replay-normalized``: the messages as NDJSON, or a JSON error with its status."""
    loop = asyncio.get_running_loop()
    try:
        _, lines = await loop.run_in_executor(None, _compute, request.path, config)
    except TickrecError as exc:
        status = 404 if isinstance(exc, NotFoundError) else 400
        response = connection.respond(
            http.HTTPStatus(status), orjson.dumps({"message": str(exc)}).decode()
        )
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def pieces() -> AsyncGenerator[bytes, None]:
        for lo in range(0, len(lines), _PIECE):
            yield b"".join(line + b"\n" for line in lines[lo : lo + _PIECE])

    return await send_chunked(connection, _NDJSON, pieces(), config.send_timeout_s)


async def send(ws: ServerConnection, config: ServeConfig) -> None:
    """``WS /ws-replay-normalized``: one text frame per message, then close with code 1000.

    Frames follow ``--speed`` by their ``localTimestamp`` (:mod:`replay.pacing`).
    Malformed options close with code 1008 and the reason; a client that
    reads nothing for ``send_timeout_s`` is closed with 1008 too.
    """
    assert ws.request is not None
    loop = asyncio.get_running_loop()
    try:
        local, lines = await loop.run_in_executor(None, _compute, ws.request.path, config)
    except TickrecError as exc:
        await ws.close(_POLICY, str(exc)[:_REASON])
        return

    async def write(i: int, j: int) -> bool:
        try:
            async with asyncio.timeout(config.send_timeout_s), ws.send_context():
                for line in lines[i:j]:
                    ws.protocol.send_text(line)
        except TimeoutError:
            log.warning("closing a client that read nothing for %.0f s", config.send_timeout_s)
            await ws.close(_POLICY, "client too slow")
            return False
        return True

    if await send_paced(local, config.speed, write):
        await ws.close(_NORMAL, "end of replay")
