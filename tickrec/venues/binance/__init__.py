"""Binance spot: the combined diff-depth stream, lined up with REST depth snapshots.

The venue's pure parts, which never open a socket, read a clock or touch a
file:

- :mod:`.rules`: :class:`~.rules.UpdateIdSync`, the book sync rule of one
  symbol on one connection (``lastUpdateId``, ``U`` and ``u``);
- :mod:`.spot`: the ``binance.spot`` protocol: stream names, the combined
  stream URL and the header codec of its frames;
- :mod:`.rest`: ``/api/v3/depth`` and ``/api/v3/exchangeInfo``, their
  request weights and the parsers of their replies.

On Binance a REST book is the *source* of the book, not only a check
(docs/architecture.md section 2.6): the stream's diffs are applied on top of
the snapshot whose ``lastUpdateId`` they follow.
"""

from __future__ import annotations

from tickrec.venues.binance.rules import APPLY, STALE, WAIT, UpdateIdSync

__all__ = ["APPLY", "STALE", "WAIT", "UpdateIdSync"]
