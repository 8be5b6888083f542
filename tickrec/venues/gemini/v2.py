"""Gemini market data v2 (docs/venues/gemini.md section 2): many symbols on one connection.

v2 frames carry no sequence number, so gaps cannot be detected from the
stream (docs/venues/gemini.md section 2, "Sequencing"). ``l2_updates``, ``trade`` and the
candle feeds name their ``symbol``; a heartbeat names none and belongs to the
whole connection. ``trade`` and ``heartbeat`` carry ``timestamp`` in ms.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from tickrec.venues._json import load_object, ms_to_ns
from tickrec.venues.base import Header

__all__ = ["PROTOCOL", "header", "levels", "snapshot_message", "stream_url", "subscribe_message"]

PROTOCOL = "gemini.v2"

_FEEDS_WITH_TIME = frozenset({"trade", "heartbeat"})


def stream_url(base: str) -> str:
    """The v2 market data URL (docs/venues/gemini.md section 2)."""
    return f"{base.rstrip('/')}/v2/marketdata"


def subscribe_message(symbols: Sequence[str], feed: str = "l2") -> str:
    """The subscribe message for *feed* over *symbols*, as sent on the wire."""
    body = {"type": "subscribe", "subscriptions": [{"name": feed, "symbols": list(symbols)}]}
    return orjson.dumps(body).decode()


def snapshot_message(
    symbol: str, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]
) -> bytes:
    """The first ``l2_updates`` of a subscription: the whole book (bids, then asks, each
    best first, as ``(price, size)`` texts), with no recent trades."""
    changes = [["buy", p, q] for p, q in bids] + [["sell", p, q] for p, q in asks]
    body = {"type": "l2_updates", "symbol": symbol, "changes": changes}
    return orjson.dumps({**body, "trades": [], "auction_events": []})


def _known(kind: str) -> bool:
    return (
        kind in ("l2_updates", "trade", "heartbeat")
        or (kind.startswith("candles_") and kind.endswith("_updates"))
        or kind in ("mark_price_updates", "funding_amount_updates")
    )


def header(payload: str | bytes) -> Header:
    """Read kind, ``symbol`` and (for trades and heartbeats) ``timestamp`` of a v2 frame."""
    obj, problem = load_object(payload)
    if obj is None:
        return Header(kind="", problem=problem)
    kind = obj.get("type")
    if not isinstance(kind, str):
        return Header(kind="", problem="no message type")
    symbol = obj.get("symbol")
    symbol = symbol if isinstance(symbol, str) and symbol else None
    exch_ns = None
    if kind in _FEEDS_WITH_TIME:
        exch_ns = ms_to_ns(obj.get("timestamp"))
    if not _known(kind):
        return Header(
            kind=kind, exch_ns=exch_ns, symbol=symbol, problem=f"unexpected message type {kind!r}"
        )
    if kind != "heartbeat" and symbol is None:
        return Header(kind=kind, exch_ns=exch_ns, problem=f"{kind} without a symbol")
    return Header(kind=kind, exch_ns=exch_ns, symbol=symbol)


def levels(msg: Any) -> Iterator[tuple[object, object]]:
    """``(price, size)`` of each change on a side and each trade of ``l2_updates``, or a trade."""
    if not isinstance(msg, dict):
        return
    kind = msg.get("type")
    if kind == "l2_updates":
        for side, price, size in msg.get("changes") or ():
            if side in ("buy", "sell"):
                yield price, size
        for t in msg.get("trades") or ():
            yield t.get("price"), t.get("quantity")
    elif kind == "trade":
        yield msg.get("price"), msg.get("quantity")
