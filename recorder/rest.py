"""Periodic REST order book snapshots (gemini.md section 4), stored raw.

One thread takes ``GET /v1/book/{symbol}`` for every symbol each
``snapshot_every`` seconds, through one requests Session with timeouts. Each
reply body is a ``rest`` row stamped with the time the request was sent
(``sent_ts``) and the time the reply was complete (``recv_ts``): the book it
shows was taken somewhere in between, which is how the replayer compares it.

Requests are spaced at least ``min_gap`` apart across all symbols (Gemini asks
for no more than 1 request/s on public endpoints, gemini.md section 4, "Rate
limits"); a 429 waits as ``Retry-After`` says. A failure of any kind (timeout,
refused, 4xx, 5xx) is a ``rest_error`` event row, and streaming goes on.
"""

from __future__ import annotations

import logging
import threading
import time

import requests

from recorder.journal import Journal
from recorder.status import Stats
from tickrec.contract import RUN_CONN_ID, event_payload
from tickrec.errors import JournalError
from tickrec.venues.gemini_rest import PROTOCOL, book_url, retry_after_seconds

__all__ = ["SnapshotPoller"]

log = logging.getLogger("tickrec.recorder")

_DEFAULT_RETRY_AFTER = 5.0
_MAX_ERROR_BODY = 2000


class SnapshotPoller(threading.Thread):
    """Takes REST book snapshots of every symbol, round after round, until *stop* is set."""

    def __init__(
        self,
        base_url: str,
        symbols: tuple[str, ...],
        journal: Journal,
        stats: Stats,
        stop: threading.Event,
        every: float = 60.0,
        depth: int = 0,
        min_gap: float = 1.0,
        timeout: tuple[float, float] = (5.0, 10.0),
    ) -> None:
        super().__init__(name="rest-snapshots", daemon=True)
        self.base_url, self.symbols = base_url, symbols
        self.journal, self.stats, self._halt = journal, stats, stop
        self.every, self.depth, self.min_gap, self.timeout = every, depth, min_gap, timeout

    def run(self) -> None:
        try:
            with requests.Session() as session:
                self._loop(session)
        except JournalError:
            return  # the journal gave up; the run's supervisor reports it and stops

    def _loop(self, session: requests.Session) -> None:
        next_round = time.monotonic()
        next_request = next_round
        while not self._halt.is_set():
            for symbol in self.symbols:
                if self._halt.wait(max(0.0, next_request - time.monotonic())):
                    return
                try:
                    pause = self._fetch(session, symbol)
                except JournalError:
                    raise
                except Exception as exc:  # a surprise fails one snapshot, never the poller
                    log.exception("REST snapshot of %s failed unexpectedly", symbol)
                    self._error(symbol, time.time_ns(), error=f"{type(exc).__name__}: {exc}")
                    pause = 0.0
                next_request = time.monotonic() + max(self.min_gap, pause)
            next_round = max(next_round + self.every, time.monotonic())
            if self._halt.wait(max(0.0, next_round - time.monotonic())):
                return

    def _error(self, symbol: str, sent_ns: int, **detail: object) -> None:
        self.journal.append(
            time.time_ns(),
            RUN_CONN_ID,
            PROTOCOL,
            "event",
            event_payload("rest_error", symbol=symbol, sent_ns=sent_ns, **detail),
            (symbol,),
        )
        self.stats.count((symbol,), "rest_errors")

    def _fetch(self, session: requests.Session, symbol: str) -> float:
        """Take one snapshot; return how long the server asked us to wait (0 if it did not)."""
        url = book_url(self.base_url, symbol, self.depth)
        sent_ns = time.time_ns()
        try:
            reply = session.get(url, timeout=self.timeout)
            body = reply.content  # read in full before the time is taken
        except requests.RequestException as exc:
            self._error(symbol, sent_ns, url=url, status=None, error=f"{type(exc).__name__}: {exc}")
            return 0.0
        recv_ns = time.time_ns()
        text = body.decode("utf-8", "backslashreplace")
        if reply.status_code == 200:
            self.journal.append(
                recv_ns, RUN_CONN_ID, PROTOCOL, "rest", text, (symbol,), sent_ns=sent_ns
            )
            self.stats.snapshot(symbol, recv_ns - sent_ns)
            return 0.0
        wait = 0.0
        if reply.status_code == 429:
            wait = retry_after_seconds(reply.headers.get("Retry-After"), _DEFAULT_RETRY_AFTER)
        self._error(
            symbol,
            sent_ns,
            url=url,
            status=reply.status_code,
            retry_after_s=wait if reply.status_code == 429 else None,
            body=text[:_MAX_ERROR_BODY],
        )
        return wait
