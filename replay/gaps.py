"""Gap analysis: where a partition's rebuilt book cannot be trusted, and for how long.

Kinds (docs/architecture.md section 3), each a :class:`Gap` with ``start``/``end`` in
ns and a human ``detail``:

``disconnect``
    From the moment a connection was lost (its ``disconnect``/``error``/
    ``stale``/``shutdown`` event, or its last row when it just stopped) to
    the next complete snapshot, or the end of the data.
``sequence``
    A venue sequence break (v1 ``socket_sequence``, docs/venues/gemini.md section 1;
    current-API ``U``/``u``, section 3.4) or an undecodable message. It
    starts at the last message known good (the lost message arrived after
    it) and lasts until the book is valid again (a snapshot, or on the
    current API the next diff that continues the update ids), the loss of
    the connection (a ``disconnect`` gap takes over) or a new connection.
    Overlapping breaks merge into one gap; the detail of the first says
    what happened.
``silence``
    No received message at all, heartbeats included, for longer than the
    threshold, within one connection and across no ``bad_file`` gap, including
    the silence from its last message to the moment it was lost (a watchdog
    dropping a stalled feed).
    Heartbeats come every 5 s on both v1 (with ``heartbeat=true``) and v2,
    so a longer silence means the feed was not known to be alive; the book
    is not trusted inside it.
``snapshot_mismatch``
    A stored REST book disagreed with every valid book state in its
    ``[sent_ts, recv_ts + REST_WS_LAG_NS]`` window, the book being valid at
    ``sent_ts`` and its connection lasting the whole window (see
    :data:`REST_WS_LAG_NS`). It lasts from
    ``sent_ts`` until the book is confirmed again: a later REST book that
    matches, a new snapshot, a loss of the connection, or the end of the
    data.
``crossed``
    The valid book had best bid >= best ask, from the message that crossed
    it to the one that uncrossed it.
``journal_loss``
    Records the recorder never stored: its ``journal_loss`` event (a damaged
    journal tail found by recovery, or records held in memory on a full
    disk and dropped; ``start_ns``/``end_ns`` give the span); without the
    keys, the event's own time. A ``disk_error`` event is no gap: the
    records held meanwhile were written late with their receive times.
``bad_file``
    A part left out of the replay because it is bad (``skip_bad``,
    :mod:`replay.quarantine`): from the first to the last receive time it
    covers, and on until the book is rebuilt (the next snapshot, or the end
    of the connection: its rows may have changed the book), or the end of
    the data. The detail names the file and why it is bad.
``unsynced``
    A connection was open but its book had no snapshot yet, and no gap of
    the kinds above says why: the lead-in from a connection's first row to
    its snapshot, a partition that starts mid-connection (its diffs alone
    are never a book, docs/architecture.md section 2.5), a capture with no
    initial book.
``no_connection``
    The recorder was running but not connected, and no gap above says why:
    the rows of a run before its first connect, a run whose connects all
    failed.

Validity. The book is valid at time ``T`` when the kernel's own flag is set
(a snapshot seen, no break since), it is not crossed, and ``T`` is not
strictly inside a gap of the masking kinds. :func:`valid_mask` applies this
to any times. Every stretch of the span (first to last row) where the book
is not valid is inside some gap: ``unsynced`` and ``no_connection`` are, by
construction, the invalid stretches no other gap covers, and every gap is
clipped to the span. So the valid time is the span minus the union of the
gaps (:func:`valid_ns`), for every partition (docs/architecture.md
section 2.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from replay.book import Rows, Windows
from replay.decode import LOSS_SPAN_EVENTS
from replay.events import BadFile, Decoded, Marker, RestBook
from replay.ticks import format_units
from tickrec.events import ASK, BID, OP_VALID

__all__ = [
    "KINDS",
    "MASKING_KINDS",
    "REST_WS_LAG_NS",
    "Gap",
    "RestCheck",
    "analyze",
    "crossed",
    "rest_check",
    "valid_mask",
    "valid_ns",
]

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

KINDS = (
    "disconnect",
    "sequence",
    "silence",
    "snapshot_mismatch",
    "crossed",
    "journal_loss",
    "bad_file",
    "unsynced",
    "no_connection",
)
#: How long after a REST reply's ``recv_ts`` the websocket may still be
#: delivering the state the reply shows. The two travel separately: a reply
#: built after engine event E can arrive before the websocket frame of E
#: (seen on loopback with sub-millisecond margins), so the window of book
#: states a reply is compared with extends this far past ``recv_ts``. When
#: the connection ends sooner (a loss or reset), the frames that would have
#: shown that state may be gone with it; when the book was not yet valid at
#: ``sent_ts``, the reply may show a state from before the stream's snapshot.
#: A disagreement is then inconclusive and is not reported (an agreement
#: still confirms the book). A book that is really wrong never reaches the
#: reply's state, so the allowance does not hide a mismatch on a connection
#: that stays up.
REST_WS_LAG_NS = 1_000_000_000
#: Gap kinds that make the book invalid strictly inside them. ``crossed`` is
#: applied per book state instead, and ``unsynced`` and ``no_connection`` lie
#: where the book's own flag is already invalid.
MASKING_KINDS = frozenset(KINDS) - {"crossed", "unsynced", "no_connection"}
#: Markers after which the replay has a connection (recorder ``connect``
#: events; the replay's own ``reset`` and ``follow``), and after which it has none.
_CONNECTED = frozenset({"connect", "reset", "follow"})
_DISCONNECTED = frozenset({"lost"})


class Gap(NamedTuple):
    """One interval where the book cannot be trusted."""

    kind: str
    start: int
    end: int
    detail: str

    @property
    def duration(self) -> int:
        """Length in ns."""
        return self.end - self.start


def crossed(rows: Rows) -> Bools:
    """Per row: the book's own flag is valid and best bid >= best ask."""
    if len(rows) == 0 or rows.px.shape[2] == 0:
        return np.zeros(len(rows), bool)
    both = (rows.sz[:, BID, 0] > 0) & (rows.sz[:, ASK, 0] > 0)
    return rows.valid & both & (rows.px[:, BID, 0] >= rows.px[:, ASK, 0])


