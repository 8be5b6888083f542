"""Normalized replay events: the columnar form every venue decoder produces.

A decoder turns a partition's raw rows into four things:

- :class:`BookOps`, one stream of book operations in replay order. Most are
  ``OP_SET`` (set one level to an absolute size; docs/architecture.md section 3), and
  a few are control operations: ``OP_CLEAR`` (forget the book: new
  connection, lost connection, start of a snapshot), ``OP_INVALID`` (the book
  can no longer be trusted: sequence break) and ``OP_VALID`` (a snapshot is
  complete, or a current-API stream proved continuous again after an
  undecodable message). The book kernel (:mod:`replay.book`) consumes exactly this.
- :class:`Trades`.
- :class:`RestBook` snapshots (Gemini ``/v1/book`` replies with their
  ``[sent_ts, recv_ts]`` window).
- :class:`Marker` records: connection changes, losses, sequence breaks and
  recorder events, which :mod:`replay.gaps` turns into gap intervals.

Prices are integer ticks of ``10**-price_scale`` and sizes integer units of
``10**-size_scale`` (see :mod:`replay.ticks`). Times are ``int64`` nanoseconds
since the epoch, UTC. ``grp`` is the index of the raw row an item came from, so
items of one message share it and the replay order is ``grp`` order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "BadFile",
    "BookOps",
    "Checkpoint",
    "Decoded",
    "Marker",
    "RestBook",
    "SeqBreak",
    "Trades",
]

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
B = npt.NDArray[np.bool_]



@dataclass(frozen=True)
class BookOps:
    """Book operations in replay order (all arrays the same length)."""

    ts: I64
    """Receive time (ns), made non-decreasing (see :mod:`replay.decode`)."""
    grp: I64
    """Index of the raw row (message) the operation came from (``CARRIED``: none)."""
    op: I8
    """``OP_SET``, ``OP_CLEAR``, ``OP_INVALID`` or ``OP_VALID``."""
    side: I8
    """``BID`` or ``ASK`` (0 for control operations)."""
    price: I64
    """Price in ticks (0 for control operations)."""
    size: I64
    """Absolute level size in units; 0 removes the level."""
    exch: I64
    """Exchange time (ns) or ``NO_TS``."""
    snapshot: B
    """True for levels that belong to a snapshot (v1 ``initial``, v2 first ``l2_updates``)."""

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> BookOps:
        """Operations ``start:stop`` (views, no copy)."""
        return BookOps(*(getattr(self, f)[start:stop] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class Trades:
    """Trades in replay order."""

    ts: I64
    grp: I64
    exch: I64
    price: I64
    size: I64
    side: I8
    """Taker side: +1 buy, -1 sell, 0 unknown (docs/venues/gemini.md section 5)."""
    tid: I64
    """Trade id (``NO_ID`` if absent)."""
    historical: B
    """True for the recent-trades list of a v2 snapshot (trades from before the connection)."""

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True)
class RestBook:
    """One stored REST book reply: levels best first, and the window it was taken in."""

    sent: int
    recv: int
    grp: int
    bid_px: I64
    bid_sz: I64
    ask_px: I64
    ask_sz: I64


class Marker(NamedTuple):
    """A non-book event in the stream.

    ``kind`` is a recorder event name (``connect``, ``disconnect``, ``error``,
    ``stale``, ``shutdown``, ``journal_loss``, ... or any unknown name, kept
    as is), or one of the replay's own: ``reset`` (a new connection was seen),
    ``carried`` (its book came from the previous date; ``start`` is its last
    message there),
    ``lost`` (the connection ended: detail says how), ``undecodable``.
    ``conn`` numbers connections in order of appearance (a connection is a
    ``(run_id, conn_id)`` pair). ``start``/``end`` are set for
    ``journal_loss`` (the span the recorder says it lost), else equal ``ts``.
    """

    ts: int
    grp: int
    kind: str
    conn: int
    detail: str
    start: int
    end: int


class SeqBreak(NamedTuple):
    """A venue sequence break: the message at ``ts`` was not ``expected``.

    ``expected`` and ``got`` are -1 for a message that could not be decoded.
    ``detail`` says what happened in the venue's own terms (which number
    broke, or how the book comes back after an undecodable message).
    """

    prev_ts: int
    ts: int
    grp: int
    conn: int
    expected: int
    got: int
    detail: str


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """One connection's book and stream state at the end of a partition, to carry over midnight.

    Kept for every connection still open and in sync at the partition's end
    (docs/architecture.md section 2.5). ``state`` is the venue stream's own
    (:meth:`~tickrec.events.VenueStream.sync_state`: the last update id,
    the last sequence number); the levels are best first, in ticks and units
    of ``10**-price_scale`` and ``10**-size_scale``.
    """

    run_id: str
    conn_id: int
    protocol: str
    state: dict[str, int]
    price_scale: int
    size_scale: int
    bid_px: I64
    bid_sz: I64
    ask_px: I64
    ask_sz: I64
    last_msg_ns: int
    """Receive time of the connection's last message in the partition."""

    @property
    def key(self) -> tuple[str, int]:
        return self.run_id, self.conn_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash((self.run_id, self.conn_id, self.last_msg_ns))

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form, exact (integers only)."""
        return {
            "run_id": self.run_id,
            "conn_id": self.conn_id,
            "protocol": self.protocol,
            "state": dict(sorted(self.state.items())),
            "price_scale": self.price_scale,
            "size_scale": self.size_scale,
            "bids": [self.bid_px.tolist(), self.bid_sz.tolist()],
            "asks": [self.ask_px.tolist(), self.ask_sz.tolist()],
            "last_msg_ns": self.last_msg_ns,
        }

    @staticmethod
    def from_json(obj: dict[str, Any]) -> Checkpoint:
        (bp, bs), (ap, az) = obj["bids"], obj["asks"]
        return Checkpoint(
            str(obj["run_id"]),
            int(obj["conn_id"]),
            str(obj["protocol"]),
            {str(k): int(v) for k, v in obj["state"].items()},
            int(obj["price_scale"]),
            int(obj["size_scale"]),
            np.asarray(bp, np.int64),
            np.asarray(bs, np.int64),
            np.asarray(ap, np.int64),
            np.asarray(az, np.int64),
            int(obj["last_msg_ns"]),
        )


class BadFile(NamedTuple):
    """A part left out of a replay because it is bad (:mod:`replay.quarantine`)."""

    name: str
    """The part's file name, in its partition's directory."""
    reason: str
    start: int
    """First ns of the time its rows cover (see :mod:`replay.quarantine`)."""
    end: int
    """Last ns of that time."""


@dataclass(frozen=True)
class Decoded:
    """Everything the replay needs from one partition, as a pure function of its rows."""

    ops: BookOps
    trades: Trades
    rest: list[RestBook]
    markers: list[Marker]
    breaks: list[SeqBreak]
    msg_ts: I64
    """Receive times of every received websocket message (heartbeats included)."""
    msg_conn: I64
    """Connection number of each entry of ``msg_ts``."""
    price_scale: int
    size_scale: int
    protocols: tuple[str, ...]
    rows: int
    first_ns: int
    last_ns: int
    counts: dict[str, int] = field(default_factory=dict)
    """Message counts by kind (``l2_updates``, ``trade``, ``heartbeat``, ``update``, ...)."""
    ends: tuple[Checkpoint, ...] = ()
    """The connections open and in sync at the end, sorted by ``(run_id, conn_id)``."""
    carried: tuple[tuple[str, int], ...] = ()
    """Connections whose book was carried in from the previous date's :attr:`ends`."""
    bad: tuple[BadFile, ...] = ()
    """Parts left out of the partition (``skip_bad``), by start time: each a ``bad_file`` gap."""
