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
from replay.venues.sink import BREAK_ROWS, OP_ROWS, TRADE_ROWS

__all__ = ["Scan", "scan"]

I64 = npt.NDArray[np.int64]

# Indices into the block layouts of replay.venues.sink.
_TS, _GRP, _OP, _SIDE, _PX, _PXD, _SZ, _SZD, _EXCH, _SNAP = range(10)
_TTS, _TGRP, _TEXCH, _TPX, _TPXD, _TSZ, _TSZD, _TSIDE, _TTID, _THIST = range(10)

# Scan outcomes.
DONE, FULL, DECLINED = 0, 1, 2

_MAX_DIGITS = 18  # any 18-digit integer fits int64
_MAX_MS = (2**63 - 1) // 1_000_000  # timestampms whose ns still fits int64
_INT64_MAX = 2**63 - 1

# Value parse results of a decimal string field.
_ABSENT, _OK, _BAD = 0, 1, 2


def _lit(text: bytes) -> npt.NDArray[np.uint8]:
    return np.frombuffer(text, dtype=np.uint8).copy()


_K_TYPE = _lit(b"type")
_K_SEQ = _lit(b"socket_sequence")
_K_MS = _lit(b"timestampms")
_K_EVENTS = _lit(b"events")
_K_SIDE = _lit(b"side")
_K_PRICE = _lit(b"price")
_K_REMAINING = _lit(b"remaining")
_K_AMOUNT = _lit(b"amount")
_K_MAKER = _lit(b"makerSide")
_K_TID = _lit(b"tid")
_K_REASON = _lit(b"reason")
_V_UPDATE = _lit(b"update")
_V_HEARTBEAT = _lit(b"heartbeat")
_V_CHANGE = _lit(b"change")
_V_TRADE = _lit(b"trade")
_V_BID = _lit(b"bid")
_V_ASK = _lit(b"ask")
_V_INITIAL = _lit(b"initial")
_V_TRUE = _lit(b"true")
_V_FALSE = _lit(b"false")
_V_NULL = _lit(b"null")
# The layout Gemini sends a change event in (gemini.md section 1), tried first.
_T_CHANGE = _lit(b'{"type":"change","side":"')
_T_PRICE = _lit(b',"price":')
_T_REMAINING = _lit(b',"remaining":')
_T_DELTA = _lit(b',"delta":')
_T_REASON = _lit(b',"reason":')


@numba.njit(cache=True, inline="always")
def _eq(data: Any, s: int, e: int, lit: Any) -> bool:
    if e - s != lit.shape[0]:
        return False
    k = 0
    while k < lit.shape[0] and data[s + k] == lit[k]:
        k += 1
    return k == lit.shape[0]


@numba.njit(cache=True, inline="always")
def _ws(data: Any, p: int, end: int) -> int:
    if p < end and data[p] > 32:  # compact JSON: nothing to skip
        return p
    while p < end:
        c = data[p]
        if c != 32 and c != 9 and c != 10 and c != 13:
            break
        p += 1
    return p


@numba.njit(cache=True, inline="always")
def _string(data: Any, p: int, end: int) -> tuple[int, int]:
    """``data[p]`` is an opening quote: ``(end of contents, position after)``, or ``(-1, -1)``.

    Escapes, control characters and non-ASCII bytes are declined, so the
    contents are exactly the bytes between the quotes.
    """
    q = p + 1
    while q < end:
        c = data[q]
        if c == 34:
            return q, q + 1
        if c == 92 or c < 32 or c >= 128:
            return -1, -1
        q += 1
    return -1, -1


@numba.njit(cache=True, inline="always")
def _integer(data: Any, p: int, end: int) -> tuple[int, int]:
    """A JSON integer at ``p`` (not a fraction): ``(value, position after)``, or ``(0, -1)``."""
    neg = p < end and data[p] == 45
    q = p + 1 if neg else p
    start = q
    v = 0
    while q < end and 48 <= data[q] <= 57:
        v = v * 10 + (data[q] - 48)
        q += 1
    n = q - start
    if n == 0 or n > _MAX_DIGITS or (n > 1 and data[start] == 48):
        return 0, -1
    if q < end and (data[q] == 46 or data[q] == 101 or data[q] == 69):
        return 0, -1
    return (-v if neg else v), q


