"""The simulator's server: one asyncio process, one loopback port, every protocol.

One :mod:`websockets` server answers both websocket upgrades and plain HTTP
GETs: its ``process_request`` hook serves the REST routes and refuses bad
upgrade paths with Gemini's error body; upgrades to a known path go on to the
connection handler, which builds that path's :class:`~tickrec.sim.feed.Feed`.

A single engine task moves the market: every ``tick_s`` it applies the events
due at the configured rate as one batch, then hands the batch to every
connection's feed and queues the frames. REST replies and new connections
read the market between batches, in the same event loop, so every endpoint
sees the same book at the same instant. Each connection has a writer task
that drains its queue, holding it during a stall.

:class:`Simulator` runs the server in a background thread (for tests and
``tickrec demo``); :func:`run` runs it in the foreground until SIGINT or
SIGTERM (for ``tickrec sim``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import importlib
import logging
import re
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tickrec.background import Background
from tickrec.errors import TickrecError
from tickrec.sim.config import SimConfig
from tickrec.sim.faults import FrameFaults, RestFaults
from tickrec.sim.feed import Close, Feed, Reject
from tickrec.sim.market import Market
from tickrec.sim.truth import TruthLog
from tickrec.venues import VENUES

__all__ = ["SimServer", "SimStats", "Simulator", "run"]

log = logging.getLogger("tickrec.sim")


class _FeedFactory(Protocol):
    def __call__(self, market: Market, match: re.Match[str], query: Mapping[str, str]) -> Feed: ...


@functools.cache
def _sims() -> tuple[ModuleType, ...]:
    """Every venue's simulator routes (:attr:`tickrec.venues.base.Venue.sim`).

    Loaded on first use: the venues' feeds import :mod:`tickrec.sim.feed`,
    which imports this package.
    """
    return tuple(importlib.import_module(v.sim) for v in VENUES.values() if v.sim is not None)


@functools.cache
def ws_routes() -> tuple[tuple[re.Pattern[str], _FeedFactory], ...]:
    """Websocket routes: path pattern and the feed that serves it."""
    return tuple(route for sim in _sims() for route in sim.WS_ROUTES)

def routes() -> tuple[tuple[str, str, str], ...]:
    """Every venue's routes for a banner: label, ``ws`` or ``http``, and the path."""
    return tuple(route for sim in _sims() for route in sim.ROUTES)


# A client this far behind is cut off (close code 1008) rather than let the
# server's memory grow without bound.
MAX_BACKLOG = 500_000
# After a pause of the event loop, catch up at most this much of the schedule
# at once; the rest is skipped rather than sent as one burst.
MAX_CATCH_UP_S = 0.25
_NORMAL_CLOSURE = 1000
_POLICY_VIOLATION = 1008


@dataclass(frozen=True, slots=True)
class SimStats:
    """Counters since the server started."""

    events: int
    messages: int
    connections: int
    rest: int
    #: Faults injected so far, by kind (``drop``, ``abort``, ``stall``, ...).
    faults: dict[str, int] = field(default_factory=dict)


