"""The current Gemini WebSocket API: many symbols on one connection.

The protocol is in docs/venues/gemini.md section 3.

Stream frames are bare objects told apart by their keys (section 3.1):
``e:"depthUpdate"`` (diffs, and the snapshot a ``snapshot=-1`` connection
sends first), ``e:"trade"`` or ``t`` + ``m`` (trades), ``u`` + ``b`` + ``a``
without ``e`` (bookTicker), ``lastUpdateId`` (partial depth, which names no
symbol). Replies to our requests carry ``id`` and ``status`` and belong to
the whole connection.

Numbers: ``U``, ``u`` and ``E`` can exceed 2**53 (section 3.4); orjson reads
JSON integers into exact Python ints (up to 2**64 - 1; anything larger
becomes a float, which this codec refuses), so they are never doubles.
``E`` is in nanoseconds per the spec, but Gemini's fixtures show
milliseconds: the unit is inferred from the digit count (:func:`epoch_ns`).
``s`` may come in either case (section 3.6); the header reports it upper case.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import orjson

from tickrec.venues._json import INT64_MAX, as_int, as_int64, epoch_ns, load_object
from tickrec.venues.base import Gap, Header

__all__ = [
    "PROTOCOL",
    "Reply",
    "UpdateTracker",
    "depth_stream",
    "epoch_ns",
    "header",
    "kind_of",
    "parse_reply",
    "ping",
    "request",
    "stream_url",
    "trade_stream",
]

PROTOCOL = "gemini.ws"


def stream_url(base: str) -> str:
    """The connection URL: a full-book snapshot on every diff subscription.

    See docs/venues/gemini.md section 3.
    """
    return f"{base.rstrip('/')}/?snapshot=-1"


#: The endings of a diff stream's name (``{symbol}@depth``, ``{symbol}@depth@100ms``).
_DIFF_SUFFIXES = ("@depth", "@depth@100ms")


def depth_stream(symbol: str) -> str:
    """``{symbol}@depth@100ms``: diffs conflated per 100 ms; names are lower case (section 3.6)."""
    return f"{symbol.strip().lower()}@depth@100ms"


def trade_stream(symbol: str) -> str:
    """``{symbol}@trade`` (docs/venues/gemini.md section 3.3)."""
    return f"{symbol.strip().lower()}@trade"


def request(
    request_id: int, method: str, params: Sequence[str] | dict[str, Any] | None = None
) -> str:
    """A request as sent on the wire: ``{"id", "method", "params"}``.

    See docs/venues/gemini.md section 3.1.

    Methods that take no parameters (``ping``, ``time``) are sent without ``params``.
    """
    body: dict[str, Any] = {"id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return orjson.dumps(body).decode()


def ping(request_id: int) -> str:
    """The ``ping`` request, Gemini's SDK keepalive (docs/venues/gemini.md section 3.5)."""
    return request(request_id, "ping")


def _time(obj: dict[str, Any]) -> int | None:
    e = as_int64(obj.get("E"))
    if e is None:
        return None
    ns = epoch_ns(e)
    return ns if ns <= INT64_MAX else None


def kind_of(obj: dict[str, Any]) -> str:
    """The kind of a parsed frame by its keys; ``""`` if none fits.

    See docs/venues/gemini.md section 3.1.
    """
    e = obj.get("e")
    if isinstance(e, str):
        return e
    if "id" in obj and "status" in obj:
        return "reply"
    if "t" in obj and "m" in obj:
        return "trade"
    if "lastUpdateId" in obj:
        return "partialDepth"
    if "u" in obj and "b" in obj and "a" in obj:
        return "bookTicker"
    return ""


def header(payload: str | bytes) -> Header:
    """Read kind, ``E`` (as ns), ``U``/``u`` and ``s`` of a frame of the current API."""
    obj, problem = load_object(payload)
    if obj is None:
        return Header(kind="", problem=problem)
    kind = kind_of(obj)
    if kind == "reply":
        return Header(kind=kind)
    if kind == "partialDepth":
        # No symbol in the frame (docs/venues/gemini.md section 3.3): it belongs to the connection.
        return Header(kind=kind, venue_seq=as_int64(obj.get("lastUpdateId")))
    exch_ns = _time(obj)
    s = obj.get("s")
    symbol = s.upper() if isinstance(s, str) and s else None
    if kind not in ("depthUpdate", "trade", "bookTicker"):
        return Header(kind=kind, exch_ns=exch_ns, symbol=symbol, problem="unknown message")
    if symbol is None:
        return Header(kind=kind, exch_ns=exch_ns, problem=f"{kind} without a symbol")
    if kind == "trade":
        return Header(kind=kind, exch_ns=exch_ns, symbol=symbol)
    last = as_int64(obj.get("u"))
    if kind == "bookTicker":
        # Its u is the book's update id at that moment; tickers skip ids, so no range.
        return Header(kind=kind, exch_ns=exch_ns, venue_seq=last, symbol=symbol)
    first = as_int64(obj.get("U"))
    if first is None or last is None or first > last:
        return Header(
            kind=kind, exch_ns=exch_ns, symbol=symbol, problem="no int64 update ids U <= u"
        )
    return Header(kind=kind, exch_ns=exch_ns, venue_seq=last, symbol=symbol, first_seq=first)


