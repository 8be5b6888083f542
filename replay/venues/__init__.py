"""Venue decoders: raw messages of one protocol to normalized events.

Each protocol module provides a *stream* class, instantiated once per
connection (sequence and snapshot state are per connection; docs/venues/gemini.md
section 5), with three methods called by :mod:`replay.decode` in replay order:

- ``on_message(out, msg, venue_seq)`` for a received message, already parsed
  from JSON, returning a kind name for the summary counts;
- ``on_sent(out, msg)`` for a message the recorder sent (a subscribe or
  another request);
- ``on_undecodable()`` for a received message that is not JSON: the book is
  marked invalid there, and the stream decides when to trust it again (a
  snapshot, or on the current API the next diff whose ids follow on),
  returning the gap detail that says so.

They write to an :class:`~replay.decode.EventSink`. They never read files,
clocks or sockets.
"""

from __future__ import annotations

import sys

from replay.venues import gemini_rest
from replay.venues.gemini_v1 import GeminiV1Stream
from replay.venues.gemini_v2 import GeminiV2Stream
from replay.venues.gemini_ws import GeminiWsStream
from replay.venues.sink import EventSink, VenueStream

__all__ = ["CONFLATED", "STREAMS", "EventSink", "VenueStream", "decoder_versions"]

#: Stream class by the ``protocol`` column value of websocket rows.
STREAMS: dict[str, type[VenueStream]] = {
    "gemini.v1": GeminiV1Stream,
    "gemini.v2": GeminiV2Stream,
    "gemini.ws": GeminiWsStream,
}

#: Protocols whose diffs are conflated per interval (the current API, docs/venues/gemini.md
#: section 3.3): the rebuilt book skips the states between two frames, so a REST
#: reply taken in between matches none of them and is not compared.
CONFLATED = frozenset({"gemini.ws"})


def decoder_versions() -> dict[str, int]:
    """The ``DECODER_VERSION`` of each protocol's module, by protocol (REST books included)."""
    modules = {protocol: sys.modules[cls.__module__] for protocol, cls in STREAMS.items()}
    modules["gemini.rest"] = gemini_rest
    return {protocol: int(module.DECODER_VERSION) for protocol, module in sorted(modules.items())}
