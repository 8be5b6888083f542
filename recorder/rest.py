"""REST requests of a run: the symbol list at start, then book snapshots.

The endpoints are in docs/venues/gemini.md section 4.

:func:`listed_symbols` asks ``GET /v1/symbols`` once, before capture starts,
so a symbol the exchange does not serve is refused up front instead of
being retried forever by a websocket the exchange keeps closing. It never
stands in the way of a capture: any failure is a warning and the answer
"unknown".

One thread takes ``GET /v1/book/{symbol}`` for every symbol each
``snapshot_every`` seconds, through one requests Session with timeouts, and
a round right after every UTC midnight, so each date's partition holds a
snapshot of its own (docs/architecture.md section 2.5): a round that a
midnight interrupts starts over for the new date. Each reply body is a
``rest`` row stamped with the time the request was sent (``sent_ts``) and
the time the reply was complete (``recv_ts``): the book it shows was taken
somewhere in between, which is how the replayer compares it.

All of a run's requests go through one :class:`RequestPacer`: at least
``min_gap`` apart (Gemini asks for no more than 1 request/s on public
endpoints, docs/venues/gemini.md section 4, "Rate limits"), longer after a 429 as its
``Retry-After`` says. A failure of any kind (timeout,
refused, 4xx, 5xx) is a ``rest_error`` event row, and streaming goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import requests

from recorder.journal import Journal
from recorder.rotation import NS_PER_DAY
from recorder.status import Stats
from tickrec.contract import RUN_CONN_ID, event_payload
from tickrec.errors import JournalError
from tickrec.venues.gemini.rest import (
    PROTOCOL,
    book_url,
    parse_symbols,
    retry_after_seconds,
    symbols_url,
)

__all__ = ["RequestPacer", "SnapshotPoller", "listed_symbols"]

log = logging.getLogger("tickrec.recorder")

_DEFAULT_RETRY_AFTER = 5.0
_MAX_ERROR_BODY = 2000


class RequestPacer:
    """When the run's next REST request may go: *min_gap* after the last, or later if asked.

    Used by one thread at a time (the run's start, then the poller).
    """

    def __init__(self, min_gap: float) -> None:
        self.min_gap = min_gap
        self._next = time.monotonic()

    def wait(self, stop: threading.Event) -> bool:
        """Wait for the next request's turn; False if *stop* is set first."""
        return not stop.wait(max(0.0, self._next - time.monotonic()))

    def done(self, pause: float = 0.0) -> None:
        """A request just ended; *pause* is how long the server asked us to wait (a 429)."""
        self._next = time.monotonic() + max(self.min_gap, pause)


def _wait_asked(reply: requests.Response) -> float:
    """Seconds a 429 reply asks us to wait (its ``Retry-After``); 0 for any other reply."""
    if reply.status_code != 429:
        return 0.0
    return retry_after_seconds(reply.headers.get("Retry-After"), _DEFAULT_RETRY_AFTER)


def listed_symbols(
    base_url: str, pacer: RequestPacer, stop: threading.Event, timeout: tuple[float, float]
) -> list[str] | None:
    """The symbols ``GET /v1/symbols`` lists; None (and a warning) if it did not say."""
    url = symbols_url(base_url)
    if not pacer.wait(stop):
        return None
    try:
        with requests.Session() as session:
            reply = session.get(url, timeout=timeout)
            body = reply.content
    except requests.RequestException as exc:
        pacer.done()
        log.warning("cannot check the symbols (GET %s: %s); recording anyway", url, exc)
        return None
    pacer.done(_wait_asked(reply))
    listed = parse_symbols(body) if reply.status_code == 200 else None
    if listed is None:
        log.warning(
            "cannot check the symbols (GET %s: status %d, %r); recording anyway",
            url,
            reply.status_code,
            body[:200].decode("utf-8", "backslashreplace"),
        )
    return listed


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
        pacer: RequestPacer | None = None,
        timeout: tuple[float, float] = (5.0, 10.0),
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__(name="rest-snapshots", daemon=True)
        self.clock = clock
        self.base_url, self.symbols = base_url, symbols
        self.journal, self.stats, self._halt = journal, stats, stop
        self.every, self.depth, self.timeout = every, depth, timeout
        self.pacer = pacer or RequestPacer(1.0)

    def run(self) -> None:
        try:
            with requests.Session() as session:
                self._loop(session)
        except JournalError:
            return  # the journal gave up; the run's supervisor reports it and stops

    def _loop(self, session: requests.Session) -> None:
        next_round = time.monotonic()
        while not self._halt.is_set():
            day = self.clock() // NS_PER_DAY
            for symbol in self.symbols:
                if not self.pacer.wait(self._halt):
                    return
                if self.clock() // NS_PER_DAY != day:
                    break  # a new date began: start the round again, for it

                try:
                    pause = self._fetch(session, symbol)
                except JournalError:
                    raise
                except Exception as exc:  # a surprise fails one snapshot, never the poller
                    log.exception("REST snapshot of %s failed unexpectedly", symbol)
                    self._error(symbol, self.clock(), error=f"{type(exc).__name__}: {exc}")
                    pause = 0.0
                self.pacer.done(pause)
            else:
                next_round = max(next_round + self.every, time.monotonic())
            if self._halt.wait(max(0.0, min(next_round - time.monotonic(), self._to_midnight()))):
                return

    def _to_midnight(self) -> float:
        """Seconds to just after the next UTC midnight (1 ms after, so the clock shows the date)."""
        now = self.clock()
        return ((now // NS_PER_DAY + 1) * NS_PER_DAY - now) / 1e9 + 0.001

    def _error(self, symbol: str, sent_ns: int, **detail: object) -> None:
        self.journal.append(
            self.clock(),
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
        sent_ns = self.clock()
        try:
            reply = session.get(url, timeout=self.timeout)
            body = reply.content  # read in full before the time is taken
        except requests.RequestException as exc:
            self._error(symbol, sent_ns, url=url, status=None, error=f"{type(exc).__name__}: {exc}")
            return 0.0
        recv_ns = self.clock()
        text = body.decode("utf-8", "backslashreplace")
        if reply.status_code == 200:
            self.journal.append(
                recv_ns, RUN_CONN_ID, PROTOCOL, "rest", text, (symbol,), sent_ns=sent_ns
            )
            self.stats.snapshot(symbol, recv_ns - sent_ns)
            return 0.0
        wait = _wait_asked(reply)
        self._error(
            symbol,
            sent_ns,
            url=url,
            status=reply.status_code,
            retry_after_s=wait if reply.status_code == 429 else None,
            body=text[:_MAX_ERROR_BODY],
        )
        return wait