@numba.njit(cache=True, inline="always")
def _decimal(data: Any, s: int, e: int) -> tuple[int, int, int]:
    """``(mantissa, decimals, status)`` of the plain decimal text ``data[s:e]``.

    The same canonical form as :func:`replay.ticks.decimals_of`: trailing
    zeros of the fraction do not count. Status ``_BAD`` for anything but
    ``-?[0-9]+(\\.[0-9]*)?`` with at most 18 significant digits.
    """
    p = s
    neg = p < e and data[p] == 45
    if neg:
        p += 1
    m = 0
    sig = 0
    digits = 0
    while p < e and 48 <= data[p] <= 57:
        d = data[p] - 48
        if m != 0 or d != 0:
            sig += 1
        m = m * 10 + d
        digits += 1
        p += 1
    if digits == 0 or sig > _MAX_DIGITS:
        return 0, 0, _BAD
    dec = 0
    if p < e and data[p] == 46:
        p += 1
        zeros = 0
        while p < e and 48 <= data[p] <= 57:
            d = data[p] - 48
            if d == 0:
                zeros += 1
            else:
                if m != 0:
                    sig += zeros
                sig += 1
                if sig > _MAX_DIGITS:
                    return 0, 0, _BAD
                for _ in range(zeros):
                    m *= 10
                m = m * 10 + d
                dec += zeros + 1
                zeros = 0
            p += 1
    if p != e:
        return 0, 0, _BAD
    return (-m if neg else m), dec, _OK


@numba.njit(cache=True, inline="always")
def _number(data: Any, p: int, end: int) -> int:
    """Skip a JSON number without exponent and with at most 18 digits; -1 to decline."""
    q = p + 1 if data[p] == 45 else p
    start = q
    while q < end and 48 <= data[q] <= 57:
        q += 1
    n = q - start
    if n == 0 or (n > 1 and data[start] == 48):
        return -1
    if q < end and data[q] == 46:
        q += 1
        f = q
        while q < end and 48 <= data[q] <= 57:
            q += 1
        if q == f:
            return -1
        n += q - f
    if n > _MAX_DIGITS or (q < end and (data[q] == 101 or data[q] == 69)):
        return -1
    return q


@numba.njit(cache=True, inline="always")
def _scalar(data: Any, p: int, end: int) -> int:
    """Skip a string, number, ``true``, ``false`` or ``null`` at ``p``; -1 to decline."""
    if p >= end:
        return -1
    c = data[p]
    if c == 34:
        return _string(data, p, end)[1]
    if c == 45 or 48 <= c <= 57:
        return _number(data, p, end)
    if _eq(data, p, min(p + 4, end), _V_TRUE) or _eq(data, p, min(p + 4, end), _V_NULL):
        return p + 4
    if _eq(data, p, min(p + 5, end), _V_FALSE):
        return p + 5
    return -1


@numba.njit(cache=True, inline="always")
def _event_key(data: Any, s: int, e: int) -> int:
    """The bit of a known event key ``data[s:e]`` (0 for others), by first letter, then bytes."""
    c = data[s] if e > s else 0
    if c == 116:  # t
        return 1 if _eq(data, s, e, _K_TYPE) else (64 if _eq(data, s, e, _K_TID) else 0)
    if c == 115:  # s
        return 2 if _eq(data, s, e, _K_SIDE) else 0
    if c == 112:  # p
        return 4 if _eq(data, s, e, _K_PRICE) else 0
    if c == 114:  # r
        return 8 if _eq(data, s, e, _K_REMAINING) else (128 if _eq(data, s, e, _K_REASON) else 0)
    if c == 97:  # a
        return 16 if _eq(data, s, e, _K_AMOUNT) else 0
    if c == 109:  # m
        return 32 if _eq(data, s, e, _K_MAKER) else 0
    return 0


@numba.njit(cache=True, inline="always")
def _at(data: Any, p: int, end: int, lit: Any) -> int:
    """Position after *lit* if the bytes at ``p`` are *lit*, else -1."""
    n = lit.shape[0]
    if p + n > end or not _eq(data, p, p + n, lit):
        return -1
    return p + n


