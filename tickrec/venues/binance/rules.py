"""The book sync rule of Binance spot, for one symbol on one connection.

Binance's procedure ("How to manage a local order book correctly"):
buffer the diffs, fetch ``GET /api/v3/depth``, drop every diff with
``u <= lastUpdateId``, and require the first diff kept to cover the next id,
``U <= lastUpdateId + 1 <= u``. From then on a diff with ``u`` at or below
the book's id is stale, and one with ``U > id + 1`` is a gap: ids were
skipped, the book is lost, and only a new snapshot makes it whole again.

:class:`UpdateIdSync` is that rule as a small pure object. The recorder's
session and the replayer's stream both call it, so the two cannot disagree
about where a book breaks.
"""

from __future__ import annotations

from typing import Final

from tickrec.venues.base import Gap

__all__ = ["APPLY", "MAX_HELD", "STALE", "WAIT", "Gap", "UpdateIdSync"]

#: Diffs held per symbol while waiting for a snapshot, by the recorder and the replay
#: alike; the oldest go first. A snapshot older than the oldest held diff then meets a
#: gap, as it must: the diffs it needs are gone.
MAX_HELD = 100_000
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
