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
- the recording sessions of each protocol (:mod:`.session`);
- :data:`VENUE`: the protocols, how each is recorded and how a captured URL
  maps to them.

On Gemini a REST book is a *check* of the rebuilt book (docs/architecture.md
section 2.6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tickrec.venues.base import Recording, Session, Venue, Wire
from tickrec.venues.gemini import rest, v1, v2, ws
from tickrec.venues.gemini.session import V1Session, V2Session, WsSession

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
_API = "wss://api.gemini.com"


def _recording(
    protocol: str,
    url: str,
    stream_url: Callable[[str, Sequence[str]], str],
    session: Callable[[tuple[str, ...]], Session],
    *,
    per_symbol: bool = False,
    book_on_connect: bool = False,
    refreshes: bool = True,
) -> Recording:
    """How one protocol is recorded; REST is the same for all: ``/v1/book`` checks
    (one request weight each) at most one a second (docs/venues/gemini.md section 4)."""
    return Recording(
        protocol=protocol,
        url=url,
        stream_url=stream_url,
        session=session,
        rest_url="https://api.gemini.com",
        rest_protocol=rest.PROTOCOL,
        book_url=rest.book_url,
        book_weight=lambda depth: 1,
        symbols_url=rest.symbols_url,
        parse_symbols=rest.parse_symbols,
        weight_per_minute=None,
        rest_min_gap=1.0,
        per_symbol=per_symbol,
        book_on_connect=book_on_connect,
        refreshes=refreshes,
    )


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
    serve=f"{_HERE}.serve",
    kernels={f"{_HERE}.v1_scan._scan": 14, f"{_HERE}.rest_book._scan_book": 5},
    # The current API is the default: Gemini marks v1 and v2 archived and says new
    # integrations should use it (docs/venues/gemini.md section 0).
    recordings=(
        _recording(
            ws.PROTOCOL,
            "wss://ws.gemini.com",
            stream_url=lambda base, symbols: ws.stream_url(base),
            session=WsSession,
        ),
        _recording(
            v1.PROTOCOL,
            _API,
            stream_url=lambda base, symbols: v1.stream_url(base, symbols[0]),
            session=V1Session,
            per_symbol=True,  # docs/venues/gemini.md section 1
            book_on_connect=True,
            refreshes=False,
        ),
        _recording(
            v2.PROTOCOL,
            _API,
            stream_url=lambda base, symbols: v2.stream_url(base),
            session=V2Session,
            refreshes=False,
        ),
    ),
)