@numba.njit(cache=True, inline="always")
def _decimal_value(data: Any, p: int, end: int) -> tuple[int, int, int, int]:
    """A decimal string value at ``p``: ``(mantissa, decimals, status, position after)``."""
    if p < 0 or p >= end or data[p] != 34:
        return 0, 0, _BAD, -1
    e, q = _string(data, p, end)
    if e < 0:
        return 0, 0, _BAD, -1
    m, d, st = _decimal(data, p + 1, e)
    return m, d, st, q


@numba.njit(cache=True, inline="always")
def _change_layout(data: Any, p: int, end: int) -> tuple[int, int, int, int, int, int, bool]:
    """A change event in Gemini's own key order and spacing, the common case.

    ``(position after, side, price mantissa, decimals, size mantissa,
    decimals, initial)``; position -1 if the event is laid out in any other
    way (the general event parser then reads it).
    """
    q = _at(data, p, end, _T_CHANGE)
    if q < 0 or q + 4 > end or data[q + 3] != 34:
        return -1, 0, 0, 0, 0, 0, False
    if _eq(data, q, q + 3, _V_BID):
        side = BID
    elif _eq(data, q, q + 3, _V_ASK):
        side = ASK
    else:
        return -1, 0, 0, 0, 0, 0, False
    px_m, px_d, px_st, q = _decimal_value(data, _at(data, q + 4, end, _T_PRICE), end)
    sz_m, sz_d, sz_st, q = _decimal_value(data, _at(data, q, end, _T_REMAINING), end)
    if px_st != _OK or sz_st != _OK:
        return -1, 0, 0, 0, 0, 0, False
    q = _at(data, q, end, _T_DELTA)
    if q < 0 or q >= end or data[q] != 34:
        return -1, 0, 0, 0, 0, 0, False
    q = _string(data, q, end)[1]
    q = _at(data, q, end, _T_REASON) if q >= 0 else -1
    if q < 0 or q >= end or data[q] != 34:
        return -1, 0, 0, 0, 0, 0, False
    e, q = _string(data, q, end)
    if e < 0 or q >= end or data[q] != 125:
        return -1, 0, 0, 0, 0, 0, False
    initial = _eq(data, e - 7, e, _V_INITIAL) and data[e - 8] == 34
    return q + 1, side, px_m, px_d, sz_m, sz_d, initial


