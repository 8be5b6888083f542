"""The book sync rule of Binance spot, for one symbol on one connection.

Binance's procedure ("How to manage a local order book correctly"):
buffer the diffs, fetch ``GET /api/v3/depth``, drop every diff with
``u <= lastUpdateId``, and require the first diff kept to cover the next id,
``U <= lastUpdateId + 1 <= u``. From then on a diff with ``u`` at or below
the book's id is stale, and one with ``U > id + 1`` is a gap. That is the
update-id rule of :mod:`tickrec.venues.update_ids`, which the recorder's
session and the replayer's stream both call; the diffs are held while no
snapshot is there, at most :data:`MAX_HELD` of them.
"""

from __future__ import annotations

from tickrec.venues.update_ids import APPLY, STALE, WAIT, Gap, UpdateIdSync

__all__ = ["APPLY", "MAX_HELD", "STALE", "WAIT", "Gap", "UpdateIdSync"]

#: Diffs held per symbol while waiting for a snapshot, by the recorder and the replay
#: alike; the oldest go first. A snapshot older than the oldest held diff then meets a
#: gap, as it must: the diffs it needs are gone.
MAX_HELD = 100_000
