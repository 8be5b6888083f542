"""A compiled byte scanner for Gemini v1 messages, straight from the Arrow payload buffer.

:class:`~replay.venues.gemini_v1.GeminiV1Stream` decodes one parsed message
at a time; at some hundred thousand messages per second that is mostly
Python overhead. This scanner reads a run of received messages of one
connection from the payload column's offsets and bytes (zero copy) and
produces the same operations, trades and sequence breaks as the stream
would, with decimal strings turned into exact ``(mantissa, decimals)``
pairs in the kernel: no Python object per message and no float anywhere.

It accepts only what it can decode with certainty, a strict subset of JSON
in the shapes of gemini.md section 1: an object whose keys ``type``,
``socket_sequence``, ``timestampms`` and ``events`` (each at most once) have
the expected types, events that are flat objects with string or integer
values, plain decimal strings (``-?digits[.digits]``, at most 18 significant
digits), and other values that are plain strings, integers, fractions,
``true``, ``false`` or ``null``. Keys may come in any order; unknown keys
are skipped. Anything else (escapes, non-ASCII bytes, nested values,
exponents, duplicate keys, malformed JSON, a message that is not an object)
stops the scan at that message, and the caller decodes it on the general
path (``orjson`` and the stream), so correctness never depends on the
scanner: it either agrees with the general path or declines.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from replay.events import ASK, BID, NO_ID, NO_TS, OP_CLEAR, OP_INVALID, OP_SET, OP_VALID
from replay.venues.json_bytes import (
    ABSENT,
    OK,
    at,
    decimal,
    decimal_value,
    eq,
    integer,
    lit,
    next_item,
    scalar,
    skip_ws,
    string,
)
from replay.venues.sink import BREAK_ROWS, OP_ROWS, TRADE_ROWS

__all__ = ["Scan", "scan"]

I64 = npt.NDArray[np.int64]

# Indices into the block layouts of replay.venues.sink.
_TS, _GRP, _OP, _SIDE, _PX, _PXD, _SZ, _SZD, _EXCH, _SNAP = range(10)
_TTS, _TGRP, _TEXCH, _TPX, _TPXD, _TSZ, _TSZD, _TSIDE, _TTID, _THIST = range(10)

# Scan outcomes.
DONE, FULL, DECLINED = 0, 1, 2

_MAX_MS = (2**63 - 1) // 1_000_000  # timestampms whose ns still fits int64
_INT64_MAX = 2**63 - 1

_K_TYPE = lit(b"type")
_K_SEQ = lit(b"socket_sequence")
_K_MS = lit(b"timestampms")
_K_EVENTS = lit(b"events")
_K_SIDE = lit(b"side")
_K_PRICE = lit(b"price")
_K_REMAINING = lit(b"remaining")
_K_AMOUNT = lit(b"amount")
_K_MAKER = lit(b"makerSide")
_K_TID = lit(b"tid")
_K_REASON = lit(b"reason")
_V_UPDATE = lit(b"update")
_V_HEARTBEAT = lit(b"heartbeat")
_V_CHANGE = lit(b"change")
_V_TRADE = lit(b"trade")
_V_BID = lit(b"bid")
_V_ASK = lit(b"ask")
_V_INITIAL = lit(b"initial")
# The layout Gemini sends a change event in (gemini.md section 1), tried first.
_T_CHANGE = lit(b'{"type":"change","side":"')
_T_PRICE = lit(b',"price":')
_T_REMAINING = lit(b',"remaining":')
_T_DELTA = lit(b',"delta":')
_T_REASON = lit(b',"reason":')


@numba.njit(cache=True, inline="always")
def _event_key(data: Any, s: int, e: int) -> int:
    """The bit of a known event key ``data[s:e]`` (0 for others), by first letter, then bytes."""
    c = data[s] if e > s else 0
    if c == 116:  # t
        return 1 if eq(data, s, e, _K_TYPE) else (64 if eq(data, s, e, _K_TID) else 0)
    if c == 115:  # s
        return 2 if eq(data, s, e, _K_SIDE) else 0
    if c == 112:  # p
        return 4 if eq(data, s, e, _K_PRICE) else 0
    if c == 114:  # r
        return 8 if eq(data, s, e, _K_REMAINING) else (128 if eq(data, s, e, _K_REASON) else 0)
    if c == 97:  # a
        return 16 if eq(data, s, e, _K_AMOUNT) else 0
    if c == 109:  # m
        return 32 if eq(data, s, e, _K_MAKER) else 0
    return 0


@numba.njit(cache=True, inline="always")
def _change_layout(data: Any, p: int, end: int) -> tuple[int, int, int, int, int, int, bool]:
    """A change event in Gemini's own key order and spacing, the common case.

    ``(position after, side, price mantissa, decimals, size mantissa,
    decimals, initial)``; position -1 if the event is laid out in any other
    way (the general event parser then reads it).
    """
    q = at(data, p, end, _T_CHANGE)
    if q < 0 or q + 4 > end or data[q + 3] != 34:
        return -1, 0, 0, 0, 0, 0, False
    if eq(data, q, q + 3, _V_BID):
        side = BID
    elif eq(data, q, q + 3, _V_ASK):
        side = ASK
    else:
        return -1, 0, 0, 0, 0, 0, False
    px_m, px_d, px_st, q = decimal_value(data, at(data, q + 4, end, _T_PRICE), end)
    sz_m, sz_d, sz_st, q = decimal_value(data, at(data, q, end, _T_REMAINING), end)
    if px_st != OK or sz_st != OK:
        return -1, 0, 0, 0, 0, 0, False
    q = at(data, q, end, _T_DELTA)
    if q < 0 or q >= end or data[q] != 34:
        return -1, 0, 0, 0, 0, 0, False
    q = string(data, q, end)[1]
    q = at(data, q, end, _T_REASON) if q >= 0 else -1
    if q < 0 or q >= end or data[q] != 34:
        return -1, 0, 0, 0, 0, 0, False
    e, q = string(data, q, end)
    if e < 0 or q >= end or data[q] != 125:
        return -1, 0, 0, 0, 0, 0, False
    initial = eq(data, e - 7, e, _V_INITIAL) and data[e - 8] == 34
    return q + 1, side, px_m, px_d, sz_m, sz_d, initial


@numba.njit(cache=True, inline="always")
def _put_change(
    ops: Any, j: int, side: int, px_m: int, px_d: int, rem_m: int, rem_d: int
) -> None:
    """Store change *j*: its side and exact (mantissa, decimals) price and remaining size."""
    ops[_SIDE, j] = side
    ops[_PX, j] = px_m
    ops[_PXD, j] = px_d
    ops[_SZ, j] = rem_m
    ops[_SZD, j] = rem_d


@numba.njit(cache=True, nogil=True)
def _scan(
    data: Any,
    offsets: Any,
    start: int,
    stop: int,
    recv: Any,
    vseq: Any,
    vseq_ok: Any,
    grp0: int,
    state: Any,
    ops: Any,
    trades: Any,
    breaks: Any,
    counts: Any,
) -> tuple[int, int, int, int, int]:
    """Scan rows ``start:stop`` (see :func:`scan`): ``(row, ops, trades, breaks, status)``."""
    cap_ops = ops.shape[1]
    cap_tr = trades.shape[1]
    cap_br = breaks.shape[1]
    n_ops = 0
    n_tr = 0
    n_br = 0
    for r in range(start, stop):
        p = offsets[r]
        end = offsets[r + 1]
        # Every operation or trade takes well over 16 bytes of text.
        room = (end - p) // 16 + 3
        if n_ops + room + 2 > cap_ops or n_tr + room > cap_tr or n_br >= cap_br:
            return r, n_ops, n_tr, n_br, FULL
        base = n_ops + 2  # changes are parsed here, then moved behind any control ops
        n_ch = 0
        n_new_tr = 0
        initial = False
        mtype = 3  # no "type" key: "other"
        seen = 0
        has_seq = False
        seq = 0
        has_ms = False
        ms = 0
        ok = True
        p = skip_ws(data, p, end)
        if p >= end or data[p] != 123:
            return r, n_ops, n_tr, n_br, DECLINED
        p = skip_ws(data, p + 1, end)
        if p < end and data[p] == 125:
            p += 1
        else:
            while ok:
                if p >= end or data[p] != 34:
                    ok = False
                    break
                ks = p + 1
                ke, p = string(data, p, end)
                if ke < 0:
                    ok = False
                    break
                p = skip_ws(data, p, end)
                if p >= end or data[p] != 58:
                    ok = False
                    break
                p = skip_ws(data, p + 1, end)
                if p >= end:
                    ok = False
                    break
                if eq(data, ks, ke, _K_TYPE):
                    if seen & 1 or data[p] != 34:
                        ok = False
                        break
                    seen |= 1
                    vs = p + 1
                    ve, p = string(data, p, end)
                    if ve < 0:
                        ok = False
                        break
                    if eq(data, vs, ve, _V_UPDATE):
                        mtype = 1
                    elif eq(data, vs, ve, _V_HEARTBEAT):
                        mtype = 2
                    else:
                        mtype = 3
                elif eq(data, ks, ke, _K_SEQ):
                    if seen & 2:
                        ok = False
                        break
                    seen |= 2
                    seq, p = integer(data, p, end)
                    has_seq = True
                elif eq(data, ks, ke, _K_MS):
                    if seen & 4:
                        ok = False
                        break
                    seen |= 4
                    ms, p = integer(data, p, end)
                    has_ms = True
                    if p >= 0 and (ms > _MAX_MS or ms < -_MAX_MS):
                        p = -1
                elif eq(data, ks, ke, _K_EVENTS):
                    if seen & 8 or data[p] != 91:
                        ok = False
                        break
                    seen |= 8
                    p = skip_ws(data, p + 1, end)
                    if p < end and data[p] == 93:
                        p += 1
                    else:
                        while True:
                            if p >= end or data[p] != 123:
                                p = -1
                                break
                            # One event object.
                            q, side, px_m, px_d, rem_m, rem_d, reason_initial = _change_layout(
                                data, p, end
                            )
                            if q >= 0:
                                initial = initial or reason_initial
                                _put_change(ops, base + n_ch, side, px_m, px_d, rem_m, rem_d)
                                n_ch += 1
                                p, more = next_item(data, q, end, 93)
                                if more:
                                    continue
                                break
                            p = skip_ws(data, p + 1, end)
                            etype = 0
                            side = -1
                            taker = 0
                            tid = NO_ID
                            reason_initial = False
                            px_st = ABSENT
                            rem_st = ABSENT
                            amt_st = ABSENT
                            px_m = px_d = rem_m = rem_d = amt_m = amt_d = 0
                            eseen = 0
                            if p < end and data[p] == 125:
                                p += 1
                            else:
                                while True:
                                    if p >= end or data[p] != 34:
                                        p = -1
                                        break
                                    fs = p + 1
                                    fe, p = string(data, p, end)
                                    if fe < 0:
                                        break
                                    p = skip_ws(data, p, end)
                                    if p >= end or data[p] != 58:
                                        p = -1
                                        break
                                    p = skip_ws(data, p + 1, end)
                                    if p >= end:
                                        p = -1
                                        break
                                    bit = _event_key(data, fs, fe)
                                    if bit == 0:
                                        p = scalar(data, p, end)
                                    elif eseen & bit:
                                        p = -1
                                    elif bit == 64:
                                        tid, p = integer(data, p, end)
                                    elif data[p] != 34:
                                        p = -1
                                    else:
                                        vs = p + 1
                                        ve, p = string(data, p, end)
                                        if ve < 0:
                                            p = -1
                                        elif bit == 1:
                                            if eq(data, vs, ve, _V_CHANGE):
                                                etype = 1
                                            elif eq(data, vs, ve, _V_TRADE):
                                                etype = 2
                                        elif bit == 2:
                                            if eq(data, vs, ve, _V_BID):
                                                side = BID
                                            elif eq(data, vs, ve, _V_ASK):
                                                side = ASK
                                        elif bit == 32:
                                            # Taker is opposite the maker (gemini.md section 5).
                                            if eq(data, vs, ve, _V_BID):
                                                taker = -1
                                            elif eq(data, vs, ve, _V_ASK):
                                                taker = 1
                                        elif bit == 128:
                                            reason_initial = eq(data, vs, ve, _V_INITIAL)
                                        elif bit == 4:
                                            px_m, px_d, px_st = decimal(data, vs, ve)
                                        elif bit == 8:
                                            rem_m, rem_d, rem_st = decimal(data, vs, ve)
                                        else:
                                            amt_m, amt_d, amt_st = decimal(data, vs, ve)
                                    if p < 0:
                                        break
                                    eseen |= bit
                                    p, more = next_item(data, p, end, 125)
                                    if not more:
                                        break
                            if p < 0:
                                break
                            if etype == 1:
                                initial = initial or reason_initial
                                if side >= 0:
                                    if px_st != OK or rem_st != OK:
                                        p = -1
                                        break
                                    _put_change(ops, base + n_ch, side, px_m, px_d, rem_m, rem_d)
                                    n_ch += 1
                            elif etype == 2:
                                if px_st != OK or amt_st != OK:
                                    p = -1
                                    break
                                j = n_tr + n_new_tr
                                trades[_TPX, j] = px_m
                                trades[_TPXD, j] = px_d
                                trades[_TSZ, j] = amt_m
                                trades[_TSZD, j] = amt_d
                                trades[_TSIDE, j] = taker
                                trades[_TTID, j] = tid
                                n_new_tr += 1
                            p, more = next_item(data, p, end, 93)
                            if not more:
                                break
                else:
                    p = scalar(data, p, end)
                if p < 0:
                    ok = False
                    break
                p, more = next_item(data, p, end, 125)
                if p < 0:
                    ok = False
                elif not more:
                    break
        if not ok or skip_ws(data, p, end) != end:
            return r, n_ops, n_tr, n_br, DECLINED

        # The message is understood: emit it as GeminiV1Stream.on_message would.
        ts = recv[r]
        grp = grp0 + r
        if vseq_ok[r]:
            has_seq = True
            seq = vseq[r]
        j = n_ops
        if has_seq:
            if state[0] and state[1] == _INT64_MAX:
                return r, n_ops, n_tr, n_br, DECLINED
            if state[0] and seq != state[1] + 1:
                breaks[0, n_br] = state[2]
                breaks[1, n_br] = ts
                breaks[2, n_br] = grp
                breaks[3, n_br] = state[1] + 1
                breaks[4, n_br] = seq
                n_br += 1
                _control(ops, j, ts, grp, OP_INVALID)
                j += 1
            state[0] = 1
            state[1] = seq
            state[2] = ts
        if mtype == 1:
            exch = ms * 1_000_000 if has_ms else NO_TS
            if initial:
                _control(ops, j, ts, grp, OP_CLEAR)
                j += 1
            for k in range(n_ch):
                src = base + k
                ops[_SIDE, j] = ops[_SIDE, src]
                ops[_PX, j] = ops[_PX, src]
                ops[_PXD, j] = ops[_PXD, src]
                ops[_SZ, j] = ops[_SZ, src]
                ops[_SZD, j] = ops[_SZD, src]
                ops[_TS, j] = ts
                ops[_GRP, j] = grp
                ops[_OP, j] = OP_SET
                ops[_EXCH, j] = exch
                ops[_SNAP, j] = initial
                j += 1
            if initial:
                _control(ops, j, ts, grp, OP_VALID)
                j += 1
            for k in range(n_tr, n_tr + n_new_tr):
                trades[_TTS, k] = ts
                trades[_TGRP, k] = grp
                trades[_TEXCH, k] = exch
                trades[_THIST, k] = 0
            n_tr += n_new_tr
            counts[0] += 1
        elif mtype == 2:
            counts[1] += 1
        else:
            counts[2] += 1
        n_ops = j
    return stop, n_ops, n_tr, n_br, DONE


@numba.njit(cache=True, inline="always")
def _control(ops: Any, j: int, ts: int, grp: int, op: int) -> None:
    ops[_TS, j] = ts
    ops[_GRP, j] = grp
    ops[_OP, j] = op
    ops[_SIDE, j] = 0
    ops[_PX, j] = 0
    ops[_PXD, j] = 0
    ops[_SZ, j] = 0
    ops[_SZD, j] = 0
    ops[_EXCH, j] = NO_TS
    ops[_SNAP, j] = 0


class Scan(NamedTuple):
    """What one :func:`scan` call produced, and where it stopped."""

    row: int
    """First row not decoded (``stop`` when all were)."""
    declined: bool
    """True if the scan stopped at a message it declines (decode ``row`` on the general path)."""
    ops: I64
    """Operations, ``(len(OP_ROWS), n)``."""
    trades: I64
    """Trades, ``(len(TRADE_ROWS), n)``."""
    breaks: I64
    """Sequence breaks, ``(len(BREAK_ROWS), n)``."""
    counts: I64
    """Messages by kind: ``update``, ``heartbeat``, ``other``."""


def scan(
    data: npt.NDArray[np.uint8],
    offsets: npt.NDArray[Any],
    start: int,
    stop: int,
    recv: I64,
    venue_seq: I64,
    venue_seq_ok: npt.NDArray[np.bool_],
    grp0: int,
    state: I64,
    capacity: int = 1 << 18,
) -> Scan:
    """Decode received v1 messages ``start:stop`` of one connection until done or declined.

    *data* and *offsets* are the payload column's buffers (a message is
    ``data[offsets[r]:offsets[r + 1]]``), *recv* the rows' replay times,
    *venue_seq* / *venue_seq_ok* the stored ``venue_seq`` (preferred to the
    message's ``socket_sequence``, as in the stream), *grp0* the partition
    row index of row 0. *state* is ``[has previous, previous sequence,
    previous time]`` of the connection, updated in place. The output blocks
    grow as needed; a call returns after at most about *capacity* operations,
    so call again from ``row`` while ``row < stop`` and not ``declined``.
    """
    counts = np.zeros(3, np.int64)
    while True:
        ops = np.empty((len(OP_ROWS), capacity), np.int64)
        trades = np.empty((len(TRADE_ROWS), capacity), np.int64)
        breaks = np.empty((len(BREAK_ROWS), 1024), np.int64)
        row, n_ops, n_tr, n_br, status = _scan(
            data,
            offsets,
            start,
            stop,
            recv,
            venue_seq,
            venue_seq_ok,
            grp0,
            state,
            ops,
            trades,
            breaks,
            counts,
        )
        if status == FULL and row == start:
            capacity *= 2  # one message larger than the blocks (a big initial book)
            continue
        return Scan(
            row, status == DECLINED, ops[:, :n_ops], trades[:, :n_tr], breaks[:, :n_br], counts
        )
