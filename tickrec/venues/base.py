"""The header of a raw venue message, and the dispatch from protocol name to codec.

A :class:`Header` is what a recorder needs to know about a message before it
stores it, read without interpreting the book: the exchange time, the venue
sequence number, the symbol, the message kind, and whether the message was
well formed. A message that cannot be read still gets a header (with
``problem`` set), because a malformed message is data and is stored raw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from tickrec.errors import UsageError

__all__ = ["Header", "header_of", "register"]


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


_CODECS: dict[str, Callable[[str | bytes], Header]] = {}


def register(protocol: str, codec: Callable[[str | bytes], Header]) -> None:
    """Make *codec* the header reader of *protocol* (called by each codec module)."""
    _CODECS[protocol] = codec


def header_of(protocol: str, payload: str | bytes) -> Header:
    """Read the header of *payload* sent on a *protocol* connection (e.g. ``gemini.v1``)."""
    try:
        codec = _CODECS[protocol]
    except KeyError:
        raise UsageError(
            f"unknown protocol {protocol!r} (known: {', '.join(sorted(_CODECS))})"
        ) from None
    return codec(payload)