def _first_after(times: I64, t: int, strict: bool = True) -> int | None:
    k = int(np.searchsorted(times, t, "right" if strict else "left"))
    return int(times[k]) if k < len(times) else None


def _earliest(*candidates: int | None, default: int) -> int:
    present = [c for c in candidates if c is not None]
    return min(present) if present else default


def _secs(ns: int) -> str:
    return f"{ns / 1e9:.3f} s"


def _sequence_gaps(dec: Decoded, snaps: I64, ends: I64, last: int) -> list[Gap]:
    merged: list[tuple[int, int, str, int]] = []  # start, end, first break, breaks
    for b in dec.breaks:
        end = _earliest(_first_after(snaps, b.ts), _first_after(ends, b.ts, False), default=last)
        what = b.detail
        if merged and b.prev_ts < merged[-1][1]:
            start, prev_end, first, count = merged[-1]
            merged[-1] = (start, max(prev_end, end), first, count + 1)
        else:
            merged.append((b.prev_ts, end, what, 1))
    return [
        Gap("sequence", a, z, what if n == 1 else f"{n} breaks; first: {what}")
        for a, z, what, n in merged
    ]


def _silence_gaps(dec: Decoded, silence_ns: int) -> list[Gap]:
    ts, conn = dec.msg_ts, dec.msg_conn
    if len(ts) == 0 or silence_ns <= 0:
        return []
    d = np.diff(ts)
    hit = np.nonzero((d > silence_ns) & (conn[1:] == conn[:-1]))[0]
    gaps = [
        Gap("silence", int(ts[k]), int(ts[k + 1]), f"no message for {_secs(int(d[k]))}")
        for k in hit
    ]
    # The connection carried over midnight that the first messages are on: silent from
    # its last message on the previous date to its first one here.
    for m in dec.markers:
        if m.kind == "carried" and conn[0] == m.conn and ts[0] - m.start > silence_ns:
            quiet = _secs(int(ts[0]) - m.start)
            gaps.append(Gap("silence", m.start, int(ts[0]), f"no message for {quiet}"))
    # A connection that went silent and was then lost (the recorder's watchdog
    # drops a stalled feed) has no next message: its silence ends at the loss.
    for m in dec.markers:
        if m.kind != "lost":
            continue
        mine = ts[conn == m.conn]
        k = int(np.searchsorted(mine, m.ts, "right")) - 1
        if k >= 0 and m.ts - int(mine[k]) > silence_ns:
            quiet = _secs(m.ts - int(mine[k]))
            gaps.append(
                Gap("silence", int(mine[k]), m.ts, f"no message for {quiet} until the loss")
            )
    return gaps


