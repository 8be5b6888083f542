"""tickrec's replay side: deterministic order-book rebuild, trades, quotes and gaps.

``replay.open(date, symbol)`` returns a :class:`Day`; see :mod:`replay.api`.
Modules: :mod:`replay.decode` (rows to normalized events, via
:mod:`replay.venues`), :mod:`replay.book` (the compiled book kernel),
:mod:`replay.gaps` (gap analysis and validity), :mod:`replay.ticks` (exact
decimals), :mod:`replay.view` (book views and events), :mod:`replay.columns`
(numpy columns to Arrow and back, without importing pandas).
"""

from replay.api import Day, open
from replay.gaps import Gap
from replay.view import BookView, Event

__all__ = ["BookView", "Day", "Event", "Gap", "open"]
