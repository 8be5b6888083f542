"""Binance spot: the combined diff-depth stream, lined up with REST depth snapshots.

The venue's pure parts, which never open a socket, read a clock or touch a
file:

- :mod:`.rules`: :class:`~.rules.UpdateIdSync`, the book sync rule of one
  symbol on one connection (``lastUpdateId``, ``U`` and ``u``);
- :mod:`.spot`: the ``binance.spot`` protocol: stream names, the combined
  stream URL and the header codec of its frames;
- :mod:`.rest`: ``/api/v3/depth`` and ``/api/v3/exchangeInfo``, their
  request weights and the parsers of their replies;
- :mod:`.spot_book`: the replay stream, the book rebuilt from sync snapshots
  and diffs by the same rule, with its compiled scanner :mod:`.spot_scan`;
- :mod:`.session`: a recording connection's sync snapshots, by the same rule;
- :mod:`.sim`: the simulator's routes (:mod:`.sim_spot`, :mod:`.sim_rest`),
  written apart from the decoders, so the simulator checks them.

On Binance a REST book is the *source* of the book, not only a check
(docs/architecture.md section 2.6): the stream's diffs are applied on top of
the snapshot whose ``lastUpdateId`` they follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs

from tickrec.venues.base import Recording, Venue, Wire
from tickrec.venues.binance import rest, spot
from tickrec.venues.binance.rules import APPLY, STALE, WAIT, UpdateIdSync
from tickrec.venues.binance.session import SpotSession

__all__ = ["APPLY", "STALE", "VENUE", "WAIT", "UpdateIdSync"]


def classify(segments: Sequence[str], query: str) -> tuple[str, str | None] | None:
    """``(protocol, symbol or None)`` of a captured Binance spot URL.

    ``/stream?streams=`` is a combined stream of any symbols (each frame names
    its own); ``/ws/<symbol>@<stream>`` is one symbol's raw stream;
    ``/api/v3/depth?symbol=`` is a book snapshot.
    """
    match list(segments):
        case ["stream"]:
            return spot.PROTOCOL, None
        case ["ws", name]:
            return spot.PROTOCOL, name.partition("@")[0]
        case ["api", "v3", "depth"]:
            symbols = parse_qs(query).get("symbol", [])
            return rest.PROTOCOL, symbols[0] if len(symbols) == 1 else None
        case ["api", "v3", *_]:
            return rest.PROTOCOL, None
    return None


VENUE = Venue(
    name="binance",
    wires=(
        Wire(
            spot.PROTOCOL,
            spot.header,
            spot.levels,
            stream=f"{__name__}.spot_book:BinanceSpotStream",
        ),
        Wire(rest.PROTOCOL, levels=rest.levels, syncs=spot.PROTOCOL),
    ),
    hosts=frozenset({"stream.binance.com", "data-stream.binance.vision", "api.binance.com"}),
    classify=classify,
    sim=f"{__name__}.sim",
    serve=f"{__name__}.serve",
    kernels={f"{__name__}.spot_scan._scan": 6},
    recordings=(
        Recording(
            protocol=spot.PROTOCOL,
            url="wss://stream.binance.com:9443",
            rest_url="https://api.binance.com",
            stream_url=spot.stream_url,
            session=SpotSession,
            rest_protocol=rest.PROTOCOL,
            book_url=lambda base, symbol, depth: rest.depth_url(
                base, symbol, depth or rest.MAX_DEPTH
            ),
            book_weight=lambda depth: rest.depth_weight(depth or rest.MAX_DEPTH),
            symbols_url=rest.exchange_info_url,
            parse_symbols=lambda body: rest.parse_symbols(body).keys(),
            weight_per_minute=rest.WEIGHT_PER_MINUTE,
            symbols_weight=rest.INFO_WEIGHT,
            weight_header=rest.WEIGHT_HEADER,
            weight_refusal=rest.RATE_LIMITED,
            messages_per_s=spot.MAX_INCOMING_PER_S,
            rest_min_gap=0.1,
            lifetime=24 * 3600.0,  # Binance closes a connection after 24 hours
        ),
    ),
)
