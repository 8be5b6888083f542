"""Gemini market data v1 (``wss://api.gemini.com/v1/marketdata/{symbol}``).

The protocol is in docs/venues/gemini.md section 1.

- ``update`` messages carry ``events``. A ``change`` sets the level to
  ``remaining`` (absolute; ``"0"`` removes it); ``delta`` is ignored, as
  Gemini's own recipe says. Changes with ``reason: initial`` are the
  snapshot: the book is cleared before them and valid after them.
- ``trade`` events: the taker is the side opposite ``makerSide``
  (docs/venues/gemini.md section 5); an ``auction`` maker side gives an unknown taker.
  ``block_trade`` and auction events are not order-book trades (block trades
  print minutes late) and are skipped.
- ``socket_sequence`` goes up by exactly one per message, heartbeats
  included, within a connection. Anything else is a sequence break: the book
  is invalid until the next ``initial`` snapshot or reconnect. The first
  message of a connection sets the baseline (a capture that starts late is
  not a break; its book is simply never valid without ``initial``).
- ``timestampms`` (when present; the initial update may lack it) is the
  exchange time of the whole message.

Runs of messages are decoded by the compiled scanner of
:mod:`tickrec.venues.gemini.v1_scan` (:meth:`GeminiV1Stream.decode_run`),
which shares this stream's sequence state and hands back any message it
does not fully recognise to :meth:`GeminiV1Stream.on_message`.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from tickrec.events import (
    ASK,
    BID,
    BREAK_COLUMNS,
    OP_CLEAR,
    OP_COLUMNS,
    OP_INVALID,
    OP_TYPES,
    OP_VALID,
    TRADE_COLUMNS,
    TRADE_TYPES,
    Columns,
    EventSink,
    RawRows,
    RunSink,
)
from tickrec.venues.gemini.v1 import SequenceTracker
from tickrec.venues.gemini.v1_scan import scan

__all__ = ["DECODER_VERSION", "GeminiV1Stream"]

#: Raised whenever what this protocol decodes to changes, so that the normalized cache
#: (:mod:`replay.cache`) rebuilds even where its sources alone would not show it.
DECODER_VERSION = 1

# Runs of at least this many rows are scanned in two halves at once.
_SPLIT_ROWS = 256

_SIDES = {"bid": BID, "ask": ASK}
# Taker side is opposite the maker side (docs/venues/gemini.md section 5).
_TAKER = {"bid": -1, "ask": 1}
_SEQUENCE = "socket_sequence"
# Message kinds in the order of the scanner's counts.
_SCAN_KINDS = ("update", "heartbeat", "other")


@functools.cache
def _helper() -> ThreadPoolExecutor:
    """The one extra thread that scans second halves of long runs, and copies them into place."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="v1-scan")


class _Run:
    """What scanning part of a run gave: events, message counts, and where it stopped."""

    def __init__(self, ops: Columns, trades: Columns) -> None:
        self.ops = ops
        self.trades = trades
        self.breaks = Columns(BREAK_COLUMNS, "qqqqq", 16)
        self.counts = np.zeros(len(_SCAN_KINDS), np.int64)
        self.row = 0
        self.declined = False

    def scan(self, rows: RawRows, start: int, stop: int, state: npt.NDArray[np.int64]) -> _Run:
        """Scan rows ``start:stop``; *state* is the scanner's sequence state, updated in place."""
        self.row, self.declined = scan(
            rows, start, stop, state, self.ops, self.trades, self.breaks, self.counts
        )
        return self

    def add_to(self, out: RunSink) -> None:
        """Note the breaks and counts with *out* (the events are already in its columns)."""
        counts = {k: n for k, n in zip(_SCAN_KINDS, self.counts.tolist(), strict=True) if n}
        out.add_run(self.breaks, counts, _SEQUENCE)


