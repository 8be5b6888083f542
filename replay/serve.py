"""``tickrec serve``: recorded data replayed over a local websocket in the venue's own protocol.

A bot, or any client of the venue, points its websocket URL at this server
instead of the exchange and gets the recorded messages back, byte for byte
and in recorded order, on the same routes as :mod:`tickrec.sim`:

- Gemini market data v1 at ``/v1/marketdata/{symbol}``: the stored ``ws``
  rows of that symbol's ``gemini.v1`` connections;
- Gemini market data v2 at ``/v2/marketdata``: after the client's
  ``subscribe`` to ``l2``, the stored ``gemini.v2`` rows of the subscribed
  symbols, merged in recorded order (a connection-wide row, such as a
  heartbeat, is stored in every symbol's partition and sent once);
- the current Gemini API at ``/``: a stored ``gemini.ws`` connection, its
  stored replies answering the client's matching requests and the frames of
  the streams it subscribed to (:mod:`replay.serve_ws`);
- REST ``/v1/book/{symbol}``: the last book reply stored at or before the
  replay clock (the receive time of the last message sent on any
  connection; before any, the start of the replay), and ``/v1/symbols``;
- Binance spot's combined stream at ``/stream?streams=<s>@depth@100ms/<s>@trade``:
  the stored ``binance.spot`` rows of the streams asked for (and the
  connection-wide ones, such as ``serverShutdown``), and the raw streams at
  ``/ws/<name>`` (each event alone, the ``data`` of its stored combined
  frame, byte for byte); ``/ws`` and ``/stream`` alone take their streams
  from the client's first ``SUBSCRIBE``, and a later ``SUBSCRIBE`` or
  ``UNSUBSCRIBE`` changes them while the replay runs; REST ``/api/v3/depth``
  (the last depth reply stored at or before the replay clock, a sync or a
  check snapshot; one stored before ``--from`` is older than the frames
  served, so the book rebuilt by the clock answers instead) and
  ``/api/v3/exchangeInfo`` (the stored symbols);
- tardis-machine's exchange-native ``GET /replay`` and ``WS /ws-replay``
  (:mod:`replay.tardis`).

Stored connections. The data may hold many connections one after another
(reconnects, restarts, midnight). One client connection replays one stored
connection; when it ends, the server closes the client with code 1012
(service restart), and the next client on the same route and symbols goes on
with the next stored connection. After the last one, the close code is 1000
("end of recording"), and a later client on that route is closed at once with
the same code: time never runs backwards. So a client that reconnects, as
every venue client must, sees the recording as it happened, disconnects
included; a new session is a new server. A connection open at ``--from``
opens with the book its rows before ``--from`` rebuild (:func:`_opened`; the
current API answers ``depth`` from it), so a client is in sync from its
first frame, as on a new venue connection.

Pacing. By default frames go as fast as the client reads them (each send
waits for the socket to drain); a client that reads nothing for
:attr:`ServeConfig.send_timeout_s` is closed with code 1008 and a logged
reason. With ``speed`` set, frames follow their stored receive times, that
many times faster than recorded (1: real time), from the connection's first
frame.

Limits. The server binds loopback unless told otherwise, and caps the
number of open connections, the size of a client message and the symbols of
one subscription. A request it cannot serve is refused as the simulator
refuses it: an HTTP error with Gemini's error body, or a close with code
1008 and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
import signal
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from websockets.asyncio import server as ws_server
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from replay import http_body, normalized, tardis
from replay.api import Day
from replay.pacing import send_paced
from replay.serve_ws import StoredWs, WsReplay
from replay.ticks import format_units
from replay.view import BookView
from replay.wsframes import Framed, text_frames
from tickrec import contract
from tickrec.background import Background
from tickrec.errors import NotFoundError, TickrecError
from tickrec.sim.feed import Reject
from tickrec.store import Root
from tickrec.venues import VENUES
from tickrec.venues.base import Recording
from tickrec.venues.gemini import sim_v1 as v1
from tickrec.venues.gemini import sim_v2 as v2
from tickrec.venues.gemini import sim_ws as ws_api
from tickrec.venues.gemini import v1 as gemini_v1
from tickrec.venues.gemini import v2 as gemini_v2
from tickrec.venues.limits import MessageRate, WeightWindow

__all__ = ["ServeConfig", "ServeServer", "Served", "Server", "run"]

log = logging.getLogger("tickrec.serve")

VENUE = "gemini"
_V1, _V2, _WS, _REST = "gemini.v1", "gemini.v2", "gemini.ws", "gemini.rest"
SPOT_VENUE = "binance"
_SPOT, _SPOT_REST = "binance.spot", "binance.rest"
_STREAM_PATH = re.compile(r"^/stream/?$")
_RAW_PATH = re.compile(r"^/ws/(.+)$")
_BARE_RAW_PATH = re.compile(r"^/ws/?$")
_DEPTH_PATH = re.compile(r"^/api/v3/depth/?$")
_INFO_PATH = re.compile(r"^/api/v3/exchangeInfo/?$")
#: The streams of a combined-stream URL that are served: ``<symbol>@<kind>``.
_STREAM_NAME = re.compile(r"^([a-z0-9]+)@(depth@100ms|depth|trade|aggTrade|bookTicker)$")
_BOOK_PATH = re.compile(r"^/v1/book/([^/]+)/?$")
_SYMBOLS_PATH = re.compile(r"^/v1/symbols/?$")
_NORMAL, _RESTART, _POLICY, _TRY_LATER = 1000, 1012, 1008, 1013
_COLUMNS = ("recv_ts", "seq", "run_id", "conn_id", "protocol", "source", "payload")


@dataclass(frozen=True)
class ServeConfig:
    """What ``tickrec serve`` serves, and how."""

    data: Root
    start_ns: int | None = None
    end_ns: int | None = None
    speed: float | None = None
    host: str = "127.0.0.1"
    port: int = 0
    max_connections: int = 64
    max_message: int = 64 * 1024
    max_symbols: int = 100
    send_timeout_s: float = 30.0
    #: How long a new connection may take to send its request (HTTP or websocket).
    open_timeout_s: float = 10.0
    #: The current API route: how long a new connection's replay waits at a stored
    #: reply for the client's request (see :mod:`replay.serve_ws`).
    request_wait_s: float = 1.0
    #: ``/ws-replay``: how long a session gathers connections and subscriptions
    #: before it starts (tardis-machine waits 2 s).
    session_delay_s: float = 2.0


@dataclass(frozen=True)
class Stored:
    """One stored connection's messages, in recorded order.

    ``body`` holds the payloads (an Arrow ``large_binary`` array); ``sent``
    marks the rows the recording client sent (``ws_sent``), when they were
    read too.
    """

    run_id: str
    conn_id: int
    recv_ns: np.ndarray
    body: pa.Array
    sent: np.ndarray
    #: The rows before ``--from``: they rebuild the book the client opens with, and
    #: are not sent.
    lead: int = 0

    @cached_property
    def payloads(self) -> list[bytes]:
        """The payloads as bytes objects, made on first use."""
        return self.body.to_pylist()

    @cached_property
    def frames(self) -> Framed:
        """The payloads as websocket text frames, made on first use."""
        return Framed(self.body)


class _Rows:
    """A dataset's stored rows, read once per (protocol, symbol) and kept.

    Rows before ``--from`` are kept too: a connection open at ``--from``
    opens with the book they rebuild, and a REST lookup at the start finds
    the last reply before it.
    """

    def __init__(self, config: ServeConfig, venue: str = VENUE) -> None:
        self.config, self.venue = config, venue
        self._tables: dict[tuple[str, str, bool], pa.Table] = {}
        self._connections: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Stored]] = {}
        self._lock = threading.RLock()
        self.symbols = sorted({p.symbol for p in contract.list_partitions(config.data, venue)})

    def table(
        self, protocol: str, source: str, symbol: str, before_start: bool = False
    ) -> pa.Table:
        """The rows of *symbol* with *protocol* and *source*, within the replay's span
        (*before_start*: from the first row stored instead of from ``--from``)."""
        key = (protocol + "/" + source, symbol, before_start)
        with self._lock:
            got = self._tables.get(key)
            if got is None:
                if before_start or self.config.start_ns is None:
                    got = self._read(protocol, source, symbol)
                else:
                    whole = self.table(protocol, source, symbol, before_start=True)
                    recv = whole.column("recv_ts").cast(pa.int64())
                    got = whole.filter(pc.greater_equal(recv, self.config.start_ns))
                self._tables[key] = got
        return got

    def _read(self, protocol: str, source: str, symbol: str) -> pa.Table:
        parts = []
        for p in contract.list_partitions(self.config.data, self.venue, symbol=symbol):
            t = contract.read_partition(self.config.data, p.venue, p.date, p.symbol, _COLUMNS)
            keep = pc.and_(
                pc.equal(t.column("protocol").cast(pa.string()), protocol),
                pc.equal(t.column("source").cast(pa.string()), source),
            )
            if self.config.end_ns is not None:
                recv = t.column("recv_ts").cast(pa.int64())
                keep = pc.and_(keep, pc.less(recv, self.config.end_ns))
            parts.append(t.filter(keep))
        if not parts:
            return pa.table({c: pa.array([], pa.string()) for c in _COLUMNS}).slice(0, 0)
        return pa.concat_tables([p.cast(parts[0].schema) for p in parts])

    def connections(
        self, protocol: str, symbols: Sequence[str], sources: tuple[str, ...] = ("ws",)
    ) -> list[Stored]:
        """The stored connections of *protocol* carrying *symbols*, each in recorded order.

        Rows of one connection stored in several symbols' partitions (the
        connection-wide ones) are kept once, by ``(run_id, seq)``. Connections
        come in the order of their first receive time. *sources* are the
        ``source`` values read: ``ws`` (received), and ``ws_sent`` too when the
        requests matter. A connection open at ``--from`` keeps its rows before
        it as its ``lead``; one that ended before it is left out.
        """
        key = (protocol, tuple(symbols), sources)
        with self._lock:
            got = self._connections.get(key)
        if got is None:
            got = self._connect(protocol, symbols, sources)
            with self._lock:
                self._connections[key] = got
        return got

    def _connect(
        self, protocol: str, symbols: Sequence[str], sources: tuple[str, ...]
    ) -> list[Stored]:
        tables = [self.table(protocol, src, s, True) for s in symbols for src in sources]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return []
        t = pa.concat_tables([x.cast(tables[0].schema) for x in tables])
        run = t.column("run_id").cast(pa.string()).to_numpy(zero_copy_only=False)
        seq = t.column("seq").to_numpy()
        conn = t.column("conn_id").to_numpy()
        recv = t.column("recv_ts").cast(pa.int64()).to_numpy()
        # Recorded order: by run, then seq (the recorder's own order); a row twice is kept once.
        order = np.lexsort((seq, run))
        keep = np.ones(len(order), bool)
        keep[1:] = (run[order][1:] != run[order][:-1]) | (seq[order][1:] != seq[order][:-1])
        order = order[keep]
        payloads = t.column("payload").cast(pa.large_binary()).take(pa.array(order))
        sent = t.column("source").cast(pa.string()).to_numpy(zero_copy_only=False) == "ws_sent"
        out: list[Stored] = []
        start = 0
        o_run, o_conn = run[order], conn[order]
        begin = self.config.start_ns
        for i in range(1, len(order) + 1):
            if i == len(order) or o_run[i] != o_run[start] or o_conn[i] != o_conn[start]:
                rows = slice(start, i)
                times = recv[order][rows]
                lead = 0 if begin is None else int(np.count_nonzero(times < begin))
                if lead < len(times):
                    out.append(
                        Stored(
                            str(o_run[start]),
                            int(o_conn[start]),
                            times,
                            payloads[rows],
                            sent[order][rows],
                            lead,
                        )
                    )
                start = i
        # A run's connections are numbered in order; runs are taken by their first row.
        out.sort(key=lambda s: (int(s.recv_ns[0]), s.run_id, s.conn_id))
        return out

    def book(self, symbol: str, at_ns: int, protocol: str = _REST) -> tuple[int, str] | None:
        """The receive time and payload of the last stored REST book reply of *symbol*
        received at or before *at_ns* (the first one, when none is)."""
        t = self.table(protocol, "rest", symbol, before_start=True)
        if t.num_rows == 0:
            return None
        recv = t.column("recv_ts").cast(pa.int64()).to_numpy()
        k = max(int(np.searchsorted(recv, at_ns, side="right")) - 1, 0)
        return int(recv[k]), str(t.column("payload")[k].as_py())

    def spot_depth(self, symbol: str, at_ns: int) -> dict[str, object] | None:
        """The ``/api/v3/depth`` reply of *symbol*'s book after the rows received up to
        *at_ns* of the Binance connection that received the last of them, as the replay
        engine rebuilds it (its sync reply included); None where it is not valid.

        ``lastUpdateId`` is the ``u`` of the connection's last diff of *symbol*
        by then (or its sync reply's ``lastUpdateId``), the update the book is at.
        """
        ws_rows = self.table(_SPOT, "ws", symbol, before_start=True)
        recv = ws_rows.column("recv_ts").cast(pa.int64()).to_numpy()
        k = int(np.searchsorted(recv, at_ns, side="right")) - 1
        if k < 0:
            return None
        run, conn = ws_rows.column("run_id")[k].as_py(), ws_rows.column("conn_id")[k].as_py()
        mine = [
            t.filter(
                pc.and_(
                    pc.and_(
                        pc.equal(t.column("run_id").cast(pa.string()), run),
                        pc.equal(t.column("conn_id"), conn),
                    ),
                    pc.less_equal(t.column("recv_ts").cast(pa.int64()), at_ns),
                )
            )
            for t in (ws_rows, self.table(_SPOT_REST, "rest", symbol, before_start=True))
        ]
        t = pa.concat_tables([x.cast(mine[0].schema) for x in mine if x.num_rows])
        t = t.take(pc.sort_indices(t, [("seq", "ascending")]))
        last_id = None
        for payload in reversed(t.column("payload").to_pylist()):
            try:
                msg = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            event = msg.get("data", msg) if isinstance(msg, dict) else None
            if isinstance(event, dict) and (
                event.get("e") == "depthUpdate" or "lastUpdateId" in event
            ):
                last_id = event.get("u", event.get("lastUpdateId"))
                break
        columns = {name: t.column(name) for name in t.column_names}
        book = _book_of(columns, symbol, at_ns, 5000, SPOT_VENUE)
        if last_id is None or book is None:
            return None
        return {"lastUpdateId": last_id, "bids": book[0], "asks": book[1]}


def _first_recv_ns(data: Root, venues: Sequence[str]) -> int:
    """The earliest receive time stored for *venues* (from the first date's part footers)."""
    firsts: list[int] = []
    for venue in venues:
        partitions = contract.list_partitions(data, venue)
        first_date = min((p.date for p in partitions), default=None)
        firsts.extend(
            part.first_recv_ns
            for p in partitions
            if p.date == first_date
            for part in contract.list_parts(data, p)
        )
    return min(firsts, default=0)


class ServeServer:
    """The replay server inside a running event loop: :meth:`start`, then :meth:`stop`."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.rows = _Rows(config)
        self.spot = _Rows(config, SPOT_VENUE)
        if not self.rows.symbols and not self.spot.symbols:
            raise NotFoundError(f"no {VENUE} or {SPOT_VENUE} data under {config.data}")
        self.port = 0
        self._server: ws_server.Server | None = None
        #: The next stored connection of each route and subscription (Binance: its streams).
        self._cursor: dict[tuple[object, ...], int] = {}
        self._open = 0
        #: The replay clock: the receive time of the last frame sent, from the span's start.
        self.clock_ns = config.start_ns or _first_recv_ns(config.data, (VENUE, SPOT_VENUE))
        self.sent = 0
        self.sessions = tardis.Sessions(self.rows, config.session_delay_s, self._write)
        #: Binance's limits, counted by the wall clock as Binance counts them.
        self._limits = _limits(SPOT_VENUE)
        self._weight = WeightWindow(self._limits.weight_per_minute or 0)

    async def start(self) -> None:
        """Start listening."""
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            compression=None,
            max_size=self.config.max_message,
            open_timeout=None,
            create_connection=http_body.connection_type(self.config.open_timeout_s),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("serving %s on %s port %d", self.config.data, self.config.host, self.port)

    async def stop(self) -> None:
        """Close every connection (code 1001) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- HTTP -------------------------------------------------------------------------

    def _symbol(self, name: str) -> str:
        symbol = name.upper()
        if symbol not in self.rows.symbols:
            raise Reject(400, "InvalidSymbol", f"Supplied value '{name}' is not a valid symbol")
        return symbol

    @staticmethod
    def _reply(connection: ServerConnection, status: int, body: str) -> Response:
        response = connection.respond(http.HTTPStatus(status), body)
        del response.headers["Content-Type"]  # respond() set text/plain; Headers keeps both
        response.headers["Content-Type"] = "application/json"
        return response

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        parts = urlsplit(request.path)
        path = parts.path
        try:
            if "upgrade" in request.headers.get("Connection", "").lower():
                if self._open >= self.config.max_connections:
                    raise Reject(429, "TooManyConnections", "too many open connections")
                if normalized.WS_PATH.match(path):
                    return None
                if m := v1.PATH.match(path):
                    self._symbol(m.group(1))
                    return None
                if v2.PATH.match(path) or ws_api.PATH.match(path):
                    return None
                if path.rstrip("/") == tardis.WS_PATH:
                    self.sessions.check(parts.query)
                    return None
                if _STREAM_PATH.match(path):
                    listed = _query_streams(parts.query)
                    return self._streams(connection, listed)[1] if listed else None
                if m := _RAW_PATH.match(path):
                    return self._streams(connection, m.group(1))[1]
                if _BARE_RAW_PATH.match(path):
                    return None  # its streams come with a SUBSCRIBE
                raise Reject(404, "NotFound", f"no such endpoint: {path}")
            if normalized.HTTP_PATH.match(path):
                return await normalized.respond(connection, request, self.config)
            if m := _BOOK_PATH.match(path):
                got = self.rows.book(self._symbol(m.group(1)), self.clock_ns)
                if got is None:
                    raise Reject(404, "NotFound", f"no book stored for {m.group(1)}")
                return self._reply(connection, 200, got[1])
            if path.rstrip("/") == tardis.HTTP_PATH:
                options = tardis.http_options(parts.query)
                return await http_body.send_chunked(
                    connection,
                    "application/x-json-stream",
                    self._ndjson(options),
                    self.config.send_timeout_s,
                )
            if _DEPTH_PATH.match(path):
                return self._depth(connection, parts.query)
            if _INFO_PATH.match(path):
                info = {
                    "timezone": "UTC",
                    "serverTime": self.clock_ns // 1_000_000,
                    "symbols": [{"symbol": s, "status": "TRADING"} for s in self.spot.symbols],
                }
                return self._weighed(
                    connection,
                    self._limits.symbols_weight,
                    lambda: (200, orjson.dumps(info).decode()),
                )
            if _SYMBOLS_PATH.match(path):
                return self._reply(
                    connection, 200, orjson.dumps([s.lower() for s in self.rows.symbols]).decode()
                )
            raise Reject(404, "NotFound", f"no such endpoint: {path}")
        except Reject as exc:
            return self._reply(connection, exc.status, exc.body())
        except tardis.BadOptions as exc:
            return self._reply(connection, 400, exc.body())

    async def _ndjson(self, options: tardis.Options) -> AsyncGenerator[bytes, None]:
        """The ``/replay`` body, each piece made off the event loop."""
        loop = asyncio.get_running_loop()
        selection = await loop.run_in_executor(None, self.sessions.tardis.select, options)
        pieces = tardis.ndjson(selection, options.with_disconnects)
        while (piece := await loop.run_in_executor(None, next, pieces, b"")) != b"":
            yield piece

    def _streams(
        self, connection: ServerConnection | None, listed: str
    ) -> tuple[frozenset[str], Response | None]:
        """The stream names of a ``/``-separated list, or Binance's error reply."""
        names = frozenset(n for n in listed.split("/") if n)
        problem = self._stream_problem(names)
        if problem is not None:
            body = orjson.dumps({"code": -1121, "msg": problem}).decode()
            if connection is None:
                raise Reject(400, "InvalidStream", body)
            return names, self._reply(connection, 400, body)
        return names, None

    def _stream_problem(self, names: frozenset[str]) -> str | None:
        """Why Binance would refuse these stream names, or None."""
        bad = [n for n in sorted(names) if not _STREAM_NAME.match(n)]
        unknown = sorted({n.partition("@")[0].upper() for n in names} - set(self.spot.symbols))
        if not names or bad or unknown or len(names) > 2 * self.config.max_symbols:
            return f"Invalid stream: {(bad or unknown or ['no streams'])[0]}"
        return None

    def _spot_request(
        self, text: str | bytes, names: frozenset[str], recorded: frozenset[str] | None = None
    ) -> tuple[dict[str, object], frozenset[str] | None]:
        """Binance's reply to one client request on a stream route holding *names*, and the
        streams after it (None: unchanged). *recorded*: the streams of the stored
        connection being replayed, the only ones a ``SUBSCRIBE`` can add once it runs."""
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return {"code": 3, "msg": "Invalid JSON"}, None
        if not isinstance(msg, dict):
            return {"code": 2, "msg": "Invalid request"}, None
        rid, method, params = msg.get("id"), msg.get("method"), msg.get("params")
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(names), "id": rid}, None
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            return {"code": 2, "msg": "Invalid request", "id": rid}, None
        asked = frozenset(str(p) for p in params)
        if method == "UNSUBSCRIBE":
            return {"result": None, "id": rid}, names - asked
        problem = self._stream_problem(names | asked)
        outside = sorted(asked - (recorded or frozenset()))
        if problem is None and recorded is not None and outside:
            problem = f"Invalid stream: {outside[0]} is not on the stored connection replayed"
        if problem is not None:
            return {"code": 2, "msg": problem, "id": rid}, None
        return {"result": None, "id": rid}, names | asked

    async def _spot_subscription(self, ws: ServerConnection) -> frozenset[str]:
        """The streams of the client's first valid ``SUBSCRIBE``, on a Binance route that
        named none (``/ws``, ``/stream``); each request before it is answered as Binance
        does (:meth:`_spot_request`)."""
        names: frozenset[str] = frozenset()
        rate = MessageRate(self._limits.messages_per_s)
        while not names:
            text = await ws.recv()
            if not await _within(ws, rate):
                continue  # closed: the next recv() ends the handler
            reply, new = self._spot_request(text, names)
            await ws.send(orjson.dumps(reply).decode())
            names = new if new is not None else names
        return names

    def _depth(self, connection: ServerConnection, query: str) -> Response:
        """``/api/v3/depth?symbol=&limit=``: the last depth reply stored by the replay
        clock, its bytes as stored, or cut to *limit* levels a side (default 100, at most
        5000, as Binance's) when it holds more."""
        params = parse_qs(query)

        def error(status: int, code: int, msg: str) -> Response:
            # A refused request weighs nothing, but its reply carries the weight too.
            return self._weighed(connection, 0, lambda: _binance_error(status, code, msg))

        symbol = params.get("symbol", [""])[0]
        if not symbol:
            return error(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        if symbol not in self.spot.symbols:
            return error(400, -1121, "Invalid symbol.")
        limit_text = params.get("limit", ["100"])[0]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 5000:
            return error(
                400,
                -1100,
                "Illegal characters found in parameter 'limit'; legal range is '1' to '5000'.",
            )
        limit = int(limit_text)
        return self._weighed(
            connection, self._limits.book_weight(limit), partial(self._spot_depth, symbol, limit)
        )

    def _weighed(
        self, connection: ServerConnection, weight: int, answer: Callable[[], tuple[int, str]]
    ) -> Response:
        """A Binance REST reply of *weight*, with the weight header: *answer*'s status and
        body, or 429 with ``Retry-After`` past the minute's weight."""
        retry_after = self._weight.spend(weight, time.time_ns())
        if retry_after is not None:
            body = orjson.dumps(self._limits.weight_refusal).decode()
            response = self._reply(connection, 429, body)
            response.headers["Retry-After"] = str(retry_after)
        else:
            response = self._reply(connection, *answer())
        if self._limits.weight_header:
            response.headers[self._limits.weight_header] = str(self._weight.used)
        return response

    def _spot_depth(self, symbol: str, limit: int) -> tuple[int, str]:
        """The status and body of the answer to a valid depth request."""
        got = self.spot.book(symbol, self.clock_ns, _SPOT_REST)
        if got is None:
            return _binance_error(404, -1121, f"no depth stored for {symbol}")
        stored_ns, book = got
        start_ns = self.config.start_ns
        if start_ns is not None and stored_ns < start_ns:
            # The last reply stored is older than the frames served from --from: the
            # book their connection's rows rebuild by the replay clock is the one they follow.
            at = self.clock_ns if self.sent else start_ns - 1
            rebuilt = self.spot.spot_depth(symbol, at)
            if rebuilt is None:
                return _binance_error(
                    503, -1001, f"the book of {symbol} is not valid at this point"
                )
            book = orjson.dumps(rebuilt).decode()
        reply = orjson.loads(book)
        if isinstance(reply, dict) and any(
            len(reply.get(k) or ()) > limit for k in ("bids", "asks")
        ):
            for key in ("bids", "asks"):
                reply[key] = (reply.get(key) or [])[:limit]
            book = orjson.dumps(reply).decode()
        return 200, book

    # --- websockets ---------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path = urlsplit(ws.request.path).path
        self._open += 1
        try:
            if normalized.WS_PATH.match(path):
                await normalized.send(ws, self.config)
            elif m := v1.PATH.match(path):
                await self._replay(ws, _V1, (m.group(1).upper(),))
            elif ws_api.PATH.match(path):
                await self._replay(ws, _WS, tuple(self.rows.symbols))
            elif path.rstrip("/") == tardis.WS_PATH:
                await self.sessions.join(ws, urlsplit(ws.request.path).query)
            elif _STREAM_PATH.match(path) or _RAW_PATH.match(path) or _BARE_RAW_PATH.match(path):
                raw = not _STREAM_PATH.match(path)
                m = _RAW_PATH.match(path)
                query = urlsplit(ws.request.path).query
                listed = m.group(1) if m else "" if raw else _query_streams(query)
                if listed:
                    names = self._streams(None, listed)[0]
                else:  # /ws or /stream alone: the streams come with a SUBSCRIBE
                    names = await self._spot_subscription(ws)
                spot = tuple(sorted({n.partition("@")[0].upper() for n in names}))
                await self._replay(ws, _SPOT, spot, names, raw=raw)
            else:
                symbols = await self._subscription(ws)
                if symbols:
                    await self._replay(ws, _V2, symbols)
        except ConnectionClosed:
            pass
        finally:
            self._open -= 1

    async def _subscription(self, ws: ServerConnection) -> tuple[str, ...] | None:
        """The symbols of the client's first v2 ``subscribe`` to ``l2``; None if it was refused."""
        text = await ws.recv()
        try:
            msg = orjson.loads(text)
            if msg["type"] != "subscribe":
                raise Reject(400, "InvalidRequest", f"unknown request type {msg['type']!r}")
            wanted: list[str] = []
            for sub in msg["subscriptions"]:
                if sub["name"] != "l2":
                    raise Reject(400, "InvalidRequest", f"unsupported subscription {sub['name']!r}")
                wanted.extend(self._symbol(str(s)) for s in sub["symbols"])
            if not wanted or len(wanted) > self.config.max_symbols:
                raise Reject(
                    400, "InvalidRequest", f"subscribe to 1 to {self.config.max_symbols} symbols"
                )
        except Reject as exc:
            await ws.close(_POLICY, exc.message)
            return None
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            await ws.close(_POLICY, f"malformed request: {exc}")
            return None
        return tuple(sorted(set(wanted)))

    async def _replay(
        self,
        ws: ServerConnection,
        protocol: str,
        symbols: tuple[str, ...],
        streams: frozenset[str] | None = None,
        raw: bool = False,
    ) -> None:
        """Send the next stored connection of this route to *ws*, then close it.

        With *streams* (Binance), only the frames of those streams and the
        connection-wide ones are sent; *raw*, their events without the
        combined stream's wrapping. Each route and set of streams has its own
        next connection: a bot with one socket per stream gets each stored
        connection on every socket, and a reconnect on one gets the next.
        """
        loop = asyncio.get_running_loop()
        sources = ("ws", "ws_sent") if protocol == _WS else ("ws",)
        where = self.spot if protocol == _SPOT else self.rows
        stored = await loop.run_in_executor(None, where.connections, protocol, symbols, sources)
        if not stored:
            await ws.close(_TRY_LATER, f"no {protocol} data for {','.join(symbols)}")
            return
        key = (protocol, symbols, streams, raw)
        k = self._cursor.get(key, 0)
        if k >= len(stored):
            await ws.close(_NORMAL, "end of recording")
            return
        self._cursor[key] = k + 1
        conn = stored[k]
        if streams is not None:
            if not await self._send_spot(ws, conn, streams, raw):
                return
        elif protocol == _WS:
            rows = StoredWs.build(
                conn.recv_ns.tolist(), conn.payloads, conn.sent.tolist(), conn.lead
            )
            replay = WsReplay(
                ws,
                rows,
                partial(self._write, ws),
                # Opened at --from, the stored opening replies are behind: none is waited for.
                0.0 if conn.lead else self.config.request_wait_s,
                self.config.speed,
                partial(_ws_book, conn),
            )
            if not await replay.run():
                return
        else:
            if conn.lead:
                conn = await loop.run_in_executor(None, _opened, conn, protocol, symbols)
            if not await self._send(ws, conn):
                return
        last = k + 1 == len(stored)
        await ws.close(
            _NORMAL if last else _RESTART, "end of recording" if last else "stored connection ended"
        )

    async def _send(self, ws: ServerConnection, conn: Stored) -> bool:
        """Send *conn*'s frames, paced by ``speed``; False if the client was too slow."""

        frames = conn.frames

        async def write(i: int, j: int) -> bool:
            return await self._write_frames(ws, frames.span(i, j), j - i, int(conn.recv_ns[j - 1]))

        return await send_paced(conn.recv_ns, self.config.speed, write)

    async def _send_spot(
        self, ws: ServerConnection, conn: Stored, streams: frozenset[str], raw: bool
    ) -> bool:
        """Send the frames of *streams* (and those that name no stream) of the Binance
        connection *conn* from ``--from`` on, as :meth:`_send`, answering the client's
        ``SUBSCRIBE``, ``UNSUBSCRIBE`` and ``LIST_SUBSCRIPTIONS`` meanwhile.

        A change of streams holds from the next batch of frames not yet sent. With
        ``speed``, the connection keeps the recording's time whatever is subscribed:
        it lasts as long as the stored one, and frames that came due while their
        stream was not subscribed are not sent later.
        """
        loop = asyncio.get_running_loop()
        names, changed = streams, asyncio.Event()
        recorded = await loop.run_in_executor(None, _stream_names, conn)

        async def read() -> None:
            nonlocal names
            rate = MessageRate(self._limits.messages_per_s)
            async for text in ws:
                if not await _within(ws, rate):
                    return
                reply, new = self._spot_request(text, names, recorded)
                if new is not None and new != names:
                    names = new
                    changed.set()
                await ws.send(orjson.dumps(reply).decode())

        speed, n = self.config.speed, len(conn.recv_ns)
        clock = (int(conn.recv_ns[conn.lead]), time.monotonic())
        reader = asyncio.create_task(read())
        try:
            position, sent_names, due = conn.lead, names, conn.lead
            while position < n:
                changed.clear()
                # A stream subscribed now starts with its frames not yet due.
                fresh = (names - sent_names, due)
                sent_names = names
                view, origin = await loop.run_in_executor(
                    None, _only_streams, conn, names, raw, position, fresh
                )
                frames, reached = view.frames, 0

                async def write(i: int, j: int) -> bool:
                    nonlocal reached
                    if changed.is_set():
                        return False
                    span = frames.span(i, j)  # noqa: B023 (awaited within this pass)
                    at = int(view.recv_ns[j - 1])  # noqa: B023
                    if not await self._write_frames(ws, span, j - i, at):
                        return False
                    reached = j
                    return True

                if await send_paced(view.recv_ns, speed, write, clock):
                    if speed is None:
                        return True
                    # All sent of what is subscribed: the rest of the stored time passes
                    # (a change of streams meanwhile goes on from where the replay is).
                    left = (int(conn.recv_ns[-1]) - _replay_ns(clock, speed)) / 1e9 / speed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), max(left, 0.0))
                    if not changed.is_set():
                        return True
                elif not changed.is_set():
                    return False  # the client was too slow
                if reached < len(origin):
                    position = int(origin[reached])
                elif len(origin):
                    position = int(origin[-1]) + 1
                if speed is not None:
                    due = int(np.searchsorted(conn.recv_ns, _replay_ns(clock, speed), "right"))
                else:
                    due = position
            return True
        finally:
            reader.cancel()

    async def _write(self, ws: ServerConnection, payloads: list[bytes], clock_ns: int) -> bool:
        """Send *payloads* as text frames, then wait for the socket to drain.

        False (and the client closed with 1008) if it read nothing for
        ``send_timeout_s``. *clock_ns* is the receive time of the last one.
        """
        return await self._write_frames(ws, text_frames(payloads), len(payloads), clock_ns)

    async def _write_frames(
        self, ws: ServerConnection, frames: bytes | memoryview, n: int, clock_ns: int
    ) -> bool:
        """Send *n* text frames already built (:mod:`replay.wsframes`), as :meth:`_write`.

        They go to the socket in one write: the server negotiates no extension
        (``compression=None``), so a frame on the wire is its header and payload.
        """
        timeout = self.config.send_timeout_s
        try:
            async with asyncio.timeout(timeout), ws.send_context():
                ws.transport.write(frames)
        except TimeoutError:
            log.warning("closing a client that read nothing for %.0f s", timeout)
            await ws.close(_POLICY, "client too slow")
            return False
        self.clock_ns = max(self.clock_ns, clock_ns)
        self.sent += n
        return True