def _split(target: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(target)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def _route(market: Market, path: str, query: Mapping[str, str]) -> Feed | None:
    for pattern, factory in ws_routes():
        if m := pattern.match(path):
            return factory(market, m, query)
    return None


class _Connection:
    """One open websocket connection and its outgoing queue."""

    __slots__ = (
        "cid",
        "faults",
        "feed",
        "next_beat",
        "outbox",
        "path",
        "resume",
        "too_slow",
        "wake",
        "ws",
    )

    def __init__(
        self, cid: int, path: str, ws: ServerConnection, feed: Feed, faults: FrameFaults
    ) -> None:
        self.cid = cid
        self.path = path
        self.ws = ws
        self.feed = feed
        self.faults = faults
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.resume = asyncio.Event()  # cleared while stalled
        self.resume.set()
        self.next_beat = 0
        self.too_slow = False


class SimServer:
    """The simulator inside a running event loop: :meth:`start`, then :meth:`stop`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._clock = config.clock
        self.market: Market
        self.port = 0
        self._server: Server | None = None
        self._engine: asyncio.Task[None] | None = None
        self._conns: dict[int, _Connection] = {}
        self._next_cid = 1
        self._truth = TruthLog(config.truth_dir) if config.truth_dir is not None else None
        self._rest_faults = RestFaults(config.faults, config.seed)
        self._events = self._messages = self._rest = 0
        self._faults: Counter[str] = Counter()

    @property
    def stats(self) -> SimStats:
        """Counters since start."""
        return SimStats(
            self._events, self._messages, len(self._conns), self._rest, dict(self._faults)
        )

    async def start(self) -> None:
        """Build the market, warm it up, and start listening."""
        config = self.config
        now = self._clock()
        # The market starts a minute ago, so the warm-up trades have distinct past times.
        start = now - 60 * 1_000_000_000
        self.market = Market(config.specs, config.seed, config.depth, start, config.update_id_base)
        warmup = [
            self.market.step(start + i * 60 * 1_000_000_000 // max(config.warmup, 1))
            for i in range(config.warmup)
        ]
        if self._truth is not None:
            self._truth.book(self.market.specs, self.market.genesis)
            self._truth.book(self.market.specs, warmup)
        self._server = await serve(
            self._handle,
            config.host,
            config.port,
            process_request=self._process_request,
            # Gemini's frames are small and the recorder stores them as sent;
            # compression would only cost CPU on loopback.
            compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._engine = asyncio.create_task(self._run_engine())
        self._engine.add_done_callback(self._engine_done)
        log.info("simulator listening on %s port %d", config.host, self.port)

    async def stop(self) -> None:
        """Stop the engine, close every connection (code 1001) and flush the truth files."""
        if self._engine is not None:
            self._engine.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._engine
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._truth is not None:
            self._truth.close()

    # --- engine -----------------------------------------------------------------------

    @staticmethod
    def _engine_done(task: asyncio.Task[None]) -> None:
        # The engine only ends by cancellation; anything else is a bug worth a loud line.
        if not task.cancelled() and task.exception() is not None:
            log.error("market engine stopped", exc_info=task.exception())

    async def _run_engine(self) -> None:
        config, market = self.config, self.market
        tick_ns = int(config.tick_s * 1e9)
        beat_ns = int(config.heartbeat_s * 1e9)
        max_batch = max(1, int(config.rate * MAX_CATCH_UP_S))
        origin = time.monotonic_ns()
        emitted = 0
        while True:
            await asyncio.sleep(config.tick_s - (time.monotonic_ns() - origin) % tick_ns / 1e9)
            now = self._clock()
            due = int((time.monotonic_ns() - origin) * config.rate / 1e9) - emitted
            if due > max_batch:
                emitted += due - max_batch
                due = max_batch
            emitted += due
            events = market.steps(due, now)
            self._events += due
            if self._truth is not None:
                self._truth.book(market.specs, events)
            for conn in list(self._conns.values()):
                # Every tick, events or not: a conflating feed flushes on its own interval.
                frames = conn.feed.publish(events, now)
                if conn.feed.heartbeats and now >= conn.next_beat:
                    frames.append(conn.feed.beat(now))
                    conn.next_beat = now + beat_ns
                if frames:
                    self._enqueue(conn, frames, now)

    def _enqueue(self, conn: _Connection, frames: list[str], now: int) -> None:
        frames, injected = conn.faults.apply(frames)
        for fault in injected:
            self._fault(now, fault.kind, conn, frame=fault.frame)
        conn.outbox.extend(frames)
        if len(conn.outbox) > MAX_BACKLOG:
            log.warning("connection %d: %d frames behind, closing it", conn.cid, len(conn.outbox))
            conn.outbox.clear()
            conn.too_slow = True
        conn.wake.set()

    def _fault(
        self, now: int, kind: str, conn: _Connection | None, path: str = "", **detail: Any
    ) -> None:
        cid, path = (conn.cid, conn.path) if conn is not None else (None, path)
        self._faults[kind] += 1
        # Frames can be long: the log gets their start, the truth file all of it.
        shown = {
            k: v[:80] + "..." if isinstance(v, str) and len(v) > 80 else v
            for k, v in detail.items()
        }
        log.info("fault %s: connection %s, %s %s", kind, cid, path, shown)
        if self._truth is not None:
            self._truth.fault(now, kind, cid, path, **detail)

    # --- websocket connections ----------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # the handler runs after the handshake
        target = ws.request.path
        path, query = _split(target)
        feed = _route(self.market, path, query)
        assert feed is not None  # _process_request refused every other path
        cid = self._next_cid
        self._next_cid += 1
        conn = _Connection(
            cid, target, ws, feed, FrameFaults(self.config.faults, self.config.seed, cid)
        )
        now = self._clock()
        conn.next_beat = now + int(self.config.heartbeat_s * 1e9)
        # Registering and taking the opening frames happen with no await in
        # between, so no engine batch can fall between the snapshot and the stream.
        if self._truth is not None:
            self._truth.connection(cid, target, now, "open", protocol=feed.protocol)
        self._conns[cid] = conn
        self._enqueue(conn, feed.open(now), now)
        tasks = [asyncio.create_task(self._write(conn))]
        faults = self.config.faults
        if faults.close_every and (not faults.close_conns or cid in faults.close_conns):
            tasks.append(asyncio.create_task(self._close_later(conn)))
        if faults.stall_every:
            tasks.append(asyncio.create_task(self._stall(conn)))
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                now = self._clock()
                try:
                    frames = feed.receive(text, now)
                except Close as exc:
                    await ws.close(exc.code, exc.reason)
                    break
                if frames:
                    self._enqueue(conn, frames, now)
        except ConnectionClosed:
            pass
        finally:
            del self._conns[cid]
            for task in tasks:
                task.cancel()
            if self._truth is not None:
                # Whichever side closed first; neither frame means the TCP connection just ended.
                frame = ws.protocol.close_rcvd or ws.protocol.close_sent
                if frame is None:
                    self._truth.connection(cid, target, self._clock(), "abort")
                else:
                    self._truth.connection(
                        cid,
                        target,
                        self._clock(),
                        "close",
                        code=frame.code,
                        reason=frame.reason,
                    )

    async def _write(self, conn: _Connection) -> None:
        ws, outbox, truth = conn.ws, conn.outbox, self._truth
        try:
            while True:
                await conn.wake.wait()
                conn.wake.clear()
                if conn.too_slow:
                    await ws.close(_POLICY_VIOLATION, "too slow")
                    return
                while outbox:
                    if not conn.resume.is_set():
                        await conn.resume.wait()
                        continue
                    frame = outbox.popleft()
                    await ws.send(frame)
                    self._messages += 1
                    if truth is not None:
                        truth.message(conn.cid, conn.path, self._clock(), frame)
        except ConnectionClosed:
            pass

    async def _close_later(self, conn: _Connection) -> None:
        faults = self.config.faults
        await asyncio.sleep(faults.close_every)
        notice = conn.feed.shutdown_notice(self._clock()) if faults.shutdown_notice else None
        if notice is not None:
            now = self._clock()
            self._fault(now, "shutdown_notice", conn, seconds=faults.shutdown_notice)
            self._enqueue(conn, [notice], now)
            await asyncio.sleep(faults.shutdown_notice)
        if faults.abrupt:
            self._fault(self._clock(), "abort", conn)
            # Abort the TCP connection: the client gets no close frame (RFC 6455 section 7.1.7).
            assert conn.ws.transport is not None
            conn.ws.transport.abort()
        else:
            self._fault(self._clock(), "close", conn, code=_NORMAL_CLOSURE)
            await conn.ws.close(_NORMAL_CLOSURE, "scheduled close")

    async def _stall(self, conn: _Connection) -> None:
        faults = self.config.faults
        while True:
            await asyncio.sleep(faults.stall_every)
            self._fault(self._clock(), "stall", conn, seconds=faults.stall_for)
            conn.resume.clear()
            try:
                await asyncio.sleep(faults.stall_for)
            finally:
                conn.resume.set()
            self._fault(self._clock(), "stall_end", conn)

    # --- HTTP: REST replies and upgrade checks --------------------------------------------

    @staticmethod
    def _reply(
        connection: ServerConnection,
        status: int,
        body: str,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        response = connection.respond(http.HTTPStatus(status), body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path, query = _split(request.path)
        if "websocket" in request.headers.get("Upgrade", "").lower():
            try:
                if _route(self.market, path, query) is None:
                    raise Reject(404, "NotFound", f"no such endpoint: {path}")
            except Reject as exc:
                return self._reply(connection, exc.status, exc.body())
            return None
        rest = next((sim.REST for sim in _sims() if sim.REST.matches(path)), None)
        if rest is None:
            if any(pattern.match(path) for pattern, _ in ws_routes()):
                return None  # a plain GET on a websocket path: websockets answers 426
            return self._reply(
                connection, 404, Reject(404, "NotFound", f"no such endpoint: {path}").body()
            )
        return await self._rest_reply(connection, rest, request.path, path, query)

    async def _rest_reply(
        self,
        connection: ServerConnection,
        rest: Any,
        target: str,
        path: str,
        query: Mapping[str, str],
    ) -> Response:
        start = self._clock()
        self._rest += 1
        fault = self._rest_faults.pick()
        headers: dict[str, str] = {}
        if fault == "429":
            retry = str(self.config.faults.retry_after)
            self._fault(start, "rest_429", None, target, retry_after=retry)
            reply = rest.rate_limited(retry)
            headers.update(reply.headers)
        elif fault == "500":
            self._fault(start, "rest_500", None, target)
            reply = rest.server_error()
        else:
            reply = rest.handle(self.market, path, query, self._clock())
            headers.update(reply.headers)
        if self._truth is not None:
            self._truth.rest(
                self._clock(),
                start,
                target,
                reply.status,
                self.market.last_event_id,
                reply.body,
            )
        if fault == "slow":
            # Built now, delivered late: the body is stale by the time it
            # arrives, as over a slow path, while the stream goes on.
            delay = self.config.faults.rest_slow_for
            self._fault(start, "rest_slow", None, target, seconds=delay)
            await asyncio.sleep(delay)
        return self._reply(connection, reply.status, reply.body, headers)


class Simulator(Background[SimServer]):
    """A simulator running in a background thread; a context manager.

    ::

        with Simulator(SimConfig(rate=1000, seed=7)) as sim:
            requests.get(sim.rest_url + "/v1/book/btcusd")
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        super().__init__(lambda: SimServer(self.config), "tickrec-sim")

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.service.port

    @property
    def _authority(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT``; append ``/v1/marketdata/btcusd``, ``/v2/marketdata`` or ``/``."""
        return f"ws://{self._authority}"

    @property
    def rest_url(self) -> str:
        """``http://HOST:PORT``; append ``/v1/book/btcusd`` and so on."""
        return f"http://{self._authority}"

    @property
    def stats(self) -> SimStats:
        """Counters since start."""
        return self.service.stats


def run(
    config: SimConfig,
    on_ready: Callable[[str, str], None] | None = None,
    on_status: Callable[[SimStats], None] | None = None,
    status_every: float = 5.0,
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then stop cleanly.

    *on_ready*, if given, gets the websocket and REST base URLs once
    listening; *on_status* gets the counters every *status_every* seconds.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        server = SimServer(config)
        await server.start()
        try:
            host = f"[{config.host}]" if ":" in config.host else config.host
            if on_ready is not None:
                on_ready(f"ws://{host}:{server.port}", f"http://{host}:{server.port}")
            while not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), status_every)
                if on_status is not None and not stopping.is_set():
                    on_status(server.stats)
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except OSError as exc:
        raise TickrecError(f"cannot serve on {config.host} port {config.port}: {exc}") from None
