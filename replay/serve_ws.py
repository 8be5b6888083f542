"""The current Gemini API route of ``tickrec serve``: one stored ``gemini.ws`` connection replayed.

The stored connection holds what the recording client sent (``ws_sent``
rows: its ``subscribe`` and ``depth`` requests, pings) and what it received
(``ws`` rows: the replies, then the streams). A client of ``serve`` sends its
own requests; the stored rows go out in recorded order, each unchanged:

- a stored **reply** goes out, in its recorded place, when the client sent
  the same request (same method, any case, and the same ``params``) as the
  stored one it answers, by the time the recording had sent it. While the
  connection is younger than :attr:`~replay.serve.ServeConfig.request_wait_s`,
  any stored request ahead matches, and the replay waits at a reply for its
  request, so a client that sends its subscriptions on open gets them in
  their recorded place; later, a reply whose request has not come is left
  out (a stored ping, a request sent by the clock). With a different request
  ``id`` the reply is the stored one with that ``id`` alone changed;
- a **stream frame** (``depthUpdate``, ``trade``, ``bookTicker``) goes out
  when the client is subscribed to its stream at that point; the first
  ``depthUpdate`` after a stored subscribe is the stored snapshot;
- any other received row (one the recorder stored as malformed) goes out.

A request that matches no stored one still ahead is answered at once, in the
simulator's reply shapes: ``subscribe``/``unsubscribe`` of streams the stored
connection carried, ``list_subscriptions``, ``ping`` and ``time`` (the
replay clock). A ``depth`` with no stored reply ahead is answered from the
book the replay engine rebuilds from the stored connection's rows sent so
far (the replay waits for it, so it goes out where it was asked), with
``lastUpdateId`` the ``u`` of the symbol's last diff among them, so the
diffs that follow continue it. A stream the recording does not hold,
a symbol it did not subscribe to, or a ``depth`` where the rebuilt book is
not valid gets a 400 error reply. A connection replayed from ``--from`` on
starts its stream once the client has subscribed: the stored opening
replies are behind ``--from``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tickrec.venues.gemini.sim_ws import (
    DEFAULT_DEPTH_LIMIT,
    ERR_BAD_PARAMS,
    ERR_MALFORMED,
    ERR_UNKNOWN_METHOD,
    MAX_DEPTH_LIMIT,
)
from tickrec.venues.gemini.ws import kind_of

#: The ``depth`` result of the stored connection's book after its first *rows* rows
#: (sent ones included) for *symbol* and *limit* levels, or None where it is not valid.
BookFn = Callable[[int, str, int], "dict[str, Any] | None"]

__all__ = ["StoredWs", "WsReplay", "stream_key"]

_FAMILIES = {"depthUpdate": "depth", "trade": "trade", "bookTicker": "bookTicker"}
_METHODS = ("subscribe", "unsubscribe", "list_subscriptions", "depth", "time", "ping")


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


@dataclass
class StoredWs:
    """One stored ``gemini.ws`` connection, read for replay.

    ``rows`` are ``(recv_ns, payload, what)`` in recorded order, the sent
    requests left out; ``what`` is ``("reply", stored request key)``,
    ``("stream", (SYMBOL, family))`` or ``("other", None)``. ``replies``
    lists, per request key, ``(row of the reply, rows received before the
    request was sent)``. ``streams`` are the stream names the stored
    connection subscribed to.
    """

    rows: list[tuple[int, bytes, tuple[str, Any]]]
    replies: dict[tuple[str, bytes], list[tuple[int, int]]] = field(default_factory=dict)
    streams: set[str] = field(default_factory=set)
    #: The index in the stored connection (sent rows included) of each of ``rows``.
    origin: list[int] = field(default_factory=list)
    #: The stored rows before ``--from``, read for their requests and not replayed.
    lead: int = 0

    @classmethod
    def build(
        cls, recv_ns: list[int], payloads: list[bytes], sent: list[bool], lead: int = 0
    ) -> StoredWs:
        """Sort out the rows of one stored connection (recorded order); the first *lead*
        (before ``--from``) give their requests and subscribed streams only."""
        requests: dict[Any, tuple[tuple[str, bytes], int]] = {}
        replies: dict[tuple[str, bytes], list[tuple[int, int]]] = {}
        streams: set[str] = set()
        rows: list[tuple[int, bytes, tuple[str, Any]]] = []
        origin: list[int] = []
        for i, (ns, payload, is_sent) in enumerate(zip(recv_ns, payloads, sent, strict=True)):
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                obj = None
            if is_sent:
                if isinstance(obj, dict) and (
                    key := _request_key(obj.get("method"), obj.get("params"))
                ):
                    requests[obj.get("id")] = (key, len(rows))
                    if key[0] == "subscribe" and isinstance(obj.get("params"), list):
                        streams.update(str(p).lower() for p in obj["params"])
                continue
            if i < lead:
                continue
            kind = kind_of(obj) if isinstance(obj, dict) else ""
            what: tuple[str, Any] = ("other", None)
            if kind == "reply":
                asked = requests.get(obj.get("id")) if isinstance(obj, dict) else None
                if asked is not None:
                    what = ("reply", asked[0])
                    replies.setdefault(asked[0], []).append((len(rows), asked[1]))
            elif kind in _FAMILIES and isinstance(obj, dict) and isinstance(obj.get("s"), str):
                what = ("stream", (obj["s"].upper(), _FAMILIES[kind]))
            rows.append((int(ns), payload, what))
            origin.append(i)
        return cls(rows, replies, streams, origin, lead)


class _Request:
    __slots__ = ("id", "key", "params")

    def __init__(self, rid: Any, key: tuple[str, bytes], params: Any) -> None:
        self.id, self.key, self.params = rid, key, params


def _reply(rid: Any, result: Any = None, error: tuple[int, str] | None = None) -> bytes:
    if error is not None:
        return orjson.dumps(
            {"id": rid, "status": 400, "error": {"code": error[0], "msg": error[1]}}
        )
    body: dict[str, Any] = {"id": rid, "status": 200}
    if result is not None:
        body["result"] = result
    return orjson.dumps(body)


class WsReplay:
    """One client connection on the current API route, replaying *stored*."""

    def __init__(
        self,
        ws: ServerConnection,
        stored: StoredWs,
        send: Callable[[list[bytes], int], Awaitable[bool]],
        wait_s: float,
        speed: float | None,
        book: BookFn,
    ) -> None:
        self.ws, self.stored, self.send, self.wait_s, self.speed = ws, stored, send, wait_s, speed
        self.book = book
        self.pending: set[asyncio.Future[None]] = set()  # depth replies being rebuilt
        self.subscribed: dict[str, tuple[str, str]] = {}  # stream name -> key
        self.keys: set[tuple[str, str]] = set()
        self.claims: dict[int, _Request] = {}  # stored reply row -> the client request it answers
        self.answer: list[bytes] = []  # replies to send at once
        self.position = 0
        self.opened = time.monotonic()
        self.arrived = asyncio.Event()
        self.left = False
        self.clock_ns = stored.rows[0][0] if stored.rows else 0

    # --- the client's requests ------------------------------------------------------

    def _receive(self, text: str | bytes) -> None:
        rid: Any = None
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.answer.append(_reply(None, error=(ERR_MALFORMED, "request is not valid JSON")))
            return
        if not isinstance(msg, dict):
            self.answer.append(_reply(None, error=(ERR_MALFORMED, "request must be a JSON object")))
            return
        rid = msg.get("id")
        key = _request_key(msg.get("method"), msg.get("params"))
        if key is None or key[0] not in _METHODS:
            error = (ERR_UNKNOWN_METHOD, f"unknown method {msg.get('method')!r}")
            self.answer.append(_reply(rid, error=error))
            return
        request = _Request(rid, key, msg.get("params"))
        # A stored reply ahead answers it if the recording had sent its request
        # by now, or (while the connection is young) at any point.
        young = time.monotonic() - self.opened < self.wait_s
        for k, sent_at in self.stored.replies.get(key, ()):
            if k >= self.position and k not in self.claims and (young or sent_at <= self.position):
                self.claims[k] = request
                return
        if request.key[0] == "depth":
            self._depth(request)
        else:
            self.answer.append(self._answer(request))

    def _depth(self, request: _Request) -> None:
        """Answer a ``depth`` request from the rebuilt book, once it is rebuilt."""
        params, rid = request.params, request.id
        symbol = params.get("symbol") if isinstance(params, dict) else None
        if not isinstance(symbol, str):
            error = (ERR_BAD_PARAMS, 'params must be {"symbol": ..., "limit": ...}')
            self.answer.append(_reply(rid, error=error))
            return
        limit = params.get("limit", DEFAULT_DEPTH_LIMIT)
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 1 <= limit <= MAX_DEPTH_LIMIT
        ):
            error = (ERR_BAD_PARAMS, f"limit must be an integer from 1 to {MAX_DEPTH_LIMIT}")
            self.answer.append(_reply(rid, error=error))
            return
        if symbol.upper() not in {key[0] for key in map(stream_key, self.stored.streams) if key}:
            error = (ERR_BAD_PARAMS, f"symbol not recorded on this connection: {symbol!r}")
            self.answer.append(_reply(rid, error=error))
            return
        k = self.position
        upto = self.stored.origin[k - 1] + 1 if k else self.stored.lead
        task = asyncio.ensure_future(self._rebuilt(rid, upto, symbol.upper(), limit))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _rebuilt(self, rid: Any, upto: int, symbol: str, limit: int) -> None:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, self.book, upto, symbol, limit)
        if result is None:
            error = (ERR_BAD_PARAMS, "the book is not valid at this point of the recording")
            self.answer.append(_reply(rid, error=error))
        else:
            self.answer.append(_reply(rid, result))
        self.arrived.set()

    def _answer(self, request: _Request) -> bytes:
        """The reply to a request no stored reply answers (``depth`` aside)."""
        method, params, rid = request.key[0], request.params, request.id
        if method in ("subscribe", "unsubscribe"):
            if not isinstance(params, list) or not params:
                return _reply(rid, error=(ERR_BAD_PARAMS, "params must be a non-empty array"))
            for name in params:
                if not isinstance(name, str) or name.lower() not in self.stored.streams:
                    return _reply(rid, error=(ERR_BAD_PARAMS, f"stream not recorded: {name!r}"))
            self._apply(method, params)
            return _reply(rid)
        if method == "list_subscriptions":
            return _reply(rid, list(self.subscribed))
        if method == "ping":
            return _reply(rid, {})
        return _reply(rid, {"serverTime": self.clock_ns // 1_000_000})  # time

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

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                self._receive(text)
                self.arrived.set()
        finally:
            self.left = True  # the client closed: nothing waits for its requests
            self.arrived.set()

    # --- the replay -------------------------------------------------------------------

    def _reply_row(self, k: int, payload: bytes) -> bytes | None:
        request = self.claims.pop(k)
        stored = orjson.loads(payload)
        if stored.get("status") == 200 and request.key[0] in ("subscribe", "unsubscribe"):
            self._apply(request.key[0], request.params)
        if stored.get("id") == request.id and type(stored.get("id")) is type(request.id):
            return payload
        stored["id"] = request.id
        return orjson.dumps(stored)

    async def run(self) -> bool:
        """Replay the stored rows; False if the client left or was too slow."""
        reader = asyncio.create_task(self._read())
        try:
            return await self._replay()
        except ConnectionClosed:
            return False
        finally:
            reader.cancel()

    async def _replay(self) -> bool:
        rows = self.stored.rows
        # Opened at --from, no stored reply subscribes the client: the stream starts once
        # the client has subscribed, as a venue's does.
        while self.stored.lead and not self.keys:
            if self.left:
                return False
            if self.answer:
                if not await self.send(self.answer, self.clock_ns):
                    return False
                self.answer = []
            self.arrived.clear()
            await self.arrived.wait()
        opened = self.opened = time.monotonic()
        t0_ns = rows[0][0] if rows else 0
        batch: list[bytes] = []
        last_ns = t0_ns
        k = 0
        while k < len(rows):
            if self.pending:  # a depth reply goes out where it was asked, not later
                if batch and not await self.send(batch, last_ns):
                    return False
                batch = []
                await asyncio.wait(list(self.pending))
            if self.answer:
                batch.extend(self.answer)
                self.answer.clear()
            recv_ns, payload, (what, key) = rows[k]
            if self.speed is not None:
                due = t0_ns + (time.monotonic() - opened) * self.speed * 1e9
                if recv_ns > due:
                    if batch and not await self.send(batch, last_ns):
                        return False
                    batch = []
                    # Short sleeps, so requests meanwhile are answered on time.
                    await asyncio.sleep(min((recv_ns - due) / 1e9 / self.speed, 0.05))
                    continue
            if what == "reply":
                if k not in self.claims:
                    left = self.wait_s - (time.monotonic() - opened)
                    if left > 0:
                        if batch and not await self.send(batch, last_ns):
                            return False
                        batch = []
                        self.arrived.clear()
                        waiter = asyncio.ensure_future(self.arrived.wait())
                        done, _ = await asyncio.wait([waiter], timeout=left)
                        if not done:
                            waiter.cancel()
                        continue
                    k += 1
                    self.position = k
                    continue
                out = self._reply_row(k, payload)
                if out is not None:
                    batch.append(out)
            elif what == "other" or key in self.keys:
                batch.append(payload)
            last_ns = self.clock_ns = recv_ns
            k += 1
            self.position = k
            if len(batch) >= 512:
                if not await self.send(batch, last_ns):
                    return False
                batch = []
        if self.pending:
            await asyncio.wait(list(self.pending))  # depth replies still being rebuilt
        if self.answer:
            batch.extend(self.answer)
            self.answer.clear()
        return not batch or await self.send(batch, last_ns)
