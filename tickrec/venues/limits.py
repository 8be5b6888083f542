"""Counters of a venue's limits on one client, for a server that plays the venue.

A venue caps what one client may ask: REST request weight per minute, and
messages per second on a websocket connection (Binance: 6,000 weight a
minute, 5 messages a second). The simulator and ``tickrec serve`` count a
client's requests with these, by the limits in the venue's
:class:`~tickrec.venues.base.Recording`, so a client meets the limits it
would meet live.
"""

from __future__ import annotations

__all__ = ["MessageRate", "WeightWindow"]

_NS_PER_S = 1_000_000_000


class WeightWindow:
    """The request weight spent in the current UTC minute, against *per_minute* (0: no
    limit, the weight is only counted)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.minute = -1
        self.used = 0

    def spend(self, weight: int, now_ns: int) -> int | None:
        """Count a request of *weight* at *now_ns*; past the limit, the seconds until the
        next minute (``Retry-After``), else None."""
        minute = now_ns // (60 * _NS_PER_S)
        if minute != self.minute:
            self.minute, self.used = minute, 0
        self.used += weight
        if 0 < self.per_minute < self.used:
            return 60 - (now_ns // _NS_PER_S) % 60
        return None


class MessageRate:
    """The messages of one connection in the current second, against *per_second* (0:
    no limit)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.second = -1
        self.count = 0

    def allows(self, now_ns: int) -> bool:
        """Count a message at *now_ns*; False past the limit."""
        second = now_ns // _NS_PER_S
        if second != self.second:
            self.second, self.count = second, 0
        self.count += 1
        return self.per_second <= 0 or self.count <= self.per_second
