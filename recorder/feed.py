"""Websocket capture: one thread per connection, every frame to the journal.

A :class:`Connection` keeps one websocket alive for as long as the run lasts.
It reads the socket in chunks, which :class:`~recorder.frames.FrameReader`
splits into messages, and stamps each message with the run's clock
(``time.time_ns`` unless a test gives another) as it comes out, before its
payload is parsed. Each message's header is read with the pure venue codec,
and the message is appended to the journal with the symbols it belongs to;
the messages of one chunk reach the OS in one write, before the socket is
read again. Everything that happens to the connection is an event row too
(see :data:`tickrec.contract.EVENTS`).

The venue decides, the connection carries out. Every connect opens a new
venue session (:class:`tickrec.venues.base.Session`); the connection stores
each message, shows its header to the session under one lock, and carries
out the actions it returns: messages to send (subscriptions, requests, each
stored as a ``ws_sent`` row before it goes out), a sync snapshot through the
run's :class:`~recorder.sync.BookFetcher` (stored as a ``rest`` row of this
connection, :meth:`Connection.book_reply`), a ``gap`` event, a successor
when the book is lost (make-before-break: :class:`~recorder.midnight.DayBoundary`
opens it and retires this one once the successor is in sync), or a failure
that stops the run (a request the venue refused will be refused again).

Staying up:

- a failed or ended connection is retried with capped exponential backoff and
  jitter, and every attempt takes a token from a run-wide
  :class:`ConnectLimiter` (Gemini allows 12 public websocket requests a minute);
- :meth:`Connection.check_stale`, called by the run's watchdog, drops a
  connection that has been silent (heartbeats included) for too long; after
  a third of that silence it asks the session for a keepalive (a ``ping``
  request where the server sends no heartbeats), so a quiet market is not
  taken for a dead connection; a venue whose connections end after a
  *lifetime* gets a successor a tenth of the lifetime (at most ten minutes)
  before;
- a frame that cannot be read is stored raw all the same and noted with a
  ``malformed`` event; whether the book survives it is the session's call;
- every failed connect and every disconnect is logged at WARNING as it
  happens, with the close code and reason or why, so the terminal shows
  why a feed keeps reconnecting (the connect limiter bounds how often); a
  disconnect we asked for at shutdown is logged at INFO.

Midnight (docs/architecture.md section 2.5): :meth:`Connection.refresh`
has the open connection's session take fresh books, and
:meth:`Connection.successor` makes the next connection of a make-before-break
handover, for venues whose book comes only with a new connection: it is
*held*, so it brings no book until :meth:`Connection.release` (one whose
book comes on connect connects then; another is connected already and
opens its session then), and it reports :attr:`Connection.in_sync` once its
book is in. The old connection then ends with :meth:`Connection.retire`: a
clean close and a ``disconnect`` event whose ``why`` is :data:`HANDOVER`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import websocket

from recorder.frames import CONTROL_OPCODES, FrameReader
from recorder.journal import Journal
from recorder.status import Stats
from tickrec.contract import event_payload
from tickrec.errors import JournalError
from tickrec.venues import header_of
from tickrec.venues.base import Action, Fail, FetchBook, GapAt, Header, Resync, Send, Session

if TYPE_CHECKING:
    from recorder.sync import BookFetcher

__all__ = ["HANDOVER", "RESYNC", "ConnectLimiter", "Connection", "FeedSettings", "backoff_delay"]

log = logging.getLogger("tickrec.recorder")

#: Bytes asked of the socket per read: a small frame or many in one call.
READ_CHUNK = 65536
_BINARY = websocket.ABNF.OPCODE_BINARY
#: ``why`` of the ``disconnect`` event of a connection retired at midnight for its successor.
HANDOVER = "midnight handover"
#: ``why`` of the ``disconnect`` event of a connection retired, after a break, for a
#: successor that has the book again (make-before-break, :class:`recorder.midnight.DayBoundary`).
RESYNC = "resync handover"
_PLANNED = ("shutdown", HANDOVER, RESYNC)


@dataclass(frozen=True)
class FeedSettings:
    """Timing of one connection's life."""

    stale_after: float = 15.0
    connect_timeout: float = 10.0
    close_timeout: float = 2.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0


