"""Overlapping connections (replay.overlap) and the coverage identity, on real part files.

Two runs capturing the same v1 feed (two recorders on one dataset, two
imports of one capture), and a make-before-break reconnect inside one run,
put two connections side by side in a partition. The replay follows one
connection in sync at a time and switches when it loses sync, so: no false
gaps, trades once, the same outputs whatever the files, and a gap exactly
where no connection is in sync. The property test at the end checks, over
random small datasets, that the valid time and the gaps account for the
span exactly (docs/architecture.md section 2.5).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import replay
from replay.gaps import MASKING_KINDS, Gap, crossed
from tickrec import contract
from tickrec.contract import Row, event_payload, rows_to_table

DATE = "2026-11-23"
T0 = int(pd.Timestamp(DATE, tz="UTC").value) + 3600 * 10**9  # 01:00 UTC
S = 10**9
URL = "wss://api.gemini.com/v1/marketdata/BTCUSD?heartbeat=true"


def at(seconds: float) -> int:
    return T0 + round(seconds * S)


class Run:
    """Contract rows of one recorder run on one v1 symbol; connections numbered from 1."""

    def __init__(self, run_id: str, lag: float = 0.0, t0: int = T0) -> None:
        self.run_id, self.lag, self.t0 = run_id, lag, t0
        self.rows: list[Row] = []
        self.conn = 0
        self.sock = 0

    def _row(self, t: float, conn: int, source: str, payload: str, **kw: object) -> None:
        ns = self.t0 + round((t + self.lag) * S)
        self.rows.append(
            Row(ns, len(self.rows), self.run_id, conn, "gemini.v1", source, payload, **kw)
        )

    def event(self, t: float, kind: str, run_level: bool = False, **details: object) -> None:
        self._row(t, 0 if run_level else self.conn, "event", event_payload(kind, **details))

    def connect(self, t: float) -> None:
        self.conn += 1
        self.sock = 0
        self.event(t, "connect", url=URL)

    def ws(self, t: float, msg: dict[str, object], skip: int = 0) -> None:
        self.sock += skip
        msg = {**msg, "socket_sequence": self.sock}
        self.sock += 1
        self._row(t, self.conn, "ws", json.dumps(msg), venue_seq=msg["socket_sequence"])

    def initial(self, t: float, bid: str = "100.00") -> None:
        events = [
            {"type": "change", "reason": "initial", "side": side, "price": p,
             "remaining": "1", "delta": "1"}
            for side, p in (("bid", bid), ("ask", "101.00"))
        ]  # fmt: skip
        self.ws(t, {"type": "update", "eventId": 1, "events": events})

    def change(self, t: float, price: str, size: str, skip: int = 0) -> None:
        ev = {"type": "change", "reason": "place", "side": "bid", "price": price,
              "remaining": size, "delta": size}  # fmt: skip
        ms = (self.t0 + round(t * S)) // 10**6
        self.ws(t, {"type": "update", "eventId": 2, "timestampms": ms, "events": [ev]}, skip)

    def trade(self, t: float, tid: int) -> None:
        ev = {"type": "trade", "tid": tid, "price": "100.50", "amount": "1", "makerSide": "ask"}
        ms = (self.t0 + round(t * S)) // 10**6
        self.ws(t, {"type": "update", "eventId": 3, "timestampms": ms, "events": [ev]})

    def write(self, root: Path, symbol: str = "BTCUSD") -> None:
        contract.write_part(root, "gemini", symbol, self.run_id, 0, rows_to_table(self.rows))


def market(
    run: Run,
    out: tuple[float, float] | None = None,
    skip_at: float | None = None,
    end: float = 20.0,
) -> Run:
    """The same feed on every run: a change and a trade each second.

    *out* drops the connection (a ``disconnect`` event) at ``out[0]`` and
    reconnects with a fresh initial book at ``out[1]``; *skip_at* loses one
    ``socket_sequence`` there (a sequence break, and the recorder reconnects
    half a second later).
    """
    run.event(0.0, "run_start", run_level=True)
    run.connect(0.5)
    run.initial(1.0)
    down = False
    for k in range(2, int(end)):
        if out is not None and out[0] <= k < out[1]:
            if not down:
                run.event(out[0], "disconnect", reason="closed by peer")
                down = True
            continue
        if down and out is not None:
            run.connect(out[1] - 0.25)
            run.initial(out[1], bid=f"{100 - k}.00")
            down = False
        run.change(k, f"{100 - k}.00", "1", skip=int(skip_at == k))
        if skip_at == k:
            run.event(k + 0.25, "gap", expected=run.sock - 2, got=run.sock - 1)
            run.event(k + 0.25, "disconnect", reason="gap")
            run.connect(k + 0.3)
            run.initial(k + 0.5, bid=f"{100 - k}.00")
        run.trade(k + 0.5, tid=k)
    run.event(end, "shutdown", run_level=True, why="signal")
    return run


def open_day(root: Path, cache: bool = False) -> replay.Day:
    return replay.open(DATE, "BTCUSD", data=root, cache=cache)


def gaps(day: replay.Day) -> list[tuple[str, int, int]]:
    return [(g.kind, g.start, g.end) for g in day.gap_list()]


LEAD_IN = [("no_connection", at(0), at(0.5)), ("unsynced", at(0.5), at(1))]


def outputs(day: replay.Day) -> tuple[object, ...]:
    return (
        day.snapshot_table(depth=5, every="250ms"),
        day.snapshot_table(depth=2, every=0),
        day.gap_list(),
        day.trades(exact=True).to_dict("list"),
        day.valid_ns,
    )


def same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return all(x.equals(y) if hasattr(x, "equals") else x == y for x, y in zip(a, b, strict=True))


def test_two_identical_runs_replay_as_one(tmp_path: Path) -> None:
    market(Run("run-a")).write(tmp_path / "one")
    for name in ("run-a", "run-b"):
        market(Run(name)).write(tmp_path / "two")
    one, two = open_day(tmp_path / "one"), open_day(tmp_path / "two")
    assert gaps(one) == LEAD_IN
    assert same(outputs(two), outputs(one))
    assert len(two.trades()) == len(one.trades()) == 18  # not doubled
    assert two.summary()["gaps"] == one.summary()["gaps"]
    # the cache gives the same (written, then read)
    assert same(outputs(open_day(tmp_path / "two", cache=True)), outputs(two))
    assert same(outputs(open_day(tmp_path / "two", cache=True)), outputs(two))


def test_outputs_do_not_depend_on_the_files(tmp_path: Path) -> None:
    """Files written in either order, and the two runs' roles swapped, give one result."""
    a = market(Run("run-a", lag=0.001), out=(6, 9))
    b = market(Run("run-b", lag=0.002), skip_at=12)
    a.write(tmp_path / "ab")
    b.write(tmp_path / "ab")
    b.write(tmp_path / "ba")
    a.write(tmp_path / "ba")
    ab, ba = open_day(tmp_path / "ab"), open_day(tmp_path / "ba")
    assert same(outputs(ab), outputs(ba))
    # the same feeds under swapped names: the same book, trades and gaps
    a2 = market(Run("run-b", lag=0.001), out=(6, 9))
    b2 = market(Run("run-a", lag=0.002), skip_at=12)
    b2.write(tmp_path / "swapped")
    a2.write(tmp_path / "swapped")
    swapped = open_day(tmp_path / "swapped")
    assert same(outputs(swapped)[:2], outputs(ab)[:2])
    assert gaps(swapped) == gaps(ab)


