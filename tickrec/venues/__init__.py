"""The venues, one folder each, and what the engines ask of them.

:data:`VENUES` is the registry: one line per venue, nothing registered by
importing a module. Each venue folder is pure: it never opens a socket,
reads the clock or touches a file. It holds its codecs, its sync rules, its
REST codecs, its simulator routes and its URL classification
(:class:`~tickrec.venues.base.Venue`).

A codec reads the *header* of one raw payload: the exchange time, the venue
sequence number and the symbol the message belongs to. The recorder stamps
these into the contract's ``exch_ts`` / ``venue_seq`` columns and uses the
symbol to split a multi-symbol connection by partition (docs/architecture.md
section 2.1); the replayer reads old files the same way.
"""

from __future__ import annotations

import orjson

from tickrec.errors import UsageError
from tickrec.values import BadValue, check_level, decimal_pair
from tickrec.venues import binance, gemini
from tickrec.venues.base import Header, Venue, Wire
from tickrec.venues.gemini.rest import PROTOCOL as GEMINI_REST
from tickrec.venues.gemini.v1 import PROTOCOL as GEMINI_V1
from tickrec.venues.gemini.v1 import SequenceTracker
from tickrec.venues.gemini.v2 import PROTOCOL as GEMINI_V2
from tickrec.venues.gemini.v2 import subscribe_message
from tickrec.venues.gemini.ws import PROTOCOL as GEMINI_WS

__all__ = [
    "GEMINI_REST",
    "GEMINI_V1",
    "GEMINI_V2",
    "GEMINI_WS",
    "VENUES",
    "WIRES",
    "Header",
    "SequenceTracker",
    "header_of",
    "subscribe_message",
    "value_problem",
    "venue",
]

#: Every venue, by name.
VENUES: dict[str, Venue] = {
    "gemini": gemini.VENUE,
    "binance": binance.VENUE,
}

#: Every wire protocol of every venue, by the ``protocol`` column's value.
WIRES: dict[str, Wire] = {w.name: w for v in VENUES.values() for w in v.wires}


def venue(name: str) -> Venue:
    """The venue called *name*, or a clear error naming the known ones."""
    try:
        return VENUES[name]
    except KeyError:
        raise UsageError(f"unknown venue {name!r} (known: {', '.join(VENUES)})") from None


def header_of(protocol: str, payload: str | bytes) -> Header:
    """Read the header of *payload* sent on a *protocol* connection (e.g. ``gemini.v1``)."""
    wire = WIRES.get(protocol)
    if wire is None or wire.header is None:
        known = ", ".join(sorted(w.name for w in WIRES.values() if w.header is not None))
        raise UsageError(f"unknown protocol {protocol!r} (known: {known})")
    return wire.header(payload)


def value_problem(protocol: str, payload: str | bytes) -> str | None:
    """What is wrong with a price or size in *payload*, by the replayer's checks, or None.

    The checks are :func:`tickrec.values.decimal_pair` and
    :func:`~tickrec.values.check_level`: a value the replayer would report as
    a bad message. A payload that is not JSON has no value problem (its header
    says so), nor has a protocol with no value reader.
    """
    wire = WIRES.get(protocol)
    if wire is None or wire.levels is None:
        return None
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    try:
        for price, size in wire.levels(msg):
            check_level(decimal_pair(price), decimal_pair(size), price, size)
    except BadValue as exc:
        return str(exc)
    except (TypeError, ValueError, AttributeError) as exc:
        return f"malformed message ({exc})"
    return None
