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
from typing import Any, Final, NamedTuple

import orjson

from tickrec.venues._json import INT64_MAX, as_int, as_int64, epoch_ns, load_object
from tickrec.venues.base import Gap, Header
from tickrec.venues.update_ids import UpdateIdSync

__all__ = [
    "PROTOCOL",
    "SNAPSHOT",
    "DiffSync",
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


#: A diff that is the subscription's snapshot: the book is cleared and loaded from it.
SNAPSHOT: Final = "snapshot"


class DiffSync:
    """The book sync rule of one symbol on one current-API connection (section 3.4).

    The update-id rule (:class:`~tickrec.venues.update_ids.UpdateIdSync`)
    with Gemini's two sources of a snapshot. Recipe A: after an accepted
    ``subscribe`` naming the symbol's diff stream (:meth:`subscribed`), the
    next diff is the whole book (a ``snapshot=-1`` connection). Recipe B: a
    ``depth`` reply becomes the book when the book is not in sync or is older
    (:meth:`depth`). The recorder's :class:`UpdateTracker` and the
    replayer's stream (:mod:`tickrec.venues.gemini.ws_book`) both call it, so
    the recorder reconnects exactly where a replay sees a break.
    """

    __slots__ = ("expect_snapshot", "ids")

    def __init__(self) -> None:
        self.ids = UpdateIdSync()
        self.expect_snapshot = False

    @property
    def last(self) -> int | None:
        """The book's update id; None while it is not in sync."""
        return self.ids.last

    def subscribed(self) -> None:
        """An accepted subscribe named the diff stream: its next diff is the book."""
        self.expect_snapshot = True

    def depth(self, last_update_id: int) -> bool:
        """A ``depth`` reply; whether it became the book (the book was not newer)."""
        if self.ids.last is not None and last_update_id <= self.ids.last:
            return False
        self.ids.snapshot(last_update_id)
        self.expect_snapshot = False
        return True

    def diff(self, first: int, last: int) -> str | Gap:
        """The verdict on a diff covering ``first..last``: :data:`SNAPSHOT`, or the
        update-id rule's (``wait``, ``stale``, ``apply``, or the :class:`Gap`)."""
        if self.expect_snapshot:
            self.expect_snapshot = False
            self.ids.snapshot(last)
            return SNAPSHOT
        return self.ids.diff(first, last)


class UpdateTracker:
    """The :class:`DiffSync` of each symbol on one recording connection.

    It notes the requests the connection *sent* (:meth:`expect`), so that
    their replies move the books they concern (:meth:`reply`), and tells the
    gaps of the diff stream (:meth:`check`). Create a new tracker for every
    connection.
    """

    __slots__ = ("_requests", "books")

    def __init__(self, sent: Iterable[str] = ()) -> None:
        self.books: dict[str, DiffSync] = {}
        # request id -> (method, the symbols whose book its reply moves)
        self._requests: dict[int | str, tuple[str, tuple[str, ...]]] = {}
        for text in sent:
            self.expect(text)

    def _book(self, symbol: str) -> DiffSync:
        got = self.books.get(symbol)
        if got is None:
            got = self.books[symbol] = DiffSync()
        return got

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
                    self._book(symbol).subscribed()
            return
        result = reply.result
        last = as_int(result.get("lastUpdateId")) if isinstance(result, dict) else None
        if last is not None:
            self._book(symbols[0]).depth(last)

    def check(self, symbol: str, first: int, last: int) -> Gap | None:
        """Record a frame covering ``first..last``; return the gap if ids were skipped."""
        verdict = self._book(symbol).diff(first, last)
        return verdict if isinstance(verdict, Gap) else None