def backoff_delay(failures: int, base: float, cap: float, rand: float) -> float:
    """Seconds to wait before the next attempt after *failures* failed ones.

    Doubling from *base*, capped at *cap*, scaled by a jitter factor in
    [0.5, 1) from *rand* in [0, 1) so that many recorders do not retry in step.
    """
    return min(cap, base * 2 ** min(failures, 30)) * (0.5 + rand / 2)


class ConnectLimiter:
    """A token bucket shared by every connection of a run: *per_minute* connects, bursting to it."""

    def __init__(self, per_minute: float = 12.0) -> None:
        self._rate = per_minute / 60.0
        self._capacity = max(1.0, per_minute)
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event) -> bool:
        """Take a token, waiting for one; False if *stop* is set first."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                wait = (1 - self._tokens) / self._rate
            if stop.wait(wait):
                return False


class Connection(threading.Thread):
    """One websocket of the run, for some of its symbols (or all).

    Every connect starts a new venue *session* (:class:`tickrec.venues.base.Session`)
    whose actions the connection carries out: what it sends (each message
    stored as a ``ws_sent`` row first), its sync snapshots, its gaps, its
    successor. Every time stamp comes from *clock* (ns since the epoch). A
    *held* connection waits for :meth:`release` before it takes its book:
    before connecting when the book comes on connect (*book_on_connect*),
    before the session's opening actions otherwise.
    """

    def __init__(
        self,
        url: str,
        protocol: str,
        symbols: tuple[str, ...],
        journal: Journal,
        stats: Stats,
        limiter: ConnectLimiter,
        next_conn_id: Callable[[], int],
        stop: threading.Event,
        settings: FeedSettings = FeedSettings(),
        *,
        session: Callable[[tuple[str, ...]], Session],
        clock: Callable[[], int] = time.time_ns,
        held: bool = False,
        book_on_connect: bool = False,
        fetcher: BookFetcher | None = None,
        rest_protocol: str = "",
        lifetime: float = 0.0,
    ) -> None:
        super().__init__(name=f"ws-{'-'.join(symbols)}", daemon=True)
        self._new_session, self.fetcher, self.rest_protocol = session, fetcher, rest_protocol
        self.lifetime, self.book_on_connect = lifetime, book_on_connect
        self._venue: Session | None = None  # the open connection's session
        self._venue_lock = threading.Lock()  # the session's state and the rows it has seen
        self._opened = 0.0  # monotonic time of the current connect
        self.url, self.protocol, self.symbols = url, protocol, symbols
        self.journal, self.stats, self.limiter = journal, stats, limiter
        self._next_conn_id, self._halt, self.settings = next_conn_id, stop, settings
        self.clock = clock
        self._pinged = 0.0
        self.conn_id = 0
        #: Why the run must stop, when the exchange refused one of our requests.
        self.failure: str | None = None
        self._by_upper = {s.upper(): s for s in symbols}
        self._ws: websocket.WebSocket | None = None
        self._ws_lock = threading.Lock()
        self._why: str | None = None  # why we are ending the current connection
        self.last_recv = time.monotonic()
        self._released = threading.Event()
        if not held:
            self._released.set()
        self._holding = False  # connected, but the session's opening waits for release
        self._retired: str | None = None  # why the connection ended for good
        self._retire_detail: dict[str, object] = {}
        #: Why the open session's book can no longer be trusted (a break), if it cannot;
        #: the session goes on recording until a successor has the book.
        self.broken: str | None = None

    # --- rows

    def _event(self, name: str, **detail: object) -> None:
        self.journal.append(
            self.clock(),
            self.conn_id,
            self.protocol,
            "event",
            event_payload(name, **detail),
            self.symbols,
        )

    def _route(self, header: Header) -> tuple[tuple[str, ...], str | None]:
        """The partitions of a message, and a problem if it names a symbol we did not ask for."""
        if header.symbol is None:
            return self.symbols, None
        symbol = self._by_upper.get(header.symbol.upper())
        if symbol is None:
            return self.symbols, f"message for unsubscribed symbol {header.symbol!r}"
        return (symbol,), None

    # --- control from other threads

    def check_stale(self, now: float) -> None:
        """Drop the connection if nothing has arrived for ``stale_after`` seconds."""
        silent = now - self.last_recv
        quiet = self.settings.stale_after / 3
        if self.lifetime and self.is_open and now - self._opened >= _renew_after(self.lifetime):
            self._resync(f"connection lifetime: {self.lifetime:g} s")
        try:
            venue = self._venue
            quiet_now = silent >= quiet and now - self._pinged >= quiet
            if venue is not None and self.is_open and quiet_now:
                self._pinged = now
                with self._venue_lock:
                    actions = venue.idle()
                self._act(actions)
            with self._ws_lock:
                if self._ws is None or self._why is not None or silent < self.settings.stale_after:
                    return
                self._why = f"stale: nothing received for {silent:.1f} s"
            self._event("stale", silent_s=round(silent, 3))
            self.stats.count(self.symbols, "silences")
        except JournalError:
            return  # the journal gave up; the run's supervisor (our caller) reports it and stops
        self.abort()

    def _send(self, messages: Iterable[str]) -> None:
        """Send *messages* on the open connection (from any thread).

        Each is stored as a ``ws_sent`` row before it goes out, so its reply
        always comes after it in ``seq`` order.
        """
        with self._ws_lock:
            ws = self._ws if self._why is None else None
        if ws is None:
            return
        try:
            for message in messages:
                self.journal.append(
                    self.clock(), self.conn_id, self.protocol, "ws_sent", message, self.symbols
                )
                ws.send(message)
        except (websocket.WebSocketException, OSError):
            return  # the reader sees the broken connection and reports it

    # --- midnight handover

    def successor(self, held: bool = True) -> Connection:
        """A new connection like this one (not started), held until :meth:`release` if *held*."""
        return Connection(
            self.url,
            self.protocol,
            self.symbols,
            self.journal,
            self.stats,
            self.limiter,
            self._next_conn_id,
            self._halt,
            self.settings,
            session=self._new_session,
            clock=self.clock,
            held=held,
            book_on_connect=self.book_on_connect,
            fetcher=self.fetcher,
            rest_protocol=self.rest_protocol,
            lifetime=self.lifetime,
        )

    def release(self) -> None:
        """Let a held connection take its book: its session opens now if it is connected,
        else on connect."""
        with self._ws_lock:
            self._released.set()
            opening = self._holding and self._why is None
            self._holding = False
        if opening:
            self._open()

    def _open(self) -> None:
        """Carry out the session's opening actions (its subscriptions, its first books)."""
        venue = self._venue
        if venue is None:
            return
        with self._venue_lock:
            actions = venue.opening()
        self._act(actions)

    @property
    def in_sync(self) -> bool:
        """True while a connection is open, not closing, and has the book of every symbol."""
        booked = self._venue.booked if self._venue is not None else ()
        with self._ws_lock:
            return (
                self._ws is not None
                and self._why is None
                and not self._holding
                and self.broken is None
                and len(booked) == len(self.symbols)
            )

    def retire(self, why: str = HANDOVER, **detail: object) -> None:
        """End the connection for good with a clean close; no reconnect follows.

        *why* and *detail* go in its ``disconnect`` event.
        """
        self._retire_detail = detail
        self._retired = why
        self.close(why)

    def abort(self) -> None:
        """Cut the connection now (no close handshake)."""
        with self._ws_lock:
            if self._ws is not None:
                self._why = self._why or "aborted"
                self._ws.abort()

    def close(self, why: str) -> None:
        """Start a clean close (close frame 1000); the reader ends when the server answers."""
        with self._ws_lock:
            ws = self._ws
            if ws is None:
                return
            self._why = why
        try:
            ws.send_close(websocket.STATUS_NORMAL, why.encode())
        except (websocket.WebSocketException, OSError):
            ws.abort()

    # --- the connection's thread

    def run(self) -> None:
        try:
            self._run()
        except JournalError:
            return  # the journal gave up; the run's supervisor reports it and stops

    def _run(self) -> None:
        failures = 0
        rng = random.Random()
        delay = 0.0
        while not self._halt.is_set() and self._retired is None:
            if not self.limiter.acquire(self._halt):
                return
            self.conn_id = self._next_conn_id()
            if delay:
                self._event("reconnect", attempt=failures + 1, waited_s=round(delay, 3))
                self.stats.count(self.symbols, "reconnects")
            received = self._session()
            if self.failure is not None or self._retired is not None:
                return
            failures = 0 if received else failures + 1
            s = self.settings
            delay = backoff_delay(failures, s.backoff_base, s.backoff_cap, rng.random())
            if self._halt.wait(delay):
                return

    def _wait_release(self) -> bool:
        """Wait until :meth:`release`; False if the run stops or the connection retires first."""
        while not self._released.wait(0.05):
            if self._halt.is_set() or self._retired is not None:
                return False
        return True

    def _session(self) -> bool:
        """One connection from connect to end; True if it received anything."""
        if self.book_on_connect and not self._wait_release():
            return False  # it brings its book on connect: connect once released
        try:
            ws = websocket.create_connection(
                self.url,
                timeout=self.settings.connect_timeout,
                skip_utf8_validation=True,  # checked here, so a bad frame is stored, not fatal
                enable_multithread=True,
            )
        except Exception as exc:  # a URL the client refuses too: retried, never a dead thread
            error = f"{type(exc).__name__}: {exc}"
            log.warning("connection %d to %s failed: %s", self.conn_id, self.url, error)
            self._event(
                "error", url=self.url, error=error, status=getattr(exc, "status_code", None)
            )
            return False
        ws.settimeout(None)  # silence is the watchdog's business
        self.broken = None
        self._venue = self._new_session(self.symbols)
        self._opened = time.monotonic()
        with self._ws_lock:
            self._ws, self._why = ws, None
            self._holding = not self._released.is_set()
            holding = self._holding
        self.last_recv = time.monotonic()
        self._event("connect", url=self.url)
        received = False
        try:
            if not holding:
                self._open()
            if self._halt.is_set():
                self.close("shutdown")
            elif self._retired is not None:
                self.close(self._retired)
            received = self._read(ws)
        except JournalError:
            raise
        except Exception as exc:  # anything ends this connection, never the capture
            if not isinstance(exc, (websocket.WebSocketException, OSError)):
                log.exception("connection %d to %s failed unexpectedly", self.conn_id, self.url)
            self._disconnected(None, None, self._why or f"{type(exc).__name__}: {exc}")
        finally:
            with self._ws_lock:
                self._ws = None
            ws.shutdown()
        return received

    @property
    def is_open(self) -> bool:
        """Whether the websocket is connected now."""
        return self._ws is not None and self._why is None

    def _disconnected(self, code: int | None, reason: str | None, why: str) -> None:
        """Note the end of the current connection: an event row and a log line."""
        level = logging.INFO if why in _PLANNED else logging.WARNING
        log.log(
            level,
            "connection %d to %s closed (code %s, reason %r): %s",
            self.conn_id,
            self.url,
            code,
            reason,
            why,
        )
        detail = self._retire_detail if why == self._retired else {}
        self._event("disconnect", code=code, reason=reason, why=why, **detail)
        if why not in _PLANNED:
            self.stats.count(self.symbols, "disconnects")

    def _resync(self, why: str) -> None:
        """Note that the session's book is lost: it keeps recording, and the run's
        :class:`~recorder.midnight.DayBoundary` opens a successor for a fresh book
        (make-before-break) and retires this session once the successor is in sync."""
        if self.broken is None:
            self.broken = why
            log.warning("connection %d to %s: %s; opening a successor", self.conn_id, self.url, why)

    def _read(self, ws: websocket.WebSocket) -> bool:
        frames = FrameReader()
        received = False
        sock = ws.sock
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("Connection is closed")
        while True:
            chunk = sock.recv(READ_CHUNK)
            self.last_recv = time.monotonic()
            if not chunk:
                raise websocket.WebSocketConnectionClosedException(
                    "Connection to remote host was lost."
                )
            try:
                for opcode, data in frames.feed(chunk):
                    # Each frame its own time, taken as it comes out of the chunk and before
                    # its payload is read: frames of one chunk stay apart in replay time.
                    recv_ns = self.clock()
                    if self._message(ws, opcode, data, recv_ns):
                        received = True
                    elif opcode == websocket.ABNF.OPCODE_CLOSE:
                        return received
            finally:
                # The chunk's messages in one write, before the socket is read again.
                self.journal.write_deferred()

    def _control(self, ws: websocket.WebSocket, opcode: int, data: bytes) -> None:
        """Answer a ping, or a close (which ends the connection); a pong needs nothing."""
        if opcode == websocket.ABNF.OPCODE_PING:
            ws.pong(data)  # RFC 6455 section 5.5.2
        elif opcode == websocket.ABNF.OPCODE_CLOSE:
            ws.send_close()  # section 5.5.1: answer with a close frame
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            reason = data[2:].decode("utf-8", "backslashreplace")
            self._disconnected(code, reason, self._why or "closed by server")

    def _message(
        self,
        ws: websocket.WebSocket,
        opcode: int,
        data: bytes,
        recv_ns: int,
    ) -> bool:
        """Handle one message; True if it was data (stored), False for a control frame."""
        if opcode in CONTROL_OPCODES:
            self._control(ws, opcode, data)
            return False
        problem = None
        payload: str | bytes = data  # stored as it came whenever it is valid UTF-8
        if not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError:
                payload = data.decode("utf-8", "backslashreplace")
                problem = "invalid UTF-8; stored with backslash escapes"
        if opcode == _BINARY:
            problem = "binary frame; stored as text with backslash escapes"
        header = header_of(self.protocol, payload)
        symbols, route_problem = self._route(header)
        venue = self._venue
        actions: Sequence[Action] = ()
        with self._venue_lock:  # the row and the session's view of it, in one step
            seq = self._store(recv_ns, payload, symbols, header)
            if venue is not None:
                actions = venue.message(header, payload)
        self.stats.message(symbols, recv_ns, header.exch_ns, len(data))
        problem = problem or header.problem or route_problem
        if problem is not None:
            self._event("malformed", seq=seq, problem=problem)
            self.stats.count(symbols, "malformed")
        if self._why is None:  # else closing: the next connection starts afresh anyway
            self._act(actions)
        return True

    def _store(
        self, recv_ns: int, payload: str | bytes, symbols: tuple[str, ...], h: Header
    ) -> int:
        return self.journal.append(
            recv_ns,
            self.conn_id,
            self.protocol,
            "ws",
            payload,
            symbols,
            h.exch_ns,
            h.venue_seq,
            defer=True,
        )

    # --- a venue session's actions (tickrec.venues.base.Session)

    def _act(self, actions: Iterable[Action]) -> None:
        """Carry out what the session asked for."""
        for action in actions:
            match action:
                case FetchBook(symbol):
                    if self.fetcher is not None:
                        self.fetcher.request(self, self.conn_id, symbol)
                case GapAt(symbol, gap):
                    where = self.symbols if symbol is None else (symbol,)
                    named = {} if symbol is None else {"symbol": symbol}
                    self.journal.append(
                        self.clock(),
                        self.conn_id,
                        self.protocol,
                        "event",
                        event_payload("gap", expected=gap.expected, got=gap.got, **named),
                        where,
                    )
                    self.stats.count(where, "gaps")
                    log.warning(
                        "connection %d (%s): the sequence skips from %d to %d",
                        self.conn_id,
                        ",".join(where),
                        gap.expected,
                        gap.got,
                    )
                case Resync(why):
                    self._resync(why)
                case Send(messages):
                    self._send(messages)
                case Fail(why, error, detail):
                    if self.failure is None:
                        self._event("error", **detail)
                        self.failure = error
                        self.close(why)

    def book_reply(self, conn_id: int, symbol: str, text: str, sent_ns: int) -> bool:
        """Store a sync snapshot as a ``rest`` row of this connection and hand it to the
        session (the fetcher's thread); False, and nothing stored, if *conn_id* has ended."""
        with self._venue_lock:
            venue = self._venue
            if venue is None or conn_id != self.conn_id or not self.is_open:
                return False
            self.journal.append(
                self.clock(), conn_id, self.rest_protocol, "rest", text, (symbol,), sent_ns=sent_ns
            )
            actions = venue.book(symbol, text)
        self._act(actions)
        return True

    def refresh(self) -> bool:
        """Take a fresh book of every symbol on the open connection; False if none is open."""
        venue = self._venue
        if venue is None or not self.is_open or self._holding:
            return False
        with self._venue_lock:
            actions = venue.refresh()
        self._act(actions)
        return True


def _renew_after(lifetime: float) -> float:
    """When a connection that the venue closes after *lifetime* seconds gets its successor:
    a tenth of it, at most ten minutes, before."""
    return lifetime - min(600.0, lifetime / 10)
