"""``tickrec serve``: recorded data replayed over a local websocket in the venue's own protocol.

A bot, or any client of the venue, points its websocket URL at this server
instead of the exchange and gets the recorded messages back, byte for byte
and in recorded order, on the venue's own routes. Each venue declares its
routes in its serve module (:attr:`tickrec.venues.base.Venue.serve`, the
shape in :mod:`tickrec.serving`): which stored rows a client gets and what
its requests are answered with. This module does the rest for every venue:
it reads the stored rows, keeps the replay clock (the receive time of the
last message sent on any connection; before any, the start of the replay),
counts each venue's client limits (its request weight a minute, its client
messages a second), and paces and writes the frames. Beside the venues'
routes it serves tardis-machine's exchange-native ``GET /replay`` and
``WS /ws-replay`` (:mod:`replay.tardis`) and normalized
``/replay-normalized`` and ``/ws-replay-normalized``
(:mod:`replay.normalized`).

Stored connections. The data may hold many connections one after another
(reconnects, restarts, midnight). One client connection replays one stored
connection; when it ends, the server closes the client with code 1012
(service restart), and the next client on the same route and symbols goes on
with the next stored connection. After the last one, the close code is 1000
("end of recording"), and a later client on that route is closed at once with
the same code: time never runs backwards. So a client that reconnects, as
every venue client must, sees the recording as it happened, disconnects
included; a new session is a new server. A connection open at ``--from``
opens with the book its rows before ``--from`` rebuild (where its venue's
route asks for it, :meth:`tickrec.serving.Whole.opening`; others answer a
book request from it), so a client is in sync from its first frame, as on a
new venue connection.

Pacing. By default frames go as fast as the client reads them (each send
waits for the socket to drain); a client that reads nothing for
:attr:`ServeConfig.send_timeout_s` is closed with code 1008 and a logged
reason. With ``speed`` set, frames follow their stored receive times, that
many times faster than recorded (1: real time), from the connection's first
frame.

Limits. The server binds loopback unless told otherwise, and caps the
number of open connections, the size of a client message and the symbols of
one subscription. A request it cannot serve is refused as the simulator
refuses it: an HTTP error with the venue's error body, or a close with code
1008 and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import importlib
import logging
import signal
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, NamedTuple
from urllib.parse import urlsplit

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
from replay.dialogue import DialogueReplay, StoredDialogue
from replay.pacing import send_paced
from replay.ticks import format_units
from replay.view import BookView
from replay.wsframes import Framed, text_frames
from tickrec import contract
from tickrec.background import Background
from tickrec.errors import NotFoundError, TickrecError
from tickrec.serving import (
    Book,
    Client,
    Dialogue,
    HttpRoute,
    Priced,
    Refused,
    Streams,
    TardisFacts,
    Whole,
    WsRoute,
)
from tickrec.sim.feed import Close, Reject, Reply
from tickrec.store import Root
from tickrec.venues import VENUES
from tickrec.venues.base import Recording
from tickrec.venues.limits import MessageRate, WeightWindow

__all__ = ["ServeConfig", "ServeServer", "Served", "Server", "routes", "run", "venue_routes"]

log = logging.getLogger("tickrec.serve")

_NORMAL, _RESTART, _POLICY, _TRY_LATER = 1000, 1012, 1008, 1013
_COLUMNS = ("recv_ts", "seq", "run_id", "conn_id", "protocol", "source", "payload")
#: The venue of each wire protocol.
_VENUE_OF = {w.name: v.name for v in VENUES.values() for w in v.wires}


class _Routes(NamedTuple):
    """One venue's serve routes."""

    venue: str
    ws: tuple[WsRoute, ...]
    http: tuple[HttpRoute, ...]
    banner: tuple[tuple[str, str, str], ...]
    tardis: TardisFacts | None


@functools.cache
def routes() -> tuple[_Routes, ...]:
    """Every venue's serve routes (its :attr:`~tickrec.venues.base.Venue.serve` module),
    in the registry's order; loaded on first use."""
    out = []
    for v in VENUES.values():
        if v.serve is not None:
            m = importlib.import_module(v.serve)
            out.append(_Routes(v.name, m.WS_ROUTES, m.HTTP, m.ROUTES, getattr(m, "TARDIS", None)))
    return tuple(out)


