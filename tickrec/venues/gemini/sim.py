"""Gemini's routes on the simulator: the websocket feeds by path, and REST.

The simulator's server (:mod:`tickrec.sim.server`) serves the routes of
every venue that has a ``sim`` module (:attr:`tickrec.venues.base.Venue.sim`).
"""

from __future__ import annotations

from tickrec.venues.gemini import sim_rest, sim_v1, sim_v2, sim_ws

__all__ = ["REST", "ROUTES", "WS_ROUTES"]

#: Websocket routes: path pattern and the feed that serves it.
WS_ROUTES = (
    (sim_v1.PATH, sim_v1.V1Feed.from_path),
    (sim_v2.PATH, sim_v2.V2Feed.from_path),
    (sim_ws.PATH, sim_ws.WsFeed.from_path),
)

#: REST: ``matches(path)`` and ``handle(market, path, query, now_ns)``.
REST = sim_rest

#: What the simulator's banner lists: label, ``ws`` or ``http``, and the path.
ROUTES = (
    ("current API", "ws", "/"),
    ("market data v1", "ws", "/v1/marketdata/{symbol}"),
    ("market data v2", "ws", "/v2/marketdata"),
    ("REST", "http", "/v1/book/{symbol}, /v1/trades/{symbol}, /v1/symbols"),
)
