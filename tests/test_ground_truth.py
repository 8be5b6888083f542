"""Ground truth: record from the simulator, replay, and compare with what really happened.

Each test runs the loopback simulator with truth files, records it with the
real recorder (in process, a few seconds), replays the recorded day with
``replay.open`` and checks the replay against the simulator's truth files,
read on their own by :mod:`truth` (no code of ``replay/`` involved):

- every VALID snapshot row (top 10, every 100 ms) and every valid whole book
  from ``book_at`` equals the true book at that time: the book after the
  last engine event whose message the recorder had received by then;
- every injected fault (``faults.jsonl``) lies in a gap of the right kind,
  and every gap is explained by a fault (or is the tail after shutdown);
- REST snapshots agree with the stream unless the truth says they cannot.

Times. The simulator logs a fault when it decides it, in its event-loop
thread; the recorder stamps what it receives in its own thread. Both read the
same wall clock, so times compare directly, but between the two lie the
simulator's writer task, the loopback socket and a GIL hand-over: about a
millisecond when idle, tens of ms on a loaded 2-core machine. Where a fault
time is compared with a receive time, :data:`DELIVERY_TOL_NS` allows for
that; it is far below the spacing of faults (>= 1 s) and the silence
threshold (1 s), so a fault cannot be credited to the wrong gap. Everything
else is compared exactly, from the recorded rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import after_lead_in
from truth import (
    Partition,
    TrueBooks,
    load_json,
    read_jsonl,
    rest_book,
    symbols_of_path,
    ticks,
    top,
)

import replay
from recorder.record import RecordConfig, record
from replay.gaps import REST_WS_LAG_NS, Gap
from tickrec.sim import SimConfig, Simulator
from tickrec.sim.faults import malform

SYMBOLS = ("BTCUSD", "ETHUSD")
#: Engine events per second over both symbols: a message every few ms on each feed.
RATE = 300.0
#: Simulator heartbeats; well inside the silence threshold.
HEARTBEAT_S = 0.25
#: Replay silence threshold: four heartbeats missed.
SILENCE = "1s"
SILENCE_NS = 1_000_000_000
GRID = "100ms"
DEPTH = 10
#: See the module docstring.
DELIVERY_TOL_NS = 200_000_000
#: The recorder's watchdog looks every 0.1 s (recorder.record); a stale drop can come that late.
WATCHDOG_NS = 100_000_000

SimFactory = Callable[..., Simulator]


@dataclass
class Run:
    """One simulator run recorded and replayed: truth, recorded partitions and replayed days."""

    truth_dir: Path
    books: TrueBooks
    parts: dict[str, Partition]
    days: dict[str, replay.Day]

    @classmethod
    def load(cls, truth_dir: Path, root: Path) -> Run:
        books = TrueBooks(truth_dir)
        parts = {s: Partition.load(root, s, books) for s in SYMBOLS}
        days = {s: replay.open(p.date, s, data=root, silence=SILENCE) for s, p in parts.items()}
        return cls(truth_dir, books, parts, days)

    def truth(self, name: str) -> list[dict[str, Any]]:
        return read_jsonl(self.truth_dir / f"{name}.jsonl")

    def faults(self, symbol: str, *kinds: str, margin: int = 0) -> list[dict[str, Any]]:
        """Websocket faults of these kinds on connections serving *symbol*.

        Only those injected at least *margin* ns before the recorder's shutdown.
        """
        end = self.parts[symbol].shutdown_ts - margin
        return [
            f
            for f in self.truth("faults")
            if f["fault"] in kinds
            and f["conn"] is not None
            and symbol in symbols_of_path(f["path"], SYMBOLS)
            and f["t_ns"] < end
        ]


def record_run(sim: Simulator, tmp_path: Path, protocol: str, duration: float, **kw: Any) -> Run:
    """Record *sim* for *duration* seconds, stop it (flushing its truth files) and replay."""
    settings: dict[str, Any] = {
        "symbols": SYMBOLS,
        "protocol": protocol,
        "url": sim.ws_url,
        "rest_url": sim.rest_url,
        "data": str(tmp_path / "data"),
        "duration": duration,
        "snapshot_every": 1.0,
        "snapshot_depth": 0,
        "rest_min_gap": 0.05,
        "status_every": 0.0,
        "fsync_interval": 0.02,
        "connects_per_minute": 600.0,
        "backoff_base": 0.05,
        **kw,
    }
    record(RecordConfig(**settings))
    sim.stop()
    return Run.load(tmp_path / "truth", tmp_path / "data")


def start_sim(sim_factory: SimFactory, tmp_path: Path, **faults: Any) -> Simulator:
    return sim_factory(
        symbols=SYMBOLS,
        rate=RATE,
        heartbeat_s=HEARTBEAT_S,
        truth_dir=tmp_path / "truth",
        **faults,
    )


# --- checks shared by the tests -------------------------------------------------------------


def expected_row(book: dict[str, Any], price_scale: int, size_scale: int) -> list[int]:
    """A true book as the integers of a wide snapshot row (bid px, bid sz, ask px, ask sz)."""
    out: list[int] = []
    for side in ("bid", "ask"):
        levels = top(book, side, DEPTH)
        assert len(levels) == DEPTH  # the simulator keeps at least 10 levels a side
        out += [ticks(p, price_scale) for p, _ in levels]
        out += [ticks(z, size_scale) for _, z in levels]
    return out


def snapshot_columns() -> list[str]:
    return [f"{s}_{k}_{i}" for s in ("bid", "ask") for k in ("px", "sz") for i in range(DEPTH)]


def assert_valid_rows_are_true(run: Run, symbol: str) -> pd.DataFrame:
    """Every valid row of the 100 ms top-10 grid equals the true book then; returns the grid."""
    day, part = run.days[symbol], run.parts[symbol]
    snaps = day.book_snapshots(depth=DEPTH, every=GRID, exact=True)
    ps, ss = snaps.attrs["price_scale"], snaps.attrs["size_scale"]
    values = snaps[snapshot_columns()].to_numpy(np.int64)
    ts = snaps["ts"].astype("int64").to_numpy()
    for k in np.nonzero(snaps["valid"].to_numpy())[0]:
        t = int(ts[k])
        events = part.events_at(t)
        assert events, f"{symbol}: valid row at {t} after an unreadable message"
        wants = [expected_row(run.books.after(symbol, e), ps, ss) for e in events]
        assert values[k].tolist() in wants, f"{symbol}: row at {t} is not the true book"
    return snaps


def assert_whole_books_are_true(run: Run, symbol: str, times: list[int]) -> int:
    """``book_at(t, depth=None)``, where valid, is the whole true book; returns how many were."""
    day, part = run.days[symbol], run.parts[symbol]
    checked = 0
    for t in times:
        view = day.book_at(t)
        if not view.valid:
            continue
        event = part.event_at(t)
        assert event is not None
        book = run.books.after(symbol, event)
        for side, px, sz in (("bid", view.bid_px, view.bid_sz), ("ask", view.ask_px, view.ask_sz)):
            levels = top(book, side)
            assert px.tolist() == [ticks(p, view.price_scale) for p, _ in levels], (symbol, t)
            assert sz.tolist() == [ticks(z, view.size_scale) for _, z in levels], (symbol, t)
        checked += 1
    return checked


def probe_times(part: Partition) -> list[int]:
    """Instants to look at whole books: update receive times exactly, a ns before, and between."""
    updates = [part.recv[i] for i in part.positions]
    picks = updates[len(updates) // 7 :: max(1, len(updates) // 7)][:6]
    return sorted({x for t in picks for x in (t - 1, t, t + 1_000_000)})


def unmatched_rest(run: Run, symbol: str) -> tuple[list[int], int]:
    """REST books the stream contradicts: their ``sent_ts``, and how many books were conclusive.

    Each stored reply is first checked against the truth: its body is the
    true book after the engine event the simulator built it at. It is then
    looked for among the received stream states in the replay's window, from
    ``sent_ts`` to ``recv_ts`` plus the websocket lag allowance
    (:data:`replay.gaps.REST_WS_LAG_NS`). A window cut short by the end of
    its connection, or opened before the connection's snapshot, is
    inconclusive unless it holds the book.
    """
    part = run.parts[symbol]
    replies = {r["body"]: r for r in run.truth("rest") if r["status"] == 200}
    ends = part.conn_ends
    out, conclusive = [], 0
    for i, row in enumerate(part.rows):
        if row["source"] != "rest":
            continue
        body = rest_book(json.loads(row["payload"]))
        reply = replies[row["payload"]]
        assert body == run.books.after(symbol, reply["event_id"]), "REST body is the true book"
        sent, recv = row["sent_ts"], part.recv[i]
        end = min([recv + REST_WS_LAG_NS] + [e - 1 for e in ends if e >= recv])
        seen = {part.event_at(sent)} | {
            part.positions[j] for j in part.positions if sent < part.recv[j] <= max(recv, end)
        }
        if body in [run.books.after(symbol, e) for e in seen if e is not None and e >= 0]:
            conclusive += 1
        elif end == recv + REST_WS_LAG_NS and started(part, sent):
            conclusive += 1
            out.append(sent)
    return out, conclusive


def started(part: Partition, t: int) -> bool:
    """Whether the connection open at *t* had received its snapshot by then."""
    snaps = [s for s in part.snapshots if s <= t]
    return bool(snaps) and not any(snaps[-1] < e <= t for e in part.conn_ends)


def is_tail(g: Gap, part: Partition) -> bool:
    """The gap a run ends with: the shutdown closes the feed and no snapshot follows.

    It is empty, so not reported, when the loss is the partition's last row.
    """
    return g.kind == "disconnect" and g.start == part.final_loss_ts and g.end == part.last_ts


def assert_every_gap_explained(run: Run, symbol: str, causes: dict[str, set[str]]) -> list[Gap]:
    """Every gap is the tail, the takeover after another gap, or holds a fault of a matching kind.

    *causes* maps a gap kind to the fault kinds that can cause it. A
    ``disconnect`` gap that starts where a ``sequence`` or ``silence`` gap
    ends is that gap's reconnect. A ``snapshot_mismatch`` must be a REST
    book that the truth says the recorded stream never showed. Also checks
    the end of every ``disconnect`` gap: the next complete book received.
    Returns the gaps.
    """
    part, gaps = run.parts[symbol], after_lead_in(run.days[symbol])
    unmatched = set(unmatched_rest(run, symbol)[0])
    for g in gaps:
        if g.kind == "disconnect":
            assert g.end == (part.next_snapshot(g.start) or part.last_ts), g
        if is_tail(g, part):
            continue
        if g.kind == "snapshot_mismatch":
            assert g.start in unmatched, f"{symbol}: REST book at {g.start} matched the stream"
            continue
        if g.kind == "disconnect" and any(
            h.kind in ("sequence", "silence") and h.end == g.start for h in gaps
        ):
            continue
        faults = run.faults(symbol, *causes.get(g.kind, ()))
        assert any(g.start - DELIVERY_TOL_NS <= f["t_ns"] <= g.end for f in faults), (
            f"{symbol}: no injected fault explains {g}"
        )
    return gaps


def assert_every_fault_reported(
    run: Run, symbol: str, kinds: dict[str, set[str]], gaps: list[Gap], margin: int = 0
) -> int:
    """Every fault (by kind) lies in a gap of one of its gap kinds; returns how many faults.

    A fault can only be missing from the gaps when the book was not valid
    anyway (a v1 connection whose very first frame was lost never gets a
    snapshot): then the replay must say so at the fault time.
    """
    faults = run.faults(symbol, *kinds, margin=margin)
    for f in faults:
        t = f["t_ns"]
        inside = any(
            g.kind in kinds[f["fault"]] and g.start - DELIVERY_TOL_NS <= t <= g.end for g in gaps
        )
        assert inside or not run.days[symbol].book_at(t).valid, f"{symbol}: {f} is in no gap"
    return len(faults)


def assert_mostly_valid(snaps: pd.DataFrame, at_least: float) -> None:
    """The valid-row checks above are not vacuous."""
    assert snaps["valid"].mean() >= at_least, snaps["valid"].mean()


# --- fault-free runs ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["v1", "v2"])
def clean(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """Four seconds of both symbols, no faults, REST books every second; shared by the tests."""
    tmp = tmp_path_factory.mktemp(f"clean-{request.param}")
    config = SimConfig(
        symbols=SYMBOLS, rate=RATE, seed=1, heartbeat_s=HEARTBEAT_S, truth_dir=tmp / "truth"
    )
    with Simulator(config) as sim:
        yield record_run(sim, tmp, request.param, duration=4.0)


def test_fault_free_valid_rows_and_books_equal_the_truth(clean: Run) -> None:
    """Without faults the book is valid exactly from the first snapshot to the final loss.

    Every grid row there (top 10, 100 ms) and the whole book at update
    receive times (exactly, 1 ns before, and 1 ms after) equal the true book.
    """
    for symbol, part in clean.parts.items():
        snaps = assert_valid_rows_are_true(clean, symbol)
        ts = snaps["ts"].astype("int64").to_numpy()
        first = part.snapshots[0]
        assert part.snapshots == [first]  # one connection, one snapshot
        want = (ts >= first) & (ts < part.final_loss_ts)
        assert snaps["valid"].to_numpy().tolist() == want.tolist()
        assert want.sum() >= 30
        assert assert_whole_books_are_true(clean, symbol, probe_times(part)) >= 12


def test_fault_free_reports_only_the_shutdown_tail(clean: Run) -> None:
    """No gap but the tail after the shutdown; the book is valid from snapshot to shutdown.

    The tail is a ``disconnect`` from the loss of the connection (the
    shutdown event, or the connection's own ``disconnect`` event when a frame
    arrived after the shutdown) to the last row.
    Before the first snapshot the book is unknown without a gap (nothing was
    lost). No REST book disagreed with the stream.
    """
    for symbol, part in clean.parts.items():
        day = clean.days[symbol]
        loss = part.final_loss_ts
        assert [g for g in after_lead_in(day) if not is_tail(g, part)] == []
        assert len(after_lead_in(day)) == (loss < part.last_ts)
        assert day.valid_ns == loss - part.snapshots[0]
        assert day.span_coverage > 0.95


def test_fault_free_rest_books_are_true_and_agree(clean: Run) -> None:
    """Each stored REST book is the true book; no stream contradicts one, and some confirm.

    The REST book taken within a second of the shutdown is inconclusive (its
    window outlasts the connection), so a 4 s run has at least two that count.
    """
    for symbol in clean.parts:
        unmatched, conclusive = unmatched_rest(clean, symbol)
        assert unmatched == []
        assert conclusive >= 2


def test_replaying_twice_gives_identical_frames(clean: Run) -> None:
    """Two replays of the recorded day give equal DataFrames (snapshots, gaps, trades, quotes)."""
    root = clean.truth_dir.parent / "data"
    for symbol, part in clean.parts.items():
        a, b = (replay.open(part.date, symbol, data=root, silence=SILENCE) for _ in range(2))
        assert a.book_snapshots(every=GRID).equals(b.book_snapshots(every=GRID))
        assert a.book_snapshots(every=0).equals(b.book_snapshots(every=0))
        assert a.gaps().equals(b.gaps())
        assert a.trades().equals(b.trades())
        assert a.quotes().equals(b.quotes())


# --- faults -----------------------------------------------------------------------------------


def test_v1_drops_are_sequence_gaps(sim_factory: SimFactory, tmp_path: Path) -> None:
    """A frame never sent is a ``sequence`` gap until a connection has the book again.

    For every break in ``socket_sequence`` in the recorded rows, a gap runs
    from the last good message past the break (the connection records on
    while its successor takes an initial book). A drop fault with a missing
    sequence number explains each break.
    """
    sim = start_sim(sim_factory, tmp_path, drop=0.004)
    run = record_run(sim, tmp_path, "v1", duration=4.0)
    causes = {"sequence": {"drop"}, "disconnect": {"drop"}}
    breaks = 0
    for symbol, part in run.parts.items():
        gaps = assert_every_gap_explained(run, symbol, causes)
        drops = run.faults(symbol, "drop")
        prev: tuple[int, int, int] | None = None  # conn, venue_seq, recv
        broken: set[int] = set()
        for _, t, row in part.ws():
            key, seq = row["conn_id"], row["venue_seq"]
            if prev is not None and prev[0] == key and seq != prev[1] + 1:
                breaks += 1
                # make-before-break: the broken connection records on until a successor
                # has its book, and the gap runs from the last good message until then
                if key in broken:  # a later break on the same connection is in that gap too
                    assert any(g.kind == "sequence" and g.start < t <= g.end for g in gaps)
                else:
                    assert any(
                        g.kind == "sequence" and g.start <= prev[2] < t <= g.end for g in gaps
                    ), f"{symbol}: break at {t} is in no gap"
                broken.add(key)
                missing = range(prev[1] + 1, seq)
                assert any(
                    json.loads(f["frame"])["socket_sequence"] in missing
                    and prev[2] - DELIVERY_TOL_NS <= f["t_ns"] <= t
                    for f in drops
                ), f"{symbol}: break before {seq} at {t} has no drop"
            prev = (key, seq, t)
        assert_every_fault_reported(run, symbol, {"drop": {"sequence", "disconnect"}}, gaps)
        assert_mostly_valid(assert_valid_rows_are_true(run, symbol), 0.5)
    assert breaks >= 1


@pytest.mark.parametrize("abrupt", [False, True], ids=["close", "abort"])
def test_server_closes_are_disconnect_gaps(
    sim_factory: SimFactory, tmp_path: Path, abrupt: bool
) -> None:
    """Each server close (close frame or TCP abort) is a ``disconnect`` gap to the next snapshot.

    The gap starts when the recorder learns of the close: after the fault,
    within the delivery tolerance. It ends exactly at the next snapshot.
    """
    sim = start_sim(sim_factory, tmp_path, close_every=1.0, abrupt=abrupt)
    run = record_run(sim, tmp_path, "v2", duration=3.6)
    kind = "abort" if abrupt else "close"
    for symbol, part in run.parts.items():
        gaps = assert_every_gap_explained(run, symbol, {"disconnect": {kind}})
        closes = run.faults(symbol, kind)
        assert len(closes) >= 2
        assert {g.kind for g in gaps} == {"disconnect"}
        matched = []
        for f in closes:
            t = f["t_ns"]
            if t > part.shutdown_ts - DELIVERY_TOL_NS:
                continue  # the run ended first
            (g,) = [g for g in gaps if t <= g.start <= t + DELIVERY_TOL_NS]
            assert g.detail == "connection lost (disconnect event)"
            assert g.end == (part.next_snapshot(g.start) or part.last_ts)
            matched.append(g)
        # The rest is the shutdown's tail (a close just before the shutdown is its own tail).
        assert all(is_tail(g, part) for g in gaps if g not in matched)
        assert_mostly_valid(assert_valid_rows_are_true(run, symbol), 0.6)


@pytest.mark.parametrize("stale_after", [3.0, 1.5], ids=["stall-survived", "stall-dropped"])
def test_stall_is_a_silence_gap(
    sim_factory: SimFactory, tmp_path: Path, stale_after: float
) -> None:
    """A 2 s stall of the feed is a ``silence`` gap over the stall.

    When the recorder's watchdog (``stale_after``) is longer than the stall,
    the gap runs from the last message before the stall to the first after
    it: about 2 s. When shorter, the watchdog drops the connection: the
    silence runs exactly to its ``stale`` event, ``stale_after`` (plus up to
    a watchdog period) after the last message, and a ``disconnect`` gap
    follows to the next snapshot. REST books taken during the stall may
    disagree with the held stream: those mismatches must be ones the truth
    confirms.
    """
    stall_s = 2.0
    sim = start_sim(sim_factory, tmp_path, stall_for=stall_s, stall_every=1.0)
    run = record_run(sim, tmp_path, "v2", duration=3.6, stale_after=stale_after)
    causes = {"silence": {"stall", "stall_end"}}
    for symbol, part in run.parts.items():
        gaps = assert_every_gap_explained(run, symbol, causes)
        silences = [g for g in gaps if g.kind == "silence"]
        # A stall that starts within a silence threshold of the shutdown cannot show.
        margin = SILENCE_NS + DELIVERY_TOL_NS
        stalls = run.faults(symbol, "stall", margin=margin)
        assert stalls
        assert len(silences) == len(stalls)
        for f, g in zip(stalls, silences, strict=True):
            t = f["t_ns"]
            assert t - DELIVERY_TOL_NS <= g.start <= t + DELIVERY_TOL_NS
            stale = [s for s, _ in part.events("stale") if g.start <= s <= g.end]
            if stale:
                assert stale_after < stall_s
                assert g.end == stale[0]
                assert (
                    stale_after * 1e9
                    <= g.duration
                    <= stale_after * 1e9 + WATCHDOG_NS + DELIVERY_TOL_NS
                )
                assert any(h.kind == "disconnect" and h.start == g.end for h in gaps)
            elif g.end != part.final_loss_ts:  # a stall cut short by the shutdown ends there
                assert not stale
                assert abs(g.duration - stall_s * 1e9) <= DELIVERY_TOL_NS
        assert_every_fault_reported(run, symbol, {"stall": {"silence"}}, gaps, margin)
        assert_mostly_valid(assert_valid_rows_are_true(run, symbol), 0.3)


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_malformed_frames_are_stored_raw_and_break_the_book(
    sim_factory: SimFactory, tmp_path: Path, protocol: str
) -> None:
    """A frame cut short is stored as received and starts a ``sequence`` gap ("undecodable").

    The replay cannot know what the frame said, so the book is not trusted
    from that message on until a snapshot. On v1 the recorder sees the
    ``socket_sequence`` skip at the next frame and reconnects; on v2, with no
    sequence to tell later, it reconnects at the unreadable frame itself
    (docs/venues/gemini.md section 2). Either way the gap ends exactly where that
    connection was lost, and a ``disconnect`` gap runs on to the next
    snapshot, so one bad frame costs about a reconnect, not the rest of
    the connection.
    """
    sim = start_sim(sim_factory, tmp_path, malformed=0.002)
    run = record_run(sim, tmp_path, protocol, duration=3.0)
    for symbol, part in run.parts.items():
        gaps = assert_every_gap_explained(
            run, symbol, {"sequence": {"malformed"}, "disconnect": {"malformed"}}
        )
        bad = [(t, row) for _, t, row in part.ws() if load_json(row["payload"]) is None]
        faults = run.faults(symbol, "malformed")
        # Stored raw, in the order they were sent (a cut frame still queued when
        # its connection closed was never sent, hence a subsequence).
        sent = iter(malform(f["frame"]) for f in faults)
        assert all(any(row["payload"] == m for m in sent) for _, row in bad)
        for t, _ in bad:
            (g,) = [g for g in gaps if g.kind == "sequence" and g.start <= t <= g.end]
            assert "undecodable message" in g.detail
        firsts: dict[int, int] = {}
        for t, row in bad:
            firsts.setdefault(row["conn_id"], t)
        for t in firsts.values():
            (g,) = [g for g in gaps if g.kind == "sequence" and g.start == t]
            assert g.end > t
        if protocol == "v2":
            events = [
                (r["conn_id"], json.loads(r["payload"]))
                for r in part.rows
                if r["source"] == "event"
            ]
            closed = {c: e["why"] for c, e in events if e["event"] == "disconnect"}
            for c, t in firsts.items():
                # the recorder closed that connection itself, unless the shutdown came first
                if t < part.shutdown_ts - DELIVERY_TOL_NS:
                    assert closed[c] == "resync handover"
                else:
                    assert closed[c] in ("resync handover", "shutdown")
        assert_every_fault_reported(run, symbol, {"malformed": {"sequence", "disconnect"}}, gaps)
        assert_valid_rows_are_true(run, symbol)
    assert any(run.faults(s, "malformed") for s in SYMBOLS)


def test_rest_errors_leave_the_book_alone(sim_factory: SimFactory, tmp_path: Path) -> None:
    """REST 500 and 429 replies are ``rest_error`` events and no gap; the stream stays true."""
    sim = start_sim(sim_factory, tmp_path, rest_500=0.3, rest_429=0.2, retry_after=0)
    run = record_run(sim, tmp_path, "v1", duration=3.0, snapshot_every=0.25)
    statuses: set[int] = set()
    for symbol, part in run.parts.items():
        truth = [
            r["status"]
            for r in run.truth("rest")
            if r["status"] != 200 and f"/{symbol.lower()}" in r["path"].lower()
        ]
        errors = [e["status"] for _, e in part.events("rest_error")]
        assert errors == truth
        statuses.update(errors)
        day = run.days[symbol]
        assert [g for g in after_lead_in(day) if not is_tail(g, part)] == []
        assert day.valid_ns == part.final_loss_ts - part.snapshots[0]
        assert_mostly_valid(assert_valid_rows_are_true(run, symbol), 0.8)
    assert statuses == {429, 500}
