"""Pure venue codecs shared by the recorder and the replayer.

A codec reads the *header* of one raw payload: the exchange time, the venue
sequence number and the symbol the message belongs to, without touching the
clock, a socket or a file. The recorder stamps these into the contract's
``exch_ts`` / ``venue_seq`` columns and uses the symbol to split a
multi-symbol connection by partition (docs/architecture.md section 2.1); the replayer can use
the same functions to read old files the same way.
"""

from __future__ import annotations

from tickrec.venues.base import Header, header_of, value_problem
from tickrec.venues.binance import spot as _binance_spot  # noqa: F401 (registers binance.spot)
from tickrec.venues.gemini_rest import PROTOCOL as GEMINI_REST
from tickrec.venues.gemini_v1 import PROTOCOL as GEMINI_V1
from tickrec.venues.gemini_v1 import SequenceTracker
from tickrec.venues.gemini_v2 import PROTOCOL as GEMINI_V2
from tickrec.venues.gemini_v2 import subscribe_message
from tickrec.venues.gemini_ws import PROTOCOL as GEMINI_WS

__all__ = [
    "GEMINI_REST",
    "GEMINI_V1",
    "GEMINI_V2",
    "GEMINI_WS",
    "Header",
    "SequenceTracker",
    "header_of",
    "subscribe_message",
    "value_problem",
]