def test_one_run_dropping_out_leaves_no_gap(tmp_path: Path) -> None:
    market(Run("run-a"), out=(6, 9)).write(tmp_path)
    market(Run("run-b", lag=0.001)).write(tmp_path)
    day = open_day(tmp_path)
    assert gaps(day) == LEAD_IN
    assert day.valid_ns == at(20.001) - at(1)
    clean = Run("run-c")
    market(clean).write(tmp_path / "clean")
    ref = open_day(tmp_path / "clean")
    # the book is the clean one at every grid time (a v1 change lands at the same time)
    for t in (2.5, 5.5, 6.5, 8.9, 9.5, 15.5):
        assert day.book_at(at(t)).bids.tolist() == ref.book_at(at(t)).bids.tolist()
        assert day.book_at(at(t)).valid
    assert len(day.trades()) == len(ref.trades())


def test_a_sequence_break_on_the_followed_run_switches_without_a_gap(tmp_path: Path) -> None:
    market(Run("run-a"), skip_at=7).write(tmp_path)
    market(Run("run-b", lag=0.001)).write(tmp_path)
    day = open_day(tmp_path)
    assert gaps(day) == LEAD_IN
    assert day.decoded.breaks == []  # the standby took over at the last good message
    kinds = [m.kind for m in day.decoded.markers]
    assert "follow" in kinds


