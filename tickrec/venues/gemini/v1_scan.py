"""A compiled byte scanner for Gemini v1 messages, straight from the Arrow payload buffer.

:class:`~tickrec.venues.gemini.v1_book.GeminiV1Stream` decodes one parsed message
at a time; at some hundred thousand messages per second that is mostly
Python overhead. This scanner reads a run of received messages of one
connection from the payload column's offsets and bytes (zero copy) and
produces the same operations, trades and sequence breaks as the stream
would, with decimal strings turned into exact ``(mantissa, decimals)``
pairs in the kernel: no Python object per message and no float anywhere.

It accepts only what it can decode with certainty, a strict subset of JSON
in the shapes of docs/venues/gemini.md section 1: an object whose keys ``type``,
``socket_sequence``, ``timestampms`` and ``events`` (each at most once) have
the expected types, events that are flat objects with string or integer
values, plain decimal strings (``-?digits[.digits]``, at most 18 significant
digits), and other values that are plain strings, integers, fractions,
``true``, ``false`` or ``null``. Keys may come in any order; unknown keys
are skipped. Anything else (escapes, non-ASCII bytes, nested values,
exponents, prices not positive, negative sizes, more decimals than
:data:`tickrec.values.MAX_DECIMALS`, duplicate keys, malformed JSON, a
message that is not an object) stops the scan at that message, and the
caller decodes it on the general path (``orjson`` and the stream), so
correctness never depends on the scanner: it either agrees with the general
path or declines.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from tickrec.events import (
    ASK,
    BID,
    NO_ID,
    NO_TS,
    OP_CLEAR,
    OP_INVALID,
    OP_SET,
    OP_VALID,
    Columns,
    RawRows,
)
from tickrec.json_bytes import (
    ABSENT,
    OK,
    address,
    at,
    decimal,
    decimal_value,
    eq,
    integer,
    lit,
    next_item,
    number,
    scalar,
    skip_ws,
    string,
)
from tickrec.values import MAX_DECIMALS

__all__ = ["scan"]

I64 = npt.NDArray[np.int64]

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
# The layouts Gemini sends updates, changes and trades in (docs/venues/gemini.md section 1),
# tried first: keys in this order, no spaces.
_L_UPDATE = lit(b'{"type":"update","eventId":')
_L_TIMESTAMP = lit(b',"timestamp":')
_L_MS = lit(b',"timestampms":')
_L_SEQ = lit(b',"socket_sequence":')
_L_EVENTS = lit(b',"events":[')
_L_CHANGE = lit(b'{"type":"change","side":"')
_L_TRADE = lit(b'{"type":"trade","tid":')
_L_PRICE = lit(b'","price":')
_L_TRADE_PRICE = lit(b',"price":')
_L_REMAINING = lit(b',"remaining":')
_L_DELTA = lit(b',"delta":')
_L_REASON = lit(b',"reason":')
_L_AMOUNT = lit(b',"amount":')
_L_MAKER = lit(b',"makerSide":"')

# Event kinds.
_OTHER, _CHANGE, _TRADE = 0, 1, 2


@numba.njit(cache=True)
def _update_layout(data: Any, p: int, end: int) -> tuple[int, int, int]:
    """The keys of an update before its events, in Gemini's layout: ``(position, seq, ms)``.

    The position is just inside the events array, or -1 if the message is
    laid out in any other way (the general parser then reads it). The
    ``eventId`` and ``timestamp`` values are skipped, as unknown keys are.
    """
    q = number(data, at(data, p, end, _L_UPDATE), end)
    q = number(data, at(data, q, end, _L_TIMESTAMP), end)
    ms, q = integer(data, at(data, q, end, _L_MS), end)
    seq, q = integer(data, at(data, q, end, _L_SEQ), end)
    q = at(data, q, end, _L_EVENTS)
    if q < 0 or ms > _MAX_MS or ms < -_MAX_MS:
        return -1, 0, 0
    return q, seq, ms


@numba.njit(cache=True)
def _side(data: Any, p: int, end: int) -> int:
    """``BID`` or ``ASK`` for the bytes ``bid"`` or ``ask"`` at ``p``, else -1."""
    if p < 0 or p + 4 > end or data[p + 3] != 34:
        return -1
    if eq(data, p, p + 3, _V_BID):
        return BID
    if eq(data, p, p + 3, _V_ASK):
        return ASK
    return -1


@numba.njit(cache=True)
def _in_range(px_m: int, px_d: int, sz_m: int, sz_d: int) -> bool:
    """A positive price and a size not negative, in :func:`tickrec.values.decimal_pair`'s limits.

    The scanner's decimals never have more than 18 significant digits; this
    adds the rest of the limits, so the scanner declines what the general
    path reports as a bad value.
    """
    return px_m > 0 and sz_m >= 0 and px_d <= MAX_DECIMALS and sz_d <= MAX_DECIMALS


@numba.njit(cache=True)
def _change_layout(data: Any, p: int, end: int) -> tuple[int, int, int, int, int, int, bool]:
    """A change event in Gemini's layout, the common case.

    ``(position after, side, price mantissa, decimals, size mantissa,
    decimals, initial)``; position -1 if the event is laid out in any other
    way (the general event parser then reads it).
    """
    q = at(data, p, end, _L_CHANGE)
    side = _side(data, q, end)
    if side < 0:
        return -1, 0, 0, 0, 0, 0, False
    px_m, px_d, _, q = decimal_value(data, at(data, q + 3, end, _L_PRICE), end)
    sz_m, sz_d, _, q = decimal_value(data, at(data, q, end, _L_REMAINING), end)
    q = at(data, q, end, _L_DELTA)
    if q < 0 or q >= end or data[q] != 34 or not _in_range(px_m, px_d, sz_m, sz_d):
        return -1, 0, 0, 0, 0, 0, False
    q = at(data, string(data, q, end)[1], end, _L_REASON)
    if q < 0 or q >= end or data[q] != 34:
        return -1, 0, 0, 0, 0, 0, False
    e, q = string(data, q, end)
    if e < 0 or q >= end or data[q] != 125:
        return -1, 0, 0, 0, 0, 0, False
    initial = eq(data, e - 7, e, _V_INITIAL) and data[e - 8] == 34
    return q + 1, side, px_m, px_d, sz_m, sz_d, initial


@numba.njit(cache=True)
def _trade_layout(data: Any, p: int, end: int) -> tuple[int, int, int, int, int, int, int]:
    """A trade event in Gemini's layout, with a ``bid`` or ``ask`` maker.

    ``(position after, tid, price mantissa, decimals, amount mantissa,
    decimals, taker side)``; position -1 if the event is laid out in any
    other way (the general event parser then reads it).
    """
    tid, q = integer(data, at(data, p, end, _L_TRADE), end)
    px_m, px_d, _, q = decimal_value(data, at(data, q, end, _L_TRADE_PRICE), end)
    amt_m, amt_d, _, q = decimal_value(data, at(data, q, end, _L_AMOUNT), end)
    q = at(data, q, end, _L_MAKER)
    maker = _side(data, q, end)
    if maker < 0 or not _in_range(px_m, px_d, amt_m, amt_d) or q + 5 > end or data[q + 4] != 125:
        return -1, 0, 0, 0, 0, 0, 0
    # Taker is opposite the maker (docs/venues/gemini.md section 5).
    return q + 5, tid, px_m, px_d, amt_m, amt_d, (1 if maker == ASK else -1)


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def _event(data: Any, p: int, end: int) -> tuple[int, int, int, int, int, int, int, int, int, bool]:
    """Any event object at ``p``, keys in any order.

    ``(position after, kind, side, price mantissa, decimals, size mantissa,
    decimals, taker side, tid, initial)``: for a change the size is
    ``remaining`` and side -1 if it is neither ``bid`` nor ``ask`` (the
    stream skips it); for a trade the size is ``amount``. Position -1 to
    decline the message.
    """
    kind = _OTHER
    side = -1
    taker = 0
    tid = NO_ID
    initial = False
    px_st = rem_st = amt_st = ABSENT
    px_m = px_d = rem_m = rem_d = amt_m = amt_d = 0
    seen = 0
    p = skip_ws(data, p + 1, end)
    if p < end and data[p] == 125:
        p += 1
    else:
        while True:
            if p >= end or data[p] != 34:
                return -1, 0, 0, 0, 0, 0, 0, 0, 0, False
            fs = p + 1
            fe, p = string(data, p, end)
            if fe < 0:
                return -1, 0, 0, 0, 0, 0, 0, 0, 0, False
            p = skip_ws(data, p, end)
            if p >= end or data[p] != 58:
                return -1, 0, 0, 0, 0, 0, 0, 0, 0, False
            p = skip_ws(data, p + 1, end)
            if p >= end:
                return -1, 0, 0, 0, 0, 0, 0, 0, 0, False
            bit = _event_key(data, fs, fe)
            if bit == 0:
                p = scalar(data, p, end)
            elif seen & bit:
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
                        kind = _CHANGE
                    elif eq(data, vs, ve, _V_TRADE):
                        kind = _TRADE
                elif bit == 2:
                    if eq(data, vs, ve, _V_BID):
                        side = BID
                    elif eq(data, vs, ve, _V_ASK):
                        side = ASK
                elif bit == 32:
                    # Taker is opposite the maker (docs/venues/gemini.md section 5).
                    if eq(data, vs, ve, _V_BID):
                        taker = -1
                    elif eq(data, vs, ve, _V_ASK):
                        taker = 1
                elif bit == 128:
                    initial = eq(data, vs, ve, _V_INITIAL)
                elif bit == 4:
                    px_m, px_d, px_st = decimal(data, vs, ve)
                elif bit == 8:
                    rem_m, rem_d, rem_st = decimal(data, vs, ve)
                else:
                    amt_m, amt_d, amt_st = decimal(data, vs, ve)
            seen |= bit
            p, more = next_item(data, p, end, 125)
            if p < 0:
                return -1, 0, 0, 0, 0, 0, 0, 0, 0, False
            if not more:
                break
    if kind == _CHANGE:
        if side >= 0 and (px_st != OK or rem_st != OK or not _in_range(px_m, px_d, rem_m, rem_d)):
            return -1, 0, 0, 0, 0, 0, 0, 0, 0, False
        return p, kind, side, px_m, px_d, rem_m, rem_d, 0, tid, initial
    if kind == _TRADE:
        if px_st != OK or amt_st != OK or not _in_range(px_m, px_d, amt_m, amt_d):
            return -1, 0, 0, 0, 0, 0, 0, 0, 0, False
        return p, kind, -1, px_m, px_d, amt_m, amt_d, taker, tid, False
    return p, kind, -1, 0, 0, 0, 0, 0, 0, False


@numba.njit(cache=True)
def _events(
    data: Any, p: int, end: int, ops: Any, n_ops: int, trades: Any, n_tr: int, ts: int, grp: int
) -> tuple[int, int, int, bool]:
    """The events array, ``p`` just inside it: ``(position after, changes, trades, initial)``.

    Changes are stored as operations from *n_ops* on and trades from *n_tr*
    on, with their time and row but not yet their exchange time (nor, for
    changes, whether they are a snapshot). Position -1 to decline the message.
    """
    o_ts, o_grp, o_op, o_side, o_px, o_pxd, o_sz, o_szd, _, _ = ops
    t_ts, t_grp, _, t_px, t_pxd, t_sz, t_szd, t_side, t_tid, t_hist = trades
    n_ch = 0
    n_new_tr = 0
    initial = False
    p = skip_ws(data, p, end)
    if p < end and data[p] == 93:
        return p + 1, 0, 0, False
    while True:
        if p >= end or data[p] != 123:
            return -1, 0, 0, False
        tid = NO_ID
        taker = 0
        q, side, px_m, px_d, sz_m, sz_d, reason_initial = _change_layout(data, p, end)
        if q >= 0:
            kind = _CHANGE
        else:
            q, tid, px_m, px_d, sz_m, sz_d, taker = _trade_layout(data, p, end)
            if q >= 0:
                kind = _TRADE
            else:
                q, kind, side, px_m, px_d, sz_m, sz_d, taker, tid, reason_initial = _event(
                    data, p, end
                )
                if q < 0:
                    return -1, 0, 0, False
        if kind == _CHANGE:
            initial = initial or reason_initial
            if side >= 0:
                j = n_ops + n_ch
                o_ts[j] = ts
                o_grp[j] = grp
                o_op[j] = OP_SET
                o_side[j] = side
                o_px[j] = px_m
                o_pxd[j] = px_d
                o_sz[j] = sz_m
                o_szd[j] = sz_d
                n_ch += 1
        elif kind == _TRADE:
            j = n_tr + n_new_tr
            t_ts[j] = ts
            t_grp[j] = grp
            t_px[j] = px_m
            t_pxd[j] = px_d
            t_sz[j] = sz_m
            t_szd[j] = sz_d
            t_side[j] = taker
            t_tid[j] = tid
            t_hist[j] = 0
            n_new_tr += 1
        p, more = next_item(data, q, end, 93)
        if p < 0:
            return -1, 0, 0, False
        if not more:
            return p, n_ch, n_new_tr, initial


@numba.njit(cache=True, nogil=True)
def _scan(
    payload: Any,
    offsets: Any,
    start: int,
    stop: int,
    recv: Any,
    vseq: Any,
    vseq_ok: Any,
    received: Any,
    grp0: int,
    state: Any,
    ops: Any,
    n_ops: int,
    trades: Any,
    n_tr: int,
    breaks: Any,
    n_br: int,
    counts: Any,
) -> tuple[int, int, int, int, int]:
    """Scan rows ``start:stop`` (see :func:`scan`): ``(row, ops, trades, breaks, status)``."""
    data = address(payload)
    o_ts, o_grp, o_op, o_side, o_px, o_pxd, o_sz, o_szd, o_exch, o_snap = ops
    t_exch = trades[2]
    cap_ops = len(o_ts)
    cap_tr = len(trades[0])
    cap_br = len(breaks[0])
    for r in range(start, stop):
        if not received[r]:
            continue
        p = offsets[r]
        end = offsets[r + 1]
        # Every operation or trade takes well over 16 bytes of text.
        room = (end - p) // 16 + 3
        if n_ops + room + 3 > cap_ops or n_tr + room > cap_tr or n_br >= cap_br:
            return r, n_ops, n_tr, n_br, FULL
        ts = recv[r]
        grp = grp0 + r
        # Changes are stored from n_ops on, moved up later if control operations precede them.
        n_ch = 0
        n_new_tr = 0
        initial = False
        mtype = 3  # no "type" key: "other"
        seen = 0
        has_seq = False
        seq = 0
        has_ms = False
        ms = 0
        p = skip_ws(data, p, end)
        if p >= end or data[p] != 123:
            return r, n_ops, n_tr, n_br, DECLINED
        events, seq, ms = _update_layout(data, p, end)
        if events >= 0:
            mtype = 1
            seen = 15
            has_seq = has_ms = True
            p, n_ch, n_new_tr, initial = _events(
                data, events, end, ops, n_ops, trades, n_tr, ts, grp
            )
            p, more = next_item(data, p, end, 125)
        else:
            p = skip_ws(data, p + 1, end)
            more = p >= end or data[p] != 125
            if not more:
                p += 1
        while more:
            # One key of the message and its value.
            if p >= end or data[p] != 34:
                p = -1
                break
            ks = p + 1
            ke, p = string(data, p, end)
            if ke < 0:
                break
            p = skip_ws(data, p, end)
            if p >= end or data[p] != 58:
                p = -1
                break
            p = skip_ws(data, p + 1, end)
            if p >= end:
                p = -1
                break
            if eq(data, ks, ke, _K_TYPE):
                if seen & 1 or data[p] != 34:
                    p = -1
                    break
                seen |= 1
                vs = p + 1
                ve, p = string(data, p, end)
                if eq(data, vs, ve, _V_UPDATE):
                    mtype = 1
                elif eq(data, vs, ve, _V_HEARTBEAT):
                    mtype = 2
                else:
                    mtype = 3
            elif eq(data, ks, ke, _K_SEQ):
                if seen & 2:
                    p = -1
                    break
                seen |= 2
                seq, p = integer(data, p, end)
                has_seq = True
            elif eq(data, ks, ke, _K_MS):
                if seen & 4:
                    p = -1
                    break
                seen |= 4
                ms, p = integer(data, p, end)
                has_ms = True
                if ms > _MAX_MS or ms < -_MAX_MS:
                    p = -1
            elif eq(data, ks, ke, _K_EVENTS):
                if seen & 8 or data[p] != 91:
                    p = -1
                    break
                seen |= 8
                p, n_ch, n_new_tr, initial = _events(
                    data, p + 1, end, ops, n_ops, trades, n_tr, ts, grp
                )
            else:
                p = scalar(data, p, end)
            p, more = next_item(data, p, end, 125)
        if p < 0 or skip_ws(data, p, end) != end:
            return r, n_ops, n_tr, n_br, DECLINED

        # The message is understood: emit it as GeminiV1Stream.on_message would.
        if vseq_ok[r]:
            has_seq = True
            seq = vseq[r]
        broken = False
        if has_seq:
            if state[0] and state[1] == _INT64_MAX:
                return r, n_ops, n_tr, n_br, DECLINED
            if state[0] and seq != state[1] + 1:
                breaks[0][n_br] = state[2]
                breaks[1][n_br] = ts
                breaks[2][n_br] = grp
                breaks[3][n_br] = state[1] + 1
                breaks[4][n_br] = seq
                n_br += 1
                broken = True
            state[0] = 1
            state[1] = seq
            state[2] = ts
        if mtype != 1:
            n_ch = 0
        lead = broken + (mtype == 1 and initial)
        if lead and n_ch:
            # Control operations come first: move the changes up to make room.
            for k in range(n_ops + n_ch - 1, n_ops - 1, -1):
                o_ts[k + lead] = ts
                o_grp[k + lead] = grp
                o_op[k + lead] = OP_SET
                o_side[k + lead] = o_side[k]
                o_px[k + lead] = o_px[k]
                o_pxd[k + lead] = o_pxd[k]
                o_sz[k + lead] = o_sz[k]
                o_szd[k + lead] = o_szd[k]
        if broken:
            _control(ops, n_ops, ts, grp, OP_INVALID)
            n_ops += 1
        if mtype == 1:
            exch = ms * 1_000_000 if has_ms else NO_TS
            if initial:
                _control(ops, n_ops, ts, grp, OP_CLEAR)
                n_ops += 1
            for k in range(n_ops, n_ops + n_ch):
                o_exch[k] = exch
                o_snap[k] = initial
            n_ops += n_ch
            if initial:
                _control(ops, n_ops, ts, grp, OP_VALID)
                n_ops += 1
            for k in range(n_tr, n_tr + n_new_tr):
                t_exch[k] = exch
            n_tr += n_new_tr
            counts[0] += 1
        elif mtype == 2:
            counts[1] += 1
        else:
            counts[2] += 1
    return stop, n_ops, n_tr, n_br, DONE


@numba.njit(cache=True)
def _control(ops: Any, j: int, ts: int, grp: int, op: int) -> None:
    """Store control operation *op* as operation *j*."""
    o_ts, o_grp, o_op, o_side, o_px, o_pxd, o_sz, o_szd, o_exch, o_snap = ops
    o_ts[j] = ts
    o_grp[j] = grp
    o_op[j] = op
    o_side[j] = 0
    o_px[j] = 0
    o_pxd[j] = 0
    o_sz[j] = 0
    o_szd[j] = 0
    o_exch[j] = NO_TS
    o_snap[j] = 0


def scan(
    rows: RawRows,
    start: int,
    stop: int,
    state: I64,
    ops: Columns,
    trades: Columns,
    breaks: Columns,
    counts: I64,
) -> tuple[int, bool]:
    """Decode the received v1 messages among rows ``start:stop`` (one connection) until declined.

    Appends the operations, trades and sequence breaks to *ops*, *trades*
    and *breaks* (layouts :data:`~tickrec.events.OP_COLUMNS`,
    :data:`~tickrec.events.TRADE_COLUMNS`,
    :data:`~tickrec.events.BREAK_COLUMNS`), growing them as needed, and
    adds the messages by kind (``update``, ``heartbeat``, ``other``) to
    *counts*. *state* is ``[has previous, previous sequence, previous time]``
    of the connection, updated in place; a stored ``venue_seq`` is preferred
    to the message's ``socket_sequence``, as in the stream.

    Returns ``(row, declined)``: the first row not decoded (*stop* when all
    were), and whether the scan stopped at a message it declines (decode
    ``row`` on the general path).
    """
    row = start
    while True:
        row, ops.n, trades.n, breaks.n, status = _scan(
            rows.data,
            rows.offsets,
            row,
            stop,
            rows.recv,
            rows.venue_seq,
            rows.venue_seq_ok,
            rows.received,
            rows.grp0,
            state,
            ops.arrays,
            ops.n,
            trades.arrays,
            trades.n,
            breaks.arrays,
            breaks.n,
            counts,
        )
        if status != FULL:
            return row, status == DECLINED
        # Room for the largest message this row could be (see _scan).
        room = int(rows.offsets[row + 1] - rows.offsets[row]) // 16 + 6
        ops.reserve(room)
        trades.reserve(room)
        breaks.reserve(1)
