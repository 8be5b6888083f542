"""Live counters of a recording run, and the periodic status line they make.

Per symbol: messages per second since the last line, age of the last message
(heartbeats count: silence is what matters), reconnects, sequence gaps, and
the latency of the last REST snapshot. Over the run: exchange-to-local
latency percentiles, ``recv_ts - exch_ts``: the exchange timestamp compared
with the local clock. Gemini's exchange times come in milliseconds or finer
(docs/venues/gemini.md sections 1 to 3), so the figures are good to about a millisecond.

A live run also keeps its counters in ``{data}/journal/{run_id}/status.json``
(:data:`STATUS_FILE`, replaced about once a second), which ``tickrec status``
reads to show the runs recording now without disturbing them.
"""

from __future__ import annotations

import json
import os
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LAG_BOUNDS_NS", "STATUS_FILE", "Stats", "SymbolStats", "percentiles", "read_status"]

#: The file a live run keeps its counters in, inside its journal directory.
STATUS_FILE = "status.json"

_SAMPLES = 4096
#: Upper bounds (ns) of the receive-lag histogram's buckets (:attr:`Stats.lag_buckets`).
LAG_BOUNDS_NS = tuple(
    int(s * 1e9) for s in (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
)


def percentiles(values: Iterable[int], qs: Iterable[float] = (0.5, 0.9, 0.99)) -> list[int]:
    """Nearest-rank percentiles of *values* (empty list if there are none)."""
    ordered = sorted(values)
    if not ordered:
        return []
    last = len(ordered) - 1
    return [ordered[min(last, round(q * last))] for q in qs]


@dataclass
class SymbolStats:
    """Counters of one symbol."""

    messages: int = 0
    bytes: int = 0
    last_recv_ns: int = 0
    reconnects: int = 0
    gaps: int = 0
    malformed: int = 0
    disconnects: int = 0
    silences: int = 0
    snapshots: int = 0
    rest_errors: int = 0
    rest_latency_ns: int | None = None
    latency_ns: deque[int] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    shown_messages: int = 0


class Stats:
    """Counters of a run, updated from the capture threads, read by the status line.

    Updates are plain attribute writes on per-symbol objects; a status line
    that reads one a moment early is harmless, so the hot path takes no lock.
    """

    def __init__(self, symbols: Iterable[str]) -> None:
        self.symbols = {s: SymbolStats() for s in symbols}
        #: Run-wide counts of ``recv_ts - exch_ts`` per bucket of :data:`LAG_BOUNDS_NS`
        #: (the last one: above them all), and their sum in ns.
        self.lag_buckets = [0] * (len(LAG_BOUNDS_NS) + 1)
        self.lag_sum_ns = 0
        self._lock = threading.Lock()
        self._last_line_ns: int | None = None

    def message(
        self, symbols: Iterable[str], recv_ns: int, exch_ns: int | None, size: int = 0
    ) -> None:
        """A message of *size* bytes arrived for *symbols*."""
        if exch_ns is not None:
            lag = recv_ns - exch_ns
            self.lag_buckets[bisect_left(LAG_BOUNDS_NS, lag)] += 1
            self.lag_sum_ns += lag
        for s in symbols:
            st = self.symbols[s]
            st.messages += 1
            st.bytes += size
            st.last_recv_ns = recv_ns
            if exch_ns is not None:
                st.latency_ns.append(recv_ns - exch_ns)

    def count(self, symbols: Iterable[str], counter: str) -> None:
        """Add one to *counter* (``reconnects``, ``gaps``, ``malformed``, ...) of *symbols*."""
        for s in symbols:
            st = self.symbols[s]
            setattr(st, counter, getattr(st, counter) + 1)

    def snapshot(self, symbol: str, latency_ns: int) -> None:
        """A REST snapshot of *symbol* completed in *latency_ns*."""
        st = self.symbols[symbol]
        st.snapshots += 1
        st.rest_latency_ns = latency_ns

    def write(self, run_dir: Path, now_ns: int, **run: object) -> None:
        """Replace *run_dir*'s :data:`STATUS_FILE` with the counters now and *run*'s facts.

        Not fsynced: it is a view of a live run, never data.
        """
        body = {
            **run,
            "updated_ns": now_ns,
            "symbols": {
                name: {
                    "messages": st.messages,
                    "last_recv_ns": st.last_recv_ns or None,
                    "reconnects": st.reconnects,
                    "gaps": st.gaps,
                }
                for name, st in self.symbols.items()
            },
        }
        tmp = run_dir / f".{STATUS_FILE}.tmp"
        tmp.write_text(json.dumps(body, sort_keys=True), encoding="utf-8")
        os.replace(tmp, run_dir / STATUS_FILE)

    def lines(self, now_ns: int) -> list[str]:
        """One status line per symbol, then one of latency percentiles; resets the rates."""
        with self._lock:
            elapsed = (now_ns - self._last_line_ns) / 1e9 if self._last_line_ns else 0.0
            self._last_line_ns = now_ns
            out = []
            samples: list[int] = []
            for name, st in self.symbols.items():
                new = st.messages - st.shown_messages
                st.shown_messages = st.messages
                rate = f"{new / elapsed:.1f}/s" if elapsed > 0 else "-"
                age = f"{(now_ns - st.last_recv_ns) / 1e9:.1f}s ago" if st.last_recv_ns else "never"
                rest = (
                    f"{st.rest_latency_ns / 1e6:.0f}ms" if st.rest_latency_ns is not None else "-"
                )
                out.append(
                    f"{name}: {rate} msgs={st.messages} last={age} "
                    f"reconnects={st.reconnects} gaps={st.gaps} malformed={st.malformed} "
                    f"snapshots={st.snapshots} rest_errors={st.rest_errors} rest_latency={rest}"
                )
                samples.extend(st.latency_ns)
            p = percentiles(samples)
            if p:
                out.append(
                    "exchange-to-local latency p50/p90/p99: "
                    + "/".join(f"{v / 1e6:.1f}" for v in p)
                    + f" ms over the last {len(samples)} timestamped messages"
                )
            return out


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """What a run last wrote to its :data:`STATUS_FILE`, or None if there is none (yet)."""
    try:
        body = json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None
