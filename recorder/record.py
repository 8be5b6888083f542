"""A recording run: wires the journal, the Parquet writer, the feeds and the REST poller.

::

    from recorder.record import RecordConfig, record
    result = record(RecordConfig(symbols=("BTCUSD",), url=sim.ws_url, rest_url=sim.rest_url,
                                 duration=5.0))

A run first recovers the journals of dead runs, then records until its
duration or end time passes, *stop* is set, or SIGINT/SIGTERM arrives (when
it runs in the main thread). Stopping is clean: every connection is closed,
the journal is fsynced, the last segment becomes Parquet, and the journal
directory is removed. If the disk refuses the journal for too long the run
stops with :class:`~tickrec.errors.JournalError`: the records it held are
dropped under a ``journal_loss`` row (:class:`~recorder.journal.Journal`),
and what was written stays in the journal for ``tickrec recover``. A symbol
with nothing received, or without a connection for longer than
``max_offline``, is reported in the :class:`RecordResult` (the command
line exits with 1 for it; :mod:`recorder.offline`).

Right after each UTC midnight every symbol gets a fresh book snapshot, so
each date replays alone (:mod:`recorder.midnight`). Every wall-clock time of
the run (receive stamps, rotation, midnight, the run id) comes from
``RecordConfig.clock``, so a test can cross midnight in seconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import ipaddress
import itertools
import logging
import os
import secrets
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from recorder.feed import Connection, ConnectLimiter, FeedSettings
from recorder.journal import Journal, RunMeta
from recorder.metrics import RunMetrics, parse_address
from recorder.midnight import DayBoundary
from recorder.offline import OfflineStretch, OfflineWatch
from recorder.recovery import recover
from recorder.rest import RequestPacer, SnapshotPoller, listed_symbols
from recorder.status import STATUS_FILE, Stats
from recorder.sync import BookFetcher
from recorder.upload import Uploader, local_roots
from recorder.writer import Converter, ConvertResult
from tickrec.contract import RUN_CONN_ID, check_name, event_payload
from tickrec.errors import JournalError, ProtocolError, UsageError
from tickrec.store import Root
from tickrec.venues import venue as venue_named
from tickrec.venues.base import Recording

__all__ = [
    "RecordConfig",
    "RecordResult",
    "new_run_id",
    "record",
    "stop_time_ns",
]

log = logging.getLogger("tickrec.recorder")

#: Seconds between refreshes of the run's status file (``tickrec status``).
STATUS_FILE_EVERY = 1.0


@dataclass(frozen=True)
class RecordConfig:
    """Everything a recording run needs; times are seconds unless named otherwise.

    ``snapshot_every`` 0 turns REST check snapshots off; ``snapshot_depth`` 0
    asks for the whole book (the deepest a venue gives), as ``sync_depth`` 0
    does for the sync snapshots a venue's stream is lined up with (Binance).
    ``until`` is a UTC wall-clock time: the run stops at its next occurrence.
    ``url`` defaults to the protocol's endpoint (its venue's
    :class:`~tickrec.venues.base.Recording`), as do ``protocol`` (the venue's
    first) and ``rest_url``. ``lifetime`` overrides how long the venue lets a connection
    live (its successor opens before). ``clock`` gives the wall-clock time in ns
    (``time.time_ns``; tests pass a shifted one). ``handover_lead`` is how long
    before midnight v1 and v2 open the connections that take over
    (:mod:`recorder.midnight`). ``max_offline`` is how long a symbol may be
    without a connection before the run counts as failed (0: no limit;
    :mod:`recorder.offline`). ``journal`` is the local directory a run that
    records to an object store (``data`` a URI) works in: its journal, and
    the parts not yet uploaded (:mod:`recorder.upload`).
    """

    symbols: tuple[str, ...]
    venue: str = "gemini"
    protocol: str = ""
    data: str | None = None
    journal: str | None = None
    url: str = ""
    rest_url: str = ""
    snapshot_every: float = 60.0
    snapshot_depth: int = 0
    sync_depth: int = 0
    rotate: float = 900.0
    fsync_interval: float = 0.1
    duration: float | None = None
    until: dt.time | None = None
    stale_after: float = 15.0
    connects_per_minute: float = 12.0
    rest_min_gap: float | None = None
    rest_timeout: float = 10.0
    status_every: float = 30.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    disk_timeout: float = 600.0
    max_offline: float = 60.0
    run_id: str | None = None
    metrics: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    handover_lead: float = 20.0
    lifetime: float | None = None
    clock: Callable[[], int] = field(default=time.time_ns, repr=False, compare=False)

    def __post_init__(self) -> None:
        venue = venue_named(self.venue)
        if not venue.recordings:
            raise UsageError(f"venue {self.venue!r}: recording it is not supported yet")
        rec = venue.recording(self.protocol)
        if rec is None:
            known = ", ".join(r.short for r in venue.recordings)
            raise UsageError(f"protocol {self.protocol!r}: {self.venue} records {known}")
        url, rest_url, min_gap = rec.url, rec.rest_url, rec.rest_min_gap
        for name in ("snapshot_depth", "sync_depth"):
            try:
                rec.book_weight(getattr(self, name))
            except ValueError as exc:
                raise UsageError(f"{name.replace('_', '-')}: {exc}") from None
        object.__setattr__(self, "protocol", rec.short)
        given = self.url
        object.__setattr__(self, "url", self.url or url)
        object.__setattr__(self, "rest_url", self.rest_url or _rest_beside(given) or rest_url)
        if self.rest_min_gap is None:
            object.__setattr__(self, "rest_min_gap", min_gap)
        _check_url("--url", self.url, ("ws", "wss"))
        _check_url("--rest-url", self.rest_url, ("http", "https"))
        symbols = tuple(dict.fromkeys(s.strip().upper() for s in self.symbols if s.strip()))
        if not symbols:
            raise UsageError("symbols: give at least one symbol, e.g. BTCUSD")
        for s in symbols:
            check_name("symbol", s)
        object.__setattr__(self, "symbols", symbols)
        for name in ("fsync_interval", "stale_after", "connects_per_minute", "rest_timeout"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name.replace('_', '-')}: must be positive")
        for name in (
            "snapshot_every",
            "rotate",
            "rest_min_gap",
            "status_every",
            "handover_lead",
            "max_offline",
        ):
            if getattr(self, name) < 0:
                raise UsageError(f"{name.replace('_', '-')}: must not be negative")
        if self.snapshot_depth < 0 or self.sync_depth < 0:
            raise UsageError("snapshot-depth, sync-depth: must not be negative (0 = whole book)")
        if self.lifetime is not None and self.lifetime <= 0:
            raise UsageError("lifetime: must be positive")
        if self.metrics is not None:
            parse_address(self.metrics)
        if self.duration is not None and self.duration <= 0:
            raise UsageError("duration: must be positive")
        if self.run_id is not None:
            check_name("run id", self.run_id)

    @property
    def recording(self) -> Recording:
        """How the protocol is recorded."""
        rec = venue_named(self.venue).recording(self.protocol)
        assert rec is not None  # checked on creation
        return rec

    @property
    def wire_protocol(self) -> str:
        """The ``protocol`` column of the websocket rows."""
        return self.recording.protocol

    @property
    def rest_timeouts(self) -> tuple[float, float]:
        """``(connect, read)`` timeouts of every REST request of the run."""
        return (min(5.0, self.rest_timeout), self.rest_timeout)


def _rest_beside(url: str) -> str | None:
    """The REST base on the same port as *url* when *url* is on this machine.

    A local server (the simulator, ``tickrec serve``) serves websockets and
    REST on one port, so a run pointed at one with ``--url`` alone takes its
    REST replies from there too, never from the venue's real REST API.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        return None
    return f"{'https' if parts.scheme.lower() == 'wss' else 'http'}://{parts.netloc}"


