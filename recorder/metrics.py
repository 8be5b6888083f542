"""Prometheus metrics of a recording run: ``tickrec record --metrics HOST:PORT``.

The endpoint (``http://HOST:PORT/metrics``, served by ``prometheus_client``
from its own thread) shows the run's health to the tools operators watch.
Almost every value is read from the run's counters (:class:`~recorder.status.Stats`,
the connections, the journal) when the endpoint is scraped, so the capture
path does no work for it; only the journal's fsync times are observed as
they happen, in the flusher thread.

Metrics (``venue`` and ``symbol`` labels where they apply):

==========================================  ==========================================
``tickrec_messages_received_total``         websocket messages received
``tickrec_received_bytes_total``            their bytes
``tickrec_last_message_age_seconds``        since the last message (absent before one)
``tickrec_connections_open``                websocket connections open now
``tickrec_connection_up``                   per connection of the run now (``conn``, its
                                            id in the dataset, and its ``symbols``):
                                            1 while open, 0 while it reconnects
``tickrec_offline_seconds``                 how long the symbol has been without an open
                                            connection (0 while it has one; from the
                                            run's start for a run that never connected)
``tickrec_reconnects_total``                attempts to connect again after a connection
                                            was lost or failed (a successor opened beside
                                            an open connection, for a fresh book or a
                                            handover, is not one)
``tickrec_gaps_total``                      by ``kind``: ``sequence`` (a broken sequence),
                                            ``malformed`` (a message that could not be read),
                                            ``disconnect`` (a connection lost, not closed
                                            on purpose), ``silence`` (a connection dropped
                                            by the watchdog: nothing received for
                                            ``stale_after``)
``tickrec_rest_snapshots_total``            REST book snapshots stored
``tickrec_rest_errors_total``               REST requests that failed
``tickrec_rest_latency_seconds``            the last REST snapshot's round trip
``tickrec_exchange_latency_seconds``        receive time minus exchange time over the
                                            last timestamped messages, by ``quantile``
``tickrec_recv_lag_seconds``                a histogram of the same, ``recv_ts`` minus the
                                            exchange's time, over the whole run: a capture
                                            thread that stamps late shows here
``tickrec_journal_fsync_seconds``           a histogram of journal fsync times
``tickrec_journal_held_records``            records the disk refused, waiting in memory
``tickrec_parts_written_total``             Parquet parts written by the run
``tickrec_rows_written_total``              rows in them
==========================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from recorder.status import LAG_BOUNDS_NS, Stats, percentiles
from tickrec.errors import UsageError

if TYPE_CHECKING:
    from recorder.feed import Connection
    from recorder.journal import Journal
    from recorder.offline import OfflineWatch

__all__ = ["RunMetrics", "parse_address"]

#: fsync buckets, seconds: a healthy disk answers in well under 10 ms.
FSYNC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port, or a clear error."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--metrics: {text!r} is not HOST:PORT (e.g. 127.0.0.1:9108)")
    return host, int(port)


class RunMetrics:
    """The metrics of one run, in a registry of their own (see the module docstring)."""

    def __init__(
        self,
        venue: str,
        stats: Stats,
        connections: Callable[[], Sequence[Connection]],
        journal: Journal,
        written: Callable[[], tuple[int, int]],
        clock: Callable[[], int],
        offline: OfflineWatch | None = None,
    ) -> None:
        """*connections* gives the run's connections now; *written*, (parts, rows) so far."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.fsync = Histogram(
            "tickrec_journal_fsync_seconds",
            "Time each journal fsync took.",
            buckets=FSYNC_BUCKETS,
            registry=self.registry,
        )
        journal.on_fsync = self.fsync.observe
        self.registry.register(
            _RunCollector(venue, stats, connections, journal, written, clock, offline)
        )
        self._server: Any = None

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on *host*:*port* from a thread; returns the port (for port 0)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _RunCollector(Collector):
    """Reads the run's counters at scrape time."""

    def __init__(
        self,
        venue: str,
        stats: Stats,
        connections: Callable[[], Sequence[Connection]],
        journal: Journal,
        written: Callable[[], tuple[int, int]],
        clock: Callable[[], int],
        offline: OfflineWatch | None,
    ) -> None:
        self.venue, self.stats, self.connections = venue, stats, connections
        self.journal, self.written, self.clock = journal, written, clock
        self.offline = offline

    def collect(self) -> Iterator[Metric]:
        venue, now = self.venue, self.clock()
        labels = ["venue", "symbol"]

        def counter(name: str, doc: str, field: str) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=labels)
            for symbol, st in self.stats.symbols.items():
                family.add_metric([venue, symbol], getattr(st, field))
            return family

        yield counter("tickrec_messages_received", "Websocket messages received.", "messages")
        yield counter("tickrec_received_bytes", "Bytes of the messages received.", "bytes")
        yield counter(
            "tickrec_reconnects",
            "Attempts to connect again after a connection was lost or failed (a successor "
            "opened beside an open connection, for a fresh book or a handover, is not one).",
            "reconnects",
        )
        yield counter("tickrec_rest_snapshots", "REST book snapshots stored.", "snapshots")
        yield counter("tickrec_rest_errors", "REST requests that failed.", "rest_errors")
        gaps = CounterMetricFamily(
            "tickrec_gaps", "Gaps the recorder saw, by kind.", labels=[*labels, "kind"]
        )
        age = GaugeMetricFamily(
            "tickrec_last_message_age_seconds", "Seconds since the last message.", labels=labels
        )
        rest = GaugeMetricFamily(
            "tickrec_rest_latency_seconds", "The last REST snapshot's round trip.", labels=labels
        )
        samples: list[int] = []
        for symbol, st in self.stats.symbols.items():
            gaps.add_metric([venue, symbol, "sequence"], st.gaps)
            gaps.add_metric([venue, symbol, "malformed"], st.malformed)
            gaps.add_metric([venue, symbol, "disconnect"], st.disconnects)
            gaps.add_metric([venue, symbol, "silence"], st.silences)
            if st.last_recv_ns:
                age.add_metric([venue, symbol], max(0, now - st.last_recv_ns) / 1e9)
            if st.rest_latency_ns is not None:
                rest.add_metric([venue, symbol], st.rest_latency_ns / 1e9)
            samples.extend(st.latency_ns)
        yield from (gaps, age, rest)
        latency = GaugeMetricFamily(
            "tickrec_exchange_latency_seconds",
            "Receive time minus exchange time over the last timestamped messages.",
            labels=["venue", "quantile"],
        )
        for q, value in zip((0.5, 0.9, 0.99), percentiles(samples), strict=False):
            latency.add_metric([venue, str(q)], value / 1e9)
        yield latency
        yield self._lag(venue)
        opened = GaugeMetricFamily(
            "tickrec_connections_open", "Websocket connections open now.", labels=["venue"]
        )
        up = GaugeMetricFamily(
            "tickrec_connection_up",
            "1 while the connection is open, 0 while it is down or connecting.",
            labels=["venue", "conn", "symbols"],
        )
        conns = list(self.connections())
        for c in conns:
            up.add_metric([venue, str(c.conn_id), ",".join(c.symbols)], 1 if c.is_open else 0)
        opened.add_metric([venue], sum(1 for c in conns if c.is_open))
        yield from (opened, up)
        if self.offline is not None:
            off = GaugeMetricFamily(
                "tickrec_offline_seconds",
                "Seconds the symbol has been without an open connection (0 while it has one).",
                labels=labels,
            )
            for symbol in self.stats.symbols:
                off.add_metric([venue, symbol], self.offline.offline_s(symbol, now))
            yield off
        held = GaugeMetricFamily(
            "tickrec_journal_held_records", "Records the disk refused, waiting in memory."
        )
        held.add_metric([], self.journal.held_records)
        yield held
        parts, rows = self.written()
        yield CounterMetricFamily(
            "tickrec_parts_written", "Parquet parts written by the run.", value=parts
        )
        yield CounterMetricFamily("tickrec_rows_written", "Rows in those parts.", value=rows)

    def _lag(self, venue: str) -> HistogramMetricFamily:
        counts = list(self.stats.lag_buckets)  # a copy: the capture threads go on counting
        bounds = [f"{b / 1e9:g}" for b in LAG_BOUNDS_NS] + ["+Inf"]
        cumulative, total = [], 0
        for bound, n in zip(bounds, counts, strict=True):
            total += n
            cumulative.append((bound, total))
        lag = HistogramMetricFamily(
            "tickrec_recv_lag_seconds",
            "Receive time minus the exchange's time of each timestamped message.",
            labels=["venue"],
        )
        lag.add_metric([venue], cumulative, sum_value=self.stats.lag_sum_ns / 1e9)
        return lag
