"""Binance spot market streams on the simulator: ``/stream?streams=`` and ``/ws/<stream>``.

The shapes are those of the real capture (tests/data/real/binance):

- ``{symbol}@depth@100ms`` (and ``@depth``, 1 s): diffs
  ``{"e":"depthUpdate","E","s","U","u","b","a"}`` on a 100 ms (1 s) grid
  when something changed. ``U..u`` are the symbol's update ids the frame
  covers, one per engine event (:attr:`~tickrec.sim.market.Event.update_id`),
  the same ids ``/api/v3/depth`` gives as ``lastUpdateId``; ``b``/``a`` hold
  the levels changed at their quantity after ``u`` (``"0..."``: gone);
- ``{symbol}@trade``: ``{"e":"trade","E","s","t","p","q","T","m","M"}`` per
  fill, at once; ``m`` is true when the buyer was the maker.

``E`` and ``T`` are in milliseconds; symbols are upper case in ``s`` and
lower case in stream names. On ``/stream`` each frame is wrapped as
``{"stream": name, "data": event}``; on ``/ws/...`` it is sent bare. A
client may add or drop streams with ``{"method": "SUBSCRIBE" | "UNSUBSCRIBE",
"params": [...], "id": n}``, answered ``{"result": null, "id": n}``, or
``{"code": 2, "msg": ...}`` for a bad request. At most
:data:`~tickrec.venues.binance.spot.MAX_INCOMING_PER_S` client messages a
second are accepted; more closes the connection, as Binance does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

from tickrec.sim.feed import Close, Feed, Reject, dumps
from tickrec.sim.market import Event, Market, Side, SymbolSpec, Trade
from tickrec.venues.binance.spot import MAX_INCOMING_PER_S
from tickrec.venues.limits import MessageRate

__all__ = ["RAW_PATH", "STREAM_PATH", "SpotFeed"]

#: The combined stream (``/stream?streams=a/b``) and the raw stream (``/ws/a/b``, or ``/ws``).
STREAM_PATH = re.compile(r"^/stream/?$")
RAW_PATH = re.compile(r"^/ws(?:/(.*))?$")

_STREAM = re.compile(r"^([a-z0-9]+)@(depth|depth@100ms|trade)$")
_INTERVALS_NS = {"depth": 1_000_000_000, "depth@100ms": 100_000_000}
_POLICY_VIOLATION = 1008

Kind = Literal["diff", "trade"]


@dataclass(slots=True)
class _Sub:
    name: str
    kind: Kind
    spec: SymbolSpec
    interval_ns: int = 0
    due_ns: int = 0
    first: int | None = None
    last: int = 0
    time_ns: int = 0
    levels: dict[tuple[Side, int], int] = field(default_factory=dict)


def _grid_after(now_ns: int, interval_ns: int) -> int:
    return (now_ns // interval_ns + 1) * interval_ns


def _ms(ns: int) -> int:
    return ns // 1_000_000


class SpotFeed(Feed):
    """One Binance spot connection: its subscribed streams, combined or raw."""

    protocol: ClassVar[str] = "binance.spot"

    def __init__(self, market: Market, streams: Sequence[str], combined: bool) -> None:
        self.market = market
        self.combined = combined
        self.heartbeats = False  # Binance pings with control frames; the server answers pongs
        self.subs: dict[str, _Sub] = {}
        self._incoming = MessageRate(MAX_INCOMING_PER_S)
        self._add(streams, 0)

    @classmethod
    def combined_from_path(
        cls, market: Market, match: re.Match[str], query: Mapping[str, str]
    ) -> SpotFeed:
        """``/stream?streams=a/b``: frames wrapped with their stream name."""
        names = [n for n in query.get("streams", "").split("/") if n]
        return cls(market, _checked(market, names), combined=True)

    @classmethod
    def raw_from_path(
        cls, market: Market, match: re.Match[str], query: Mapping[str, str]
    ) -> SpotFeed:
        """``/ws/a/b``: bare frames."""
        names = [n for n in (match.group(1) or "").split("/") if n]
        return cls(market, _checked(market, names), combined=False)

    def open(self, now_ns: int) -> list[str]:
        for sub in self.subs.values():
            if sub.kind == "diff":
                sub.due_ns = _grid_after(now_ns, sub.interval_ns)
        return []

    def shutdown_notice(self, now_ns: int) -> str:
        """``serverShutdown``: maintenance is coming; the connection closes soon."""
        return dumps({"e": "serverShutdown", "E": _ms(now_ns)})

    def receive(self, text: str, now_ns: int) -> list[str]:
        """``SUBSCRIBE``, ``UNSUBSCRIBE`` and ``LIST_SUBSCRIPTIONS``, within the message rate."""
        if not self._incoming.allows(now_ns):
            raise Close(_POLICY_VIOLATION, "Too many requests")
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [dumps({"code": 3, "msg": "Invalid JSON"})]
        rid = msg.get("id") if isinstance(msg, dict) else None
        method = msg.get("method") if isinstance(msg, dict) else None
        params = msg.get("params", []) if isinstance(msg, dict) else None
        if method == "LIST_SUBSCRIPTIONS":
            return [dumps({"result": list(self.subs), "id": rid})]
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            return [dumps({"code": 2, "msg": "Invalid request", "id": rid})]
        try:
            names = _checked(self.market, params)
        except Reject as exc:
            return [dumps({"code": 2, "msg": exc.message, "id": rid})]
        if method == "SUBSCRIBE":
            self._add(names, now_ns)
        else:
            for name in names:
                self.subs.pop(name, None)
        return [dumps({"result": None, "id": rid})]

    def _add(self, names: Sequence[str], now_ns: int) -> None:
        for name in names:
            if name in self.subs:
                continue
            m = _STREAM.match(name)
            assert m is not None  # checked
            spec = self.market.specs[m.group(1).upper()]
            stream = m.group(2)
            if stream == "trade":
                self.subs[name] = _Sub(name, "trade", spec)
            else:
                interval = _INTERVALS_NS[stream]
                self.subs[name] = _Sub(
                    name, "diff", spec, interval, _grid_after(now_ns, interval) if now_ns else 0
                )

    def _frame(self, name: str, event: dict[str, Any]) -> str:
        return dumps({"stream": name, "data": event} if self.combined else event)

    def _trade(self, sub: _Sub, t: Trade) -> str:
        spec = sub.spec
        event = {
            "e": "trade",
            "E": _ms(t.time_ns),
            "s": spec.symbol,
            "t": t.tid,
            "p": spec.price(t.price),
            "q": spec.size(t.amount),
            "T": _ms(t.time_ns),
            "m": t.maker_side == "bid",  # the buyer's order rested: the buyer made the market
            "M": True,
        }
        return self._frame(sub.name, event)

    def _flush(self, sub: _Sub) -> str:
        spec = sub.spec
        assert sub.first is not None
        sides: dict[Side, list[list[str]]] = {"bid": [], "ask": []}
        for (side, price), size in sorted(sub.levels.items()):
            sides[side].append([spec.price(price), spec.size(size)])
        event = {
            "e": "depthUpdate",
            "E": _ms(sub.time_ns),
            "s": spec.symbol,
            "U": sub.first,
            "u": sub.last,
            "b": sides["bid"],
            "a": sides["ask"],
        }
        sub.first, sub.levels = None, {}
        return self._frame(sub.name, event)

    def publish(self, events: Sequence[Event], now_ns: int) -> list[str]:
        """Trades at once; each diff stream on its own time grid."""
        frames: list[str] = []
        subs = list(self.subs.values())
        for event in events:
            for sub in subs:
                if sub.spec.symbol != event.symbol:
                    continue
                if sub.kind == "trade":
                    frames.extend(self._trade(sub, t) for t in event.trades)
                else:
                    if sub.first is None:
                        sub.first = event.update_id
                    sub.last, sub.time_ns = event.update_id, event.time_ns
                    for c in event.changes:
                        sub.levels[(c.side, c.price)] = c.remaining
        for sub in subs:
            if sub.kind == "diff" and now_ns >= sub.due_ns:
                sub.due_ns = _grid_after(now_ns, sub.interval_ns)
                if sub.first is not None:
                    frames.append(self._flush(sub))
        return frames


def _checked(market: Market, names: Sequence[Any]) -> list[str]:
    """The stream names, each of a listed symbol (lower case); else a 400 ``Reject``."""
    out = []
    for name in names:
        m = _STREAM.match(name) if isinstance(name, str) else None
        if m is None or m.group(1).upper() not in market.specs:
            raise Reject(400, "InvalidStream", f"Invalid stream name {name!r}")
        out.append(name)
    return out
