"""Progress of long work on a terminal: one line on stderr, rewritten in place.

:func:`terminal_progress` gives a printer only when the stream is a
terminal, so logs, pipes and cron jobs get no control characters; callers
skip the work of building progress text when it gives None.
:class:`RowMeter` counts rows done of a known total inside one long step
(a symbol-day's decode) and shows them, with a rate, at most a few times a
second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "RowMeter", "terminal_progress"]

#: A progress printer: shows its text in place of the last; "" clears the line.
Progress = Callable[[str], None]


def terminal_progress(stream: TextIO = sys.stderr) -> Progress | None:
    """A progress printer on *stream* if it is a terminal, else None."""
    if not stream.isatty():
        return None

    def show(text: str) -> None:
        stream.write("\r\033[K" + text)
        stream.flush()

    return show


class RowMeter:
    """Rows done of *total* under *label*, shown on *show* at most once per *interval* s.

    Call the meter with the number of rows just done; the first call and the
    one that reaches *total* always show, others only once *interval* has
    passed since the last shown. *clock* gives seconds (monotonic).
    """

    def __init__(
        self,
        show: Progress,
        label: str,
        total: int,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.show, self.label, self.total = show, label, total
        self.interval, self.clock = interval, clock
        self.done = 0
        self.start = clock()
        self.shown: float | None = None

    def __call__(self, rows: int) -> None:
        self.done += rows
        now = self.clock()
        last = self.shown is not None and now - self.shown < self.interval
        if last and self.done < self.total:
            return
        self.shown = now
        self.show(self.text(now))

    def text(self, now: float) -> str:
        """The progress line at time *now*."""
        pct = 100 * self.done // self.total if self.total else 100
        elapsed = now - self.start
        rate = f", {self.done / elapsed:,.0f} rows/s" if elapsed > 0 else ""
        return f"{self.label}: {self.done:,}/{self.total:,} rows ({pct}%){rate}"
