"""Gemini's routes on ``tickrec serve`` (:mod:`tickrec.serving`), on the simulator's paths.

- Market data v1 at ``/v1/marketdata/{symbol}``: the stored ``gemini.v1``
  connections of that symbol, whole. Opened at ``--from``, a connection
  starts with an ``initial`` update of the book its rows before rebuild,
  numbered 0, and the stored frames numbered on from 1.
- Market data v2 at ``/v2/marketdata``: after the client's ``subscribe`` to
  ``l2``, the stored ``gemini.v2`` rows of the symbols subscribed, merged in
  recorded order. Opened at ``--from``, a connection starts with an
  ``l2_updates`` snapshot of each symbol's book.
- The current API at ``/``: a stored ``gemini.ws`` connection as a
  :class:`~tickrec.serving.Dialogue`. A client request with a stored reply
  ahead gets that reply (its ``id`` changed to the client's); one with none
  is answered in the simulator's shapes: ``subscribe``/``unsubscribe`` of
  streams the stored connection carried, ``list_subscriptions``, ``ping``,
  ``time`` (the replay clock), and ``depth`` from the book rebuilt where it
  was asked, with ``lastUpdateId`` the ``u`` of the symbol's last diff by
  then, so the diffs that follow continue it. A stream frame goes out while
  the client is subscribed to its stream; the first ``depthUpdate`` after a
  stored subscribe is the stored snapshot.
- REST ``/v1/book/{symbol}`` (the last book stored by the replay clock) and
  ``/v1/symbols``.

A request it cannot serve gets Gemini's error: an HTTP error with
``{"result":"error",...}``, a close with code 1008 and the reason, or a
current-API error reply.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tickrec.serving import (
    BookAsk,
    Dialogue,
    HttpRoute,
    RowKind,
    Rows,
    Store,
    TardisFacts,
    Whole,
    WsRoute,
)
from tickrec.sim.feed import Close, Reject, Reply, dumps
from tickrec.venues.gemini import sim_v1, sim_v2, sim_ws
from tickrec.venues.gemini.rest import PROTOCOL as REST
from tickrec.venues.gemini.sim_ws import (
    DEFAULT_DEPTH_LIMIT,
    ERR_BAD_PARAMS,
    ERR_MALFORMED,
    ERR_UNKNOWN_METHOD,
    MAX_DEPTH_LIMIT,
)
from tickrec.venues.gemini.v1 import PROTOCOL as V1
from tickrec.venues.gemini.v1 import initial_update, renumbered
from tickrec.venues.gemini.v2 import PROTOCOL as V2
from tickrec.venues.gemini.v2 import snapshot_message
from tickrec.venues.gemini.ws import PROTOCOL as WS
from tickrec.venues.gemini.ws import kind_of

__all__ = ["HTTP", "ROUTES", "TARDIS", "WS_ROUTES", "stream_key"]

VENUE = "gemini"
_POLICY = 1008
_FAMILIES = {"depthUpdate": "depth", "trade": "trade", "bookTicker": "bookTicker"}
_METHODS = ("subscribe", "unsubscribe", "list_subscriptions", "depth", "time", "ping")


def _symbol(store: Store, name: str) -> str:
    symbol = name.upper()
    if symbol not in store.symbols(VENUE):
        raise Reject(400, "InvalidSymbol", f"Supplied value '{name}' is not a valid symbol")
    return symbol


# --- market data v1 and v2 -------------------------------------------------------------


@dataclass
class _V1(Whole):
    def opening(self, store: Store, conn: Rows) -> tuple[list[bytes], list[bytes]] | None:
        assert self.symbols is not None
        book = store.book(conn, conn.lead, self.symbols[0], V1, None)
        if book is None:
            return None
        payloads = conn.payloads
        event_id, time_ms = _last_update(payloads[: conn.lead])
        opening = [initial_update(*book, event_id, time_ms)]
        return opening, [renumbered(p, i) for i, p in enumerate(payloads[conn.lead :], 1)]


def _last_update(payloads: list[bytes]) -> tuple[int | None, int | None]:
    """``eventId`` and ``timestampms`` of the last v1 ``update`` among *payloads*."""
    for payload in reversed(payloads):
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(msg, dict) and msg.get("type") == "update":
            event_id, ms = msg.get("eventId"), msg.get("timestampms")
            return (
                event_id if isinstance(event_id, int) else None,
                ms if isinstance(ms, int) else None,
            )
    return None, None


@dataclass
class _V2(Whole):
    store: Store | None = None

    def first(self, text: str | bytes) -> list[str]:
        """The client's ``subscribe`` to ``l2``: its symbols."""
        assert self.store is not None
        try:
            msg = orjson.loads(text)
            if msg["type"] != "subscribe":
                raise Reject(400, "InvalidRequest", f"unknown request type {msg['type']!r}")
            wanted: list[str] = []
            for sub in msg["subscriptions"]:
                if sub["name"] != "l2":
                    raise Reject(400, "InvalidRequest", f"unsupported subscription {sub['name']!r}")
                wanted.extend(_symbol(self.store, str(s)) for s in sub["symbols"])
            most = self.store.max_symbols
            if not wanted or len(wanted) > most:
                raise Reject(400, "InvalidRequest", f"subscribe to 1 to {most} symbols")
        except Reject as exc:
            raise Close(_POLICY, exc.message) from None
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise Close(_POLICY, f"malformed request: {exc}") from None
        self.symbols = tuple(sorted(set(wanted)))
        return []

    def opening(self, store: Store, conn: Rows) -> tuple[list[bytes], list[bytes]] | None:
        assert self.symbols is not None
        opening = [
            snapshot_message(symbol, *book)
            for symbol in self.symbols
            if (book := store.book(conn, conn.lead, symbol, V2, None)) is not None
        ]
        return opening, conn.payloads[conn.lead :]