@numba.njit(cache=True)
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
        p = _ws(data, p, end)
        if p >= end or data[p] != 123:
            return r, n_ops, n_tr, n_br, DECLINED
        p = _ws(data, p + 1, end)
        if p < end and data[p] == 125:
            p += 1
        else:
            while ok:
                if p >= end or data[p] != 34:
                    ok = False
                    break
                ks = p + 1
                ke, p = _string(data, p, end)
                if ke < 0:
                    ok = False
                    break
                p = _ws(data, p, end)
                if p >= end or data[p] != 58:
                    ok = False
                    break
                p = _ws(data, p + 1, end)
                if p >= end:
                    ok = False
                    break
                if _eq(data, ks, ke, _K_TYPE):
                    if seen & 1 or data[p] != 34:
                        ok = False
                        break
                    seen |= 1
                    vs = p + 1
                    ve, p = _string(data, p, end)
                    if ve < 0:
                        ok = False
                        break
                    if _eq(data, vs, ve, _V_UPDATE):
                        mtype = 1
                    elif _eq(data, vs, ve, _V_HEARTBEAT):
                        mtype = 2
                    else:
                        mtype = 3
                elif _eq(data, ks, ke, _K_SEQ):
                    if seen & 2:
                        ok = False
                        break
                    seen |= 2
                    seq, p = _integer(data, p, end)
                    has_seq = True
                elif _eq(data, ks, ke, _K_MS):
                    if seen & 4:
                        ok = False
                        break
                    seen |= 4
                    ms, p = _integer(data, p, end)
                    has_ms = True
                    if p >= 0 and (ms > _MAX_MS or ms < -_MAX_MS):
                        p = -1
                elif _eq(data, ks, ke, _K_EVENTS):
                    if seen & 8 or data[p] != 91:
                        ok = False
                        break
                    seen |= 8
                    p = _ws(data, p + 1, end)
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
                                j = base + n_ch
                                ops[_SIDE, j] = side
                                ops[_PX, j] = px_m
                                ops[_PXD, j] = px_d
                                ops[_SZ, j] = rem_m
                                ops[_SZD, j] = rem_d
                                n_ch += 1
                                p = _ws(data, q, end)
                                if p < end and data[p] == 44:
                                    p = _ws(data, p + 1, end)
                                    continue
                                if p < end and data[p] == 93:
                                    p += 1
                                else:
                                    p = -1
                                break
                            p = _ws(data, p + 1, end)
                            etype = 0
                            side = -1
                            taker = 0
                            tid = NO_ID
                            reason_initial = False
                            px_st = _ABSENT
                            rem_st = _ABSENT
                            amt_st = _ABSENT
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
                                    fe, p = _string(data, p, end)
                                    if fe < 0:
                                        break
                                    p = _ws(data, p, end)
                                    if p >= end or data[p] != 58:
                                        p = -1
                                        break
                                    p = _ws(data, p + 1, end)
                                    if p >= end:
                                        p = -1
                                        break
                                    bit = _event_key(data, fs, fe)
                                    if bit == 0:
                                        p = _scalar(data, p, end)
                                    elif eseen & bit:
                                        p = -1
                                    elif bit == 64:
                                        tid, p = _integer(data, p, end)
                                    elif data[p] != 34:
                                        p = -1
                                    else:
                                        vs = p + 1
                                        ve, p = _string(data, p, end)
                                        if ve < 0:
                                            p = -1
                                        elif bit == 1:
                                            if _eq(data, vs, ve, _V_CHANGE):
                                                etype = 1
                                            elif _eq(data, vs, ve, _V_TRADE):
                                                etype = 2
                                        elif bit == 2:
                                            if _eq(data, vs, ve, _V_BID):
                                                side = BID
                                            elif _eq(data, vs, ve, _V_ASK):
                                                side = ASK
                                        elif bit == 32:
                                            # Taker is opposite the maker (gemini.md section 5).
                                            if _eq(data, vs, ve, _V_BID):
                                                taker = -1
                                            elif _eq(data, vs, ve, _V_ASK):
                                                taker = 1
                                        elif bit == 128:
                                            reason_initial = _eq(data, vs, ve, _V_INITIAL)
                                        elif bit == 4:
                                            px_m, px_d, px_st = _decimal(data, vs, ve)
                                        elif bit == 8:
                                            rem_m, rem_d, rem_st = _decimal(data, vs, ve)
                                        else:
                                            amt_m, amt_d, amt_st = _decimal(data, vs, ve)
                                    if p < 0:
                                        break
                                    eseen |= bit
                                    p = _ws(data, p, end)
                                    if p < end and data[p] == 44:
                                        p = _ws(data, p + 1, end)
                                    elif p < end and data[p] == 125:
                                        p += 1
                                        break
                                    else:
                                        p = -1
                                        break
                            if p < 0:
                                break
                            if etype == 1:
                                initial = initial or reason_initial
                                if side >= 0:
                                    if px_st != _OK or rem_st != _OK:
                                        p = -1
                                        break
                                    j = base + n_ch
                                    ops[_SIDE, j] = side
                                    ops[_PX, j] = px_m
                                    ops[_PXD, j] = px_d
                                    ops[_SZ, j] = rem_m
                                    ops[_SZD, j] = rem_d
                                    n_ch += 1
                            elif etype == 2:
                                if px_st != _OK or amt_st != _OK:
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
                            p = _ws(data, p, end)
                            if p < end and data[p] == 44:
                                p = _ws(data, p + 1, end)
                            elif p < end and data[p] == 93:
                                p += 1
                                break
                            else:
                                p = -1
                                break
                else:
                    p = _scalar(data, p, end)
                if p < 0:
                    ok = False
                    break
                p = _ws(data, p, end)
                if p < end and data[p] == 44:
                    p = _ws(data, p + 1, end)
                elif p < end and data[p] == 125:
                    p += 1
                    break
                else:
                    ok = False
        if not ok or _ws(data, p, end) != end:
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
