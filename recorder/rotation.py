"""When a journal segment is closed: a pure function of times.

Segments are closed at wall-clock multiples of the rotation interval counted
from UTC midnight (so a 15 min interval closes at :00, :15, :30, :45), and
always at UTC midnight, so no segment, and so no Parquet part, spans two
dates (docs/architecture.md section 2.1). Keeping this free of the clock lets a test cross
midnight by passing times in.
"""

from __future__ import annotations

__all__ = ["NS_PER_DAY", "next_rotation_ns"]

NS_PER_DAY = 86_400 * 1_000_000_000


def next_rotation_ns(now_ns: int, every_ns: int) -> int:
    """The first rotation time strictly after *now_ns* for an interval of *every_ns*.

    An interval of 0 (or one longer than a day) means: only at UTC midnight.
    """
    midnight = (now_ns // NS_PER_DAY) * NS_PER_DAY
    next_midnight = midnight + NS_PER_DAY
    if every_ns <= 0 or every_ns >= NS_PER_DAY:
        return next_midnight
    since = now_ns - midnight
    return min(next_midnight, midnight + (since // every_ns + 1) * every_ns)
