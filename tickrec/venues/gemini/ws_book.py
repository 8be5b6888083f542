"""The current Gemini WebSocket API (``wss://ws.gemini.com``), docs/venues/gemini.md section 3.

Book sync by update ids, recipe A of section 3.4, per connection, by the
rule the recorder follows too (:class:`~tickrec.venues.gemini.ws.DiffSync`):

- the recorder connects with ``snapshot=-1``, so the first ``depthUpdate``
  of the symbol after an accepted ``subscribe`` naming its diff stream (the
  request in a ``ws_sent`` row, then its reply with status 200) is the
  snapshot: the book is cleared, loaded from ``b``/``a`` and valid after it,
  with ``last = u``. That holds for the connection's opening subscription
  and for any later one (a resubscription). A connection whose subscription
  is not in the replayed rows (a partition that starts mid-connection, after
  UTC midnight) has no snapshot among its diffs: they leave the book
  unsynced until a ``depth`` reply (below), so a book built from diffs alone
  is never marked valid (docs/architecture.md section 2.5);
- after that a frame with ``u <= last`` is stale and dropped; one with
  ``U > last + 1`` is a sequence break: the book is invalid until the next
  snapshot; otherwise each level is set to its ``qty`` (``"0"`` removes it)
  and ``last = u``.

An undecodable message (the partition decoder marks the book invalid
there) may have been a diff of this symbol, or anything else. The update
ids tell which: the symbol's next diff with ``U == last + 1`` proves nothing
of its book was lost, so the book is valid again after it; one with
``U > last + 1`` is the sequence break above (the lost message was a diff).
So one unreadable trade, or a frame of another symbol, costs no more than
the time to the next diff, and the recorder need not reconnect for it.

A ``depth`` reply (``{lastUpdateId, bids, asks}``) to a request for this
symbol is lined up with the diffs by ``lastUpdateId`` (recipe B): when the
book is not in sync, or is older than ``lastUpdateId``, the reply becomes the
book and ``last = lastUpdateId``, so later frames follow the same stale and
gap rules. A reply no newer than the book is not needed and is skipped.

Trades come from ``@trade``: ``m`` true means the buyer was the maker, so
the taker sold (docs/venues/gemini.md section 5). ``E`` is read with its unit inferred
from its digit count, ``s`` in any case (sections 3.4, 3.6). Frames of other
symbols, bookTicker and partial depth frames do not move this book.
"""

from __future__ import annotations

from typing import Any

from tickrec.events import ASK, BID, OP_CLEAR, OP_INVALID, OP_VALID, EventSink
from tickrec.venues.base import Gap
from tickrec.venues.gemini.ws import SNAPSHOT, DiffSync, epoch_ns, kind_of
from tickrec.venues.update_ids import STALE, WAIT

__all__ = ["DECODER_VERSION", "GeminiWsStream"]

#: Raised whenever what this protocol decodes to changes, so that the normalized cache
#: (:mod:`replay.cache`) rebuilds even where its sources alone would not show it.
DECODER_VERSION = 1


