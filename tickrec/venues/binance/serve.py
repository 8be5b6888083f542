"""Binance spot's routes on ``tickrec serve`` (:mod:`tickrec.serving`), on Binance's paths.

- The combined stream ``/stream?streams=<s>@depth@100ms/<s>@trade``: the
  stored ``binance.spot`` rows of the streams asked for, and those that name
  no stream (such as ``serverShutdown``). The raw streams ``/ws/<name>``
  send each event alone, the ``data`` of its stored combined frame, byte for
  byte. ``/ws`` and ``/stream`` alone take their streams from the client's
  first valid ``SUBSCRIBE``; a later ``SUBSCRIBE`` or ``UNSUBSCRIBE`` changes
  them while the replay runs (within the streams of the stored connection),
  and ``LIST_SUBSCRIPTIONS`` lists them.
- REST ``/api/v3/depth``: the last depth reply stored by the replay clock (a
  sync or a check snapshot), cut to ``limit`` levels a side. One stored
  before ``--from`` is older than the frames served, so the book their
  connection's rows rebuild by the clock answers instead, with
  ``lastUpdateId`` the ``u`` of its last diff. ``/api/v3/exchangeInfo``: the
  stored symbols.

Requests weigh what Binance's weigh (:mod:`.rest`), and a refused request
gets Binance's ``{"code", "msg"}`` error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

import orjson

from tickrec.serving import HttpRoute, Priced, Refused, Store, Streams, WsRoute
from tickrec.sim.feed import Reply, dumps
from tickrec.venues.binance import rest
from tickrec.venues.binance.spot import PROTOCOL as SPOT

__all__ = ["HTTP", "ROUTES", "WS_ROUTES"]

VENUE = "binance"
_PREFIX = b'{"stream":"'
#: The streams of a combined-stream URL that are served: ``<symbol>@<kind>``.
_STREAM_NAME = re.compile(r"^([a-z0-9]+)@(depth@100ms|depth|trade|aggTrade|bookTicker)$")


def _error(status: int, code: int, msg: str) -> Reply:
    return Reply(status, dumps({"code": code, "msg": msg}))


def _problem(store: Store, names: frozenset[str]) -> str | None:
    """Why Binance would refuse these stream names, or None."""
    bad = [n for n in sorted(names) if not _STREAM_NAME.match(n)]
    unknown = sorted({n.partition("@")[0].upper() for n in names} - set(store.symbols(VENUE)))
    if not names or bad or unknown or len(names) > 2 * store.max_symbols:
        return f"Invalid stream: {(bad or unknown or ['no streams'])[0]}"
    return None


def _symbols_of(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted({n.partition("@")[0].upper() for n in names}))


@dataclass
class _Spot(Streams):
    """One client of a stream route; *raw*: events without the combined wrapping."""

    store: Store | None = None
    raw: bool = False

    def stream_of(self, payload: bytes) -> str | None:
        """The stream name of a combined frame ``{"stream":"<name>",...}``."""
        if not payload.startswith(_PREFIX):
            return None
        return payload[len(_PREFIX) : payload.find(b'"', len(_PREFIX))].decode("ascii", "replace")

    def as_sent(self, payload: bytes, stream: str) -> bytes:
        if not self.raw:
            return payload
        head = len(_PREFIX) + len(stream) + len(b'","data":')
        if payload[head - 8 : head] == b',"data":' and payload.endswith(b"}"):
            return payload[head:-1]
        return payload

    def first(self, text: str | bytes) -> list[str]:
        """A request on ``/ws`` or ``/stream`` alone: the first valid ``SUBSCRIBE`` sets
        the streams (and so the symbols) replayed."""
        reply = self._request(text, None)
        if self.streams:
            self.symbols, self.key = _symbols_of(self.streams), (self.streams, self.raw)
        return [reply]

    def request(self, text: str | bytes, recorded: frozenset[str]) -> str:
        return self._request(text, recorded)

    def _request(self, text: str | bytes, recorded: frozenset[str] | None) -> str:
        """Binance's reply to one client request; *recorded*: the streams of the stored
        connection being replayed, the only ones a ``SUBSCRIBE`` can add once it runs."""
        assert self.store is not None
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return dumps({"code": 3, "msg": "Invalid JSON"})
        if not isinstance(msg, dict):
            return dumps({"code": 2, "msg": "Invalid request"})
        rid, method, params = msg.get("id"), msg.get("method"), msg.get("params")
        if method == "LIST_SUBSCRIPTIONS":
            return dumps({"result": sorted(self.streams), "id": rid})
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            return dumps({"code": 2, "msg": "Invalid request", "id": rid})
        asked = frozenset(str(p) for p in params)
        if method == "UNSUBSCRIBE":
            self.streams -= asked
            return dumps({"result": None, "id": rid})
        problem = _problem(self.store, self.streams | asked)
        outside = sorted(asked - (recorded or frozenset()))
        if problem is None and recorded is not None and outside:
            problem = f"Invalid stream: {outside[0]} is not on the stored connection replayed"
        if problem is not None:
            return dumps({"code": 2, "msg": problem, "id": rid})
        self.streams |= asked
        return dumps({"result": None, "id": rid})


def _listed(store: Store, listed: str, raw: bool) -> _Spot:
    """A stream route's client whose URL lists its streams (``a/b``); none listed: they
    come with a ``SUBSCRIBE``."""
    if not listed:
        return _Spot(SPOT, None, ("", raw), store=store, raw=raw)
    names = frozenset(n for n in listed.split("/") if n)
    problem = _problem(store, names)
    if problem is not None:
        raise Refused(_error(400, -1121, problem))
    return _Spot(SPOT, _symbols_of(names), (names, raw), names, store=store, raw=raw)


def _combined(store: Store, match: re.Match[str], query: str) -> _Spot:
    return _listed(store, parse_qs(query).get("streams", [""])[0], raw=False)


def _raw(store: Store, match: re.Match[str], query: str) -> _Spot:
    return _listed(store, match.group(1) or "", raw=True)


# --- REST ------------------------------------------------------------------------------


def _depth(store: Store, match: re.Match[str], query: str) -> Priced:
    """``/api/v3/depth?symbol=&limit=`` (default 100 levels a side, at most 5000)."""
    params = parse_qs(query)

    def error(status: int, code: int, msg: str) -> Priced:
        return Priced(0, lambda: _error(status, code, msg))  # refused: weighs nothing

    symbol = params.get("symbol", [""])[0]
    if not symbol:
        return error(
            400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        )
    if symbol not in store.symbols(VENUE):
        return error(400, -1121, "Invalid symbol.")
    limit_text = params.get("limit", ["100"])[0]
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= rest.MAX_DEPTH:
        return error(
            400,
            -1100,
            "Illegal characters found in parameter 'limit'; legal range is '1' to '5000'.",
        )
    limit = int(limit_text)
    return Priced(rest.depth_weight(limit), lambda: _depth_reply(store, symbol, limit))


def _depth_reply(store: Store, symbol: str, limit: int) -> Reply:
    got = store.rest_reply(VENUE, rest.PROTOCOL, symbol)
    if got is None:
        return _error(404, -1121, f"no depth stored for {symbol}")
    stored_ns, book = got
    start_ns = store.start_ns
    if start_ns is not None and stored_ns < start_ns:
        # The last reply stored is older than the frames served from --from: the
        # book their connection's rows rebuild by the replay clock is the one they follow.
        rebuilt = _rebuilt(store, symbol, store.clock_ns if store.sent else start_ns - 1)
        if rebuilt is None:
            return _error(503, -1001, f"the book of {symbol} is not valid at this point")
        book = dumps(rebuilt)
    reply = orjson.loads(book)
    if isinstance(reply, dict) and any(len(reply.get(k) or ()) > limit for k in ("bids", "asks")):
        for key in ("bids", "asks"):
            reply[key] = (reply.get(key) or [])[:limit]
        book = dumps(reply)
    return Reply(200, book)


def _rebuilt(store: Store, symbol: str, at_ns: int) -> dict[str, object] | None:
    """The depth reply of *symbol*'s book after the rows received up to *at_ns* of the
    connection that received the last of them, as replayed; None where it is not valid.

    ``lastUpdateId`` is the ``u`` of the connection's last diff of *symbol* by
    then (or its sync reply's ``lastUpdateId``), the update the book is at.
    """
    got = store.book_by(VENUE, (SPOT, rest.PROTOCOL), symbol, at_ns, rest.MAX_DEPTH)
    if got is None or got[1] is None:
        return None
    payloads, (bids, asks) = got[0], got[1]
    for payload in reversed(payloads):
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        event = msg.get("data", msg) if isinstance(msg, dict) else None
        if isinstance(event, dict) and (event.get("e") == "depthUpdate" or "lastUpdateId" in event):
            return {
                "lastUpdateId": event.get("u", event.get("lastUpdateId")),
                "bids": bids,
                "asks": asks,
            }
    return None


def _exchange_info(store: Store, match: re.Match[str], query: str) -> Priced:
    info = {
        "timezone": "UTC",
        "serverTime": store.clock_ns // 1_000_000,
        "symbols": [{"symbol": s, "status": "TRADING"} for s in store.symbols(VENUE)],
    }
    return Priced(rest.INFO_WEIGHT, lambda: Reply(200, dumps(info)))


WS_ROUTES = (
    WsRoute(re.compile(r"^/stream/?$"), _combined),
    WsRoute(re.compile(r"^/ws(?:/(.+))?/?$"), _raw),
)
HTTP = (
    HttpRoute(re.compile(r"^/api/v3/depth/?$"), _depth),
    HttpRoute(re.compile(r"^/api/v3/exchangeInfo/?$"), _exchange_info),
)
#: For the start banner: label, ``ws`` or ``http``, and the paths.
ROUTES = (
    ("Binance spot", "ws", "/stream?streams=..., /ws/<stream>, /ws, /stream"),
    ("Binance REST", "http", "/api/v3/depth, /api/v3/exchangeInfo"),
)
