"""A compiled byte scanner for Binance spot frames of a book in sync, from the payload buffer.

:class:`~tickrec.venues.binance.spot_book.BinanceSpotStream` decodes one
parsed frame at a time. Once a connection's book is in sync, nearly every
frame is a diff that follows the last one or a trade, and this scanner
reads runs of them straight from the payload column's offsets and bytes
(zero copy), with the same rule (:class:`~tickrec.venues.binance.rules.UpdateIdSync`:
stale, apply, or a gap) and the same operations and trades as the stream.

It accepts only the layouts Binance sends (docs/venues/binance.md), keys in
this order and no spaces, wrapped in a combined-stream frame
(``{"stream":"...","data":...}``) or bare:

- ``{"e":"depthUpdate","E":..,"s":..,"U":..,"u":..,"b":[[p,q],..],"a":[..]}``;
- ``{"e":"trade","E":..,"s":..,"t":..,"p":..,"q":..,"T":..,"m":..,"M":..}``;
- ``{"e":"aggTrade","E":..,"s":..,"a":..,"p":..,"q":..,"f":..,"l":..,"T":..,"m":..,"M":..}``;

of this partition's symbol exactly, with decimals as
:mod:`tickrec.json_bytes` reads them. Anything else (another layout or
kind, another symbol, a gap in the update ids, a value out of range,
malformed JSON) stops the scan at that frame, and the caller decodes it on
the general path, so correctness never depends on the scanner: it either
agrees with the stream or declines.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from tickrec.events import OP_SET, Columns, RawRows
from tickrec.json_bytes import OK, address, at, decimal_value, eq, integer, skip_ws, string
from tickrec.json_bytes import lit as _lit
from tickrec.values import MAX_DECIMALS

__all__ = ["COUNTS", "scan"]

I64 = npt.NDArray[np.int64]

#: Frame kinds in the order of the scanner's counts (the stream's ``on_message`` kinds).
COUNTS = ("depthUpdate", "stale", "trade")

# Scan outcomes.
DONE, FULL, DECLINED = 0, 1, 2
_INT64_MAX = 2**63 - 1

_L_STREAM = _lit(b'{"stream":')
_L_DATA = _lit(b',"data":')
_L_DEPTH = _lit(b'{"e":"depthUpdate","E":')
_L_TRADE = _lit(b'{"e":"trade","E":')
_L_AGG = _lit(b'{"e":"aggTrade","E":')
_L_S = _lit(b',"s":')
_L_FIRST = _lit(b',"U":')
_L_LAST = _lit(b',"u":')
_L_BIDS = _lit(b',"b":[')
_L_ASKS = _lit(b',"a":[')
_L_T = _lit(b',"t":')
_L_A = _lit(b',"a":')
_L_P = _lit(b',"p":')
_L_Q = _lit(b',"q":')
_L_F = _lit(b',"f":')
_L_L = _lit(b',"l":')
_L_TT = _lit(b',"T":')
_L_M = _lit(b',"m":')
_L_MM = _lit(b',"M":')
_V_TRUE = _lit(b"true")
_V_FALSE = _lit(b"false")


@numba.njit(cache=True)
def _exch_ns(e: int) -> int:
    """:func:`tickrec.venues._json.epoch_ns` of a time not negative; -1 if it overflows."""
    if e < 0:
        return -1
    if e >= 10**17:
        return e
    mult = 1_000 if e >= 10**14 else (1_000_000 if e >= 10**11 else 1_000_000_000)
    return -1 if e > _INT64_MAX // mult else e * mult


@numba.njit(cache=True)
def _boolean(data: Any, p: int, end: int) -> tuple[int, int]:
    """``true`` or ``false`` at ``p``: ``(1 or 0, position after)``, or ``(0, -1)``."""
    if p < 0:
        return 0, -1
    if p + 4 <= end and eq(data, p, p + 4, _V_TRUE):
        return 1, p + 4
    if p + 5 <= end and eq(data, p, p + 5, _V_FALSE):
        return 0, p + 5
    return 0, -1


@numba.njit(cache=True)
def _levels(data: Any, p: int, end: int, ops: Any, j: int, side: int) -> tuple[int, int]:
    """The ``[price, quantity]`` pairs of a diff side, ``p`` just inside its array.

    Stores them as ``OP_SET`` operations from *j* on (time, row and exchange
    time are set by the caller); returns ``(position after the array, count)``,
    position -1 to decline.
    """
    _, _, o_op, o_side, o_px, o_pxd, o_sz, o_szd, _, o_snap = ops
    n = 0
    if p < 0:
        return -1, 0
    if p < end and data[p] == 93:
        return p + 1, 0
    while True:
        if p >= end or data[p] != 91:
            return -1, 0
        px_m, px_d, px_st, q = decimal_value(data, p + 1, end)
        if q < 0 or q >= end or data[q] != 44:
            return -1, 0
        sz_m, sz_d, sz_st, q = decimal_value(data, q + 1, end)
        if q < 0 or q >= end or data[q] != 93 or px_st != OK or sz_st != OK:
            return -1, 0
        if px_m <= 0 or sz_m < 0 or px_d > MAX_DECIMALS or sz_d > MAX_DECIMALS:
            return -1, 0
        k = j + n
        o_op[k] = OP_SET
        o_side[k] = side
        o_px[k] = px_m
        o_pxd[k] = px_d
        o_sz[k] = sz_m
        o_szd[k] = sz_d
        o_snap[k] = 0
        n += 1
        q += 1
        if q < end and data[q] == 44:
            p = q + 1
        elif q < end and data[q] == 93:
            return q + 1, n
        else:
            return -1, 0


@numba.njit(cache=True)
def _symbol(data: Any, p: int, end: int, symbol: Any) -> int:
    """Position after the string at ``p`` if it is exactly *symbol*, else -1."""
    if p < 0 or p >= end or data[p] != 34:
        return -1
    e, q = string(data, p, end)
    n = len(symbol)
    if e < 0 or e - (p + 1) != n:
        return -1
    for k in range(n):
        if data[p + 1 + k] != symbol[k]:
            return -1
    return q


@numba.njit(cache=True, nogil=True)
def _scan(
    payload: Any,
    offsets: Any,
    start: int,
    stop: int,
    recv: Any,
    received: Any,
    grp0: int,
    symbol: Any,
    state: Any,
    ops: Any,
    n_ops: int,
    trades: Any,
    n_tr: int,
    counts: Any,
) -> tuple[int, int, int, int]:
    """Scan rows ``start:stop`` (see :func:`scan`): ``(row, ops, trades, status)``."""
    data = address(payload)
    o_ts, o_grp, _, _, _, _, _, _, o_exch, _ = ops
    t_ts, t_grp, t_exch, t_px, t_pxd, t_sz, t_szd, t_side, t_tid, t_hist = trades
    cap_ops = len(o_ts)
    cap_tr = len(t_ts)
    for r in range(start, stop):
        if not received[r]:
            continue
        p = offsets[r]
        end = offsets[r + 1]
        # Every level takes more than 8 bytes of text.
        if n_ops + (end - p) // 8 + 2 > cap_ops or n_tr + 1 > cap_tr:
            return r, n_ops, n_tr, FULL
        ts = recv[r]
        grp = grp0 + r
        first = last = tid = px_m = px_d = sz_m = sz_d = n_b = n_a = maker_buys = 0
        p = skip_ws(data, p, end)
        wrapped = at(data, p, end, _L_STREAM)
        if wrapped >= 0:
            if wrapped >= end or data[wrapped] != 34:
                return r, n_ops, n_tr, DECLINED
            p = at(data, string(data, wrapped, end)[1], end, _L_DATA)
        q = at(data, p, end, _L_DEPTH)
        if q >= 0:
            e, q = integer(data, q, end)
            q = _symbol(data, at(data, q, end, _L_S), end, symbol)
            first, q = integer(data, at(data, q, end, _L_FIRST), end)
            last, q = integer(data, at(data, q, end, _L_LAST), end)
            q, n_b = _levels(data, at(data, q, end, _L_BIDS), end, ops, n_ops, 0)
            q, n_a = _levels(data, at(data, q, end, _L_ASKS), end, ops, n_ops + n_b, 1)
            kind = 0
        else:
            q = at(data, p, end, _L_TRADE)
            agg = q < 0
            if agg:
                q = at(data, p, end, _L_AGG)
            e, q = integer(data, q, end)
            q = _symbol(data, at(data, q, end, _L_S), end, symbol)
            tid, q = integer(data, at(data, q, end, _L_A if agg else _L_T), end)
            px_m, px_d, px_st, q = decimal_value(data, at(data, q, end, _L_P), end)
            sz_m, sz_d, sz_st, q = decimal_value(data, at(data, q, end, _L_Q), end)
            if agg:
                _, q = integer(data, at(data, q, end, _L_F), end)
                _, q = integer(data, at(data, q, end, _L_L), end)
            _, q = integer(data, at(data, q, end, _L_TT), end)
            maker_buys, q = _boolean(data, at(data, q, end, _L_M), end)
            _, q = _boolean(data, at(data, q, end, _L_MM), end)
            if px_st != OK or sz_st != OK or px_m <= 0 or sz_m < 0:
                q = -1
            if px_d > MAX_DECIMALS or sz_d > MAX_DECIMALS:
                q = -1
            kind = 2
        if q < 0 or q >= end or data[q] != 125:
            return r, n_ops, n_tr, DECLINED
        q += 1
        if wrapped >= 0:
            if q >= end or data[q] != 125:
                return r, n_ops, n_tr, DECLINED
            q += 1
        exch = _exch_ns(e)
        if skip_ws(data, q, end) != end or exch < 0:
            return r, n_ops, n_tr, DECLINED

        if kind == 2:
            t_ts[n_tr] = ts
            t_grp[n_tr] = grp
            t_exch[n_tr] = exch
            t_px[n_tr] = px_m
            t_pxd[n_tr] = px_d
            t_sz[n_tr] = sz_m
            t_szd[n_tr] = sz_d
            t_side[n_tr] = -1 if maker_buys else 1  # the buyer made: the taker sold
            t_tid[n_tr] = tid
            t_hist[n_tr] = 0
            n_tr += 1
            counts[2] += 1
        elif last <= state[0]:
            counts[1] += 1  # stale: already in the book
        elif first > state[0] + 1:
            return r, n_ops, n_tr, DECLINED  # a gap: the stream reports it
        else:
            for k in range(n_ops, n_ops + n_b + n_a):
                o_ts[k] = ts
                o_grp[k] = grp
                o_exch[k] = exch
            n_ops += n_b + n_a
            state[0] = last
            state[1] = ts
            counts[0] += 1
    return stop, n_ops, n_tr, DONE


def scan(
    rows: RawRows,
    start: int,
    stop: int,
    symbol: npt.NDArray[np.uint8],
    state: I64,
    ops: Columns,
    trades: Columns,
    counts: I64,
) -> tuple[int, bool]:
    """Decode the received frames among rows ``start:stop`` (one connection, its book
    in sync) until declined.

    *symbol* is the partition's symbol as bytes; *state* is ``[last u, time of
    the last diff applied]``, updated in place. Appends the operations and
    trades to *ops* and *trades* (layouts :data:`~tickrec.events.OP_COLUMNS`,
    :data:`~tickrec.events.TRADE_COLUMNS`), growing them as needed, and adds
    the frames by kind (:data:`COUNTS`) to *counts*.

    Returns ``(row, declined)``: the first row not decoded (*stop* when all
    were), and whether the scan stopped at a frame it declines (decode ``row``
    on the general path).
    """
    row = start
    while True:
        row, ops.n, trades.n, status = _scan(
            rows.data,
            rows.offsets,
            row,
            stop,
            rows.recv,
            rows.received,
            rows.grp0,
            symbol,
            state,
            ops.arrays,
            ops.n,
            trades.arrays,
            trades.n,
            counts,
        )
        if status != FULL:
            return row, status == DECLINED
        # Room for the largest frame this row could be (see _scan).
        ops.reserve(int(rows.offsets[row + 1] - rows.offsets[row]) // 8 + 4)
        trades.reserve(2)
