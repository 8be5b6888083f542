"""Gemini market data v1: ``/v1/marketdata/{symbol}`` (docs/venues/gemini.md section 1).

One symbol per connection, no subscribe message. Every frame carries the
connection's ``socket_sequence``, from 0, up by one per frame (heartbeats
included). The first frame is one ``update`` holding the whole book as
``change`` events with reason ``initial``; later updates carry one engine
event each: its ``trade`` events, each followed by the ``change`` it caused,
or a single ``place``/``cancel`` change. Key order follows the real capture
in ``tests/data/real/gemini_v1``.

Query parameters ``bids``, ``offers`` and ``trades`` leave out that kind of
event and ``heartbeat=true`` turns on heartbeats. With ``top_of_book=true``
the changes describe a book one level deep: when a side's best level changes
size the change says so, and when the best price moves the old price is set
to ``"0"`` and the new one to its size, so a client applying changes as usual
always holds exactly the best bid and ask. Gemini does not document the
events of this mode in detail (docs/venues/gemini.md section 1). An update left with no
events is not sent and takes no sequence number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tickrec.sim.feed import Feed, dumps, flag, lookup
from tickrec.sim.market import Book, Change, Event, Market, Reason, Side, SymbolSpec, Trade

__all__ = ["PATH", "V1Feed", "V1Params"]

_SIDES: tuple[Side, ...] = ("bid", "ask")

#: The upgrade path; the symbol is case-insensitive.
PATH = re.compile(r"^/v1/marketdata/([^/]+)/?$")


@dataclass(frozen=True, slots=True)
class V1Params:
    """The connection's query parameters.

    See docs/venues/gemini.md section 1, "URL query parameters".
    """

    heartbeat: bool = False
    top_of_book: bool = False
    bids: bool = True
    offers: bool = True
    trades: bool = True

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> V1Params:
        """Read the parameters from a query; a value other than true/false is a 400 reply."""
        return cls(
            heartbeat=flag(query, "heartbeat", False),
            top_of_book=flag(query, "top_of_book", False),
            bids=flag(query, "bids", True),
            offers=flag(query, "offers", True),
            trades=flag(query, "trades", True),
        )


class V1Feed(Feed):
    """The v1 stream of one symbol for one connection."""

    protocol: ClassVar[str] = "gemini.v1"

    def __init__(self, market: Market, symbol: str, query: Mapping[str, str]) -> None:
        self.spec: SymbolSpec = lookup(market, symbol)
        self.params = V1Params.parse(query)
        self.heartbeats = self.params.heartbeat
        self.market = market
        self.sequence = 0
        self._sides: dict[Side, bool] = {"bid": self.params.bids, "ask": self.params.offers}
        # top_of_book needs the touch after each event of a batch, which the
        # market (already past the whole batch) cannot tell: keep a mirror book.
        self._mirror: Book | None = Book() if self.params.top_of_book else None
        self._top: dict[Side, tuple[int, int]] = {}

    @classmethod
    def from_path(cls, market: Market, match: re.Match[str], query: Mapping[str, str]) -> V1Feed:
        """A feed for a matched :data:`PATH`."""
        return cls(market, match.group(1), query)

    def _next(self) -> int:
        seq = self.sequence
        self.sequence += 1
        return seq

    def _change(self, c: Change) -> dict[str, Any]:
        spec = self.spec
        return {
            "type": "change",
            "side": c.side,
            "price": spec.price(c.price),
            "remaining": spec.size(c.remaining),
            "delta": spec.size(c.delta),
            "reason": c.reason,
        }

    def _trade(self, t: Trade) -> dict[str, Any]:
        spec = self.spec
        return {
            "type": "trade",
            "tid": t.tid,
            "price": spec.price(t.price),
            "amount": spec.size(t.amount),
            "makerSide": t.maker_side,
        }

    def _update(self, event_id: int, time_ns: int, events: list[dict[str, Any]]) -> str:
        ms = time_ns // 1_000_000
        return dumps(
            {
                "type": "update",
                "eventId": event_id,
                "timestamp": ms // 1000,
                "timestampms": ms,
                "socket_sequence": self._next(),
                "events": events,
            }
        )

    def open(self, now_ns: int) -> list[str]:
        """The whole book (sides as filtered; the touch for top_of_book) as ``initial`` changes."""
        book = self.market.books[self.spec.symbol]
        events: list[dict[str, Any]] = []
        for side in _SIDES:
            levels = book.levels(side)
            if self._mirror is not None:
                for price, size in levels:
                    self._mirror.set(side, price, size)
                levels = levels[:1]
                self._top[side] = levels[0]
            if self._sides[side]:
                events.extend(self._change(Change(side, p, q, q, "initial")) for p, q in levels)
        return [self._update(self.market.last_event_id, now_ns, events)]

    def _touch(self, mirror: Book, event: Event) -> list[Change]:
        """The changes of a one-level book across *event* (see the module docstring)."""
        out: list[Change] = []
        reasons: dict[Side, Reason] = {}
        for c in event.changes:
            mirror.set(c.side, c.price, c.remaining)
            reasons[c.side] = c.reason
        for side, reason in reasons.items():
            old_price, old_size = self._top[side]
            price = mirror.best(side)
            assert price is not None  # the market keeps MIN_LEVELS per side
            size = mirror.size(side, price)
            if price == old_price and size != old_size:
                out.append(Change(side, price, size, size - old_size, reason))
            elif price != old_price:
                out.append(Change(side, old_price, 0, -old_size, reason))
                out.append(Change(side, price, size, size, reason))
            self._top[side] = (price, size)
        return out

    def publish(self, events: Sequence[Event], now_ns: int) -> list[str]:
        """One update per event of this symbol that keeps at least one event after filtering."""
        frames: list[str] = []
        symbol, mirror, sides, trades = (
            self.spec.symbol,
            self._mirror,
            self._sides,
            self.params.trades,
        )
        for event in events:
            if event.symbol != symbol:
                continue
            if mirror is None:
                # Full depth keeps the engine order: each trade, then the change it caused.
                kept = [
                    self._trade(i) if isinstance(i, Trade) else self._change(i)
                    for i in event.items
                    if (trades if isinstance(i, Trade) else sides[i.side])
                ]
            else:
                kept = [self._trade(t) for t in event.trades] if trades else []
                kept += [self._change(c) for c in self._touch(mirror, event) if sides[c.side]]
            if kept:
                frames.append(self._update(event.event_id, event.time_ns, kept))
        return frames

    def beat(self, now_ns: int) -> str:
        """``{"type":"heartbeat","socket_sequence":N}``; it shares the sequence with updates."""
        return dumps({"type": "heartbeat", "socket_sequence": self._next()})