def _window_end(recv: int, conn_ends: I64) -> int:
    """End of a REST reply's comparison window: ``REST_WS_LAG_NS`` on, or just before the
    connection's end (a loss, or the first row of the next connection)."""
    end = _first_after(conn_ends, recv, False)
    lagged = recv + REST_WS_LAG_NS
    return lagged if end is None else max(recv, min(lagged, end - 1))


def _losses(dec: Decoded) -> I64:
    return np.array(sorted(m.ts for m in dec.markers if m.kind == "lost"), np.int64)


def _conn_ends(dec: Decoded) -> I64:
    resets = np.array(sorted(m.ts for m in dec.markers if m.kind == "reset"), np.int64)
    return np.union1d(_losses(dec), resets)


class RestCheck(NamedTuple):
    """The stored REST books of a partition, in order of sent time, and their windows."""

    replies: list[RestBook]
    windows: Windows


def rest_check(dec: Decoded) -> RestCheck:
    """What the book engine compares REST books with (:class:`~replay.book.Windows`)."""
    order = sorted(range(len(dec.rest)), key=lambda k: (dec.rest[k].sent, k))
    rest = [dec.rest[k] for k in order]
    conn_ends = _conn_ends(dec)
    windows = Windows.of(
        np.array([r.sent for r in rest], np.int64),
        np.array([_window_end(r.recv, conn_ends) for r in rest], np.int64),
        [r.bid_px for r in rest],
        [r.bid_sz for r in rest],
        [r.ask_px for r in rest],
        [r.ask_sz for r in rest],
    )
    return RestCheck(rest, windows)


def _mismatch_gaps(
    check: RestCheck, diff: tuple[I64, I64], status: Rows, snaps: I64, losses: I64, last: int
) -> list[Gap]:
    rest = check.replies
    if not rest:
        return []
    best, seen = diff
    matches = np.array(sorted(r.sent for r, b in zip(rest, best, strict=True) if b == 0), np.int64)
    gaps = []
    at_sent = np.searchsorted(status.ts, [r.sent for r in rest], "right") - 1
    ends = check.windows.end.tolist()
    for r, b, n, w_end, k in zip(rest, best, seen, ends, at_sent, strict=True):
        conclusive = k >= 0 and status.valid[k] and w_end >= r.recv + REST_WS_LAG_NS
        if b <= 0 or not conclusive:
            continue
        end = _earliest(
            _first_after(matches, r.sent),
            _first_after(snaps, r.recv),
            _first_after(losses, r.recv, False),
            default=last,
        )
        detail = (
            f"{int(b)} levels differ from REST book ({len(r.bid_px)} bids, {len(r.ask_px)} "
            f"asks) in every one of {int(n)} book states in its window"
        )
        gaps.append(Gap("snapshot_mismatch", r.sent, max(end, r.sent), detail))
    return gaps