def _request_id(msg: dict[str, Any]) -> int | str | None:
    rid = msg.get("id")
    return rid if isinstance(rid, int | str) and not isinstance(rid, bool) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class GeminiWsStream:
    """Decoder state of one current-API connection, for one symbol's partition."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol.upper()
        self._diff_streams = (f"{symbol.lower()}@depth", f"{symbol.lower()}@depth@100ms")
        self._sync = DiffSync()  # the book's update id, and whether a snapshot is due
        self._unsure = False  # an undecodable message since the last applied frame
        self._prev_ts = 0
        self._subscribes: set[int | str] = set()
        self._depths: set[int | str] = set()

    def on_sent(self, out: EventSink, msg: Any) -> None:
        """Remember our subscribe and ``depth`` requests that concern this symbol."""
        if not isinstance(msg, dict) or (rid := _request_id(msg)) is None:
            return
        method, params = str(msg.get("method", "")).lower(), msg.get("params")
        if method == "subscribe" and isinstance(params, list):
            if any(str(p).lower() in self._diff_streams for p in params):
                self._subscribes.add(rid)
        elif (
            method == "depth"
            and isinstance(params, dict)
            and str(params.get("symbol", "")).upper() == self.symbol
        ):
            self._depths.add(rid)

    def on_message(self, out: EventSink, msg: Any, venue_seq: int | None) -> str:
        """Decode one frame: diffs, trades and replies move state; the rest is counted."""
        if not isinstance(msg, dict):
            return "other"
        kind = kind_of(msg)
        if kind == "reply":
            return self._reply(out, msg)
        if str(msg.get("s", "")).upper() != self.symbol:
            return "other"
        if kind == "depthUpdate":
            return self._diff(out, msg)
        if kind == "trade":
            e, t = _int(msg.get("E")), _int(msg.get("t"))
            # m: the buyer was the maker, so the seller took (docs/venues/gemini.md section 3.3).
            side = -1 if msg.get("m") is True else 1
            out.trade(msg["p"], msg["q"], side, t, None if e is None else epoch_ns(e), False)
            return "trade"
        return kind or "other"

    def on_undecodable(self) -> str:
        """Wait for the next diff: its ``U`` shows whether the lost message was one."""
        self._unsure = self._sync.last is not None
        return "undecodable message; the book waits for a depthUpdate whose U follows the last u"

    def sync_state(self) -> dict[str, int] | None:
        """The book's last update id ``u``; None when not in sync, or unsure of it."""
        sync = self._sync
        if sync.last is None or self._unsure or sync.expect_snapshot:
            return None
        return {"last": sync.last, "prev_ts": self._prev_ts}

    def resume(self, state: dict[str, int]) -> None:
        self._sync.depth(int(state["last"]))
        self._prev_ts = int(state["prev_ts"])

    def _load(self, out: EventSink, bids: Any, asks: Any, exch: int | None, snapshot: bool) -> None:
        for side, levels in ((BID, bids), (ASK, asks)):
            for price, size in levels or ():
                out.change(side, price, size, exch, snapshot)

    def _snapshot(self, out: EventSink, bids: Any, asks: Any, exch: int | None) -> None:
        """Load the book the rule just took as a snapshot."""
        out.control(OP_CLEAR)
        self._load(out, bids, asks, exch, True)
        out.control(OP_VALID)
        self._unsure = False
        self._prev_ts = out.ts

    def _diff(self, out: EventSink, msg: dict[str, Any]) -> str:
        first, last, e = _int(msg.get("U")), _int(msg.get("u")), _int(msg.get("E"))
        if first is None or last is None:
            return "other"
        exch = None if e is None else epoch_ns(e)
        verdict = self._sync.diff(first, last)
        if verdict == SNAPSHOT:
            self._snapshot(out, msg.get("b"), msg.get("a"), exch)
            return "snapshot"
        if verdict == WAIT:
            return "unsynced"
        if verdict == STALE:
            return "stale"
        if isinstance(verdict, Gap):
            out.seq_break(self._prev_ts, verdict.expected, verdict.got, "U")
            out.control(OP_INVALID)
            self._unsure = False
            return "depthUpdate"
        self._load(out, msg.get("b"), msg.get("a"), exch, False)
        self._prev_ts = out.ts
        if self._unsure:
            # U follows the last u: nothing of this book was lost (see the module docstring).
            out.control(OP_VALID)
            self._unsure = False
        return "depthUpdate"

    def _reply(self, out: EventSink, msg: dict[str, Any]) -> str:
        rid = _request_id(msg)
        if rid in self._subscribes:
            self._subscribes.discard(rid)
            if msg.get("status") != 200:
                return "refused"
            # The next diff frame of the symbol is the subscription's snapshot.
            self._sync.subscribed()
            return "reply"
        if rid in self._depths:
            self._depths.discard(rid)
            result = msg.get("result")
            if not isinstance(result, dict) or (last := _int(result.get("lastUpdateId"))) is None:
                return "refused" if msg.get("status") != 200 else "other"
            if self._sync.depth(last):
                self._snapshot(out, result.get("bids"), result.get("asks"), None)
            return "depth"
        return "reply"
