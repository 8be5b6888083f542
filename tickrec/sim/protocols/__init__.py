"""Wire protocols the simulator speaks, one module each.

- :mod:`~tickrec.sim.protocols.base`: the :class:`Feed` interface a websocket
  protocol implements, the Gemini error reply, and JSON encoding;
- :mod:`~tickrec.sim.protocols.v1`: market data v1 (docs/venues/gemini.md section 1);
- :mod:`~tickrec.sim.protocols.v2`: market data v2 (docs/venues/gemini.md section 2);
- :mod:`~tickrec.sim.protocols.ws`: the current WebSocket API (docs/venues/gemini.md section 3);
- :mod:`~tickrec.sim.protocols.rest`: REST market data (docs/venues/gemini.md section 4).

Another websocket protocol is one more module with a path pattern and a
:class:`Feed` subclass, added to the server's route table.
"""

__all__: list[str] = []
