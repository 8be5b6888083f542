"""Sync snapshots: the REST books that a connection's own book is built from.

On a venue whose stream carries diffs only (Binance), a connection's
session asks for a REST snapshot of a symbol on connect, after a gap and
when a snapshot came too old (:class:`~tickrec.venues.base.FetchBook`).
One :class:`BookFetcher` thread per run takes them one at a time, in the
order asked, through the run's :class:`~recorder.rest.RequestPacer` (at
least ``min_gap`` apart and within the venue's weight a minute; a 429 or
418 waits its ``Retry-After``), so the stream is never held up by REST.

A reply is handed to its connection (:meth:`SyncTarget.book_reply`), which
stores it as a ``rest`` row *of that connection* (docs/architecture.md
section 2.6) and lets the session line it up with the diffs held. A reply
for a connection that has ended since is not stored: it belongs to no
stream. A failed request is a ``rest_error`` event of the connection
(``sync`` true) and is asked again, after the pause a 429 asks for or
``retry_s``; asking twice for the same symbol of one connection while a
request is pending asks once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import requests

from recorder.journal import Journal
from recorder.rest import RequestPacer, wait_asked
from recorder.status import Stats
from tickrec.contract import event_payload
from tickrec.errors import JournalError

__all__ = ["BookFetcher", "SyncTarget"]

log = logging.getLogger("tickrec.recorder")

_MAX_ERROR_BODY = 2000


class SyncTarget(Protocol):
    """A connection that takes sync snapshots (:class:`recorder.feed.Connection`)."""

    conn_id: int

    @property
    def is_open(self) -> bool: ...

    def book_reply(self, conn_id: int, symbol: str, text: str, sent_ns: int) -> bool: ...


class BookFetcher(threading.Thread):
    """Takes the sync snapshots the run's connections ask for, one at a time."""

    def __init__(
        self,
        base_url: str,
        book_url: Callable[[str, str, int], str],
        protocol: str,
        weight: int,
        journal: Journal,
        stats: Stats,
        pacer: RequestPacer,
        stop: threading.Event,
        *,
        depth: int = 0,
        timeout: tuple[float, float] = (5.0, 10.0),
        retry_s: float = 1.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__(name="rest-sync", daemon=True)
        self.base_url, self.book_url, self.protocol = base_url, book_url, protocol
        self.weight, self.depth, self.timeout, self.retry_s = weight, depth, timeout, retry_s
        self.journal, self.stats, self.pacer, self._halt = journal, stats, pacer, stop
        self.clock = clock
        self._queue: deque[tuple[SyncTarget, int, str]] = deque()
        self._pending: set[tuple[int, str]] = set()
        self._ready = threading.Condition()

    def request(self, conn: SyncTarget, conn_id: int, symbol: str) -> None:
        """Ask for a snapshot of *symbol* for connection *conn_id* of *conn* (any thread)."""
        with self._ready:
            if (conn_id, symbol) in self._pending:
                return
            self._pending.add((conn_id, symbol))
            self._queue.append((conn, conn_id, symbol))
            self._ready.notify()

    def pending(self) -> int:
        """Snapshots asked for and not yet taken."""
        with self._ready:
            return len(self._queue)

    def run(self) -> None:
        try:
            with requests.Session() as session:
                while (task := self._next()) is not None:
                    self._take(session, *task)
        except JournalError:
            return  # the journal gave up; the run's supervisor reports it and stops

    def _next(self) -> tuple[SyncTarget, int, str] | None:
        with self._ready:
            while not self._queue:
                if self._halt.is_set():
                    return None
                self._ready.wait(0.1)
            conn, conn_id, symbol = self._queue.popleft()
            self._pending.discard((conn_id, symbol))
            return conn, conn_id, symbol

    def _take(self, session: requests.Session, conn: SyncTarget, conn_id: int, symbol: str) -> None:
        if conn.conn_id != conn_id or not conn.is_open:
            return  # the connection ended: its successor asks for its own
        if not self.pacer.wait(self._halt, self.weight):
            return
        url = self.book_url(self.base_url, symbol, self.depth)
        sent_ns = self.clock()
        try:
            reply = session.get(url, timeout=self.timeout)
            body = reply.content  # read in full before the time is taken
        except requests.RequestException as exc:
            self.pacer.done(self.retry_s)
            self._failed(conn, conn_id, symbol, sent_ns, url, None, f"{type(exc).__name__}: {exc}")
            return
        text = body.decode("utf-8", "backslashreplace")
        if reply.status_code == 200:
            self.pacer.done()
            if conn.book_reply(conn_id, symbol, text, sent_ns):
                self.stats.snapshot(symbol, self.clock() - sent_ns)
            return
        wait = wait_asked(reply)
        self.pacer.done(max(wait, self.retry_s))
        self._failed(
            conn, conn_id, symbol, sent_ns, url, reply.status_code, None, text[:_MAX_ERROR_BODY]
        )

    def _failed(
        self,
        conn: SyncTarget,
        conn_id: int,
        symbol: str,
        sent_ns: int,
        url: str,
        status: int | None,
        error: str | None,
        body: str | None = None,
    ) -> None:
        """A ``rest_error`` event of the connection; the snapshot is asked again."""
        detail = {"error": error} if error is not None else {"body": body}
        log.warning(
            "sync snapshot of %s for connection %d failed (%s); asking again",
            symbol,
            conn_id,
            error or f"status {status}",
        )
        self.journal.append(
            self.clock(),
            conn_id,
            self.protocol,
            "event",
            event_payload(
                "rest_error", symbol=symbol, sent_ns=sent_ns, url=url, status=status, sync=True,
                **detail,
            ),
            (symbol,),
        )
        self.stats.count((symbol,), "rest_errors")
        self.request(conn, conn_id, symbol)
