"""The current Gemini WebSocket API: ``wss://ws.gemini.com`` (docs/venues/gemini.md section 3).

One connection carries many symbols and streams. The client sends
``{"id", "method", "params"}`` requests and gets ``{"id", "status",
"result"}`` or ``{"id", "status", "error": {"code", "msg"}}`` replies
(section 3.1). Methods (section 3.2): ``subscribe``, ``unsubscribe``,
``list_subscriptions`` (each also in upper case), ``depth``, ``time`` and
``ping``. Streams (section 3.3), symbols in any case:

- ``{symbol}@depth`` and ``{symbol}@depth@100ms``: conflated diffs
  ``{"e":"depthUpdate","E","s","U","u","b","a"}``, sent on a 1 s or 100 ms
  grid when something changed. ``U..u`` are the symbol's update ids the
  frame covers, one per engine event (:attr:`~tickrec.sim.market.Event.update_id`),
  so consecutive frames have ``U == previous u + 1``; ``b``/``a`` hold the
  levels changed in that range at their size after ``u`` (``"0"``: gone);
- ``{symbol}@trade``: ``{"e":"trade","E","s","t","p","q","m"}`` per fill, at
  once; ``m`` is true when the buyer was the maker;
- ``{symbol}@bookTicker``: ``{"u","E","s","b","B","a","A"}`` whenever the
  touch changed in an engine tick.

``E`` is in nanoseconds, as the spec says. ``s`` spells the symbol as the
client did in the stream name (Gemini's fixtures show both cases, section
3.6). The ``snapshot`` connection parameter (section 3, "Connection query
parameters") makes the first frame of every diff subscription a
``depthUpdate`` holding the whole book (negative) or its top N levels
(``N > 0``), with ``U == u`` the last update id applied (section 3.4).

The error codes and messages are the simulator's own: Gemini calls the
values in its example illustrative (section 3.2). Status is 400 for every
refused request; nothing is subscribed when any stream of a request is bad.
The partial-depth streams (``@depth5``...) are not simulated and are refused
like any unknown stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

from tickrec.sim.feed import Feed, Reject, dumps, integer
from tickrec.sim.market import Event, Market, Side, SymbolSpec, Trade

__all__ = [
    "DEFAULT_DEPTH_LIMIT",
    "ERR_BAD_PARAMS",
    "ERR_MALFORMED",
    "ERR_UNKNOWN_METHOD",
    "MAX_DEPTH_LIMIT",
    "PATH",
    "WsFeed",
]

#: The upgrade path: the API lives at the root, ``wss://ws.gemini.com?snapshot=-1``.
PATH = re.compile(r"^/?$")
#: ``depth`` request limits (docs/venues/gemini.md section 3.2: 1..5000, default 100).
MAX_DEPTH_LIMIT = 5000
DEFAULT_DEPTH_LIMIT = 100
#: Error codes of refused requests: not a request at all, a method we do not
#: know, and bad parameters (unknown stream or symbol, bad limit).
ERR_MALFORMED = -1000
ERR_UNKNOWN_METHOD = -1001
ERR_BAD_PARAMS = -1002

_BAD_REQUEST = 400
_SIDES: tuple[Side, ...] = ("bid", "ask")
_STREAM = re.compile(r"^([A-Za-z0-9]+)@(depth|depth@100ms|trade|bookTicker)$")
_INTERVALS_NS = {"depth": 1_000_000_000, "depth@100ms": 100_000_000}

Kind = Literal["diff", "trade", "ticker"]


class _Refused(Exception):
    """A request answered with an error reply."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(slots=True)
class _Sub:
    """One subscribed stream and, for diffs, what its next frame will carry."""

    name: str
    kind: Kind
    spec: SymbolSpec
    shown: str  # the symbol as the client spelled it, echoed in ``s``
    interval_ns: int = 0
    due_ns: int = 0
    first: int | None = None  # U of the pending frame
    last: int = 0  # u of the pending frame
    time_ns: int = 0
    levels: dict[tuple[Side, int], int] = field(default_factory=dict)
    touch: tuple[int, int, int, int] | None = None  # bookTicker: last sent b, B, a, A