def test_both_runs_out_at_once_is_a_gap_exactly_while_neither_is_in_sync(tmp_path: Path) -> None:
    market(Run("run-a"), out=(5, 9)).write(tmp_path)
    market(Run("run-b", lag=0.001), out=(7, 11)).write(tmp_path)
    day = open_day(tmp_path)
    # run-a is gone from 5 to its new book at 9; run-b from 7.001 to 11.001
    assert gaps(day) == [*LEAD_IN, ("disconnect", at(7.001), at(9))]
    assert day.valid_ns == (at(20) - at(1)) - (at(9) - at(7.001)) + (at(20.001) - at(20))
    assert not day.book_at(at(8)).valid and day.book_at(at(9)).valid


def test_make_before_break_reconnect_in_one_run(tmp_path: Path) -> None:
    """The run opens its next connection before closing the old one: no gap."""
    run = Run("run-a")
    run.event(0.0, "run_start", run_level=True)
    run.connect(0.5)
    run.initial(1.0)
    old = run.conn
    for k in range(2, 12):
        run.change(k, f"{100 - k}.00", "1")
    old_sock = run.sock
    run.connect(11.5)  # the new connection
    run.initial(12.0, bid="89.00")
    new_sock = run.sock
    run.change(12.5, "88.00", "1")
    new_sock = run.sock
    run.conn, run.sock = old, old_sock  # the old one still delivers a little
    run.change(12.6, "88.00", "1")
    run.event(13.0, "disconnect", reason="replaced")
    run.conn, run.sock = old + 1, new_sock
    for k in range(14, 20):
        run.change(k, f"{100 - k}.00", "1")
    run.event(20.0, "shutdown", run_level=True, why="signal")
    run.rows.sort(key=lambda r: r.recv_ns)
    run.rows = [r._replace(seq=k) for k, r in enumerate(run.rows)]
    run.write(tmp_path)
    day = open_day(tmp_path)
    assert gaps(day) == LEAD_IN
    assert day.valid_ns == at(20) - at(1)
    # the old connection is followed while it is in sync, then the new one's book
    assert day.book_at(at(12.7)).bids.tolist()[:2] == [[100.0, 1.0], [98.0, 1.0]]
    assert day.book_at(at(13.5)).bids.tolist() == [[89.0, 1.0], [88.0, 1.0]]
    assert [m.kind for m in day.decoded.markers if m.kind in ("follow", "reset", "lost")] == [
        "reset",
        "follow",
        "lost",  # the shutdown, the last row
    ]


# --- the coverage identity over random datasets ------------------------------------------


def _union_ns(gaps: list[Gap]) -> int:
    total, reach = 0, None
    for a, z in sorted((g.start, g.end) for g in gaps):
        if reach is None or a > reach:
            total += z - a
            reach = z
        elif z > reach:
            total += z - reach
            reach = z
    return total


def _valid_from_states(day: replay.Day) -> int:
    """Valid time measured from the book's own states, apart from the gap list's own union.

    The book's own flag (and not crossed) holds from each status row to the
    next; the masking gaps take their time away. ``unsynced`` and
    ``no_connection`` play no part, so this checks they cover exactly the rest.
    """
    first, last = day.span
    status = day._book_status
    own = status.valid & ~crossed(status)
    ts = [*status.ts.clip(first, last).tolist(), last]
    good = [(ts[k], ts[k + 1]) for k in range(len(own)) if own[k] and ts[k + 1] > ts[k]]
    masked = sorted((g.start, g.end) for g in day.gap_list() if g.kind in MASKING_KINDS)
    total = 0
    for a, z in good:
        cut = 0
        reach = a
        for lo, hi in masked:
            lo, hi = max(lo, reach), min(hi, z)
            if hi > lo:
                cut += hi - lo
                reach = hi
        total += z - a - cut
    return total