def levels(msg: Any) -> Iterator[tuple[object, object]]:
    """``(price, size)`` of each level of a diff or depth reply, and of a trade."""
    if not isinstance(msg, dict):
        return
    kind = kind_of(msg)
    if kind == "trade":
        yield msg.get("p"), msg.get("q")
        return
    book = msg.get("result") if kind == "reply" else msg if kind == "depthUpdate" else None
    if isinstance(book, dict):
        for key in ("bids", "asks") if kind == "reply" else ("b", "a"):
            for price, size in book.get(key) or ():  # noqa: UP028 (unpacking checks the shape)
                yield price, size




class Reply(NamedTuple):
    """A reply to a request: ``error`` is ``(code, msg)`` when the request was refused."""

    id: Any
    status: int | None
    result: Any
    error: tuple[int | None, str] | None


def parse_reply(payload: str | bytes) -> Reply | None:
    """The reply in *payload*, or ``None`` if it is not one (docs/venues/gemini.md section 3.1)."""
    obj, _ = load_object(payload)
    if obj is None or kind_of(obj) != "reply":
        return None
    err = obj.get("error")
    error = None
    if isinstance(err, dict):
        error = (as_int(err.get("code")), str(err.get("msg", "")))
    status = as_int(obj.get("status"))
    if error is None and status != 200:
        error = (None, f"status {status}")
    return Reply(obj.get("id"), status, obj.get("result"), error)


class UpdateTracker:
    """Checks ``U``/``u`` continuity of the diff stream of each symbol on one connection.

    Recipe A of docs/venues/gemini.md section 3.4: the first ``depthUpdate`` of a symbol
    (the snapshot of a ``snapshot=-1`` connection) sets ``last = u``; after
    it a frame with ``u <= last`` is stale and ignored, one with
    ``U > last + 1`` is a gap. Replies to the requests the connection *sent*
    move it too, by the rules the replayer follows (``tickrec.venues.gemini.ws_book``),
    so the recorder reconnects exactly where a replay sees a break: an
    accepted subscribe to a symbol's diffs makes its next diff a fresh
    snapshot, and a ``depth`` reply newer than the book becomes the book
    (recipe B). Create a new tracker for every connection.
    """

    __slots__ = ("_requests", "last")

    def __init__(self, sent: Iterable[str] = ()) -> None:
        self.last: dict[str, int] = {}
        # request id -> (method, the symbols whose book its reply moves)
        self._requests: dict[int | str, tuple[str, tuple[str, ...]]] = {}
        for text in sent:
            self.expect(text)

    def expect(self, text: str) -> None:
        """Note a request sent on the connection, so its reply moves the books it concerns."""
        obj, _ = load_object(text)
        rid = None if obj is None else obj.get("id")
        if obj is None or not isinstance(rid, int | str) or isinstance(rid, bool):
            return
        method, params = str(obj.get("method", "")).lower(), obj.get("params")
        if method == "subscribe" and isinstance(params, list):
            names = [str(p).lower() for p in params]
            symbols = [n.split("@")[0].upper() for n in names if n.endswith(_DIFF_SUFFIXES)]
            self._requests[rid] = (method, tuple(symbols))
        elif method == "depth" and isinstance(params, dict):
            self._requests[rid] = (method, (str(params.get("symbol", "")).upper(),))

    def reply(self, reply: Reply) -> None:
        """Apply the reply to one of our requests."""
        rid = reply.id
        if not isinstance(rid, int | str) or (entry := self._requests.pop(rid, None)) is None:
            return
        method, symbols = entry
        if method == "subscribe":
            if reply.status == 200:
                for symbol in symbols:
                    self.last.pop(symbol, None)
            return
        result = reply.result
        last = as_int(result.get("lastUpdateId")) if isinstance(result, dict) else None
        if last is not None and last > self.last.get(symbols[0], -1):
            self.last[symbols[0]] = last

    def check(self, symbol: str, first: int, last: int) -> Gap | None:
        """Record a frame covering ``first..last``; return the gap if ids were skipped."""
        prev = self.last.get(symbol)
        if prev is not None and last <= prev:
            return None
        self.last[symbol] = last
        if prev is not None and first > prev + 1:
            return Gap(prev + 1, first)
        return None
