"""The header of a raw venue message, and the dispatch from protocol name to codec.

A :class:`Header` is what a recorder needs to know about a message before it
stores it, read without interpreting the book: the exchange time, the venue
sequence number, the symbol, the message kind, and whether the message was
well formed. A message that cannot be read still gets a header (with
``problem`` set), because a malformed message is data and is stored raw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import orjson

from tickrec.errors import UsageError
from tickrec.values import BadValue, check_level, decimal_pair

__all__ = ["Gap", "Header", "header_of", "register", "value_problem"]


class Header(NamedTuple):
    """What a codec reads from one payload.

    ``symbol`` is set only when the message itself names the one symbol it
    belongs to (Gemini v2 ``l2_updates`` and ``trade``); ``None`` means the
    message belongs to the connection as a whole (docs/architecture.md section 2.1: it goes to
    every symbol partition the connection serves). ``problem`` is ``None`` for
    a well-formed, expected message, else a short description of what is wrong.
    ``first_seq`` is the first sequence number a message covers when it
    covers a range ending at ``venue_seq`` (the current API's ``U``); it is
    read for gap checks and not stored.
    """

    kind: str
    exch_ns: int | None = None
    venue_seq: int | None = None
    symbol: str | None = None
    problem: str | None = None
    first_seq: int | None = None


class Gap(NamedTuple):
    """A break in a venue's sequence numbers or update ids: *expected* was due, *got* arrived."""

    expected: int
    got: int


#: A protocol's reader of the ``(price, size)`` values a parsed message gives the book
#: (levels and trades), as sent: the values the replayer turns into exact pairs.
Levels = Callable[[Any], Iterable[tuple[object, object]]]

_CODECS: dict[str, Callable[[str | bytes], Header]] = {}
_LEVELS: dict[str, Levels] = {}


def register(
    protocol: str, codec: Callable[[str | bytes], Header] | None, levels: Levels | None = None
) -> None:
    """Make *codec* the header reader of *protocol*, and *levels* its value reader
    (called by each codec module)."""
    if codec is not None:
        _CODECS[protocol] = codec
    if levels is not None:
        _LEVELS[protocol] = levels


def value_problem(protocol: str, payload: str | bytes) -> str | None:
    """What is wrong with a price or size in *payload*, by the replayer's checks, or None.

    The checks are :func:`tickrec.values.decimal_pair` and
    :func:`~tickrec.values.check_level`: a value the replayer would report as
    a bad message. A payload that is not JSON has no value problem (its header
    says so), nor has a protocol with no value reader.
    """
    levels = _LEVELS.get(protocol)
    if levels is None:
        return None
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    try:
        for price, size in levels(msg):
            check_level(decimal_pair(price), decimal_pair(size), price, size)
    except BadValue as exc:
        return str(exc)
    except (TypeError, ValueError, AttributeError) as exc:
        return f"malformed message ({exc})"
    return None


def header_of(protocol: str, payload: str | bytes) -> Header:
    """Read the header of *payload* sent on a *protocol* connection (e.g. ``gemini.v1``)."""
    try:
        codec = _CODECS[protocol]
    except KeyError:
        raise UsageError(
            f"unknown protocol {protocol!r} (known: {', '.join(sorted(_CODECS))})"
        ) from None
    return codec(payload)
