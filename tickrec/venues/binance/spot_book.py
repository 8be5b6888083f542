"""Binance spot books, rebuilt from REST depth snapshots and the diff stream.

Per connection and symbol, Binance's own procedure ("How to manage a local
order book correctly"), with :class:`~tickrec.venues.binance.rules.UpdateIdSync`
as the rule, the same object the recorder uses:

- until a snapshot, the symbol's ``depthUpdate`` diffs are held, in order;
- a sync snapshot (a ``rest`` row of this connection, docs/architecture.md
  section 2.6: ``{"lastUpdateId", "bids", "asks"}``) becomes the book. The
  held diffs then go through the rule: those with ``u <= lastUpdateId``
  are stale, the first kept one must cover ``lastUpdateId + 1``, and the
  book is valid once they are applied, at the snapshot's row;
- after that each diff is stale, applied (each level set to its quantity,
  ``"0"`` removes it), or a gap, ``U > last + 1``: a sequence break named
  in Binance's terms (``U`` expected, ``U`` received). The book is invalid
  from there until the next snapshot, and the diffs after the gap are held
  again for it.

A snapshot no newer than a book in sync changes nothing. An undecodable
frame may have been a diff of this symbol, or anything else: the next diff
tells, as on Gemini's current API: if its ``U`` follows the book's ``u``,
nothing of the book was lost and it is valid again after that diff.

Trades come from ``@trade`` (``t``) or ``@aggTrade`` (``a``): ``m`` true
means the buyer was the maker, so the taker sold. ``bookTicker`` frames and
frames of other symbols do not move this book.

While the book is in sync, runs of frames are decoded by the compiled
scanner of :mod:`tickrec.venues.binance.spot_scan` (:meth:`BinanceSpotStream.decode_run`),
which applies the same rule; whatever it declines (a gap, a snapshot, any
other frame) is decoded here, one frame at a time.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from tickrec.events import (
    ASK,
    BID,
    BREAK_COLUMNS,
    OP_CLEAR,
    OP_INVALID,
    OP_VALID,
    Columns,
    EventSink,
    RawRows,
    RunSink,
)
from tickrec.values import check_level, decimal_pair
from tickrec.venues._json import epoch_ns
from tickrec.venues.base import Gap
from tickrec.venues.binance.rules import APPLY, MAX_HELD, STALE, WAIT, UpdateIdSync
from tickrec.venues.binance.spot import kind_of, unwrap
from tickrec.venues.binance.spot_scan import COUNTS, scan

_INT64_MAX = 2**63 - 1

__all__ = ["DECODER_VERSION", "BinanceSpotStream"]

#: Raised whenever what this protocol decodes to changes, so that the normalized cache
#: (:mod:`replay.cache`) rebuilds even where its sources alone would not show it.
DECODER_VERSION = 1


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _checked(levels: Any) -> list[tuple[str, str]]:
    """The ``[price, quantity]`` levels as pairs of strings, each value checked
    (:class:`~tickrec.values.BadValue` otherwise): a held diff or a snapshot is then
    applied whole or not at all."""
    out = []
    for price, size, *_ in levels or ():
        check_level(decimal_pair(price), decimal_pair(size), price, size)
        out.append((price, size))
    return out


def _exch(event: dict[str, Any]) -> int | None:
    e = _int(event.get("E"))
    return None if e is None else epoch_ns(e)


class BinanceSpotStream:
    """Decoder state of one ``binance.spot`` connection, for one symbol's partition."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol.upper()
        self._sync = UpdateIdSync()
        self._held: deque[dict[str, Any]] = deque(maxlen=MAX_HELD)
        self._unsure = False  # an undecodable frame since the last applied diff
        self._prev_ts = 0
        self._symbol_bytes = np.frombuffer(self.symbol.encode(), np.uint8)
        self._no_breaks = Columns(BREAK_COLUMNS, "qqqqq", 1)

    def decode_run(self, out: RunSink, rows: RawRows, start: int, stop: int) -> int:
        """Decode received rows ``start:stop`` with the compiled scanner while the book
        is in sync, until a frame it declines; out of sync, leave the next received
        row to :meth:`on_message`."""
        last = self._sync.last
        if last is None or self._unsure or last >= _INT64_MAX:
            while start < stop and not rows.received[start]:
                start += 1
            return start
        state = np.array([last, self._prev_ts], np.int64)
        counts = np.zeros(len(COUNTS), np.int64)
        row, _ = scan(rows, start, stop, self._symbol_bytes, state, out.ops, out.trades, counts)
        self._sync.last, self._prev_ts = int(state[0]), int(state[1])
        done = {k: n for k, n in zip(COUNTS, counts.tolist(), strict=True) if n}
        out.add_run(self._no_breaks, done, "U")
        return row

    def on_sent(self, out: EventSink, msg: Any) -> None:
        """Subscribes name streams, not books: nothing to note."""

    def on_message(self, out: EventSink, msg: Any, venue_seq: int | None) -> str:
        """Decode one frame: diffs and trades of this symbol; the rest is counted."""
        if not isinstance(msg, dict):
            return "other"
        event = unwrap(msg)
        kind = kind_of(event)
        if kind in ("reply", "serverShutdown") or not kind:
            return kind or "other"
        if str(event.get("s", "")).upper() != self.symbol:
            return "other"
        if kind == "depthUpdate":
            return self._diff(out, event)
        if kind in ("trade", "aggTrade"):
            tid = _int(event.get("t" if kind == "trade" else "a"))
            side = -1 if event.get("m") is True else 1
            out.trade(event["p"], event["q"], side, tid, _exch(event), False)
            return "trade"
        return kind

    def on_rest(self, out: EventSink, msg: Any) -> str:
        """A sync snapshot of this connection: the book, unless it is older than the book.

        The reply of ``/api/v3/depth``, or a stream's ``depthSnapshot`` frame wrapping one.
        """
        if isinstance(msg, dict):
            msg = unwrap(msg)
        if not isinstance(msg, dict) or (last := _int(msg.get("lastUpdateId"))) is None:
            return "bad_rest"
        bids, asks = msg.get("bids"), msg.get("asks")
        if not isinstance(bids, list) or not isinstance(asks, list):
            return "bad_rest"
        bids, asks = _checked(bids), _checked(asks)
        if self._sync.synced and not self._unsure and last <= (self._sync.last or 0):
            return "depth"
        out.control(OP_CLEAR)
        for side, levels in ((BID, bids), (ASK, asks)):
            for price, size in levels:
                out.change(side, price, size, None, True)
        self._sync.snapshot(last)
        self._unsure = False
        self._prev_ts = out.ts
        held, self._held = list(self._held), deque(maxlen=MAX_HELD)
        for k, event in enumerate(held):
            if self._apply(out, event) == WAIT:
                self._held.extend(held[k:])
                break
        if self._sync.synced:
            out.control(OP_VALID)
        return "depth"

    def on_undecodable(self) -> str:
        """Wait for the next diff: its ``U`` shows whether the lost frame was one."""
        self._unsure = self._sync.synced
        return "undecodable frame; the book waits for a depthUpdate whose U follows the last u"

    def sync_state(self) -> dict[str, int] | None:
        """The book's last update id ``u``; None when not in sync, or unsure of it."""
        if not self._sync.synced or self._unsure:
            return None
        assert self._sync.last is not None
        return {"last": self._sync.last, "prev_ts": self._prev_ts}

    def resume(self, state: dict[str, int]) -> None:
        self._sync.snapshot(int(state["last"]))
        self._prev_ts = int(state["prev_ts"])

    def _diff(self, out: EventSink, event: dict[str, Any]) -> str:
        if _int(event.get("U")) is None or _int(event.get("u")) is None:
            return "other"
        if not self._sync.synced:
            self._hold(event)
            return "unsynced"
        verdict = self._apply(out, event)
        if verdict == STALE:
            return "stale"
        if verdict == APPLY and self._unsure:
            # U follows the last u: nothing of this book was lost (module docstring).
            out.control(OP_VALID)
            self._unsure = False
        return "depthUpdate"

    def _hold(self, event: dict[str, Any]) -> None:
        """Keep a diff for the next snapshot, its values checked so that it applies whole."""
        self._held.append({**event, "b": _checked(event.get("b")), "a": _checked(event.get("a"))})

    def _apply(self, out: EventSink, event: dict[str, Any]) -> str:
        """Put one diff through the rule; apply it, or report the gap it shows."""
        first, last = event["U"], event["u"]
        prev = self._sync.last
        verdict = self._sync.diff(first, last)
        if isinstance(verdict, Gap):
            out.seq_break(self._prev_ts, verdict.expected, verdict.got, "U")
            out.control(OP_INVALID)
            self._unsure = False
            # The next snapshot may need it.
            self._hold(event)
            return "gap"
        if verdict == APPLY:
            exch = _exch(event)
            try:
                for side, key in ((BID, "b"), (ASK, "a")):
                    for price, size, *_ in event.get(key) or ():
                        out.change(side, price, size, exch, False)
            except BaseException:
                self._sync.last = prev  # a bad value: the caller drops what this diff added
                raise
            self._prev_ts = out.ts
        return verdict