_conn = st.fixed_dictionaries(
    {
        "connect_event": st.booleans(),
        "initial": st.sampled_from(["first", "late", "none"]),
        "messages": st.integers(1, 6),
        "step_ms": st.sampled_from([0, 1, 50, 700, 12_000]),
        "skip": st.one_of(st.none(), st.integers(0, 5)),
        "end": st.sampled_from(["disconnect", "stale", "none"]),
        "pause_ms": st.sampled_from([0, 10, 3000]),
    }
)
_run = st.fixed_dictionaries(
    {
        "start_ms": st.integers(0, 3000),
        "run_start": st.booleans(),
        "conns": st.lists(_conn, min_size=0, max_size=3),
        "loss": st.one_of(st.none(), st.tuples(st.integers(-5000, 30_000), st.integers(0, 8000))),
        "shutdown": st.booleans(),
    }
)


def _random_run(run_id: str, spec: dict, t0: int) -> Run:
    run = Run(run_id, t0=t0)
    t = spec["start_ms"] / 1000
    if spec["run_start"]:
        run.event(t, "run_start", run_level=True)
    for c in spec["conns"]:
        t += c["pause_ms"] / 1000
        if c["connect_event"]:
            run.connect(t)
        else:
            run.conn += 1
            run.sock = 1000  # a connection that began before the partition
        for k in range(c["messages"]):
            t += c["step_ms"] / 1000
            if (c["initial"] == "first" and k == 0) or (c["initial"] == "late" and k == 2):
                run.initial(t, bid=f"{100 - k}.00")
            else:
                run.change(t, f"{90 + k}.00", str(k % 3), skip=int(c["skip"] == k))
        t += c["step_ms"] / 1000
        if c["end"] != "none":
            run.event(t, c["end"])
    if spec["loss"] is not None:
        start, length = spec["loss"]
        lo = run.t0 + start * 10**6
        run.event(t, "journal_loss", run_level=True, start_ns=lo, end_ns=lo + length * 10**6)
    if spec["shutdown"]:
        t += 0.001
        run.event(t, "shutdown", run_level=True)
    return run


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    runs=st.lists(_run, min_size=1, max_size=3),
    day=st.dates(dt.date(2020, 1, 1), dt.date(2035, 12, 31)),
    hour=st.integers(0, 23),
    probes=st.lists(st.floats(0, 1), min_size=3, max_size=3),
    before=st.sampled_from([None, 1000, 998]),
)
def test_valid_time_and_gaps_account_for_the_span(
    tmp_path_factory: object,
    runs: list[dict],
    day: dt.date,
    hour: int,
    probes: list[float],
    before: int | None,
) -> None:
    """*before*: every run's connection 1 was in sync at the end of the previous date, its
    last ``socket_sequence`` one before *before* (1000 follows on; 998 is a break), and is
    carried over midnight where the day holds its rows."""
    midnight = int(pd.Timestamp(day, tz="UTC").value)
    t0 = midnight + min(hour * 3600, 86_000) * S
    root = Path(tmp_path_factory.mktemp("prop"))  # type: ignore[attr-defined]
    written = 0
    for k, spec in enumerate(runs):
        run = _random_run(f"run-{k}", spec, t0)
        if run.rows:
            run.write(root)
            written += 1
        if before is not None:
            prev = Run(f"run-{k}", t0=midnight)
            prev.conn, prev.sock = 1, before - 2
            prev.initial(-2.0)
            prev.change(-1.0, "99.00", "2")
            prev.write(root)
    if not written:
        return
    d = replay.open(day.isoformat(), "BTCUSD", data=root, cache=False)
    if d.carried:
        assert before is not None and d.span[0] == midnight
        rows = [m.ts for m in d.decoded.markers if m.grp >= 0]
        rows += d.decoded.ops.ts[d.decoded.ops.grp >= 0].tolist()
        if min(rows) > midnight:  # the carried book holds until the first row of the day
            assert d.book_at(midnight).valid
    first, last = d.span
    gap_list = d.gap_list()
    assert all(first <= g.start <= g.end <= last for g in gap_list)
    assert d.valid_ns + _union_ns(gap_list) == last - first
    assert d.valid_ns == _valid_from_states(d)
    # The replay order holds (one op stream, whether one connection or several were decoded).
    for col in (d.decoded.ops.ts, d.decoded.ops.grp, d.decoded.trades.grp):
        assert (col[1:] >= col[:-1]).all()
    assert 0 <= d.valid_ns <= last - first
    # Validity at a time agrees with the gaps: invalid strictly inside one, valid outside all.
    edges = {x for g in gap_list for x in (g.start, g.end)}
    for p in probes:
        t = first + round(p * (last - first))
        if t in edges or t in (first, last):
            continue
        inside = any(g.start < t < g.end for g in gap_list)
        outside = not any(g.start <= t <= g.end for g in gap_list)
        valid = d.book_at(t).valid
        assert not (inside and valid), (t, gap_list)
        assert not (outside and not valid), (t, gap_list)


