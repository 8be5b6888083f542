"""The update-id sync rule of a book, for one symbol on one connection.

Venues whose diffs carry the first and last update ids they cover (``U``
and ``u``), and whose snapshots the id of the last update they hold
(Binance spot, Gemini's current API), keep a book in sync the same way. A
snapshot with id ``last`` becomes the book. After it, a diff with ``u`` at
or below the book's id is stale, and one with ``U > id + 1`` is a gap: ids
were skipped, the book is lost, and only a new snapshot makes it whole
again. Otherwise the diff applies, and the book's id becomes its ``u``.
A first diff kept after a snapshot therefore has ``U <= last + 1 <= u``.

:class:`UpdateIdSync` is that rule as a small pure object. A venue's
recording session and its replay stream both call it, so the two cannot
disagree about where a book breaks.
"""

from __future__ import annotations

from typing import Final

from tickrec.venues.base import Gap

__all__ = ["APPLY", "STALE", "WAIT", "Gap", "UpdateIdSync"]

#: The diff moves the book: apply its levels.
APPLY: Final = "apply"
#: The diff is already in the book (``u <= lastUpdateId``): drop it.
STALE: Final = "stale"
#: No snapshot yet (or none since a gap): buffer the diff, or leave it out.
WAIT: Final = "wait"


class UpdateIdSync:
    """Where the book of one symbol stands: the id of the last update applied, if any.

    ``last`` is ``None`` until a snapshot arrives, and again after a gap.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: int | None = None

    @property
    def synced(self) -> bool:
        """Whether the book is whole: a snapshot, and no gap since."""
        return self.last is not None

    def snapshot(self, last_update_id: int) -> None:
        """A REST snapshot became the book: it holds every update up to *last_update_id*."""
        self.last = last_update_id

    def diff(self, first: int, last: int) -> str | Gap:
        """The verdict on a diff covering update ids ``first..last`` (``U``, ``u``).

        :data:`WAIT`, :data:`STALE`, :data:`APPLY` (the book's id becomes
        *last*), or the :class:`Gap` (expected id, first id received) after
        which the book is lost until the next :meth:`snapshot`.
        """
        if self.last is None:
            return WAIT
        if last <= self.last:
            return STALE
        if first > self.last + 1:
            gap = Gap(self.last + 1, first)
            self.last = None
            return gap
        self.last = last
        return APPLY
