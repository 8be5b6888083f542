"""What every simulated websocket protocol provides, and the shared wire helpers.

A :class:`Feed` is one connection's view of the market. It is pure: the
server hands it the connection's opening time, each client message and each
batch of engine events, and sends the text frames it returns, in order. A
feed never sends, sleeps or reads the clock itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from tickrec.sim.market import Event, Market, SymbolSpec

__all__ = ["Close", "Feed", "Reject", "Reply", "dumps", "flag", "integer", "lookup"]


def dumps(obj: Any) -> str:
    """Compact JSON text, keys in insertion order, as Gemini sends it."""
    return orjson.dumps(obj).decode()


@dataclass(frozen=True, slots=True)
class Reply:
    """A REST reply: HTTP status, JSON body, and any headers the venue adds."""

    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Reject(Exception):
    """A request the exchange refuses with an HTTP error and Gemini's error body.

    The body shape is ``{"result":"error","reason":...,"message":...}``
    (docs/venues/gemini.md section 4).
    """

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> str:
        """The JSON error body."""
        return dumps({"result": "error", "reason": self.reason, "message": self.message})


class Close(Exception):
    """A client message the feed refuses: the server closes the connection with *code*."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class Feed(ABC):
    """One websocket connection's stream of frames.

    ``protocol`` names the wire protocol as the dataset contract does
    (``gemini.v1``, ``gemini.v2``, ``gemini.ws``). ``heartbeats`` says whether the server
    should ask :meth:`beat` for a heartbeat frame on its heartbeat interval.
    """

    protocol: ClassVar[str]
    heartbeats: bool

    @abstractmethod
    def open(self, now_ns: int) -> list[str]:
        """Frames to send as soon as the connection is open."""

    def receive(self, text: str, now_ns: int) -> list[str]:
        """Frames answering a client message; by default client messages are ignored.

        Raises :class:`Close` to have the server close the connection.
        """
        return []

    @abstractmethod
    def publish(self, events: Sequence[Event], now_ns: int) -> list[str]:
        """Frames for a batch of engine events, already applied to the market.

        Called on every engine tick, with an empty batch too, so that a feed
        that sends on its own interval (conflated diffs) can keep time.
        """

    def beat(self, now_ns: int) -> str:
        """One heartbeat frame; asked for only when :attr:`heartbeats` is true."""
        raise NotImplementedError(f"{self.protocol} sends no heartbeats")

    def shutdown_notice(self, now_ns: int) -> str | None:
        """The frame that warns of a coming close for maintenance; None if the venue has none."""
        return None


def flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    """A ``true``/``false`` query parameter; anything else is a 400 reply."""
    value = query.get(name)
    if value is None:
        return default
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise Reject(400, "InvalidParameter", f"{name} must be true or false, not {value!r}")
    return text == "true"


def integer(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter, clamped to ``hi``.

    Non-integers and values below ``lo`` are a 400 reply.
    """
    value = query.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise Reject(400, "InvalidParameter", f"{name} must be an integer, not {value!r}") from None
    if number < lo:
        raise Reject(400, "InvalidParameter", f"{name} must be at least {lo}")
    return min(number, hi)


def lookup(market: Market, symbol: str) -> SymbolSpec:
    """The spec of a listed symbol, any case; an unlisted one is Gemini's 400 ``InvalidSymbol``."""
    spec = market.specs.get(symbol.upper())
    if spec is None:
        raise Reject(400, "InvalidSymbol", f"Supplied value '{symbol}' is not a valid symbol.")
    return spec
