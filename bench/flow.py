"""The synthetic order flow: a seeded L2 book and the events that move it.

The book lives on a dense window of price ticks (0.01 USD) around a start
price. Each planned message is either a batch of ordinary changes or a
batch of trades:

- an ordinary change picks a side, then a price at a geometric distance in
  ticks behind that side's touch (or, sometimes, inside the spread), and
  places, grows, shrinks or cancels the level there, so most changes land
  near the touch as in real books;
- a trade takes the best level of the maker side, fully (the next trade of
  the batch then takes the next level: a sweep) or partly; each trade is a
  ``trade`` event followed by its ``change`` with reason ``trade``, the way
  Gemini v1 reports every fill (docs/venues/gemini.md section 1). Which side is hit leans
  back towards the start price, so the price wanders but stays in the window.

Before selected messages the whole book is dumped as ``reason: initial``
changes (a new connection's first message), and after selected messages
the best 50 levels per side are copied out for REST snapshots. Everything is
a pure function of the seed and the plan. The loop is compiled with numba
(already a dependency of the replay engine) because each change depends on
the book left by the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "ASK",
    "BID",
    "CANCEL",
    "CHANGE",
    "FILL",
    "INITIAL",
    "PLACE",
    "REASONS",
    "REST_DEPTH",
    "START_TICK",
    "TRADE",
    "Flow",
    "run_flow",
]

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

BID = 0
ASK = 1
#: Event kinds.
CHANGE = 0
TRADE = 1
#: Change reasons, indexes into :data:`REASONS` (Gemini v1 ``reason``).
PLACE = 0
CANCEL = 1
FILL = 2
INITIAL = 3
REASONS = ("place", "cancel", "trade", "initial")
#: Levels per side in a REST snapshot (Gemini ``/v1/book`` default limit).
REST_DEPTH = 50
#: Start price in ticks (60,000.00 USD).
START_TICK = 6_000_000

_HALF = 400_000  # window half-width in ticks
_MIN_LEVELS = 50  # never thin a side below this
_INITIAL_LEVELS = 1500
_SIZE_STEPS = np.array([100_000_000, 1_000_000, 10_000, 1], np.int64)
_SIZE_MAX = np.array([5, 300, 30_000, 200_000_000], np.int64)


@numba.njit(cache=True)
def _new_size() -> int:
    r = np.random.random()
    k = 0 if r < 0.1 else (1 if r < 0.45 else (2 if r < 0.75 else 3))
    return _SIZE_STEPS[k] * np.random.randint(1, _SIZE_MAX[k] + 1)


@numba.njit(cache=True)
def _rescan(sz: Any, side: int, start: int) -> int:
    """Index of the best non-empty level of *side* at or behind *start*."""
    i = start
    if side == BID:
        while i > 0 and sz[i] == 0:
            i -= 1
    else:
        while i < sz.shape[0] - 1 and sz[i] == 0:
            i += 1
    return i


@numba.njit(cache=True)
def _kernel(
    seed: int,
    plan_trade: Any,
    plan_n: Any,
    initial_before: Any,
    snap_after: Any,
    cap: int,
) -> tuple[Any, ...]:
    np.random.seed(seed)
    w = 2 * _HALF + 1
    lo = START_TICK - _HALF
    sz = np.zeros((2, w), np.int64)
    best = np.zeros(2, np.int64)
    nlev = np.zeros(2, np.int64)
    # Initial book: levels behind each touch with geometric gaps.
    best[BID] = _HALF - 1
    best[ASK] = _HALF + 1
    for s in range(2):
        i = best[s]
        for _ in range(_INITIAL_LEVELS):
            sz[s, i] = _new_size()
            nlev[s] += 1
            step = np.random.geometric(0.45)
            i = i - step if s == BID else i + step
    m = plan_trade.shape[0]
    n_init = int(initial_before.sum())
    n_msg = m + n_init
    msg_initial = np.zeros(n_msg, np.bool_)
    msg_plan = np.full(n_msg, -1, np.int64)
    ev_off = np.zeros(n_msg + 1, np.int64)
    e_kind = np.zeros(cap, np.int8)
    e_side = np.zeros(cap, np.int8)
    e_reason = np.zeros(cap, np.int8)
    e_px = np.zeros(cap, np.int64)
    e_qty = np.zeros(cap, np.int64)
    e_delta = np.zeros(cap, np.int64)
    ns = snap_after.shape[0]
    snap_px = np.zeros((ns, 2, REST_DEPTH), np.int64)
    snap_sz = np.zeros((ns, 2, REST_DEPTH), np.int64)
    snap_n = np.zeros((ns, 2), np.int64)
    e = 0
    out = 0
    si = 0
    ok = True
    for p in range(m + 1):
        # REST snapshots of the book after planned message p - 1.
        while si < ns and snap_after[si] == p - 1:
            for s in range(2):
                i = best[s]
                k = 0
                while k < REST_DEPTH and 0 <= i < w:
                    if sz[s, i] > 0:
                        snap_px[si, s, k] = lo + i
                        snap_sz[si, s, k] = sz[s, i]
                        k += 1
                    i = i - 1 if s == BID else i + 1
                snap_n[si, s] = k
            si += 1
        if p == m:
            break
        if initial_before[p]:
            if e + nlev[0] + nlev[1] > cap:
                ok = False
                break
            msg_initial[out] = True
            for s in range(2):
                for i in range(w):
                    if sz[s, i] > 0:
                        e_kind[e] = CHANGE
                        e_side[e] = s
                        e_reason[e] = INITIAL
                        e_px[e] = lo + i
                        e_qty[e] = sz[s, i]
                        e_delta[e] = sz[s, i]
                        e += 1
            out += 1
            ev_off[out] = e
        if e + 2 * plan_n[p] > cap:
            ok = False
            break
        msg_plan[out] = p
        if plan_trade[p]:
            mid = (best[BID] + best[ASK]) // 2 - _HALF
            lean = min(max(-mid / 20_000.0, -0.3), 0.3)
            s = ASK if np.random.random() < 0.5 + lean else BID
            for j in range(plan_n[p]):
                if nlev[s] <= _MIN_LEVELS:
                    break
                i = best[s]
                old = sz[s, i]
                full = j < plan_n[p] - 1 or np.random.random() < 0.35 or old < 2
                qty = old if full else np.random.randint(1, old)
                e_kind[e] = TRADE
                e_side[e] = s
                e_reason[e] = FILL
                e_px[e] = lo + i
                e_qty[e] = qty
                e += 1
                sz[s, i] = old - qty
                e_kind[e] = CHANGE
                e_side[e] = s
                e_reason[e] = FILL
                e_px[e] = lo + i
                e_qty[e] = old - qty
                e_delta[e] = -qty
                e += 1
                if full:
                    nlev[s] -= 1
                    best[s] = _rescan(sz[s], s, i)
        else:
            for _ in range(plan_n[p]):
                s = BID if np.random.random() < 0.5 else ASK
                spread = best[ASK] - best[BID]
                if spread > 1 and np.random.random() < 0.08:
                    i = best[BID] + np.random.randint(1, spread)
                else:
                    d = np.random.geometric(0.3) - 1
                    i = best[s] - d if s == BID else best[s] + d
                    if i <= 0 or i >= w - 1:
                        i = best[s]
                old = sz[s, i]
                r = np.random.random()
                if old > 0 and r < 0.45 and nlev[s] > _MIN_LEVELS:
                    new, reason = 0, CANCEL
                elif old > 1 and r < 0.7:
                    new, reason = np.random.randint(1, old), CANCEL
                else:
                    new, reason = old + _new_size(), PLACE
                sz[s, i] = new
                e_kind[e] = CHANGE
                e_side[e] = s
                e_reason[e] = reason
                e_px[e] = lo + i
                e_qty[e] = new
                e_delta[e] = new - old
                e += 1
                if old == 0:
                    nlev[s] += 1
                    if (s == BID and i > best[BID]) or (s == ASK and i < best[ASK]):
                        best[s] = i
                elif new == 0:
                    nlev[s] -= 1
                    if i == best[s]:
                        best[s] = _rescan(sz[s], s, i)
        out += 1
        ev_off[out] = e
    return (
        ok,
        msg_initial,
        msg_plan,
        ev_off,
        e_kind[:e],
        e_side[:e],
        e_reason[:e],
        e_px[:e],
        e_qty[:e],
        e_delta[:e],
        snap_px,
        snap_sz,
        snap_n,
    )


@dataclass(frozen=True)
class Flow:
    """The generated messages and events, as numbers.

    Messages are the planned ones plus an ``initial`` dump before each
    planned message flagged for it; ``msg_plan`` maps each to its planned
    index (-1 for a dump). Events of message ``k`` are ``ev_off[k]:ev_off[k+1]``.
    ``qty`` is ``remaining`` for a change and ``amount`` for a trade; prices
    are ticks of 0.01, sizes units of 1e-8. Snapshot ``k`` holds
    ``snap_n[k, side]`` levels per side, best first.
    """

    msg_initial: npt.NDArray[np.bool_]
    msg_plan: I64
    ev_off: I64
    kind: I8
    side: I8
    reason: I8
    px: I64
    qty: I64
    delta: I64
    snap_px: I64
    snap_sz: I64
    snap_n: I64


def run_flow(
    seed: int,
    plan_trade: npt.NDArray[np.bool_],
    plan_n: I64,
    initial_before: npt.NDArray[np.bool_],
    snap_after: I64,
) -> Flow:
    """Run the order flow over a plan.

    ``plan_trade[p]``/``plan_n[p]``: planned message *p* is a batch of
    ``plan_n[p]`` trades or ordinary changes. ``initial_before[p]``: dump the
    book before it. ``snap_after`` (sorted): take a REST snapshot after each
    listed planned message (-1: before the first).
    """
    cap = int(2 * plan_n.sum()) + 4 * _INITIAL_LEVELS * (int(initial_before.sum()) + 1)
    while True:
        res = _kernel(seed, plan_trade, plan_n, initial_before, snap_after, cap)
        if res[0]:
            return Flow(*res[1:])
        cap *= 2