def _grid_after(now_ns: int, interval_ns: int) -> int:
    return (now_ns // interval_ns + 1) * interval_ns


class WsFeed(Feed):
    """The current API on one connection: requests, replies and the subscribed streams."""

    protocol: ClassVar[str] = "gemini.ws"

    def __init__(self, market: Market, query: Mapping[str, str]) -> None:
        self.market = market
        # Negative: whole book; 0: no snapshot; N > 0: top N (docs/venues/gemini.md section 3).
        self.snapshot = integer(query, "snapshot", 0, -(2**31), 2**31)
        # No server heartbeat is documented (docs/venues/gemini.md section 3.5).
        self.heartbeats = False
        self.subs: dict[str, _Sub] = {}
        self._methods: dict[str, Callable[[Any, int], tuple[Any, list[str]]]] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "list_subscriptions": self._list,
            "depth": self._depth,
            "time": self._time,
            "ping": self._ping,
        }

    @classmethod
    def from_path(cls, market: Market, match: re.Match[str], query: Mapping[str, str]) -> WsFeed:
        """A feed for a matched :data:`PATH`."""
        return cls(market, query)

    def open(self, now_ns: int) -> list[str]:
        """Nothing until the client subscribes."""
        return []

    # --- requests -----------------------------------------------------------------

    def receive(self, text: str, now_ns: int) -> list[str]:
        """Answer one request: its reply, then any snapshot frames it started."""
        rid: Any = None
        try:
            try:
                msg = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise _Refused(ERR_MALFORMED, "request is not valid JSON") from None
            if not isinstance(msg, dict):
                raise _Refused(ERR_MALFORMED, "request must be a JSON object")
            rid = msg.get("id")
            if not isinstance(rid, str | int) or isinstance(rid, bool):
                rid = None
                raise _Refused(ERR_MALFORMED, "request id must be a string or an integer")
            method = msg.get("method")
            # The subscription methods also answer to upper case
            # (docs/venues/gemini.md section 3.2).
            name = method.lower() if isinstance(method, str) and method.isupper() else method
            handler = self._methods.get(name) if isinstance(name, str) else None
            if handler is None or (name != method and name not in _UPPER_ALIASES):
                raise _Refused(ERR_UNKNOWN_METHOD, f"unknown method {method!r}")
            result, frames = handler(msg.get("params"), now_ns)
        except _Refused as exc:
            reply = {"id": rid, "status": _BAD_REQUEST, "error": {"code": exc.code, "msg": exc.msg}}
            return [dumps(reply)]
        ok: dict[str, Any] = {"id": rid, "status": 200}
        if result is not None:
            ok["result"] = result
        return [dumps(ok), *frames]

    def _parse_streams(self, params: Any) -> list[tuple[str, Kind, SymbolSpec, str]]:
        if not isinstance(params, list) or not params:
            raise _Refused(ERR_BAD_PARAMS, "params must be a non-empty array of stream names")
        out: list[tuple[str, Kind, SymbolSpec, str]] = []
        for name in params:
            m = _STREAM.match(name) if isinstance(name, str) else None
            spec = self.market.specs.get(m.group(1).upper()) if m else None
            if m is None or spec is None:
                raise _Refused(ERR_BAD_PARAMS, f"invalid stream name {name!r}")
            stream = m.group(2)
            kind: Kind = (
                "trade" if stream == "trade" else "ticker" if stream == "bookTicker" else "diff"
            )
            out.append((name, kind, spec, m.group(1)))
        return out

    def _subscribe(self, params: Any, now_ns: int) -> tuple[Any, list[str]]:
        frames: list[str] = []
        for name, kind, spec, shown in self._parse_streams(params):
            if name in self.subs:
                continue
            sub = _Sub(name, kind, spec, shown)
            self.subs[name] = sub
            if kind == "diff":
                sub.interval_ns = _INTERVALS_NS[name.split("@", 1)[1]]
                sub.due_ns = _grid_after(now_ns, sub.interval_ns)
                if self.snapshot:
                    frames.append(self._snapshot(sub, now_ns))
        return None, frames

    def _unsubscribe(self, params: Any, now_ns: int) -> tuple[Any, list[str]]:
        for name, *_ in self._parse_streams(params):
            self.subs.pop(name, None)
        return None, []

    def _list(self, params: Any, now_ns: int) -> tuple[Any, list[str]]:
        return list(self.subs), []

    def _depth(self, params: Any, now_ns: int) -> tuple[Any, list[str]]:
        if not isinstance(params, dict) or not isinstance(params.get("symbol"), str):
            raise _Refused(ERR_BAD_PARAMS, 'params must be {"symbol": ..., "limit": ...}')
        spec = self.market.specs.get(params["symbol"].upper())
        if spec is None:
            raise _Refused(ERR_BAD_PARAMS, f"invalid symbol {params['symbol']!r}")
        limit = params.get("limit", DEFAULT_DEPTH_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise _Refused(ERR_BAD_PARAMS, "limit must be an integer")
        try:
            limit = integer({"limit": str(limit)}, "limit", DEFAULT_DEPTH_LIMIT, 1, MAX_DEPTH_LIMIT)
        except Reject as exc:
            raise _Refused(ERR_BAD_PARAMS, exc.message) from None
        book = self.market.books[spec.symbol]
        result = {
            "lastUpdateId": self.market.update_ids[spec.symbol],
            "bids": [[spec.price(p), spec.size(q)] for p, q in book.levels("bid", limit)],
            "asks": [[spec.price(p), spec.size(q)] for p, q in book.levels("ask", limit)],
        }
        return result, []

    def _time(self, params: Any, now_ns: int) -> tuple[Any, list[str]]:
        # The result fields are not documented; a third-party decoder reads serverTime (ms).
        return {"serverTime": now_ns // 1_000_000}, []

    def _ping(self, params: Any, now_ns: int) -> tuple[Any, list[str]]:
        return {}, []

    # --- streams ------------------------------------------------------------------

    def _snapshot(self, sub: _Sub, now_ns: int) -> str:
        """The first frame of a diff subscription: the book as one ``depthUpdate``."""
        spec = sub.spec
        book = self.market.books[spec.symbol]
        depth = self.snapshot if self.snapshot > 0 else 0
        uid = self.market.update_ids[spec.symbol]
        sides = {
            s: [[spec.price(p), spec.size(q)] for p, q in book.levels(s, depth)] for s in _SIDES
        }
        return self._diff_frame(sub, now_ns, uid, uid, sides["bid"], sides["ask"])

    @staticmethod
    def _diff_frame(
        sub: _Sub, time_ns: int, first: int, last: int, bids: list[list[str]], asks: list[list[str]]
    ) -> str:
        return dumps(
            {
                "e": "depthUpdate",
                "E": time_ns,
                "s": sub.shown,
                "U": first,
                "u": last,
                "b": bids,
                "a": asks,
            }
        )

    def _trade(self, sub: _Sub, t: Trade) -> str:
        spec = sub.spec
        return dumps(
            {
                "e": "trade",
                "E": t.time_ns,
                "s": sub.shown,
                "t": t.tid,
                "p": spec.price(t.price),
                "q": spec.size(t.amount),
                # The buyer made the market when the resting order was a bid
                # (docs/venues/gemini.md section 3.3).
                "m": t.maker_side == "bid",
            }
        )

    def _ticker(self, sub: _Sub, now_ns: int) -> str | None:
        spec = sub.spec
        book = self.market.books[spec.symbol]
        bid, ask = book.best("bid"), book.best("ask")
        assert bid is not None and ask is not None  # the market keeps MIN_LEVELS per side
        touch = (bid, book.size("bid", bid), ask, book.size("ask", ask))
        if touch == sub.touch:
            return None
        sub.touch = touch
        return dumps(
            {
                "u": self.market.update_ids[spec.symbol],
                "E": now_ns,
                "s": sub.shown,
                "b": spec.price(bid),
                "B": spec.size(touch[1]),
                "a": spec.price(ask),
                "A": spec.size(touch[3]),
            }
        )

    def _flush(self, sub: _Sub) -> str:
        spec = sub.spec
        assert sub.first is not None
        sides: dict[Side, list[list[str]]] = {"bid": [], "ask": []}
        for (side, price), size in sub.levels.items():
            sides[side].append([spec.price(price), spec.size(size)])
        frame = self._diff_frame(sub, sub.time_ns, sub.first, sub.last, sides["bid"], sides["ask"])
        sub.first, sub.levels = None, {}
        return frame

    def publish(self, events: Sequence[Event], now_ns: int) -> list[str]:
        """Trades at once; bookTicker once a tick; each diff stream on its own time grid."""
        frames: list[str] = []
        subs = list(self.subs.values())
        touched: set[str] = set()
        for event in events:
            touched.add(event.symbol)
            for sub in subs:
                if sub.spec.symbol != event.symbol:
                    continue
                if sub.kind == "trade":
                    frames.extend(self._trade(sub, t) for t in event.trades)
                elif sub.kind == "diff":
                    if sub.first is None:
                        sub.first = event.update_id
                    sub.last, sub.time_ns = event.update_id, event.time_ns
                    for c in event.changes:
                        sub.levels[(c.side, c.price)] = c.remaining
        for sub in subs:
            if sub.kind == "ticker" and sub.spec.symbol in touched:
                frame = self._ticker(sub, now_ns)
                if frame is not None:
                    frames.append(frame)
            elif sub.kind == "diff" and now_ns >= sub.due_ns:
                sub.due_ns = _grid_after(now_ns, sub.interval_ns)
                if sub.first is not None:
                    frames.append(self._flush(sub))
        return frames


#: Methods that also answer to their upper-case name (docs/venues/gemini.md section 3.2).
_UPPER_ALIASES = frozenset({"subscribe", "unsubscribe", "list_subscriptions"})