def venue_routes() -> tuple[tuple[str, str, str], ...]:
    """Every venue's routes for a banner: label, ``ws`` or ``http``, and the paths."""
    return tuple(line for r in routes() for line in r.banner)


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
    #: reply for the client's request (see :mod:`replay.dialogue`).
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

    def __init__(self, config: ServeConfig, venue: str) -> None:
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

    def book(self, symbol: str, at_ns: int, protocol: str) -> tuple[int, str] | None:
        """The receive time and payload of the last stored REST book reply of *symbol*
        received at or before *at_ns* (the first one, when none is)."""
        t = self.table(protocol, "rest", symbol, before_start=True)
        if t.num_rows == 0:
            return None
        recv = t.column("recv_ts").cast(pa.int64()).to_numpy()
        k = max(int(np.searchsorted(recv, at_ns, side="right")) - 1, 0)
        return int(recv[k]), str(t.column("payload")[k].as_py())

    def book_by(
        self, protocols: tuple[str, str], symbol: str, at_ns: int, depth: int
    ) -> tuple[list[bytes], Book | None] | None:
        """The rows received up to *at_ns* of the ``(websocket, REST)`` *protocols* of the
        connection that received *symbol*'s last websocket row by then, in recorded order,
        and the book they rebuild (:meth:`tickrec.serving.Store.book_by`)."""
        ws_rows = self.table(protocols[0], "ws", symbol, before_start=True)
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
            for t in (ws_rows, self.table(protocols[1], "rest", symbol, before_start=True))
        ]
        t = pa.concat_tables([x.cast(mine[0].schema) for x in mine if x.num_rows])
        t = t.take(pc.sort_indices(t, [("seq", "ascending")]))
        columns = {name: t.column(name) for name in t.column_names}
        book = _book_of(columns, symbol, at_ns, depth, self.venue)
        return t.column("payload").to_pylist(), book


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
    """The replay server inside a running event loop: :meth:`start`, then :meth:`stop`.

    It is the :class:`tickrec.serving.Store` the venues' routes read.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        #: The stored rows of each venue with serve routes.
        self.rows = {r.venue: _Rows(config, r.venue) for r in routes()}
        if not any(rows.symbols for rows in self.rows.values()):
            raise NotFoundError(f"no {' or '.join(self.rows)} data under {config.data}")
        self.port = 0
        self._server: ws_server.Server | None = None
        #: The next stored connection of each route and subscription.
        self._cursor: dict[tuple[object, ...], int] = {}
        #: Each websocket connection's client, from its opening request to its handler.
        self._opening: weakref.WeakKeyDictionary[ServerConnection, tuple[str, Client]] = (
            weakref.WeakKeyDictionary()
        )
        self._open = 0
        #: The replay clock: the receive time of the last frame sent, from the span's start.
        self.clock_ns = config.start_ns or _first_recv_ns(config.data, tuple(self.rows))
        self.sent = 0
        replayed = {r.venue: (self.rows[r.venue], r.tardis) for r in routes() if r.tardis}
        self.sessions = tardis.Sessions(
            tardis.Tardis(replayed), config.session_delay_s, self._write
        )
        #: Each venue's client limits, counted by the wall clock as the venue counts them.
        self._limits = {venue: _limits(venue) for venue in self.rows}
        self._weight = {v: WeightWindow(r.weight_per_minute or 0) for v, r in self._limits.items()}

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

    # --- what the venues' routes read (tickrec.serving.Store) --------------------------

    @property
    def start_ns(self) -> int | None:
        """``--from``, if given."""
        return self.config.start_ns

    @property
    def max_symbols(self) -> int:
        """The symbols one subscription may hold, at most."""
        return self.config.max_symbols

    def symbols(self, venue: str) -> Sequence[str]:
        """The symbols stored for *venue*."""
        return self.rows[venue].symbols

    def rest_reply(self, venue: str, protocol: str, symbol: str) -> tuple[int, str] | None:
        """The last REST reply of *protocol* stored for *symbol* by the replay clock."""
        return self.rows[venue].book(symbol, self.clock_ns, protocol)

    def book(
        self, conn: Any, upto: int, symbol: str, protocol: str, depth: int | None
    ) -> Book | None:
        """*symbol*'s book on the stored connection *conn* after its first *upto* rows."""
        return _rebuilt(conn, upto, symbol, protocol, depth)

    def book_by(
        self, venue: str, protocols: tuple[str, str], symbol: str, at_ns: int, depth: int
    ) -> tuple[list[bytes], Book | None] | None:
        """The rows of the connection that had *symbol*'s last row by *at_ns*, and its book."""
        return self.rows[venue].book_by(protocols, symbol, at_ns, depth)

    # --- HTTP -------------------------------------------------------------------------

    @staticmethod
    def _reply(connection: ServerConnection, status: int, body: str) -> Response:
        response = connection.respond(http.HTTPStatus(status), body)
        del response.headers["Content-Type"]  # respond() set text/plain; Headers keeps both
        response.headers["Content-Type"] = "application/json"
        return response

    def _sent(self, connection: ServerConnection, reply: Reply) -> Response:
        response = self._reply(connection, reply.status, reply.body)
        for name, value in reply.headers.items():
            response.headers[name] = value
        return response

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        parts = urlsplit(request.path)
        path, query = parts.path, parts.query
        try:
            if "upgrade" in request.headers.get("Connection", "").lower():
                if self._open >= self.config.max_connections:
                    raise Reject(429, "TooManyConnections", "too many open connections")
                if normalized.WS_PATH.match(path):
                    return None
                if path.rstrip("/") == tardis.WS_PATH:
                    self.sessions.check(query)
                    return None
                for venue in routes():
                    for route in venue.ws:
                        if m := route.pattern.match(path):
                            self._opening[connection] = (venue.venue, route.open(self, m, query))
                            return None
                raise Reject(404, "NotFound", f"no such endpoint: {path}")
            if normalized.HTTP_PATH.match(path):
                return await normalized.respond(connection, request, self.config)
            if path.rstrip("/") == tardis.HTTP_PATH:
                options = tardis.http_options(query, self.sessions.tardis.exchanges)
                return await http_body.send_chunked(
                    connection,
                    "application/x-json-stream",
                    self._ndjson(options),
                    self.config.send_timeout_s,
                )
            for venue in routes():
                for http_route in venue.http:
                    if m := http_route.pattern.match(path):
                        answer = http_route.answer(self, m, query)
                        if isinstance(answer, Priced):
                            return self._weighed(connection, venue.venue, answer)
                        return self._sent(connection, answer)
            raise Reject(404, "NotFound", f"no such endpoint: {path}")
        except Refused as exc:
            return self._sent(connection, exc.reply)
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

    def _weighed(self, connection: ServerConnection, venue: str, priced: Priced) -> Response:
        """*venue*'s REST reply of a request that weighs: the answer, or 429 with
        ``Retry-After`` past the minute's weight; with the venue's weight header."""
        limits, window = self._limits[venue], self._weight[venue]
        retry_after = window.spend(priced.weight, time.time_ns())
        if retry_after is not None:
            response = self._sent(connection, Reply(429, _json(limits.weight_refusal or {})))
            response.headers["Retry-After"] = str(retry_after)
        else:
            response = self._sent(connection, priced.answer())
        if limits.weight_header:
            response.headers[limits.weight_header] = str(window.used)
        return response

    # --- websockets ---------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path = urlsplit(ws.request.path).path
        self._open += 1
        try:
            if normalized.WS_PATH.match(path):
                await normalized.send(ws, self.config)
            elif path.rstrip("/") == tardis.WS_PATH:
                await self.sessions.join(ws, urlsplit(ws.request.path).query)
            else:
                venue, client = self._opening.pop(ws)
                rate = MessageRate(self._limits[venue].messages_per_s)
                if await self._first(ws, client, rate):
                    await self._replay(ws, venue, client, rate)
        except ConnectionClosed:
            pass
        finally:
            self._open -= 1

    async def _first(self, ws: ServerConnection, client: Client, rate: MessageRate) -> bool:
        """Read the client's first requests until they say the symbols replayed (a route
        whose path names none); False if the client was closed meanwhile."""
        while client.symbols is None:
            text = await ws.recv()
            if not await _within(ws, rate):
                return False
            try:
                replies = client.first(text)
            except Close as exc:
                await ws.close(exc.code, exc.reason)
                return False
            for reply in replies:
                await ws.send(reply)
        return True

    async def _replay(
        self, ws: ServerConnection, venue: str, client: Client, rate: MessageRate
    ) -> None:
        """Send the next stored connection of this route to *ws*, then close it.

        Each route and subscription has its own next connection: a bot with
        one socket per stream gets each stored connection on every socket, and
        a reconnect on one gets the next.
        """
        loop = asyncio.get_running_loop()
        protocol, symbols = client.protocol, client.symbols
        assert symbols is not None
        sources = ("ws", "ws_sent") if isinstance(client, Dialogue) else ("ws",)
        stored = await loop.run_in_executor(
            None, self.rows[venue].connections, protocol, symbols, sources
        )
        if not stored:
            await ws.close(_TRY_LATER, f"no {protocol} data for {','.join(symbols)}")
            return
        key = (protocol, symbols, client.key)
        k = self._cursor.get(key, 0)
        if k >= len(stored):
            await ws.close(_NORMAL, "end of recording")
            return
        self._cursor[key] = k + 1
        conn = stored[k]
        if isinstance(client, Streams):
            done = await self._send_streams(ws, conn, client, rate)
        elif isinstance(client, Dialogue):
            rows = StoredDialogue.build(
                conn.recv_ns.tolist(), conn.payloads, conn.sent.tolist(), client, conn.lead
            )
            replay = DialogueReplay(
                ws,
                rows,
                client,
                functools.partial(client.book_reply, self, conn),
                functools.partial(self._write, ws),
                # Opened at --from, the stored opening replies are behind: none is waited for.
                0.0 if conn.lead else self.config.request_wait_s,
                self.config.speed,
                functools.partial(_within, ws, rate),
            )
            done = await replay.run()
        else:
            assert isinstance(client, Whole)
            if conn.lead:
                conn = await loop.run_in_executor(None, _opened, conn, client, self)
            done = await self._send(ws, conn)
        if not done:
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

    async def _send_streams(
        self, ws: ServerConnection, conn: Stored, client: Streams, rate: MessageRate
    ) -> bool:
        """Send the rows of the client's streams (and those that name no stream) of *conn*
        from ``--from`` on, as :meth:`_send`, answering the client's requests meanwhile.

        A change of streams holds from the next batch of frames not yet sent. With
        ``speed``, the connection keeps the recording's time whatever is subscribed:
        it lasts as long as the stored one, and frames that came due while their
        stream was not subscribed are not sent later.
        """
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        recorded = await loop.run_in_executor(None, _stream_names, conn, client)

        async def read() -> None:
            async for text in ws:
                if not await _within(ws, rate):
                    return
                before = client.streams
                reply = client.request(text, recorded)
                if client.streams != before:
                    changed.set()
                await ws.send(reply)

        speed, n = self.config.speed, len(conn.recv_ns)
        clock = (int(conn.recv_ns[conn.lead]), time.monotonic())
        reader = asyncio.create_task(read())
        try:
            position, sent_names, due = conn.lead, client.streams, conn.lead
            while position < n:
                changed.clear()
                names = client.streams
                # A stream subscribed now starts with its frames not yet due.
                fresh = (names - sent_names, due)
                sent_names = names
                view, origin = await loop.run_in_executor(
                    None, _only_streams, conn, client, names, position, fresh
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
    return _book_of(columns, symbol, int(conn.recv_ns[upto - 1]), depth, _VENUE_OF[protocol])


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


def _opened(conn: Stored, client: Whole, store: ServeServer) -> Stored:
    """*conn* from ``--from`` on, opened as the venue opens a connection: with the
    opening its route makes of the book the rows before ``--from`` rebuild, or with
    the stored rows alone."""
    got = client.opening(store, conn)
    opening, after = got if got is not None else ([], conn.payloads[conn.lead :])
    start = int(conn.recv_ns[conn.lead])
    recv_ns = np.concatenate([np.full(len(opening), start, np.int64), conn.recv_ns[conn.lead :]])
    return Stored(
        conn.run_id,
        conn.conn_id,
        recv_ns,
        pa.array(opening + after, pa.large_binary()),
        np.concatenate([np.zeros(len(opening), bool), conn.sent[conn.lead :]]),
    )


def _replay_ns(clock: tuple[int, float], speed: float) -> int:
    """The receive time the replay is at now, by *clock* (``(receive time, monotonic)``)."""
    return clock[0] + int((time.monotonic() - clock[1]) * speed * 1e9)


def _json(obj: object) -> str:
    return orjson.dumps(obj).decode()


def _limits(name: str) -> Recording:
    """The client limits of venue *name* (its default recording's)."""
    recording = VENUES[name].recording()
    assert recording is not None, name
    return recording


async def _within(ws: ServerConnection, rate: MessageRate) -> bool:
    """Count a client's message; past its venue's rate, close as the venue does (False)."""
    if rate.allows(time.time_ns()):
        return True
    log.warning("closing a client that sent over %d messages in a second", rate.per_second)
    await ws.close(_POLICY, "Too many requests")
    return False


def _stream_names(conn: Stored, client: Streams) -> frozenset[str]:
    """The stream names of *conn*'s rows."""
    return frozenset(name for p in conn.payloads if (name := client.stream_of(p)) is not None)


def _only_streams(
    conn: Stored,
    client: Streams,
    streams: frozenset[str],
    start: int = 0,
    fresh: tuple[frozenset[str], int] = (frozenset(), 0),
) -> tuple[Stored, np.ndarray]:
    """*conn*'s rows from *start* on with only the rows of *streams* and those of no
    stream, as *client* sends them, and the index in *conn* of each row kept. The
    streams of *fresh* ``(names, row)`` start at that row."""
    keep, payloads = [], []
    for i, payload in enumerate(conn.payloads[start:], start):
        stream = client.stream_of(payload)
        if stream is not None:
            if stream not in streams or (i < fresh[1] and stream in fresh[0]):
                continue
            payload = client.as_sent(payload, stream)
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