def _crossed_gaps(status: Rows, last: int, scale: int) -> list[Gap]:
    cross = crossed(status)
    if not cross.any():
        return []
    edges = np.diff(np.concatenate([[0], cross.astype(np.int8), [0]]))
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    gaps = []
    for a, z in zip(starts, stops, strict=True):
        end = int(status.ts[z]) if z < len(status) else last
        bid = format_units(int(status.px[a, BID, 0]), scale)
        ask = format_units(int(status.px[a, ASK, 0]), scale)
        gaps.append(Gap("crossed", int(status.ts[a]), end, f"best bid {bid} >= best ask {ask}"))
    return gaps


def analyze(
    dec: Decoded, status: Rows, check: RestCheck, diff: tuple[I64, I64], silence_ns: int
) -> list[Gap]:
    """All gaps of a decoded partition, inside its span, sorted by ``(start, kind, end)``.

    *status* holds the kernel's :attr:`~replay.book.BookEngine.status` rows
    for ``dec.ops`` (its rows after every message give the same answer), and
    *diff* its :attr:`~replay.book.BookEngine.rest_diff` for ``check.windows``.
    """
    first, last = dec.first_ns, dec.last_ns
    snaps = dec.ops.ts[dec.ops.op == OP_VALID]
    losses = _losses(dec)
    gaps: list[Gap] = []
    for m in dec.markers:
        if m.kind != "lost":
            continue
        end = _earliest(_first_after(snaps, m.ts), default=last)
        if end > m.ts:
            gaps.append(Gap("disconnect", m.ts, end, _lost_detail(m)))
    gaps += _sequence_gaps(dec, snaps, _conn_ends(dec), last)
    gaps += _silence_gaps(dec, silence_ns)
    # A silence across a part left out is the missing part, said by its bad_file gap.
    gaps = [g for g in gaps if g.kind != "silence" or not _across_bad(g, dec.bad)]
    gaps += _mismatch_gaps(check, diff, status, snaps, losses, last)
    gaps += _crossed_gaps(status, last, dec.price_scale)
    for m in dec.markers:
        if m.kind in LOSS_SPAN_EVENTS:
            gaps.append(Gap("journal_loss", m.start, m.end, m.detail))
    gaps += _bad_file_gaps(dec, snaps, _conn_ends(dec), last)
    gaps = _clipped(gaps, first, last)
    gaps += _unexplained_gaps(dec, status, gaps)
    return sorted(gaps, key=lambda g: (g.start, KINDS.index(g.kind), g.end, g.detail))


def _across_bad(gap: Gap, bad: Sequence[BadFile]) -> bool:
    return any(gap.start <= b.end and b.start <= gap.end for b in bad)


def _bad_file_gaps(dec: Decoded, snaps: I64, ends: I64, last: int) -> list[Gap]:
    gaps = []
    for b in dec.bad:
        rebuilt = _first_after(snaps, b.end, False)
        end = _earliest(rebuilt, _first_after(ends, b.end, False), default=last)
        gaps.append(Gap("bad_file", b.start, max(end, b.end), f"{b.name} left out: {b.reason}"))
    return gaps


def _clipped(gaps: Sequence[Gap], first: int, last: int) -> list[Gap]:
    """The gaps cut to the span ``[first, last]``; those wholly outside it are dropped."""
    out = []
    for g in gaps:
        a, z = max(g.start, first), min(g.end, last)
        if a < z or (a == z and g.start == g.end):
            out.append(g._replace(start=a, end=z))
    return out


Spans = list[tuple[int, int]]


def _union(spans: Sequence[tuple[int, int]]) -> Spans:
    """Sorted disjoint intervals covering the non-empty ones of *spans*."""
    out: Spans = []
    for a, z in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], z))
        else:
            out.append((a, z))
    return out


