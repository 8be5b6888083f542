"""Progress of long work on a terminal: one line on stderr, rewritten in place.

:func:`terminal_progress` gives a printer only when the stream is a
terminal, so logs, pipes and cron jobs get no control characters; callers
skip the work of building progress text when it gives None.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "terminal_progress"]

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
