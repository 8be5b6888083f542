"""Local exchanges on loopback: ``tickrec sim``.

One process and one port serve every venue's routes (Gemini's market data
v1 and v2, current WebSocket API and REST; Binance spot's streams and REST),
all fed by one seeded order flow per symbol, with optional fault injection
and ground-truth logs. Modules:

- :mod:`~tickrec.sim.market`: the books and the order flow (pure);
- :mod:`~tickrec.sim.feed`: the :class:`~tickrec.sim.feed.Feed` interface a
  websocket protocol implements, the error reply, and JSON encoding;
- the wire formats live with their venue (``sim`` of
  :class:`tickrec.venues.base.Venue`, e.g. :mod:`tickrec.venues.gemini.sim`);
- :mod:`~tickrec.sim.faults`: fault settings and seeded fault choices;
- :mod:`~tickrec.sim.truth`: ground-truth JSONL files;
- :mod:`~tickrec.sim.config`: :class:`SimConfig`;
- :mod:`~tickrec.sim.server`: the asyncio server, :class:`Simulator` and :func:`run`.
"""

from tickrec.sim.config import SimConfig
from tickrec.sim.faults import FaultConfig
from tickrec.sim.server import SimStats, Simulator, run

__all__ = ["FaultConfig", "SimConfig", "SimStats", "Simulator", "run"]