def _minus(spans: Spans, cut: Spans) -> Spans:
    """Disjoint sorted *spans* without the disjoint sorted *cut*."""
    out: Spans = []
    k = 0
    for a, z in spans:
        while k < len(cut) and cut[k][1] <= a:
            k += 1
        j = k
        while a < z and j < len(cut) and cut[j][0] < z:
            if cut[j][0] > a:
                out.append((a, cut[j][0]))
            a = max(a, cut[j][1])
            j += 1
        if a < z:
            out.append((a, z))
    return out


def _unexplained_gaps(dec: Decoded, status: Rows, gaps: Sequence[Gap]) -> list[Gap]:
    """``unsynced`` and ``no_connection`` gaps: where the book's own flag is invalid
    and no gap in *gaps* (already inside the span) covers it."""
    first, last = dec.first_ns, dec.last_ns
    if last <= first:
        return []
    # The own flag holds from each status row to the next; before the first, invalid.
    t = np.concatenate([[first], np.clip(status.ts, first, last), [last]]).tolist()
    valid = [False, *status.valid.tolist()]
    invalid = _union([(t[k], t[k + 1]) for k in range(len(valid)) if not valid[k]])
    masking = _union([(g.start, g.end) for g in gaps if g.kind in MASKING_KINDS])
    unexplained = _minus(invalid, masking)
    if not unexplained:
        return []
    # Connection state through the span, from the markers in time order.
    state = sorted(
        (m.ts, m.grp, m.kind) for m in dec.markers if m.kind in _CONNECTED | _DISCONNECTED
    )
    # Before the first such marker: connected if it is not a connect event (a
    # connection's rows came first: the partition starts mid-connection).
    spans: Spans = []  # connected spans
    since = first if state and state[0][2] != "connect" else None
    for ts, _, kind in state:
        up = kind in _CONNECTED
        if up and since is None:
            since = ts
        elif not up and since is not None:
            spans.append((since, ts))
            since = None
    if since is not None:
        spans.append((since, last))
    on = _union([(max(a, first), min(z, last)) for a, z in spans])
    off = _minus(unexplained, on)
    out = [Gap("unsynced", a, z, _UNSYNCED) for a, z in _minus(unexplained, off)]
    return out + [Gap("no_connection", a, z, _NO_CONNECTION) for a, z in off]


_UNSYNCED = "connected, but no snapshot yet on this connection"
_NO_CONNECTION = "the recorder was not connected"


def _lost_detail(m: Marker) -> str:
    if m.detail == "no disconnect event":
        return "connection stopped without a disconnect event"
    return f"connection lost ({m.detail} event)"


def _merged(gaps: Sequence[Gap]) -> tuple[I64, I64]:
    spans = sorted((g.start, g.end) for g in gaps if g.kind in MASKING_KINDS and g.end > g.start)
    starts: list[int] = []
    ends: list[int] = []
    for a, z in spans:
        if starts and a < ends[-1]:
            ends[-1] = max(ends[-1], z)
        else:
            starts.append(a)
            ends.append(z)
    return np.array(starts, np.int64), np.array(ends, np.int64)


def valid_mask(ts: I64, own_valid: Bools, is_crossed: Bools, gaps: Sequence[Gap]) -> Bools:
    """Validity at times *ts*: own flag, not crossed, not strictly inside a masking gap."""
    starts, ends = _merged(gaps)
    k = np.searchsorted(starts, ts, "left") - 1
    inside = (k >= 0) & (ts < np.where(k >= 0, ends[np.maximum(k, 0)] if len(ends) else 0, 0))
    return own_valid & ~is_crossed & ~inside


def valid_ns(gaps: Sequence[Gap], first: int, last: int) -> int:
    """Time in ``[first, last]`` during which the book was valid: the span minus the
    union of the gaps (of :func:`analyze`, which together cover every invalid stretch)."""
    if last <= first:
        return 0
    covered = _union([(max(g.start, first), min(g.end, last)) for g in gaps])
    return last - first - sum(z - a for a, z in covered)
