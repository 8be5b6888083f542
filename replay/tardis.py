"""tardis-machine's exchange-native endpoints on ``tickrec serve``: ``/replay`` and ``/ws-replay``.

Built from tardis-machine's public documentation and source (its HTTP
``/replay`` and WebSocket ``/ws-replay`` handlers, and tardis-dev's
``replay``), for each venue that names its tardis channels
(:class:`tickrec.serving.TardisFacts`; Gemini's are in
:mod:`tickrec.venues.gemini.serve`), the venue being the ``exchange``:

- ``GET /replay?options=<json>``: ``exchange``, ``from``, ``to`` (required;
  like tardis, a time without ``Z`` is UTC and both are cut to the minute:
  ``from`` inclusive, ``to`` exclusive), ``filters`` (``[{channel,
  symbols?}]``; none: every channel) and ``withDisconnects``. The answer is
  NDJSON, one line ``{"localTimestamp":"<ISO, 7 decimals>Z","message":<raw>}``
  per stored message, in receive order, the message as stored; with
  ``withDisconnects`` an empty line where a stored connection ended and
  another row follows (one line however many ended there). The body is
  sent in chunks as it is made (:mod:`replay.http_body`).
- ``WS /ws-replay?exchange=&from=&to=[&session=]``: the client sends the
  venue's subscribe (Gemini's v2 ``subscribe``: ``l2`` -> channels
  ``trade``, ``l2_updates``, ``auction_*``, as tardis-machine maps it); the
  session starts
  ``session_delay_s`` after its first connection (tardis-machine: 2 s), then
  each connection gets the stored messages of its channels and symbols,
  raw, and is closed with 1000 ``WS replay finished``. Connections with the
  same ``session`` key that join before the start are one session: their
  messages go out merged by receive time. A connection with no subscription
  fails the session (1011), as in tardis-machine.

Channels. A stored row's channel is its kind, read by its protocol's header
reader, as the venue maps it (Gemini: v2 messages by their ``type``, the
current API's by stream, ``depth`` for ``depthUpdate``); rows with no tardis
channel (heartbeats, replies, ``gemini.v1`` rows, malformed ones) are never
sent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs

import numpy as np
import orjson
import pyarrow as pa
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from replay.api import to_ns
from tickrec.serving import TardisFacts
from tickrec.venues import header_of

if TYPE_CHECKING:
    from replay.serve import _Rows

__all__ = [
    "HTTP_PATH",
    "WS_PATH",
    "BadOptions",
    "Options",
    "Selection",
    "Sessions",
    "Tardis",
    "http_options",
    "merge",
    "ndjson",
]

HTTP_PATH = "/replay"
WS_PATH = "/ws-replay"
_MINUTE = 60_000_000_000
#: The venues whose messages are replayed, by exchange name, with their tardis channels.
Exchanges = dict[str, TardisFacts]


class BadOptions(Exception):
    """Replay options tardis would refuse."""

    def body(self) -> str:
        """The error body (tardis-machine answers ``{"message": ...}``)."""
        return orjson.dumps({"message": str(self)}).decode()


def _instant(value: object, name: str) -> int:
    if not isinstance(value, str) or not value:
        raise BadOptions(f'Invalid "{name}" argument: {value}. Please provide valid date string.')
    try:
        ns = to_ns(value)  # without an offset: UTC, as tardis reads it
    except ValueError:
        raise BadOptions(
            f'Invalid "{name}" argument: {value}. Please provide valid date string.'
        ) from None
    return ns - ns % _MINUTE


@dataclass
class Options:
    """Replay options: the exchange, the span ``[from_ns, to_ns)`` and
    ``(channel, symbols or None)`` filters, among *channels*."""

    exchange: str
    channels: frozenset[str]
    from_ns: int
    to_ns: int
    filters: list[tuple[str, frozenset[str] | None]] = field(default_factory=list)
    with_disconnects: bool = False

    @classmethod
    def parse(cls, obj: Any, exchanges: Exchanges) -> Options:
        """Options from tardis' JSON object (or a ``/ws-replay`` query)."""
        if not isinstance(obj, dict):
            raise BadOptions("options must be a JSON object")
        exchange = obj.get("exchange")
        if not isinstance(exchange, str) or exchange not in exchanges:
            raise BadOptions(
                f'Invalid "exchange" argument: {exchange}. '
                f"Please provide one of the following exchanges: {', '.join(exchanges)}."
            )
        start, end = _instant(obj.get("from"), "from"), _instant(obj.get("to"), "to")
        if end < start:
            raise BadOptions('Invalid "to" and "from" arguments combination.')
        channels = frozenset(c for m in exchanges[exchange].channels.values() for c in m.values())
        with_disconnects = obj.get("withDisconnects") is True
        out = cls(exchange, channels, start, end, with_disconnects=with_disconnects)
        filters = obj.get("filters") or []
        if not isinstance(filters, list):
            raise BadOptions('"filters" must be an array')
        for f in filters:
            out.add(f.get("channel") if isinstance(f, dict) else None, f.get("symbols"))
        return out

    def add(self, channel: object, symbols: object) -> None:
        """Add a filter (tardis upper-cases the symbols)."""
        if channel not in self.channels:
            raise BadOptions(
                f"unknown channel {channel!r} for {self.exchange}: {sorted(self.channels)}"
            )
        if symbols is not None and not (
            isinstance(symbols, list) and all(isinstance(s, str) for s in symbols)
        ):
            raise BadOptions(f"symbols of {channel} must be an array of strings")
        wanted = None if not symbols else frozenset(s.upper() for s in symbols)
        self.filters.append((str(channel), wanted))


