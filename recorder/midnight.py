"""What a run does at each UTC midnight, so that every date replays alone.

Every (venue, date, symbol) partition must hold a book snapshot of its own
(docs/architecture.md section 2.5), and partitions are split by the UTC
date of ``recv_ts``. Right after each midnight the run's websockets take a
fresh book of every symbol, without a moment in which no connection is in
sync:

- on the current API a ``depth`` request per symbol goes out on the open
  connection; its reply's ``lastUpdateId`` lines it up with the diffs
  (docs/venues/gemini.md section 3.4, recipe B). A connection that is down
  at midnight gets its snapshots when it reconnects anyway;
- v1 and v2 give a book only with a new connection (sections 1 and 2):
  make-before-break. *lead* before midnight each connection gets a
  successor, held (see :class:`~recorder.feed.Connection`): a v2 successor
  connects then and sends its subscribe only at midnight; a v1 successor,
  whose book is the connect itself, takes its connect token then and
  connects at midnight. If it fails it retries like any connection. The old
  connection is retired (a clean close, a ``disconnect`` event with ``why``
  :data:`~recorder.feed.HANDOVER` and ``handover_to``) only once midnight
  has passed and the successor holds the book of every symbol; until then
  both are recorded.

The same make-before-break repairs a break (docs/architecture.md): a
connection whose book is lost (a v1 sequence gap, an undecodable v2 frame,
a current-API diff gap; :attr:`~recorder.feed.Connection.broken`) goes on
recording while a successor, not held, takes a connect token and its book;
then the old one is retired with ``why`` :data:`~recorder.feed.RESYNC`.
Waiting for the connect budget never silences a feed: the broken connection
records all the while. A successor that breaks before it is in sync is
retired and the next is opened after a backoff, so a storm of breaks does
not spend the budget in a loop; an old connection that reconnects by itself
(it ended) has a fresh book and makes its successor redundant.

REST snapshots at midnight are the poller's own business
(:class:`recorder.rest.SnapshotPoller`). :meth:`DayBoundary.tick` is called
by the run's watchdog loop, every 0.1 s or sooner near midnight.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from recorder.feed import HANDOVER, RESYNC, Connection, backoff_delay
from recorder.rotation import next_rotation_ns

__all__ = ["DayBoundary"]

log = logging.getLogger("tickrec.recorder")


@dataclass
class _Handover:
    old: Connection
    new: Connection
    released: bool = False


class DayBoundary:
    """Midnight snapshots of one run; *conns* is the run's list of live connections.

    *refresh*, given where an open connection can take a fresh book (the
    current API's ``depth`` requests, a venue session's snapshots), does so
    and says whether the connection was open; without it connections are
    handed over (v1, v2). Nothing is started for a midnight at or after
    *end_ns*, when the run will have stopped.
    """

    def __init__(
        self,
        conns: list[Connection],
        clock: Callable[[], int],
        refresh: Callable[[Connection], bool] | None = None,
        lead: float = 20.0,
        end_ns: int | None = None,
    ) -> None:
        self.conns = conns
        self.clock = clock
        self.refresh = refresh
        self.lead_ns = int(lead * 1e9)
        self.end_ns = end_ns
        self.midnight = next_rotation_ns(clock(), 0)
        self._handovers: list[_Handover] = []
        self._closing: list[tuple[Connection, float]] = []  # retired, and when to abort them
        self._repairs: list[_Handover] = []  # broken connections and their successors
        self._failed: dict[tuple[str, ...], tuple[int, float]] = {}  # failures, next try
        self._rng = random.Random()

    def wait_s(self, most: float) -> float:
        """How long the watchdog may sleep: at most *most*, and not past the next midnight."""
        left = (self.midnight - self.clock()) / 1e9
        return most if left < 0 else min(most, left + 0.001)

    def tick(self) -> None:
        """Do what is due now."""
        now = self.clock()
        self._reap()
        self._repair()
        if self.end_ns is not None and self.end_ns <= self.midnight:
            return
        if self.refresh is not None:
            if now >= self.midnight:
                for conn in self.conns:
                    if not self.refresh(conn):
                        log.info(
                            "connection %d is down at midnight; it resyncs on connect", conn.conn_id
                        )
                self.midnight = next_rotation_ns(now, 0)
            return
        if now >= self.midnight - self.lead_ns and not self._handovers:
            for old in list(self.conns):
                new = old.successor()
                self._handovers.append(_Handover(old, new))
                self.conns.append(new)
                new.start()
            log.info("opening %d connection(s) for the midnight handover", len(self._handovers))
        if now < self.midnight:
            return
        for h in list(self._handovers):
            if not h.released:
                h.new.release()
                h.released = True
            if h.new.in_sync:
                log.info(
                    "connection %d has its book; closing connection %d (midnight handover)",
                    h.new.conn_id,
                    h.old.conn_id,
                )
                h.old.retire(HANDOVER, handover_to=h.new.conn_id)
                self.conns.remove(h.old)
                self._closing.append((h.old, time.monotonic() + h.old.settings.close_timeout))
                self._handovers.remove(h)
        if not self._handovers:
            self.midnight = next_rotation_ns(now, 0)

    def _retire(self, conn: Connection, why: str, **detail: object) -> None:
        conn.retire(why, **detail)
        if conn in self.conns:
            self.conns.remove(conn)
        self._closing.append((conn, time.monotonic() + conn.settings.close_timeout))

    def _repair(self) -> None:
        """Open a successor for each broken connection; retire whichever is not needed."""
        mono = time.monotonic()
        pending = {id(h.old) for h in self._repairs} | {id(h.new) for h in self._repairs}
        pending |= {id(h.new) for h in self._handovers} | {id(h.old) for h in self._handovers}
        for old in list(self.conns):
            if old.broken is None or id(old) in pending:
                continue
            failures, after = self._failed.get(old.symbols, (0, 0.0))
            if mono < after:
                continue
            new = old.successor(held=False)
            self._repairs.append(_Handover(old, new, released=True))
            self.conns.append(new)
            new.start()
        for h in list(self._repairs):
            if h.new.in_sync:
                log.info(
                    "connection %d has its book; closing connection %d (%s)",
                    h.new.conn_id,
                    h.old.conn_id,
                    h.old.broken,
                )
                self._retire(h.old, RESYNC, handover_to=h.new.conn_id)
                self._repairs.remove(h)
                self._failed.pop(h.old.symbols, None)
            elif h.old.in_sync or h.new.broken is not None or not h.new.is_alive():
                # The old one has a fresh book of its own, or the successor broke too: retire
                # the successor; a broken old one gets the next after a backoff.
                self._retire(h.new, RESYNC, handover_to=h.old.conn_id)
                self._repairs.remove(h)
                if h.old.broken is not None:
                    failures, _ = self._failed.get(h.old.symbols, (0, 0.0))
                    s = h.old.settings
                    wait = backoff_delay(
                        failures, s.backoff_base, s.backoff_cap, self._rng.random()
                    )
                    self._failed[h.old.symbols] = (failures + 1, mono + wait)

    def _reap(self) -> None:
        """Forget retired connections once ended; cut those the server leaves hanging."""
        now = time.monotonic()
        left = []
        for conn, deadline in self._closing:
            if not conn.is_alive():
                continue
            if now >= deadline:
                conn.abort()
            left.append((conn, deadline))
        self._closing = left

    def retired(self) -> list[Connection]:
        """Connections retired and perhaps not ended yet (the run joins them at shutdown)."""
        return [conn for conn, _ in self._closing]
