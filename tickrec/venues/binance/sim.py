"""Binance spot's routes on the simulator: the combined and raw streams, and REST."""

from __future__ import annotations

from tickrec.venues.binance import sim_rest, sim_spot

__all__ = ["REST", "ROUTES", "WS_ROUTES"]

#: Websocket routes: path pattern and the feed that serves it.
WS_ROUTES = (
    (sim_spot.STREAM_PATH, sim_spot.SpotFeed.combined_from_path),
    (sim_spot.RAW_PATH, sim_spot.SpotFeed.raw_from_path),
)

#: REST: ``matches(path)``, ``handle(market, path, query, now_ns)`` and the fault replies.
REST = sim_rest

#: What the simulator's banner lists: label, ``ws`` or ``http``, and the path.
ROUTES = (
    ("Binance streams", "ws", "/stream?streams={symbol}@depth@100ms/{symbol}@trade"),
    ("Binance raw", "ws", "/ws/{symbol}@depth@100ms"),
    ("Binance REST", "http", "/api/v3/depth?symbol={SYMBOL}, /api/v3/exchangeInfo"),
)