def _rebuilt(
    conn: Stored, upto: int, symbol: str, protocol: str, depth: int | None = None
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
    """*symbol*'s book on the stored connection *conn* after its first *upto* rows, as the
    replay engine rebuilds it: ``(bids, asks)`` as ``(price, size)`` texts, best first,
    prices with the stream's decimals ("60000.10"); None where it is not valid."""
    if upto == 0:
        return None
    columns = {
        "recv_ts": pa.array(conn.recv_ns[:upto]),
        "seq": pa.array(np.arange(upto, dtype=np.int64)),
        "run_id": pa.array([conn.run_id] * upto),
        "conn_id": pa.array(np.full(upto, conn.conn_id, np.int32)),
        "protocol": pa.array([protocol] * upto),
        "source": pa.array(np.where(conn.sent[:upto], "ws_sent", "ws")),
        "payload": conn.body.slice(0, upto),
    }
    return _book_of(columns, symbol, int(conn.recv_ns[upto - 1]), depth, VENUE)


def _book_of(
    columns: dict[str, Any], symbol: str, at: int, depth: int | None, venue: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
    """:func:`_levels` of *symbol*'s book after the rows *columns* (contract columns by
    name, any type that casts; the others null) received by *at*, as replayed."""
    n = len(columns["recv_ts"])

    def column(field: pa.Field) -> Any:
        values = columns.get(field.name)
        if values is None:
            return pa.nulls(n, field.type)
        if pa.types.is_dictionary(field.type):
            return values.cast(pa.string()).dictionary_encode().cast(field.type)
        return values.cast(field.type)

    table = pa.table({f.name: column(f) for f in contract.SCHEMA}, schema=contract.SCHEMA)
    date = np.datetime64(at, "ns").astype("datetime64[D]").astype(str)
    return _levels(Day(table, date=date, symbol=symbol, venue=venue).book_at(at, depth))


def _levels(view: BookView) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
    """*view*'s ``(bids, asks)`` as ``(price, size)`` texts, best first, prices with the
    stream's decimals ("60000.10"); None if it is not valid."""
    if not view.valid:
        return None
    ps, ss = view.price_scale, view.size_scale

    def price(units: int) -> str:
        whole, frac = divmod(units, 10**ps)
        return f"{whole}.{frac:0{ps}d}" if ps else str(whole)

    def side(px: np.ndarray, sz: np.ndarray) -> list[tuple[str, str]]:
        return [
            (price(p), format_units(q, ss)) for p, q in zip(px.tolist(), sz.tolist(), strict=True)
        ]

    return side(view.bid_px, view.bid_sz), side(view.ask_px, view.ask_sz)


def _opened(conn: Stored, protocol: str, symbols: Sequence[str]) -> Stored:
    """*conn* from ``--from`` on, opened as the venue opens a connection, with the book its
    rows before ``--from`` rebuild (where it is valid; otherwise the stored rows alone).

    v1: an ``initial`` update numbered 0, then the stored frames numbered on from 1,
    every other byte as stored. v2: an ``l2_updates`` snapshot per symbol subscribed,
    then the stored frames. Other protocols: the stored frames from ``--from``.
    """
    lead, payloads = conn.lead, conn.payloads
    after = payloads[lead:]
    opening: list[bytes] = []
    if protocol == _V1:
        book = _rebuilt(conn, lead, symbols[0], protocol)
        if book is not None:
            event_id, time_ms = _last_update(payloads[:lead])
            opening = [gemini_v1.initial_update(*book, event_id, time_ms)]
            after = [gemini_v1.renumbered(p, i) for i, p in enumerate(after, 1)]
    elif protocol == _V2:
        for symbol in symbols:
            book = _rebuilt(conn, lead, symbol, protocol)
            if book is not None:
                opening.append(gemini_v2.snapshot_message(symbol, *book))
    start = int(conn.recv_ns[lead])
    recv_ns = np.concatenate([np.full(len(opening), start, np.int64), conn.recv_ns[lead:]])
    return Stored(
        conn.run_id,
        conn.conn_id,
        recv_ns,
        pa.array(opening + after, pa.large_binary()),
        np.concatenate([np.zeros(len(opening), bool), conn.sent[lead:]]),
    )


def _last_update(payloads: Sequence[bytes]) -> tuple[int | None, int | None]:
    """``eventId`` and ``timestampms`` of the last v1 ``update`` among *payloads*."""
    for payload in reversed(payloads):
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(msg, dict) and msg.get("type") == "update":
            event_id, ms = msg.get("eventId"), msg.get("timestampms")
            return (
                event_id if isinstance(event_id, int) else None,
                ms if isinstance(ms, int) else None,
            )
    return None, None


def _ws_book(conn: Stored, upto: int, symbol: str, limit: int) -> dict[str, object] | None:
    """The ``depth`` result of *symbol*'s book on the current API connection *conn* after
    its first *upto* rows, as the replay engine rebuilds it; None where it is not valid.

    ``lastUpdateId`` is the ``u`` of the symbol's last diff among those rows
    (or the ``lastUpdateId`` of a later ``depth`` reply), the update the book is at.
    """
    payloads = conn.payloads
    last_id = None
    for i in range(upto - 1, -1, -1):
        if conn.sent[i]:
            continue
        try:
            msg = orjson.loads(payloads[i])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(msg, dict):
            continue
        if msg.get("e") == "depthUpdate" and str(msg.get("s", "")).upper() == symbol:
            last_id = msg.get("u")
        elif isinstance(result := msg.get("result"), dict) and "lastUpdateId" in result:
            asked = _asked_symbol(payloads, conn.sent, i, msg.get("id"))
            last_id = result["lastUpdateId"] if asked == symbol else None
        if last_id is not None:
            break
    if last_id is None:
        return None
    book = _rebuilt(conn, upto, symbol, _WS, limit)
    if book is None:
        return None
    bids, asks = book
    return {
        "lastUpdateId": last_id,
        "bids": [list(level) for level in bids],
        "asks": [list(level) for level in asks],
    }


def _asked_symbol(payloads: list[bytes], sent: np.ndarray, before: int, rid: object) -> str | None:
    """The symbol of the last ``depth`` request with id *rid* among the sent rows before
    row *before*."""
    for i in range(before - 1, -1, -1):
        if not sent[i]:
            continue
        msg = orjson.loads(payloads[i])
        if isinstance(msg, dict) and msg.get("id") == rid and msg.get("method") == "depth":
            params = msg.get("params")
            symbol = params.get("symbol") if isinstance(params, dict) else None
            return symbol.upper() if isinstance(symbol, str) else None
    return None


def _query_streams(query: str) -> str:
    """The ``streams`` parameter of a combined-stream URL."""
    return parse_qs(query).get("streams", [""])[0]


def _replay_ns(clock: tuple[int, float], speed: float) -> int:
    """The receive time the replay is at now, by *clock* (``(receive time, monotonic)``)."""
    return clock[0] + int((time.monotonic() - clock[1]) * speed * 1e9)


def _stream_of(payload: bytes) -> str | None:
    """The stream name of a combined frame ``{"stream":"<name>",...}``; None for another."""
    if not payload.startswith(b'{"stream":"'):
        return None
    return payload[11 : payload.find(b'"', 11)].decode("ascii", "replace")


def _binance_error(status: int, code: int, msg: str) -> tuple[int, str]:
    """A Binance REST error: its status and its ``{"code", "msg"}`` body."""
    return status, orjson.dumps({"code": code, "msg": msg}).decode()


def _limits(name: str) -> Recording:
    """The client limits of venue *name* (its default recording's)."""
    recording = VENUES[name].recording()
    assert recording is not None, name
    return recording


async def _within(ws: ServerConnection, rate: MessageRate) -> bool:
    """Count a Binance client's message; past the rate, close as Binance does (False)."""
    if rate.allows(time.time_ns()):
        return True
    log.warning("closing a Binance client that sent over %d messages in a second", rate.per_second)
    await ws.close(_POLICY, "Too many requests")
    return False


def _stream_names(conn: Stored) -> frozenset[str]:
    """The stream names of *conn*'s combined frames."""
    return frozenset(name for p in conn.payloads if (name := _stream_of(p)) is not None)


def _only_streams(
    conn: Stored,
    streams: frozenset[str],
    raw: bool = False,
    start: int = 0,
    fresh: tuple[frozenset[str], int] = (frozenset(), 0),
) -> tuple[Stored, np.ndarray]:
    """*conn*'s rows from *start* on with only the frames of *streams* and those that name
    no stream, and the index in *conn* of each row kept. The streams of *fresh*
    ``(names, row)`` start at that row.

    With *raw*, a combined frame ``{"stream":"<name>","data":<event>}`` becomes
    its ``<event>`` bytes, as the raw stream ``/ws/<name>`` sends it.
    """
    keep, payloads = [], []
    for i, payload in enumerate(conn.payloads[start:], start):
        stream = _stream_of(payload)
        if stream is not None and (stream not in streams or (i < fresh[1] and stream in fresh[0])):
            continue
        if raw and stream is not None:
            head = len(b'{"stream":"') + len(stream) + len(b'","data":')
            if payload[head - 8 : head] == b',"data":' and payload.endswith(b"}"):
                payload = payload[head:-1]
        keep.append(i)
        payloads.append(payload)
    index = np.asarray(keep, np.int64)
    body = pa.array(payloads, pa.large_binary())
    kept = replace(conn, recv_ns=conn.recv_ns[index], body=body, sent=conn.sent[index], lead=0)
    return kept, index


class Served(NamedTuple):
    """Where a running server listens."""

    ws_url: str
    rest_url: str


class Server(Background[ServeServer]):
    """A replay server running in a background thread; a context manager (tests, notebooks)."""

    def __init__(self, config: ServeConfig) -> None:
        super().__init__(lambda: ServeServer(config), "tickrec-serve")
        self.config = config

    @property
    def server(self) -> ServeServer:
        """The running server."""
        return self.service

    @property
    def url(self) -> Served:
        """The websocket and REST base URLs."""
        host, port = self.config.host, self.server.port
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return Served(f"ws://{authority}", f"http://{authority}")


def run(config: ServeConfig, on_ready: Callable[[Served], None] | None = None) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then stop cleanly."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        server = ServeServer(config)
        await server.start()
        try:
            host = f"[{config.host}]" if ":" in config.host else config.host
            if on_ready is not None:
                on_ready(Served(f"ws://{host}:{server.port}", f"http://{host}:{server.port}"))
            await stopping.wait()
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except OSError as exc:
        raise TickrecError(f"cannot serve on {config.host} port {config.port}: {exc}") from None