class Selection(NamedTuple):
    """Selected stored rows in receive order: time, connection number, payload."""

    recv_ns: np.ndarray
    conn: np.ndarray
    payloads: list[bytes]


_HEAD, _MIDDLE = b'{"localTimestamp":"', b'","message":'
_WIDTH = len(_HEAD) + 28 + len(_MIDDLE)


def iso(recv_ns: np.ndarray) -> np.ndarray:
    """tardis' ``localTimestamp`` texts, ISO 8601 UTC with 7 decimals (100 ns, cut) and ``Z``.

    An ``(n, 28)`` array of ASCII bytes, one row per time: each distinct
    second is formatted once, the decimals are digits computed in place.
    """
    seconds, inverse = np.unique(recv_ns // 1_000_000_000, return_inverse=True)
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").astype("S19")
    out = np.empty((len(recv_ns), 28), np.uint8)
    out[:, :19] = text.view(np.uint8).reshape(-1, 19)[inverse]
    out[:, 19] = ord(".")
    frac = recv_ns % 1_000_000_000 // 100
    for k in range(7):
        out[:, 26 - k] = frac // 10**k % 10 + ord("0")
    out[:, 27] = ord("Z")
    return out


def ndjson(selection: Selection, with_disconnects: bool, rows: int = 65_536) -> Iterator[bytes]:
    """The ``/replay`` body of *selection*, in pieces of *rows* lines: fixed-width line
    heads, then the payloads."""
    conn, n = selection.conn, len(selection.payloads)
    ends = np.zeros(n, bool)
    if with_disconnects and n:
        # An empty line after each connection's last row, unless it is the last line.
        _, last = np.unique(conn[::-1], return_index=True)
        ends[n - 1 - last] = True
        ends[n - 1] = False
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        heads = np.empty((hi - lo, _WIDTH), np.uint8)
        heads[:, : len(_HEAD)] = np.frombuffer(_HEAD, np.uint8)
        heads[:, len(_HEAD) : len(_HEAD) + 28] = iso(selection.recv_ns[lo:hi])
        heads[:, len(_HEAD) + 28 :] = np.frombuffer(_MIDDLE, np.uint8)
        flat = heads.tobytes()
        tails = [b"}\n"] * (hi - lo)
        for i in np.flatnonzero(ends[lo:hi]).tolist():
            tails[i] = b"}\n\n"
        parts: list[bytes] = [b""] * (3 * (hi - lo))
        parts[0::3] = [flat[i : i + _WIDTH] for i in range(0, len(flat), _WIDTH)]
        parts[1::3] = selection.payloads[lo:hi]
        parts[2::3] = tails
        yield b"".join(parts)


class Tardis:
    """The stored rows as tardis channels: what both endpoints select from.

    *venues* holds the stored rows and the tardis channels of each exchange.
    """

    def __init__(self, venues: dict[str, tuple[_Rows, TardisFacts]]) -> None:
        self.venues = venues
        self.exchanges: Exchanges = {name: facts for name, (_, facts) in venues.items()}
        self._channels: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def _channel(
        self, names: Mapping[str, str], protocol: str, symbol: str, table: pa.Table
    ) -> np.ndarray:
        key = (protocol, symbol)
        with self._lock:
            got = self._channels.get(key)
        if got is None:
            got = np.array(
                [
                    names.get(header_of(protocol, p).kind, "")
                    for p in table.column("payload").to_pylist()
                ],
                dtype=object,
            )
            with self._lock:
                self._channels[key] = got
        return got

    def select(self, options: Options) -> Selection:
        """The stored rows the options ask for, in receive order (then run and ``seq``)."""
        recv_parts, run_parts, seq_parts, conn_parts, payloads = [], [], [], [], []
        rows, facts = self.venues[options.exchange]
        for symbol in rows.symbols:
            for protocol, names in facts.channels.items():
                t = rows.table(protocol, "ws", symbol)
                if t.num_rows == 0:
                    continue
                channel = self._channel(names, protocol, symbol, t)
                if options.filters:
                    keep = np.zeros(t.num_rows, bool)
                    for name, symbols in options.filters:
                        if symbols is None or symbol in symbols:
                            keep |= channel == name
                else:
                    keep = channel != ""
                recv = t.column("recv_ts").cast(pa.int64()).to_numpy()
                keep &= (recv >= options.from_ns) & (recv < options.to_ns)
                idx = np.flatnonzero(keep)
                if not len(idx):
                    continue
                sub = t.take(pa.array(idx))
                recv_parts.append(recv[idx])
                runs = sub.column("run_id").cast(pa.string()).to_numpy(zero_copy_only=False)
                run_parts.append(runs)
                seq_parts.append(sub.column("seq").to_numpy())
                conn_parts.append(sub.column("conn_id").to_numpy())
                payloads.extend(sub.column("payload").cast(pa.binary()).to_pylist())
        if not payloads:
            return Selection(np.zeros(0, np.int64), np.zeros(0, np.int64), [])
        recv, run = np.concatenate(recv_parts), np.concatenate(run_parts)
        seq, conn = np.concatenate(seq_parts), np.concatenate(conn_parts)
        order = np.lexsort((seq, run, recv))
        # One number per stored connection (run, conn_id).
        keys = [f"{r}\0{c}" for r, c in zip(run[order].tolist(), conn[order].tolist(), strict=True)]
        numbers: dict[str, int] = {}
        conn_no = np.array([numbers.setdefault(k, len(numbers)) for k in keys], np.int64)
        return Selection(recv[order], conn_no, [payloads[i] for i in order.tolist()])


def http_options(query: str, exchanges: Exchanges) -> Options:
    """The options of a ``GET /replay?options=...`` query."""
    values = parse_qs(query).get("options")
    if not values:
        raise BadOptions("the options query parameter is missing")
    try:
        obj = orjson.loads(values[0])
    except orjson.JSONDecodeError as exc:
        raise BadOptions(f"options are not JSON: {exc}") from None
    return Options.parse(obj, exchanges)


def ws_options(query: str, exchanges: Exchanges) -> Options:
    """The options of a ``/ws-replay`` query (``exchange``, ``from``, ``to``), no filters yet."""
    q = {k: v[0] for k, v in parse_qs(query).items()}
    obj = {"exchange": q.get("exchange"), "from": q.get("from"), "to": q.get("to")}
    return Options.parse(obj, exchanges)


def merge(picks: list[Selection], batch: int = 512) -> Iterator[tuple[int, list[bytes], int]]:
    """The messages of several connections merged by receive time (ties: in *picks* order).

    Yields ``(connection index, payloads, receive time of the last)``: runs of
    consecutive messages of one connection, at most *batch* long.
    """
    if not picks:
        return
    recv = np.concatenate([p.recv_ns for p in picks])
    owner = np.concatenate([np.full(len(p.payloads), i) for i, p in enumerate(picks)])
    payloads = [x for p in picks for x in p.payloads]
    order = np.argsort(recv, kind="stable").tolist()
    i = 0
    while i < len(order):
        who = int(owner[order[i]])
        j = i
        while j < len(order) and j - i < batch and owner[order[j]] == who:
            j += 1
        yield who, [payloads[k] for k in order[i:j]], int(recv[order[j - 1]])
        i = j


Write = Callable[[ServerConnection, list[bytes], int], Awaitable[bool]]


class _Client:
    def __init__(self, ws: ServerConnection, options: Options, facts: TardisFacts) -> None:
        self.ws, self.options, self.facts, self.subscriptions = ws, options, facts, 0

    async def read(self) -> None:
        """Turn the client's subscribe messages into filters; ignore anything else."""
        try:
            async for text in self.ws:
                for channel, symbols in self.facts.subscriptions(text):
                    try:
                        self.options.add(channel, symbols)
                    except BadOptions:
                        continue
                    self.subscriptions += 1
        except ConnectionClosed:
            pass


class _Session:
    def __init__(self, tardis: Tardis, delay_s: float, write: Write) -> None:
        self.tardis, self.write = tardis, write
        self.clients: list[_Client] = []
        self.started = False
        self.done = asyncio.Event()
        self.timer = asyncio.get_running_loop().call_later(delay_s, self._start)

    def _start(self) -> None:
        self.started = True
        self.runner = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            if any(c.subscriptions == 0 for c in self.clients):
                for c in self.clients:
                    await c.ws.close(1011, "No subscriptions received for websocket connection")
                return
            loop = asyncio.get_running_loop()
            picks = [
                await loop.run_in_executor(None, self.tardis.select, c.options)
                for c in self.clients
            ]
            for who, batch, clock_ns in merge(picks):
                if not await self.write(self.clients[who].ws, batch, clock_ns):
                    return
            for c in self.clients:
                await c.ws.close(1000, "WS replay finished")
        except ConnectionClosed:
            for c in self.clients:
                await c.ws.close(1001, "a connection of the session left")
        finally:
            self.done.set()


class Sessions:
    """``/ws-replay`` sessions, by their ``session`` key."""

    def __init__(self, tardis: Tardis, delay_s: float, write: Write) -> None:
        self.tardis = tardis
        self.delay_s, self.write = delay_s, write
        self._sessions: dict[str, _Session] = {}
        self._numbers = count()

    def check(self, query: str) -> None:
        """Refuse a connection whose query tardis would refuse (:class:`BadOptions`)."""
        ws_options(query, self.tardis.exchanges)

    async def join(self, ws: ServerConnection, query: str) -> None:
        """Add *ws* to its session, and return when the session is over."""
        options = ws_options(query, self.tardis.exchanges)
        key = parse_qs(query).get("session", [""])[0] or f"\0{next(self._numbers)}"
        session = self._sessions.get(key)
        if session is None or session.done.is_set():
            session = self._sessions[key] = _Session(self.tardis, self.delay_s, self.write)
        if session.started:
            await ws.close(
                1011, "trying to add new WS connection to a session that already started"
            )
            return
        client = _Client(ws, options, self.tardis.exchanges[options.exchange])
        session.clients.append(client)
        reader = asyncio.ensure_future(client.read())
        try:
            await session.done.wait()
        finally:
            reader.cancel()
            if self._sessions.get(key) is session and session.done.is_set():
                del self._sessions[key]