def _check_url(option: str, url: str, schemes: tuple[str, ...]) -> None:
    """Refuse *url* unless it has one of *schemes*, a host and a numeric port if any.

    Checked up front because a URL the websocket or HTTP client cannot use
    would otherwise fail inside a capture thread, again on every retry,
    while the run records nothing.
    """
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        raise UsageError(f"{option}: {url!r} has a port that is not a number") from None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        forms = " or ".join(f"{s}://HOST[:PORT]" for s in schemes)
        raise UsageError(f"{option}: {url!r} is not a URL of the form {forms}")


@dataclass
class RecordResult:
    """What a run did."""

    run_id: str
    rows: int = 0
    parts: list[Root] = field(default_factory=list)
    recovered_runs: int = 0
    unconverted: list[tuple[Path, str]] = field(default_factory=list)
    stopped_by: str = ""
    #: Websocket messages received per symbol (a connection-wide one counts for each).
    messages: dict[str, int] = field(default_factory=dict)
    #: The first stretch without a connection longer than ``max_offline``, per symbol.
    offline: list[OfflineStretch] = field(default_factory=list)
    #: Recording to an object store: parts sent, and the parts left to send (local).
    uploaded: int = 0
    not_uploaded: list[Path] = field(default_factory=list)

    @property
    def silent(self) -> list[str]:
        """The symbols for which nothing at all was received."""
        return [s for s, n in self.messages.items() if n == 0]


