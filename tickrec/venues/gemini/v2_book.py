"""Gemini market data v2 (``wss://api.gemini.com/v2/marketdata``), docs/venues/gemini.md section 2.

- ``l2_updates``: ``changes`` are ``[side, price, quantity]`` with side
  ``buy`` (bid) or ``sell`` (ask) and quantity the absolute new level size.
  The first ``l2_updates`` of a symbol after a subscribe naming it (a
  ``ws_sent`` row) is the snapshot; so is any ``l2_updates`` that carries a
  ``trades`` list, which Gemini sends only with the snapshot. A snapshot
  clears the book first and makes it valid after. Without either (a
  partition that starts mid-connection, after UTC midnight, whose subscribe
  is in the previous date's rows) updates only change levels of a book that
  stays unsynced: an ordinary update is never taken for the initial book
  (docs/architecture.md section 2.5).
- The snapshot's ``trades`` are the last 50 trades *before* the
  subscription. They are kept, flagged ``historical``, so a replay can show
  them, but :meth:`replay.api.Day.trades` leaves them out by default: after a
  reconnect they repeat trades already received live, and they did not
  happen during the recording.
- ``trade``: ``side`` is the taker side; ``timestamp`` is in ms; the id is
  ``tid`` or else ``event_id`` (the docs also spell it ``eventid``).
- v2 has no sequence numbers, so no sequence breaks can be detected
  (docs/venues/gemini.md section 2); heartbeats only count as signs of life.
- Messages for another symbol (the partition is one symbol) are ignored.
"""

from __future__ import annotations

from typing import Any

from tickrec.events import ASK, BID, OP_CLEAR, OP_VALID, EventSink

__all__ = ["DECODER_VERSION", "GeminiV2Stream"]

#: Raised whenever what this protocol decodes to changes, so that the normalized cache
#: (:mod:`replay.cache`) rebuilds even where its sources alone would not show it.
DECODER_VERSION = 1

_SIDES = {"buy": BID, "sell": ASK}
_TAKER = {"buy": 1, "sell": -1}


def _trade_id(t: dict[str, Any]) -> int | None:
    for key in ("tid", "event_id", "eventid"):
        value = t.get(key)
        if isinstance(value, int):
            return value
    return None


def _ms(value: object) -> int | None:
    return value * 1_000_000 if isinstance(value, int) else None


class GeminiV2Stream:
    """Decoder state of one v2 connection, for one symbol's partition."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol.upper()
        self._expect_snapshot = False  # until our subscribe (module docstring)

    def on_sent(self, out: EventSink, msg: Any) -> None:
        """A subscribe naming this symbol means the next ``l2_updates`` is a snapshot."""
        if not isinstance(msg, dict) or msg.get("type") != "subscribe":
            return
        for sub in msg.get("subscriptions") or ():
            symbols = sub.get("symbols") or ()
            if sub.get("name") == "l2" and self.symbol in {str(s).upper() for s in symbols}:
                self._expect_snapshot = True

    def on_undecodable(self) -> str:
        """The book waits for a new snapshot: v2 has no numbers to prove nothing changed.

        The recorder reconnects on such a frame for that snapshot (docs/venues/gemini.md section 2).
        """
        return "undecodable message; v2 has no sequence numbers, so the book waits for a snapshot"

    def sync_state(self) -> dict[str, int] | None:
        """v2 has no numbers to carry: only whether a subscribe awaits its snapshot."""
        return {"expect_snapshot": int(self._expect_snapshot)}

    def resume(self, state: dict[str, int]) -> None:
        self._expect_snapshot = bool(state.get("expect_snapshot", 0))

    def _mine(self, msg: dict[str, Any]) -> bool:
        return str(msg.get("symbol", "")).upper() == self.symbol

    def on_message(self, out: EventSink, msg: Any, venue_seq: int | None) -> str:
        """Decode one v2 message (``l2_updates``, ``trade``, ``heartbeat``, others ignored)."""
        if not isinstance(msg, dict):
            return "other"
        kind = msg.get("type")
        if kind == "l2_updates" and self._mine(msg):
            snapshot = self._expect_snapshot or "trades" in msg
            self._expect_snapshot = False
            if snapshot:
                out.control(OP_CLEAR)
            for side_name, price, size in msg.get("changes") or ():
                side = _SIDES.get(side_name)
                if side is not None:
                    out.change(side, price, size, None, snapshot)
            if snapshot:
                out.control(OP_VALID)
                for t in msg.get("trades") or ():
                    self._trade(out, t, historical=True)
            return "l2_updates"
        if kind == "trade" and self._mine(msg):
            self._trade(out, msg, historical=False)
            return "trade"
        return kind if kind == "heartbeat" else "other"

    @staticmethod
    def _trade(out: EventSink, t: dict[str, Any], historical: bool) -> None:
        out.trade(
            t["price"],
            t["quantity"],
            _TAKER.get(str(t.get("side")), 0),
            _trade_id(t),
            _ms(t.get("timestamp")),
            historical,
        )