def test_current_api_make_before_break_at_midnight(tmp_path: Path) -> None:
    """The current API's midnight handover: the new connection's snapshot, then the old one closes.

    Rows of both connections interleave for a while; neither the switch nor
    the old connection's disconnect is a gap.
    """
    subscribe = {"id": 1, "method": "subscribe", "params": ["btcusd@depth@100ms"]}
    rows: list[tuple[float, int, str, object]] = []

    def diff(first: int, last: int, bids: list[list[str]]) -> dict[str, object]:
        return {"e": "depthUpdate", "E": 1763859600000, "s": "btcusd", "U": first, "u": last,
                "b": bids, "a": [["101.00", "1"]]}  # fmt: skip

    def opening(t: float, conn: int, u: int, bid: str) -> None:
        rows.append(
            (t, conn, "event", event_payload("connect", url="wss://ws.gemini.com/?snapshot=-1"))
        )
        rows.append((t + 0.01, conn, "ws_sent", subscribe))
        rows.append((t + 0.02, conn, "ws", {"id": 1, "status": 200}))
        rows.append((t + 0.03, conn, "ws", diff(u, u, [[bid, "1"]])))

    opening(0.5, 1, 100, "100.00")
    for k in range(1, 10):  # one diff a second on the old connection, ids 101..109
        rows.append((1.0 + k, 1, "ws", diff(100 + k, 100 + k, [[f"{100 - k}.00", "1"]])))
    rows.append((10.5, 1, "event", event_payload("disconnect", why="replaced")))
    # The new connection's snapshot at 8.23 is the book as of id 107, as the old one has it.
    opening(8.2, 2, 107, "100.00")
    rows[-1][3]["b"] = [[f"{100 - k}.00", "1"] for k in range(8)]  # type: ignore[index]
    for k in range(8, 20):
        rows.append((1.0 + k + 0.001, 2, "ws", diff(100 + k, 100 + k, [[f"{100 - k}.00", "1"]])))
    rows.sort(key=lambda r: r[0])
    out = [
        Row(at(t), seq, "run-a", conn, "gemini.ws", src, p if isinstance(p, str) else json.dumps(p))
        for seq, (t, conn, src, p) in enumerate(rows)
    ]
    contract.write_part(tmp_path, "gemini", "BTCUSD", "run-a", 0, rows_to_table(out))
    day = open_day(tmp_path)
    snap = at(0.53)
    assert gaps(day) == [("unsynced", at(0.5), snap)]
    assert day.valid_ns == day.span[1] - snap
    bids = [[float(100 - k), 1.0] for k in range(20)]
    assert day.book_at(at(9.5)).bids.tolist() == bids[:9]  # the old connection's book
    assert day.book_at(at(12.5)).bids.tolist() == bids[:12]  # the new one's
    assert day.book_at(day.span[1]).bids.tolist() == bids and day.book_at(day.span[1]).valid
    switches = [(m.kind, m.ts) for m in day.decoded.markers if m.kind in ("follow", "reset")]
    assert switches == [("reset", at(0.51)), ("follow", at(10.5))]
