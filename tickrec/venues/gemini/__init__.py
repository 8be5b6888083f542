"""Gemini: market data v1 and v2, the current WebSocket API, and REST books.

The protocols are described in docs/venues/gemini.md. This folder holds all
that tickrec knows of Gemini:

- the header codecs and request builders of each protocol (:mod:`.v1`,
  :mod:`.v2`, :mod:`.ws`) and of REST (:mod:`.rest`), with the recorder's
  sync trackers;
- the replay streams (:mod:`.v1_book` with its compiled scanner
  :mod:`.v1_scan`, :mod:`.v2_book`, :mod:`.ws_book`) and the REST book
  reader (:mod:`.rest_book`);
- the simulator's feeds (:mod:`.sim_v1`, :mod:`.sim_v2`, :mod:`.sim_ws`,
  :mod:`.sim_rest`), written apart from the decoders so that the simulator
  checks them;
- :data:`VENUE`: the protocols and how a captured URL maps to them.

On Gemini a REST book is a *check* of the rebuilt book (docs/architecture.md
section 2.6).
"""

from __future__ import annotations

from collections.abc import Sequence

from tickrec.venues.base import Venue, Wire
from tickrec.venues.gemini import rest, v1, v2, ws

__all__ = ["VENUE"]


def classify(segments: Sequence[str], query: str) -> tuple[str, str | None] | None:
    """``(protocol, symbol or None)`` of a captured Gemini URL path."""
    match list(segments):
        case ["v1", "marketdata", name]:
            return v1.PROTOCOL, name
        case ["v2", "marketdata"]:
            return v2.PROTOCOL, None
        case ["v1", "book", name]:
            return rest.PROTOCOL, name
        case ["v1", *_]:
            return rest.PROTOCOL, None
    return None


_HERE = __name__

VENUE = Venue(
    name="gemini",
    wires=(
        Wire(
            v1.PROTOCOL,
            v1.header,
            v1.levels,
            stream=f"{_HERE}.v1_book:GeminiV1Stream",
            names_symbol=False,
        ),
        Wire(v2.PROTOCOL, v2.header, v2.levels, stream=f"{_HERE}.v2_book:GeminiV2Stream"),
        Wire(
            ws.PROTOCOL,
            ws.header,
            ws.levels,
            stream=f"{_HERE}.ws_book:GeminiWsStream",
            conflated=True,
        ),
        Wire(rest.PROTOCOL, levels=rest.levels, book=f"{_HERE}.rest_book"),
    ),
    hosts=frozenset({"api.gemini.com", "api.sandbox.gemini.com"}),
    classify=classify,
    sim=f"{_HERE}.sim",
    kernels={f"{_HERE}.v1_scan._scan": 14, f"{_HERE}.rest_book._scan_book": 5},
)