class GeminiV1Stream:
    """Decoder state of one v1 connection (one symbol per connection)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._sequence = SequenceTracker(None)
        self._prev_ts = 0  # the receive time of the last socket_sequence
        # Columns the second half of a long run is scanned into, reused run after run.
        self._second: tuple[Columns, Columns] | None = None

    def on_sent(self, out: EventSink, msg: Any) -> None:
        """v1 has no client messages (docs/venues/gemini.md section 1); nothing to note."""

    def on_undecodable(self) -> str:
        """The book waits for a new initial book; the next ``socket_sequence`` shows a loss too.

        The lost message's number is skipped, so the next message is a break
        of its own, and the recorder reconnects on it (docs/venues/gemini.md section 1).
        """
        return "undecodable message; the book waits for the next initial book"

    def sync_state(self) -> dict[str, int] | None:
        """The last ``socket_sequence`` and its time, so a break over midnight is seen."""
        expected = self._sequence.expected
        if expected is None:
            return {}
        return {"prev_seq": expected - 1, "prev_ts": self._prev_ts}

    def resume(self, state: dict[str, int]) -> None:
        if "prev_seq" in state:
            self._sequence.expected = int(state["prev_seq"]) + 1
            self._prev_ts = int(state["prev_ts"])

    def decode_run(self, out: RunSink, rows: RawRows, start: int, stop: int) -> int:
        """Decode received rows ``start:stop`` with the compiled scanner, until one it declines.

        A long run is scanned as two halves at once, on two threads (the
        scanner releases the GIL): the first half straight into *out*'s
        columns, the second into columns of this stream's, which the other
        thread then copies after the first (:meth:`Columns.extend_later`),
        beside the next run's first half. The scanner's only state across
        messages is the sequence check, and after a message with a stored
        ``venue_seq`` that state is known without scanning what came before:
        that number and the row's time. So when the last row of the first
        half has one, the second half starts from it; its result is kept
        only if the first half was decoded to its end, else it is dropped
        and the caller goes on from the declined row as usual. Either way
        the events are exactly those of one scan from start to stop.
        """
        if start >= stop:
            return start
        expected = self._sequence.expected
        prev_seq = 0 if expected is None else expected - 1
        state = np.array([expected is not None, prev_seq, self._prev_ts], np.int64)
        mid = (start + stop) // 2
        if stop - start >= _SPLIT_ROWS and rows.venue_seq_ok[mid - 1]:
            later = np.array([1, rows.venue_seq[mid - 1], rows.recv[mid - 1]], np.int64)
            if self._second is None:
                self._second = (Columns(OP_COLUMNS, OP_TYPES), Columns(TRADE_COLUMNS, TRADE_TYPES))
            ops, trades = self._second
            # Emptied for this run: the copy of the last one out of them, queued on
            # the helper before this scan, has its own count.
            ops.n = trades.n = 0
            submit = _helper().submit
            second = submit(_Run(ops, trades).scan, rows, mid, stop, later)
            first = _Run(out.ops, out.trades).scan(rows, start, mid, state)
            rest = second.result()
            first.add_to(out)
            if first.declined:
                last = first
            else:
                out.ops.extend_later(rest.ops, submit)
                out.trades.extend_later(rest.trades, submit)
                rest.add_to(out)
                last, state = rest, later
        else:
            last = _Run(out.ops, out.trades).scan(rows, start, stop, state)
            last.add_to(out)
        if state[0]:
            self._sequence.expected, self._prev_ts = int(state[1]) + 1, int(state[2])
        return last.row

    def _check_sequence(self, out: EventSink, msg: Any, venue_seq: int | None) -> None:
        seq = venue_seq if venue_seq is not None else msg.get("socket_sequence")
        if not isinstance(seq, int):
            return
        gap = self._sequence.check(seq)
        if gap is not None:
            out.seq_break(self._prev_ts, gap.expected, gap.got, _SEQUENCE)
            out.control(OP_INVALID)
        self._prev_ts = out.ts

    def on_message(self, out: EventSink, msg: Any, venue_seq: int | None) -> str:
        """Decode one v1 message (``update`` or ``heartbeat``)."""
        if not isinstance(msg, dict):
            return "other"
        self._check_sequence(out, msg, venue_seq)
        kind = msg.get("type")
        if kind != "update":
            return "heartbeat" if kind == "heartbeat" else "other"
        ms = msg.get("timestampms")
        exch = ms * 1_000_000 if isinstance(ms, int) else None
        events = msg.get("events") or ()
        initial = any(e.get("reason") == "initial" for e in events if e.get("type") == "change")
        if initial:
            out.control(OP_CLEAR)
        for e in events:
            etype = e.get("type")
            if etype == "change":
                side = _SIDES.get(e.get("side"))
                if side is not None:
                    out.change(side, e["price"], e["remaining"], exch, initial)
            elif etype == "trade":
                tid = e.get("tid")
                out.trade(
                    e["price"],
                    e["amount"],
                    _TAKER.get(e.get("makerSide"), 0),
                    tid if isinstance(tid, int) else None,
                    exch,
                    False,
                )
        if initial:
            out.control(OP_VALID)
        return "update"
