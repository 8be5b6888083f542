"""Gemini market data v2: ``/v2/marketdata`` (docs/venues/gemini.md section 2).

The client subscribes to the ``l2`` feed for some symbols; each symbol's
first ``l2_updates`` is its snapshot: the whole book (bids best first, then
asks best first) plus the last 50 trades, newest first, and an empty
``auction_events``, as in the real capture in ``tests/data/real/gemini_v2``.
After that each engine event becomes its ``trade`` messages (``side`` is the
taker side) and one ``l2_updates`` whose changes set levels to absolute
sizes, ``"0"`` removing a level. There is no sequence number. Heartbeats,
``{"type":"heartbeat","timestamp":ms}``, come on every connection, subscribed
or not, as in the real capture.

Trade messages carry ``tid`` as docs/venues/gemini.md documents it; the 2021 capture's
trades have only ``event_id``, which always equals ``tid`` here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson

from tickrec.sim.feed import Close, Feed, Reject, dumps, lookup
from tickrec.sim.market import Event, Market, SymbolSpec, Trade

__all__ = ["PATH", "SNAPSHOT_TRADES", "V2Feed"]

#: The upgrade path (cryptofeed connects with a trailing slash).
PATH = re.compile(r"^/v2/marketdata/?$")
#: Trades in a snapshot (docs/venues/gemini.md section 2: "the last 50 trades").
SNAPSHOT_TRADES = 50
_SIDES = {"bid": "buy", "ask": "sell"}
# websocket close code 1008, policy violation (RFC 6455 section 7.4.1)
_POLICY = 1008


class V2Feed(Feed):
    """The v2 stream of one connection, for the symbols it subscribed to."""

    protocol: ClassVar[str] = "gemini.v2"

    def __init__(self, market: Market) -> None:
        self.market = market
        self.heartbeats = True
        self.subscribed: set[str] = set()

    @classmethod
    def from_path(cls, market: Market, match: re.Match[str], query: Mapping[str, str]) -> V2Feed:
        """A feed for a matched :data:`PATH`; v2 takes no query parameters."""
        return cls(market)

    def open(self, now_ns: int) -> list[str]:
        """Nothing until the client subscribes."""
        return []

    def _trade(self, spec: SymbolSpec, t: Trade) -> dict[str, Any]:
        return {
            "type": "trade",
            "symbol": spec.symbol,
            "event_id": t.tid,
            "timestamp": t.time_ns // 1_000_000,
            "price": spec.price(t.price),
            "quantity": spec.size(t.amount),
            "side": t.taker_side,
            "tid": t.tid,
        }

    def _snapshot(self, spec: SymbolSpec) -> str:
        book = self.market.books[spec.symbol]
        changes = [["buy", spec.price(p), spec.size(q)] for p, q in book.levels("bid")]
        changes += [["sell", spec.price(p), spec.size(q)] for p, q in book.levels("ask")]
        history = self.market.trades[spec.symbol]
        recent = [history[-1 - i] for i in range(min(SNAPSHOT_TRADES, len(history)))]
        return dumps(
            {
                "type": "l2_updates",
                "symbol": spec.symbol,
                "changes": changes,
                "trades": [self._trade(spec, t) for t in recent],
                "auction_events": [],
            }
        )

    def receive(self, text: str, now_ns: int) -> list[str]:
        """Handle ``subscribe`` and ``unsubscribe``; answer each new symbol with its snapshot."""
        try:
            msg = orjson.loads(text)
            kind = msg["type"]
            subscriptions = msg["subscriptions"]
            wanted: list[str] = []
            for sub in subscriptions:
                if sub["name"] != "l2":
                    raise Close(_POLICY, f"unsupported subscription {sub['name']!r}")
                wanted.extend(lookup(self.market, str(s)).symbol for s in sub["symbols"])
        except Reject as exc:
            raise Close(_POLICY, exc.message) from None
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise Close(_POLICY, f"malformed request: {exc}") from None
        if kind == "unsubscribe":
            self.subscribed.difference_update(wanted)
            return []
        if kind != "subscribe":
            raise Close(_POLICY, f"unknown request type {kind!r}")
        frames = []
        for symbol in dict.fromkeys(wanted):
            if symbol not in self.subscribed:
                self.subscribed.add(symbol)
                frames.append(self._snapshot(self.market.specs[symbol]))
        return frames

    def publish(self, events: Sequence[Event], now_ns: int) -> list[str]:
        """Trades, then the level changes, for each event of a subscribed symbol."""
        frames: list[str] = []
        subscribed, specs = self.subscribed, self.market.specs
        for event in events:
            if event.symbol not in subscribed:
                continue
            spec = specs[event.symbol]
            changes = []
            for item in event.items:
                if isinstance(item, Trade):
                    frames.append(dumps(self._trade(spec, item)))
                else:
                    changes.append(
                        [_SIDES[item.side], spec.price(item.price), spec.size(item.remaining)]
                    )
            frames.append(dumps({"type": "l2_updates", "symbol": spec.symbol, "changes": changes}))
        return frames

    def beat(self, now_ns: int) -> str:
        """``{"type":"heartbeat","timestamp":ms}``."""
        return dumps({"type": "heartbeat", "timestamp": now_ns // 1_000_000})