# --- the current API -------------------------------------------------------------------


def stream_key(name: str) -> tuple[str, str] | None:
    """``(SYMBOL, family)`` of a stream name (``btcusd@depth@100ms`` -> ``("BTCUSD", "depth")``)."""
    symbol, _, stream = name.partition("@")
    family = "depth" if stream in ("depth", "depth@100ms") else stream
    if not symbol or family not in ("depth", "trade", "bookTicker"):
        return None
    return symbol.upper(), family


def _request_key(method: object, params: object) -> tuple[str, bytes] | None:
    if not isinstance(method, str):
        return None
    return method.lower(), orjson.dumps(params, option=orjson.OPT_SORT_KEYS)


def _reply(rid: Any, result: Any = None, error: tuple[int, str] | None = None) -> bytes:
    if error is not None:
        return orjson.dumps(
            {"id": rid, "status": 400, "error": {"code": error[0], "msg": error[1]}}
        )
    body: dict[str, Any] = {"id": rid, "status": 200}
    if result is not None:
        body["result"] = result
    return orjson.dumps(body)


@dataclass
class _Request:
    id: Any
    key: tuple[str, bytes]
    params: Any


@dataclass
class _Current(Dialogue):
    """One client of the current API: its subscriptions, by stream name."""

    subscribed: dict[str, tuple[str, str]] = field(default_factory=dict)
    keys: set[Hashable] = field(default_factory=set)

    def sent_request(self, payload: bytes) -> tuple[object, Hashable, list[str]] | None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        key = _request_key(obj.get("method"), obj.get("params"))
        if key is None:
            return None
        params = obj.get("params")
        streams = (
            [str(p).lower() for p in params]
            if key[0] == "subscribe" and isinstance(params, list)
            else []
        )
        return obj.get("id"), key, streams

    def kind(self, payload: bytes) -> RowKind:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return ("other", None)
        if not isinstance(obj, dict):
            return ("other", None)
        kind = kind_of(obj)
        if kind == "reply":
            return ("reply", obj.get("id"))
        if kind in _FAMILIES and isinstance(obj.get("s"), str):
            return ("stream", (obj["s"].upper(), _FAMILIES[kind]))
        return ("other", None)

    def request(self, text: str | bytes) -> tuple[Hashable | None, Any]:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None, _reply(None, error=(ERR_MALFORMED, "request is not valid JSON"))
        if not isinstance(msg, dict):
            return None, _reply(None, error=(ERR_MALFORMED, "request must be a JSON object"))
        rid = msg.get("id")
        key = _request_key(msg.get("method"), msg.get("params"))
        if key is None or key[0] not in _METHODS:
            error = (ERR_UNKNOWN_METHOD, f"unknown method {msg.get('method')!r}")
            return None, _reply(rid, error=error)
        return key, _Request(rid, key, msg.get("params"))

    def claimed(self, request: Any, payload: bytes) -> bytes:
        stored = orjson.loads(payload)
        if stored.get("status") == 200 and request.key[0] in ("subscribe", "unsubscribe"):
            self._apply(request.key[0], request.params)
        if stored.get("id") == request.id and type(stored.get("id")) is type(request.id):
            return payload
        stored["id"] = request.id
        return orjson.dumps(stored)

    def unanswered(self, request: Any, recorded: frozenset[str], clock_ns: int) -> bytes | BookAsk:
        if isinstance(request, bytes):
            return request  # an error reply already
        method, params, rid = request.key[0], request.params, request.id
        if method == "depth":
            return self._depth(request, recorded)
        if method in ("subscribe", "unsubscribe"):
            if not isinstance(params, list) or not params:
                return _reply(rid, error=(ERR_BAD_PARAMS, "params must be a non-empty array"))
            for name in params:
                if not isinstance(name, str) or name.lower() not in recorded:
                    return _reply(rid, error=(ERR_BAD_PARAMS, f"stream not recorded: {name!r}"))
            self._apply(method, params)
            return _reply(rid)
        if method == "list_subscriptions":
            return _reply(rid, list(self.subscribed))
        if method == "ping":
            return _reply(rid, {})
        return _reply(rid, {"serverTime": clock_ns // 1_000_000})  # time

    @staticmethod
    def _depth(request: _Request, recorded: frozenset[str]) -> bytes | BookAsk:
        params, rid = request.params, request.id
        symbol = params.get("symbol") if isinstance(params, dict) else None
        if not isinstance(symbol, str):
            error = (ERR_BAD_PARAMS, 'params must be {"symbol": ..., "limit": ...}')
            return _reply(rid, error=error)
        limit = params.get("limit", DEFAULT_DEPTH_LIMIT)
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 1 <= limit <= MAX_DEPTH_LIMIT
        ):
            error = (ERR_BAD_PARAMS, f"limit must be an integer from 1 to {MAX_DEPTH_LIMIT}")
            return _reply(rid, error=error)
        if symbol.upper() not in {key[0] for key in map(stream_key, recorded) if key}:
            error = (ERR_BAD_PARAMS, f"symbol not recorded on this connection: {symbol!r}")
            return _reply(rid, error=error)
        return BookAsk(rid, symbol.upper(), limit)

    def book_reply(self, store: Store, conn: Rows, upto: int, ask: BookAsk) -> bytes:
        result = _ws_book(store, conn, upto, ask.symbol, ask.limit)
        if result is None:
            error = (ERR_BAD_PARAMS, "the book is not valid at this point of the recording")
            return _reply(ask.rid, error=error)
        return _reply(ask.rid, result)

    def wants(self, key: Hashable) -> bool:
        return key in self.keys

    @property
    def subscribed_any(self) -> bool:
        return bool(self.keys)

    def _apply(self, method: str, params: list[Any]) -> None:
        for name in params:
            key = stream_key(str(name))
            if key is None:
                continue
            if method == "subscribe":
                self.subscribed[str(name)] = key
            else:
                self.subscribed.pop(str(name), None)
        self.keys = set(self.subscribed.values())


def _ws_book(
    store: Store, conn: Rows, upto: int, symbol: str, limit: int
) -> dict[str, object] | None:
    """The ``depth`` result of *symbol*'s book on the current API connection *conn* after
    its first *upto* rows, as the replay engine rebuilds it; None where it is not valid.

    ``lastUpdateId`` is the ``u`` of the symbol's last diff among those rows
    (or the ``lastUpdateId`` of a later ``depth`` reply), the update the book is at.
    """
    payloads, sent = conn.payloads, conn.sent
    last_id = None
    for i in range(upto - 1, -1, -1):
        if sent[i]:
            continue
        try:
            msg = orjson.loads(payloads[i])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(msg, dict):
            continue
        if msg.get("e") == "depthUpdate" and str(msg.get("s", "")).upper() == symbol:
            last_id = msg.get("u")
        elif isinstance(result := msg.get("result"), dict) and "lastUpdateId" in result:
            asked = _asked_symbol(payloads, sent, i, msg.get("id"))
            last_id = result["lastUpdateId"] if asked == symbol else None
        if last_id is not None:
            break
    if last_id is None:
        return None
    book = store.book(conn, upto, symbol, WS, limit)
    if book is None:
        return None
    bids, asks = book
    return {
        "lastUpdateId": last_id,
        "bids": [list(level) for level in bids],
        "asks": [list(level) for level in asks],
    }


def _asked_symbol(payloads: list[bytes], sent: Any, before: int, rid: object) -> str | None:
    """The symbol of the last ``depth`` request with id *rid* among the sent rows before
    row *before*."""
    for i in range(before - 1, -1, -1):
        if not sent[i]:
            continue
        msg = orjson.loads(payloads[i])
        if isinstance(msg, dict) and msg.get("id") == rid and msg.get("method") == "depth":
            params = msg.get("params")
            symbol = params.get("symbol") if isinstance(params, dict) else None
            return symbol.upper() if isinstance(symbol, str) else None
    return None


# --- REST ------------------------------------------------------------------------------


def _book(store: Store, match: re.Match[str], query: str) -> Reply:
    got = store.rest_reply(VENUE, REST, _symbol(store, match.group(1)))
    if got is None:
        raise Reject(404, "NotFound", f"no book stored for {match.group(1)}")
    return Reply(200, got[1])


def _symbols(store: Store, match: re.Match[str], query: str) -> Reply:
    return Reply(200, dumps([s.lower() for s in store.symbols(VENUE)]))


def _open_v1(store: Store, match: re.Match[str], query: str) -> _V1:
    return _V1(V1, (_symbol(store, match.group(1)),))


WS_ROUTES = (
    WsRoute(sim_v1.PATH, _open_v1),
    WsRoute(sim_v2.PATH, lambda store, match, query: _V2(V2, None, store=store)),
    WsRoute(sim_ws.PATH, lambda store, match, query: _Current(WS, tuple(store.symbols(VENUE)))),
)
HTTP = (
    HttpRoute(re.compile(r"^/v1/book/([^/]+)/?$"), _book),
    HttpRoute(re.compile(r"^/v1/symbols/?$"), _symbols),
)
#: For the start banner: label, ``ws`` or ``http``, and the paths.
ROUTES = (
    ("market data v1", "ws", "/v1/marketdata/{symbol}"),
    ("market data v2", "ws", "/v2/marketdata"),
    ("current API", "ws", "/"),
    ("REST", "http", "/v1/book/{symbol}, /v1/symbols"),
)

# --- tardis-machine ---------------------------------------------------------------------

#: v2 messages by their ``type``; the current API's by stream (``depth`` for ``depthUpdate``).
_V2_CHANNELS = ("trade", "l2_updates", "auction_open", "auction_indicative", "auction_result")
#: tardis-machine's mapping of v2 subscription names to channels.
_V2_SUBSCRIPTIONS = {"l2": _V2_CHANNELS}


def _tardis_subscriptions(text: str | bytes) -> Iterable[tuple[str, object]]:
    """The ``(channel, symbols)`` of a v2 ``subscribe``; none for other messages."""
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(msg, dict) or msg.get("type") != "subscribe":
        return []
    return [
        (channel, sub.get("symbols"))
        for sub in msg.get("subscriptions") or []
        if isinstance(sub, dict)
        for channel in _V2_SUBSCRIPTIONS.get(str(sub.get("name")), ())
    ]


TARDIS = TardisFacts(
    channels={V2: {k: k for k in _V2_CHANNELS}, WS: dict(_FAMILIES)},
    subscriptions=_tardis_subscriptions,
)