def new_run_id(now_ns: int) -> str:
    """A sortable run id: UTC start time and a random suffix, e.g. ``20260101T000000-3f9a1c``."""
    start = dt.datetime.fromtimestamp(now_ns / 1e9, dt.UTC)
    return f"{start:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def stop_time_ns(now_ns: int, duration: float | None, until: dt.time | None) -> int | None:
    """When a run started at *now_ns* must stop: the earlier of its duration and *until* (UTC)."""
    ends = []
    if duration is not None:
        ends.append(now_ns + int(duration * 1e9))
    if until is not None:
        now = dt.datetime.fromtimestamp(now_ns / 1e9, dt.UTC)
        at = dt.datetime.combine(now.date(), until.replace(tzinfo=None), dt.UTC)
        if at <= now:
            at += dt.timedelta(days=1)
        ends.append(int(at.timestamp()) * 1_000_000_000)
    return min(ends) if ends else None


@contextmanager
def _signals_set(stop: threading.Event, why: list[str]) -> Iterator[None]:
    """SIGINT and SIGTERM set *stop*, when running in the main thread.

    A second SIGINT (Ctrl-C twice) raises :class:`KeyboardInterrupt` instead of
    waiting for the clean stop: what was journaled stays for ``tickrec recover``.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and stop.is_set() and why:
            # A second Ctrl-C: stop now; the journal is left for recovery.
            raise KeyboardInterrupt
        why.append(signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _connections(
    config: RecordConfig,
    journal: Journal,
    stats: Stats,
    stop: threading.Event,
    fetcher: BookFetcher | None,
) -> list[Connection]:
    limiter = ConnectLimiter(config.connects_per_minute)
    counter = itertools.count(1)
    lock = threading.Lock()

    def next_conn_id() -> int:
        with lock:
            return next(counter)

    settings = FeedSettings(
        stale_after=config.stale_after,
        backoff_base=config.backoff_base,
        backoff_cap=config.backoff_cap,
    )
    rec = config.recording
    lifetime = rec.lifetime if config.lifetime is None else config.lifetime
    groups = [(s,) for s in config.symbols] if rec.per_symbol else [config.symbols]
    return [
        Connection(
            rec.stream_url(config.url, symbols),
            rec.protocol,
            symbols,
            journal,
            stats,
            limiter,
            next_conn_id,
            stop,
            settings,
            session=rec.session,
            clock=config.clock,
            book_on_connect=rec.book_on_connect,
            fetcher=fetcher,
            rest_protocol=rec.rest_protocol,
            lifetime=lifetime,
        )
        for symbols in groups
    ]


def _midnight_refresh(config: RecordConfig) -> Callable[[Connection], bool] | None:
    """How an open connection takes a fresh book right after midnight; None: a handover.

    Its session asks for them (:meth:`Connection.refresh`: sync snapshots, or
    requests on the stream), unless the venue's books come only with a new connection.
    """
    return Connection.refresh if config.recording.refreshes else None


def _check_listed(config: RecordConfig, pacer: RequestPacer, stop: threading.Event) -> None:
    """Refuse symbols the exchange's symbol list does not name.

    Gemini's ``/v1/symbols`` (docs/venues/gemini.md section 4), or the venue's
    own (Binance: ``/api/v3/exchangeInfo``). Without this, an unknown symbol is
    a websocket the exchange closes on every connect (v1, v2) or a refused
    subscription (the current API), found only in the data. Symbols are compared
    case-insensitively (docs/venues/gemini.md section 3.6; the list itself is
    lower case). When the list cannot be had, the run goes on unchecked: REST
    never stands in the way of a capture.
    """
    rec = config.recording
    listed = listed_symbols(
        rec.symbols_url(config.rest_url), rec.parse_symbols, pacer, stop, config.rest_timeouts
    )
    if listed is None:
        return
    known = sorted({s.upper() for s in listed})
    unknown = [s for s in config.symbols if s not in known]
    if not unknown:
        return
    like = difflib.get_close_matches(unknown[0], known, n=5) or known[:5]
    raise UsageError(
        f"--symbols: the exchange does not list {', '.join(unknown)} "
        f"({len(known)} symbols at {config.rest_url}, e.g. {', '.join(like)})"
    )


def record(config: RecordConfig, stop: threading.Event | None = None) -> RecordResult:
    """Record until the configured end, *stop*, or SIGINT/SIGTERM; see the module docstring.

    Raises :class:`~tickrec.errors.UsageError` before recording anything if
    the exchange does not list one of the symbols, and
    :class:`~tickrec.errors.ProtocolError` after a clean stop if the exchange
    refused a subscription (what was recorded is kept).
    """
    stop = stop or threading.Event()
    rec = config.recording
    assert config.rest_min_gap is not None  # set by RecordConfig
    pacer = RequestPacer(config.rest_min_gap, rec.weight_per_minute)
    _check_listed(config, pacer, stop)
    root, store = local_roots(config.data, config.journal)
    recovered = recover(root)
    for r in recovered:
        log.info("recovered run %s: %d rows into %d parts", r.run_id, r.rows, len(r.parts))
    clock = config.clock
    start_ns = clock()
    run_id = config.run_id or new_run_id(start_ns)
    result = RecordResult(run_id, recovered_runs=len(recovered))
    protocol = config.wire_protocol

    def done(converted: ConvertResult) -> None:
        result.rows += converted.rows
        result.parts.extend(converted.written)

    converter = Converter(root, on_done=done)
    uploader = None if store is None else Uploader(root, store).start()
    journal = Journal(
        root,
        RunMeta(run_id, config.venue, protocol, config.symbols),
        fsync_interval=config.fsync_interval,
        rotate_every_ns=int(config.rotate * 1e9),
        on_closed=converter.submit,
        converting=converter.pending,
        clock=clock,
        disk_timeout=config.disk_timeout,
    )
    converter.lock_fd = journal.lock_fd
    settings = {
        k: (str(v) if isinstance(v, dt.time) else v)
        for k, v in asdict(config).items()
        if k != "clock"
    }
    journal.append(
        clock(),
        RUN_CONN_ID,
        protocol,
        "event",
        event_payload("run_start", run_id=run_id, settings=settings),
        config.symbols,
    )
    log.info(
        "recording %s %s (%s) as run %s", config.venue, ",".join(config.symbols), protocol, run_id
    )
    stats = Stats(config.symbols)
    fetcher = BookFetcher(
        config.rest_url,
        rec.book_url,
        rec.rest_protocol,
        rec.book_weight(config.sync_depth),
        journal,
        stats,
        pacer,
        stop,
        depth=config.sync_depth,
        timeout=config.rest_timeouts,
        clock=clock,
    )
    conns = _connections(config, journal, stats, stop, fetcher)
    poller = (
        SnapshotPoller(
            config.rest_url,
            rec.book_url,
            rec.rest_protocol,
            config.symbols,
            journal,
            stats,
            stop,
            every=config.snapshot_every,
            depth=config.snapshot_depth,
            pacer=pacer,
            timeout=config.rest_timeouts,
            clock=clock,
            weight=rec.book_weight(config.snapshot_depth),
        )
        if config.snapshot_every > 0
        else None
    )
    end_ns = stop_time_ns(start_ns, config.duration, config.until)
    metrics: RunMetrics | None = None
    day_boundary = DayBoundary(
        conns,
        clock,
        _midnight_refresh(config),
        lead=config.handover_lead,
        end_ns=end_ns,
    )
    why: list[str] = []
    offline = OfflineWatch(config.symbols, start_ns, config.max_offline)

    def live() -> list[Connection]:
        return [*conns, *day_boundary.retired()]

    try:
        if config.metrics is not None:
            metrics = RunMetrics(
                config.venue,
                stats,
                live,
                journal,
                lambda: (len(result.parts), result.rows),
                clock,
                offline,
            )
            host, port = parse_address(config.metrics)
            log.info("metrics on http://%s:%d/metrics", host, metrics.serve(host, port))
        with _signals_set(stop, why):
            for c in conns:
                c.start()
            if fetcher is not None:
                fetcher.start()
            if poller is not None:
                poller.start()
            next_status = time.monotonic() + config.status_every
            next_file = 0.0
            while not stop.wait(day_boundary.wait_s(0.1)):
                day_boundary.tick()
                now = time.monotonic()
                for c in conns:
                    c.check_stale(now)
                offline.update(clock(), {s for c in live() if c.is_open for s in c.symbols})
                if journal.fatal is not None:
                    why.append("journal failure")
                    break
                if any(c.failure is not None for c in conns):
                    why.append("request refused")
                    break
                if end_ns is not None and clock() >= end_ns:
                    why.append("duration" if config.duration is not None else "until")
                    break
                if now >= next_file:
                    next_file = now + STATUS_FILE_EVERY
                    _write_status(stats, journal, conns, clock())
                if config.status_every and now >= next_status:
                    next_status = now + config.status_every
                    for line in stats.lines(clock()):
                        log.info("%s", line)
            stop.set()
            result.stopped_by = why[0] if why else "stop requested"
            _shut_down(
                conns, day_boundary.retired(), poller, fetcher, journal, result.stopped_by, clock
            )
    finally:
        # Even after an unexpected error: close the last segment, convert what
        # can be, and drop the lock, so the journal is not held until exit.
        stop.set()
        journal.close()
        result.unconverted = converter.close()
        if uploader is not None:
            result.not_uploaded = uploader.close()
            result.uploaded = uploader.uploaded
        (journal.dir / STATUS_FILE).unlink(missing_ok=True)
        journal.release()
        if metrics is not None:
            metrics.close()
    for line in stats.lines(clock()):
        log.info("%s", line)
    result.messages = {s: st.messages for s, st in stats.symbols.items()}
    offline.finish(clock())
    result.offline = list(offline.over.values())
    if journal.fatal is not None:
        raise journal.fatal
    for c in conns:
        if c.failure is not None:
            raise ProtocolError(c.failure)
    return result


def _write_status(stats: Stats, journal: Journal, conns: list[Connection], now_ns: int) -> None:
    """Refresh the run's status file for ``tickrec status`` (a failure only logs)."""
    meta = journal.meta
    try:
        stats.write(
            journal.dir,
            now_ns,
            run_id=meta.run_id,
            venue=meta.venue,
            protocol=meta.protocol,
            pid=os.getpid(),
            connections_open=sum(1 for c in conns if c.is_open),
        )
    except OSError as exc:
        log.warning("cannot write the status file in %s: %s", journal.dir, exc)


def _shut_down(
    conns: list[Connection],
    retired: list[Connection],
    poller: SnapshotPoller | None,
    fetcher: BookFetcher | None,
    journal: Journal,
    why: str,
    clock: Callable[[], int],
) -> None:
    with contextlib.suppress(JournalError):  # the journal gave up: the caller reports it
        journal.append(
            clock(),
            RUN_CONN_ID,
            journal.meta.protocol,
            "event",
            event_payload("shutdown", why=why),
            journal.meta.symbols,
        )
    for c in conns:
        c.close("shutdown")
    for c in [*conns, *retired]:  # the retired are closing already
        c.join(c.settings.close_timeout)
        if c.is_alive():
            c.abort()
            c.join(c.settings.close_timeout)
    for rest in (poller, fetcher):
        if rest is not None:
            rest.join(15.0)
