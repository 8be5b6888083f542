"""A range of UTC dates of one symbol replayed as one book (:func:`open_range`).

Each date is replayed as :func:`replay.api.open` replays it, with the book
carried over each midnight (docs/architecture.md section 2.5), and the
outputs are those days' outputs one after another: row for row the same as
opening the days one by one with carry. Snapshot grids stay aligned to every
midnight, and every date after the first gets its grid row at midnight
(``start`` at that midnight), so no grid row is missing where two dates
meet. A date of the range with no partition is said so: it is a
``no_data`` gap over the whole day, and counts as invalid time in
:attr:`Days.coverage`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa

from replay.api import NS_PER_DAY, Day, date_text, gap_frame, open, to_ns
from replay.cache import midnight_ns
from replay.gaps import KINDS, Gap
from replay.view import BookView, Event
from tickrec import contract
from tickrec.errors import NotFoundError, UsageError
from tickrec.store import RootLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "NO_DATA",
    "RANGE_KINDS",
    "DayFacts",
    "Days",
    "facts",
    "open_range",
    "range_dates",
    "range_gaps",
    "range_summary",
]

#: Gap kind of a date in the range that has no partition.
NO_DATA = "no_data"
RANGE_KINDS = (*KINDS, NO_DATA)


def range_dates(start: str, end: str) -> list[str]:
    """Every date from *start* to *end*, both included."""
    a, z = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if z < a:
        raise UsageError(f"the range ends ({end}) before it starts ({start})")
    return [(a + dt.timedelta(days=k)).isoformat() for k in range((z - a).days + 1)]


class Days:
    """Consecutive dates of one (venue, symbol) as one continuous book.

    :attr:`days` are the dates that have data, each a :class:`~replay.api.Day`;
    :attr:`missing` the dates that have none.
    """

    def __init__(self, dates: list[str], days: list[Day], symbol: str, venue: str) -> None:
        self.dates = dates
        self.days = days
        self.symbol = symbol
        self.venue = venue
        have = {d.date for d in days}
        self.missing = [d for d in dates if d not in have]

    # --- basic facts --------------------------------------------------------------

    @property
    def span(self) -> tuple[int, int]:
        """From the first date's :attr:`~replay.api.Day.span` start to the last one's end."""
        return self.days[0].span[0], self.days[-1].span[1]

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(sorted({p for d in self.days for p in d.protocols}))

    def _starts(self) -> Iterator[tuple[Day, int | None]]:
        """Each day with the start of its snapshot grid: its midnight, but for the first."""
        for k, day in enumerate(self.days):
            yield day, (day.midnight_ns if k else None)

    # --- outputs ------------------------------------------------------------------

    def book_snapshots(
        self, depth: int = 10, every: str | float | dt.timedelta = "1s", exact: bool = False
    ) -> pd.DataFrame:
        """:meth:`Day.book_snapshots <replay.api.Day.book_snapshots>` of every date, in order."""
        import pandas as pd

        parts = [d.book_snapshots(depth, every, start=s, exact=exact) for d, s in self._starts()]
        return self._attrs(pd.concat(parts, ignore_index=True))

    def snapshot_table(
        self, depth: int = 10, every: str | float | dt.timedelta = "1s", exact: bool = False
    ) -> pa.Table:
        """:meth:`book_snapshots` as one Arrow table (:meth:`Day.snapshot_table
        <replay.api.Day.snapshot_table>`)."""
        return pa.concat_tables(
            [d.snapshot_table(depth, every, start=s, exact=exact) for d, s in self._starts()]
        )

    def _attrs(self, df: pd.DataFrame) -> pd.DataFrame:
        scales = {(d.price_scale, d.size_scale) for d in self.days}
        if len(scales) == 1:
            ((price_scale, size_scale),) = scales
            df.attrs.update(price_scale=price_scale, size_scale=size_scale)
        else:
            df.attrs.clear()  # per-date scales differ: exact values are per date
        return df

    def _concat(self, frames: list[pd.DataFrame]) -> pd.DataFrame:
        import pandas as pd

        return self._attrs(pd.concat(frames, ignore_index=True))

    def trades(self, historical: bool = False, exact: bool = False) -> pd.DataFrame:
        return self._concat([d.trades(historical, exact) for d in self.days])

    def quotes(self, exact: bool = False) -> pd.DataFrame:
        return self._concat([d.quotes(exact) for d in self.days])

    def book_changes(self, exact: bool = False) -> pd.DataFrame:
        return self._concat([d.book_changes(exact) for d in self.days])

    def book_at(self, ts: Any, depth: int | None = None) -> BookView:
        """The book after every message with ``recv_ts <= ts`` (:meth:`Day.book_at
        <replay.api.Day.book_at>` of the date of *ts*)."""
        date = contract.date_of_ns(to_ns(ts))
        for day in self.days:
            if day.date == date:
                return day.book_at(ts, depth)
        raise NotFoundError(f"book_at: no data on {date} in the range {self.dates[0]}..")

    def gap_list(self) -> list[Gap]:
        """Every date's gaps, and a ``no_data`` gap over each missing date, by start."""
        return range_gaps([d.gap_list() for d in self.days], self.missing)

    def gaps(self) -> pd.DataFrame:
        """Gaps as :meth:`Day.gaps <replay.api.Day.gaps>` has them, ``no_data`` among the kinds."""
        return gap_frame(self.gap_list(), RANGE_KINDS)

    @property
    def valid_ns(self) -> int:
        return sum(d.valid_ns for d in self.days)

    @property
    def coverage(self) -> float:
        """Fraction of the range's UTC days (missing dates included) with a valid book."""
        return self.valid_ns / (len(self.dates) * NS_PER_DAY)

    @property
    def span_coverage(self) -> float:
        """Fraction of the recorded spans of the dates that have data with a valid book."""
        spans = sum(d.span[1] - d.span[0] for d in self.days)
        return self.valid_ns / spans if spans > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """:meth:`Day.summary <replay.api.Day.summary>` over the range; gaps by kind with
        ``no_data`` (the missing dates)."""
        return range_summary(self.symbol, self.dates, self.missing, [facts(d) for d in self.days])

    def events(self, depth: int | None = 10) -> Iterator[tuple[Event, BookView]]:
        """:meth:`Day.events <replay.api.Day.events>` of every date, in order."""
        for day in self.days:
            yield from day.events(depth)


