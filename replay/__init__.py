"""tickrec's replay side: deterministic order-book rebuild, trades, quotes and gaps.

``replay.open(date, symbol)`` returns a :class:`Day`; see :mod:`replay.api`.
``replay.open_range(start, end, symbol)`` replays consecutive dates as one
book (:class:`Days`, :mod:`replay.days`). ``replay.map_partitions(fn, items,
cluster=...)`` runs a function of partitions in worker processes or on a
Dask cluster, results in input order (:mod:`replay.parallel`).
Modules: :mod:`replay.decode` (rows to normalized events, via
:mod:`replay.venues`), :mod:`replay.book` (the compiled book kernel),
:mod:`replay.gaps` (gap analysis and validity), :mod:`replay.quarantine`
(bad parts: refused, or left out as ``bad_file`` gaps), :mod:`replay.ticks` (exact
decimals), :mod:`replay.view` (book views and events), :mod:`replay.columns`
(numpy columns to Arrow and back, without importing pandas), :mod:`replay.kernels`
(where the compiled kernels are cached, and compiling them ahead of use).
"""

from replay import kernels

# Before any kernel module is imported: numba picks a kernel's cache when it is defined.
kernels.use_cache_dir()

from replay.api import Day, open  # noqa: E402
from replay.days import Days, open_range  # noqa: E402
from replay.gaps import Gap  # noqa: E402
from replay.parallel import map_partitions  # noqa: E402
from replay.view import BookView, Event  # noqa: E402

__all__ = ["BookView", "Day", "Days", "Event", "Gap", "map_partitions", "open", "open_range"]
