"""REST requests of a run: the symbol list at start, then book snapshots.

:func:`listed_symbols` asks the venue's symbol list once, before capture
starts, so a symbol the exchange does not serve is refused up front instead
of being retried forever by a websocket the exchange keeps closing. It never
stands in the way of a capture: any failure is a warning and the answer
"unknown".

One thread (:class:`SnapshotPoller`) takes a *check* snapshot of every
symbol each ``snapshot_every`` seconds, through one requests Session with
timeouts, and a round right after every UTC midnight, so each date's
partition holds a snapshot of its own (docs/architecture.md section 2.5): a
round that a midnight interrupts starts over for the new date. Each reply
body is a ``rest`` row stamped with the time the request was sent
(``sent_ts``) and the time the reply was complete (``recv_ts``): the book it
shows was taken somewhere in between, which is how the replayer compares it.
*Sync* snapshots, which a connection's book is built from, are
:mod:`recorder.sync`'s.

All of a run's requests go through one :class:`RequestPacer`: at least
``min_gap`` apart (Gemini asks for no more than 1 request/s on public
endpoints, docs/venues/gemini.md section 4, "Rate limits"), within the
venue's request weight a minute where it counts one (Binance: 6,000), and
longer after a 429 or 418 as its ``Retry-After`` says. A failure of any
kind (timeout, refused, 4xx, 5xx) is a ``rest_error`` event row, and
streaming goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import requests

from recorder.journal import Journal
from recorder.rotation import NS_PER_DAY
from recorder.status import Stats
from tickrec.contract import RUN_CONN_ID, event_payload
from tickrec.errors import JournalError

__all__ = ["RequestPacer", "SnapshotPoller", "listed_symbols", "retry_after_seconds", "wait_asked"]

log = logging.getLogger("tickrec.recorder")

_DEFAULT_RETRY_AFTER = 5.0
_MAX_ERROR_BODY = 2000


class RequestPacer:
    """When the run's next REST request may go, shared by the run's REST threads.

    At least *min_gap* after the last request ended, later if the server
    asked (:meth:`done`), and, with *weight_per_minute*, only while a token
    bucket holds the request's weight: it holds a sixth of the minute's
    weight, full at start, and refills with the other five sixths over the
    minute, so no minute (a venue counts by the clock's minutes) spends more.
    """

    def __init__(self, min_gap: float, weight_per_minute: float | None = None) -> None:
        self.min_gap = min_gap
        self._next = time.monotonic()
        self._capacity = None if weight_per_minute is None else weight_per_minute / 6
        self._rate = 0.0 if weight_per_minute is None else weight_per_minute * 5 / 6 / 60
        self._tokens = self._capacity or 0.0
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event, weight: int = 1) -> bool:
        """Wait for the next request's turn and take its *weight*; False if *stop* is set first."""
        while True:
            with self._lock:
                now = time.monotonic()
                ready = self._next
                if self._capacity is not None:
                    gained = (now - self._stamp) * self._rate
                    self._tokens = min(self._capacity, self._tokens + gained)
                    self._stamp = now
                    need = min(weight, self._capacity)
                    if self._tokens < need:
                        ready = max(ready, now + (need - self._tokens) / self._rate)
                if ready <= now:
                    if self._capacity is not None:
                        self._tokens -= min(weight, self._capacity)
                    self._next = now + self.min_gap  # until :meth:`done` says when it ended
                    return True
            if stop.wait(ready - now):
                return False

    def done(self, pause: float = 0.0) -> None:
        """A request just ended; *pause* is how long the server asked us to wait (a 429)."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + max(self.min_gap, pause))


def retry_after_seconds(value: str | None, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta seconds), else *default*.

    An HTTP date or garbage falls back to *default*.
    """
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        return default
    return seconds if seconds >= 0 else default


def wait_asked(reply: requests.Response) -> float:
    """Seconds a 429 or 418 reply asks us to wait (its ``Retry-After``); 0 for any other."""
    if reply.status_code not in (418, 429):
        return 0.0
    return retry_after_seconds(reply.headers.get("Retry-After"), _DEFAULT_RETRY_AFTER)


def listed_symbols(
    url: str,
    parse: Callable[[bytes], Iterable[str] | None],
    pacer: RequestPacer,
    stop: threading.Event,
    timeout: tuple[float, float],
) -> list[str] | None:
    """The symbols the list at *url* names; None (and a warning) if it did not say.

    *parse* reads a reply body; None or ``ValueError`` means it is not a list.
    """
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
    pacer.done(wait_asked(reply))
    listed = None
    if reply.status_code == 200:
        try:
            got = parse(body)
        except ValueError:
            got = None
        listed = None if got is None else list(got)
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
        book_url: Callable[[str, str, int], str],
        protocol: str,
        symbols: tuple[str, ...],
        journal: Journal,
        stats: Stats,
        stop: threading.Event,
        every: float = 60.0,
        depth: int = 0,
        pacer: RequestPacer | None = None,
        timeout: tuple[float, float] = (5.0, 10.0),
        clock: Callable[[], int] = time.time_ns,
        weight: int = 1,
    ) -> None:
        super().__init__(name="rest-snapshots", daemon=True)
        self.book_url, self.protocol, self.weight = book_url, protocol, weight
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
                if not self.pacer.wait(self._halt, self.weight):
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
            self.protocol,
            "event",
            event_payload("rest_error", symbol=symbol, sent_ns=sent_ns, **detail),
            (symbol,),
        )
        self.stats.count((symbol,), "rest_errors")

    def _fetch(self, session: requests.Session, symbol: str) -> float:
        """Take one snapshot; return how long the server asked us to wait (0 if it did not)."""
        url = self.book_url(self.base_url, symbol, self.depth)
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
                recv_ns, RUN_CONN_ID, self.protocol, "rest", text, (symbol,), sent_ns=sent_ns
            )
            self.stats.snapshot(symbol, recv_ns - sent_ns)
            return 0.0
        wait = wait_asked(reply)
        self._error(
            symbol,
            sent_ns,
            url=url,
            status=reply.status_code,
            retry_after_s=wait if reply.status_code in (418, 429) else None,
            body=text[:_MAX_ERROR_BODY],
        )
        return wait