class DayFacts(NamedTuple):
    """What a range's summary needs of each of its days (small, to send between processes)."""

    summary: dict[str, Any]
    protocols: tuple[str, ...]
    valid_ns: int
    span: tuple[int, int]


def facts(day: Day) -> DayFacts:
    return DayFacts(day.summary(), day.protocols, day.valid_ns, day.span)


def range_gaps(gap_lists: Sequence[Sequence[Gap]], missing: Sequence[str]) -> list[Gap]:
    """The gaps of a range: each date's, and a ``no_data`` gap over each missing date."""
    gaps = [g for gap_list in gap_lists for g in gap_list]
    for date in missing:
        m = midnight_ns(date)
        gaps.append(Gap(NO_DATA, m, m + NS_PER_DAY, f"no partition for {date}"))
    return sorted(gaps, key=lambda g: (g.start, RANGE_KINDS.index(g.kind), g.end, g.detail))


def range_summary(
    symbol: str, dates: Sequence[str], missing: Sequence[str], days: Sequence[DayFacts]
) -> dict[str, Any]:
    """:meth:`Days.summary` from the :class:`DayFacts` of the dates that have data."""
    counts = {k: sum(d.summary["gaps"][k] for d in days) for k in KINDS}
    counts[NO_DATA] = len(missing)
    valid = sum(d.valid_ns for d in days)
    spans = sum(d.span[1] - d.span[0] for d in days)
    return {
        "symbol": symbol,
        "protocols": ",".join(sorted({p for d in days for p in d.protocols})),
        "messages": sum(d.summary["messages"] for d in days),
        "book_changes": sum(d.summary["book_changes"] for d in days),
        "trades": sum(d.summary["trades"] for d in days),
        "coverage": valid / (len(dates) * NS_PER_DAY),
        "span_coverage": valid / spans if spans > 0 else 0.0,
        "gaps": counts,
    }


def open_range(
    start: str | dt.date,
    end: str | dt.date,
    symbol: str,
    venue: str = "gemini",
    data: RootLike | None = None,
    *,
    silence: str | float | dt.timedelta = "10s",
    chunk_size: int = 1 << 20,
    cache: bool = True,
    carry: bool = True,
    skip_bad: bool = False,
) -> Days:
    """Replay the dates *start* to *end* (both included) of one symbol as one book.

    Each date as :func:`replay.api.open` replays it (same options; *carry*
    on by default; *skip_bad* leaves bad parts out as ``bad_file`` gaps); see
    :mod:`replay.days`. Raises
    :class:`~tickrec.errors.NotFoundError` when no date of the range has data.
    """
    dates = range_dates(date_text(start), date_text(end))
    symbol = contract.check_name("symbol", symbol.upper())
    root = contract.dataset_root(data)
    days = []
    for date in dates:
        if any(contract.scan_parts(root, contract.Partition(venue, date, symbol))):
            days.append(
                open(date, symbol, venue, root, silence=silence, chunk_size=chunk_size,
                     cache=cache, carry=carry, skip_bad=skip_bad)
            )  # fmt: skip
    if not days:
        raise NotFoundError(
            f"no data for {venue} {symbol} from {dates[0]} to {dates[-1]} under {root}"
        )
    return Days(dates, days, symbol, venue)
