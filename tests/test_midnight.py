"""Recording through UTC midnight: every date's partitions hold a book snapshot of their own.

The recorder and the loopback simulator share one shifted clock that starts
a few seconds before midnight, so each test crosses a real UTC date
boundary in seconds: the partitions are split by the date of ``recv_ts``,
and every scheduling decision at midnight reads that clock. In the last
seconds before midnight the simulator closes the run's first connection(s)
(``close_every`` with ``close_conns``), so the run reconnects just before
the handover. For each protocol the tests check, from the stored rows and
the simulator's truth files (no code of ``replay/`` involved, except one
replay of day 2 of the current API):

- both dates' partitions exist for every symbol and no file spans two dates;
- day 2 of every symbol holds its own snapshots after midnight: a ``depth``
  request and its reply (current API; the reply's ``lastUpdateId`` lines up
  with the diffs), a new connection's book (v1: initial events; v2: the first
  ``l2_updates`` after a subscribe sent after midnight), a REST book asked for
  after midnight; also when day 2 is copied alone to an empty root;
- on v1 and v2 the old connection ends with a clean close and a handover
  ``disconnect`` only after the new one's book arrived after midnight, and it
  was in sync from its own book to that moment: no time without an in-sync
  connection;
- every frame the simulator sent is stored, byte for byte, connection by
  connection, and the midnight books (v1 initial events, REST) are the true
  books.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from truth import TrueBooks, read_jsonl, rest_book, symbols_of_path

import replay
from recorder.feed import HANDOVER
from recorder.midnight import DayBoundary
from recorder.record import RecordConfig, record
from recorder.rotation import NS_PER_DAY
from tickrec import contract
from tickrec.sim import Simulator

SYMBOLS = ("BTCUSD", "ETHUSD")
S = 1_000_000_000
MIDNIGHT = int(dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp()) * S
DAY1, DAY2 = "2026-01-01", "2026-01-02"
#: The run starts this long before midnight and lasts DURATION seconds.
BEFORE_S = 10
DURATION = 16.0
#: The handover's connections open this long before midnight.
LEAD = 5.0
#: The simulator closes the run's first connections this long after they opened.
DROP_AFTER = 2.5
#: "Right after midnight": the snapshots must be asked for within this (the watchdog wakes
#: 1 ms after midnight; the rest is the load of a shared test machine).
SOON = S
#: Loss events of a connection (as in the recorder's event list).
LOSSES = {"disconnect", "error", "stale", "gap", "shutdown"}

Rows = list[dict[str, Any]]
SimFactory = Callable[..., Simulator]


def shifted_clock(start_ns: int) -> Callable[[], int]:
    """The wall clock moved so that it reads *start_ns* now; it runs at the real rate."""
    offset = start_ns - time.time_ns()
    return lambda: time.time_ns() + offset


def read_rows(root: Path, date: str, symbol: str) -> Rows:
    """One partition's rows in contract order; ``recv`` and ``sent`` as int ns, payloads parsed."""
    table = contract.read_partition(root, "gemini", date, symbol)
    recv = table.column("recv_ts").cast(pa.int64()).to_pylist()
    sent = table.column("sent_ts").cast(pa.int64()).to_pylist()
    rows: Rows = table.drop_columns(["recv_ts", "sent_ts"]).to_pylist()
    for row, r, s in zip(rows, recv, sent, strict=True):
        row["recv"], row["sent"] = r, s
        try:
            row["obj"] = json.loads(row["payload"])
        except ValueError:
            row["obj"] = None
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(set(seqs))
    return rows


def events(rows: Rows, *names: str) -> Rows:
    return [r for r in rows if r["source"] == "event" and r["obj"]["event"] in names]


def is_book(row: dict[str, Any], symbol: str) -> bool:
    """Whether a received v1/v2 row carries a whole book of *symbol*."""
    obj = row["obj"]
    if row["source"] != "ws" or not isinstance(obj, dict):
        return False
    if row["protocol"] == "gemini.v1":
        return obj.get("type") == "update" and any(
            e.get("reason") == "initial" for e in obj["events"]
        )
    return obj.get("type") == "l2_updates" and obj.get("symbol") == symbol and "trades" in obj


@dataclass
class Run:
    protocol: str
    root: Path
    truth_dir: Path

    def rows(self, date: str, symbol: str) -> Rows:
        return read_rows(self.root, date, symbol)

    def both_days(self, symbol: str) -> Rows:
        return self.rows(DAY1, symbol) + self.rows(DAY2, symbol)

    def truth(self, name: str) -> Rows:
        return read_jsonl(self.truth_dir / f"{name}.jsonl")


def record_through_midnight(
    sim_factory: SimFactory,
    tmp_path: Path,
    protocol: str,
    close_conns: tuple[int, ...] = (),
    connects_per_minute: float = 600.0,
) -> Run:
    """Record *protocol* from the simulator through midnight; see the module docstring.

    The simulator closes the connections numbered *close_conns* (default:
    the run's first ones) ``DROP_AFTER`` seconds after they opened.
    """
    clock = shifted_clock(MIDNIGHT - BEFORE_S * S)
    sim = sim_factory(
        symbols=SYMBOLS,
        rate=300.0,
        heartbeat_s=0.25,
        truth_dir=tmp_path / "truth",
        clock=clock,
        close_every=DROP_AFTER,
        close_conns=close_conns or ((1, 2) if protocol == "v1" else (1,)),
    )
    try:
        record(
            RecordConfig(
                symbols=SYMBOLS,
                protocol=protocol,
                url=sim.ws_url,
                rest_url=sim.rest_url,
                data=str(tmp_path / "data"),
                duration=DURATION,
                snapshot_every=60.0,  # one round at the start, one at midnight
                rest_min_gap=0.05,
                status_every=0.0,
                fsync_interval=0.02,
                connects_per_minute=connects_per_minute,
                backoff_base=0.05,
                handover_lead=LEAD,
                clock=clock,
            )
        )
    finally:
        sim.stop()
    return Run(protocol, tmp_path / "data", tmp_path / "truth")


# --- what every test checks


def assert_two_dates_no_file_across(run: Run) -> None:
    partitions = contract.list_partitions(run.root)
    assert {(p.date, p.symbol) for p in partitions} == {
        (d, s) for d in (DAY1, DAY2) for s in SYMBOLS
    }
    for p in partitions:
        for part in contract.list_parts(run.root, p):
            assert contract.date_of_ns(part.first_recv_ns) == p.date
            assert contract.date_of_ns(part.last_recv_ns) == p.date


def assert_dropped_before_midnight(run: Run) -> None:
    """The simulator closed the first connections in the last seconds before midnight."""
    closes = [f for f in run.truth("faults") if f["fault"] == "close"]
    assert closes and all(MIDNIGHT - BEFORE_S * S < f["t_ns"] < MIDNIGHT for f in closes)
    for symbol in SYMBOLS:
        rows = run.rows(DAY1, symbol)
        lost = [e for e in events(rows, "disconnect") if e["obj"]["why"] == "closed by server"]
        assert lost, f"{symbol}: no server close before midnight"
        assert events(rows, "reconnect")


def rest_after_midnight(rows: Rows) -> dict[str, Any]:
    """The first REST book of the partition asked for after midnight."""
    rest = [r for r in rows if r["source"] == "rest" and r["sent"] >= MIDNIGHT]
    assert rest, "no REST snapshot after midnight"
    assert rest[0]["sent"] < MIDNIGHT + 2 * SOON
    body = rest[0]["obj"]
    assert body["bids"] and body["asks"]
    return rest[0]


def ws_depth_after_midnight(rows: Rows, symbol: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``depth`` request of *symbol* sent after midnight and its reply, checked."""
    asks = [
        r
        for r in rows
        if r["source"] == "ws_sent"
        and r["recv"] >= MIDNIGHT
        and r["obj"]["method"] == "depth"
        and r["obj"]["params"]["symbol"] == symbol.lower()
    ]
    assert asks, f"{symbol}: no depth request after midnight"
    ask = asks[0]
    assert ask["recv"] < MIDNIGHT + SOON
    (reply,) = [
        r
        for r in rows
        if r["source"] == "ws"
        and r["conn_id"] == ask["conn_id"]
        and isinstance(r["obj"], dict)
        and r["obj"].get("id") == ask["obj"]["id"]
    ]
    assert reply["seq"] > ask["seq"] and reply["recv"] >= MIDNIGHT
    assert reply["obj"]["status"] == 200
    last = reply["obj"]["result"]["lastUpdateId"]
    # The reply lines up with the diffs (docs/venues/gemini.md section 3.4, recipe B):
    # the first later diff of the symbol that is not stale covers lastUpdateId + 1.
    later = [
        r["obj"]
        for r in rows
        if r["source"] == "ws"
        and r["conn_id"] == ask["conn_id"]
        and r["seq"] > reply["seq"]
        and r["obj"].get("e") == "depthUpdate"
        and r["obj"]["s"].upper() == symbol
        and r["obj"]["u"] > last
    ]
    assert later, f"{symbol}: no diff after the midnight depth reply"
    assert later[0]["U"] <= last + 1 <= later[0]["u"]
    return ask, reply


def v_book_after_midnight(rows: Rows, symbol: str) -> dict[str, Any]:
    """A v1/v2 connection's book received after midnight, that connection's first."""
    books = [r for r in rows if r["recv"] >= MIDNIGHT and is_book(r, symbol)]
    assert books, f"{symbol}: no new connection's book after midnight"
    book = books[0]
    first = next(r for r in rows if r["conn_id"] == book["conn_id"] and is_book(r, symbol))
    assert first is book, "the book after midnight must be its connection's first"
    assert book["recv"] < MIDNIGHT + SOON
    if book["protocol"] == "gemini.v2":
        # Its subscribe went out after midnight, on that connection.
        (sub,) = [r for r in rows if r["source"] == "ws_sent" and r["conn_id"] == book["conn_id"]]
        assert sub["recv"] >= MIDNIGHT and sub["seq"] < book["seq"]
    return book


def assert_day_has_own_snapshots(run: Run, rows: Rows, symbol: str) -> None:
    rest_after_midnight(rows)
    if run.protocol == "ws":
        ws_depth_after_midnight(rows, symbol)
    else:
        v_book_after_midnight(rows, symbol)


def assert_handover_keeps_a_book(run: Run, symbol: str) -> None:
    """The old connection closed only after the new one's book, and was in sync until then."""
    rows = run.both_days(symbol)
    day2 = run.rows(DAY2, symbol)
    (handover,) = [e for e in events(day2, "disconnect") if e["obj"]["why"] == HANDOVER]
    old, new = handover["conn_id"], handover["obj"]["handover_to"]
    assert new > old and handover["obj"]["code"] == 1000
    book = v_book_after_midnight(day2, symbol)
    assert book["conn_id"] == new
    assert MIDNIGHT <= book["recv"] < handover["recv"]
    # The old connection had its book before midnight and lost nothing until the handover.
    old_books = [r for r in rows if r["conn_id"] == old and is_book(r, symbol)]
    assert old_books and old_books[-1]["recv"] < MIDNIGHT
    for e in events(rows, *LOSSES):
        if e["conn_id"] in (old, 0) and e is not handover:
            assert not old_books[-1]["seq"] < e["seq"] < handover["seq"], e["payload"]
    # No frame of the old connection after its close; the new one goes on.
    assert not [r for r in rows if r["conn_id"] == old and r["seq"] > handover["seq"]]
    assert [r for r in day2 if r["conn_id"] == new and r["seq"] > handover["seq"]]


def _for_symbol(msg: str, symbol: str) -> bool:
    obj = json.loads(msg)
    named = obj.get("symbol") or obj.get("s")
    return named is None or named.upper() == symbol


def assert_every_frame_stored(run: Run) -> None:
    """Every frame of every simulator connection is stored, in order, on one connection."""
    sent: dict[int, list[dict[str, Any]]] = {}
    for m in run.truth("messages"):
        sent.setdefault(m["conn"], []).append(m)
    for symbol in SYMBOLS:
        want = sorted(
            tuple(m["msg"] for m in msgs if _for_symbol(m["msg"], symbol))
            for msgs in sent.values()
            if symbol in symbols_of_path(msgs[0]["path"], SYMBOLS)
        )
        got: dict[int, list[str]] = {}
        for r in run.both_days(symbol):
            if r["source"] == "ws":
                got.setdefault(r["conn_id"], []).append(r["payload"])
        assert sorted(tuple(v) for v in got.values()) == want


def assert_midnight_books_true(run: Run) -> None:
    """The REST book and the v1 initial book after midnight are the simulator's true books."""
    books = TrueBooks(run.truth_dir)
    replies = {r["body"]: r for r in run.truth("rest") if "/v1/book/" in r["path"]}
    for symbol in SYMBOLS:
        day2 = run.rows(DAY2, symbol)
        rest = rest_after_midnight(day2)
        truth = replies[rest["payload"]]
        assert rest_book(rest["obj"]) == books.after(symbol, truth["event_id"])
        if run.protocol == "v1":
            book = v_book_after_midnight(day2, symbol)
            got: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
            for e in book["obj"]["events"]:
                got[e["side"]][Decimal(e["price"])] = Decimal(e["remaining"])
            assert got == books.after(symbol, book["obj"]["eventId"])


def copy_day(run: Run, date: str, dest: Path) -> Path:
    """The partitions of *date* alone in a new dataset root."""
    src = run.root / "raw" / "venue=gemini" / f"date={date}"
    shutil.copytree(src, dest / "raw" / "venue=gemini" / f"date={date}")
    return dest


@pytest.mark.parametrize("protocol", ["ws", "v1", "v2"])
def test_every_date_has_its_own_snapshots(
    sim_factory: SimFactory, tmp_path: Path, protocol: str
) -> None:
    run = record_through_midnight(sim_factory, tmp_path, protocol)
    assert_two_dates_no_file_across(run)
    assert_dropped_before_midnight(run)
    for symbol in SYMBOLS:
        assert_day_has_own_snapshots(run, run.rows(DAY2, symbol), symbol)
        if protocol != "ws":
            assert_handover_keeps_a_book(run, symbol)
    assert_every_frame_stored(run)
    assert_midnight_books_true(run)
    alone = copy_day(run, DAY2, tmp_path / "day2")
    for symbol in SYMBOLS:
        rows = read_rows(alone, DAY2, symbol)
        assert rows == run.rows(DAY2, symbol)
        assert_day_has_own_snapshots(run, rows, symbol)
        if protocol == "ws":
            # Replayed alone, the day is valid on the grid after its midnight snapshot.
            _, reply = ws_depth_after_midnight(rows, symbol)
            day = replay.open(DAY2, symbol, data=alone, silence="1s", cache=False)
            grid = day.book_snapshots(depth=5, every="100ms")
            after = grid[grid["ts"].astype("int64") > reply["recv"]]
            assert len(after) > 10 and after["valid"].mean() > 0.9


def test_a_failed_successor_is_retried_and_the_old_connection_waits(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """The server closes the handover's new connection before midnight: a retry takes over.

    Server connection 2 is the successor (opened ``LEAD`` s before midnight,
    closed ``DROP_AFTER`` s later); its retry, held like it, is the one that
    takes the book after midnight, and only then is the old connection closed.
    """
    run = record_through_midnight(sim_factory, tmp_path, "v2", close_conns=(2,))
    assert_two_dates_no_file_across(run)
    for symbol in SYMBOLS:
        rows = run.both_days(symbol)
        (handover,) = [e for e in events(rows, "disconnect") if e["obj"]["why"] == HANDOVER]
        assert handover["conn_id"] == 1 and handover["obj"]["handover_to"] == 3
        (failed,) = [e for e in events(rows, "disconnect") if e["conn_id"] == 2]
        assert failed["obj"]["why"] == "closed by server" and failed["recv"] < MIDNIGHT
        assert [e["conn_id"] for e in events(rows, "reconnect")] == [3]
        assert_handover_keeps_a_book(run, symbol)
        assert_day_has_own_snapshots(run, run.rows(DAY2, symbol), symbol)
    assert_every_frame_stored(run)


def test_the_old_connection_stays_while_the_limiter_holds_the_successor_back(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """One connect a minute: the successor gets no token during the run, so nothing is dropped.

    The old connection records on through midnight to the end of the run;
    day 2 has no new connection's book (the limiter forbids one), but its
    REST snapshot after midnight.
    """
    run = record_through_midnight(
        sim_factory, tmp_path, "v2", close_conns=(99,), connects_per_minute=1.0
    )
    assert_two_dates_no_file_across(run)
    for symbol in SYMBOLS:
        rows = run.both_days(symbol)
        assert {r["conn_id"] for r in rows if r["source"] in ("ws", "ws_sent")} == {1}
        assert [e["obj"]["event"] for e in events(rows, *LOSSES)] == ["shutdown", "disconnect"]
        assert [r for r in run.rows(DAY2, symbol) if r["source"] == "ws"]
        rest_after_midnight(run.rows(DAY2, symbol))
    assert_every_frame_stored(run)


class _Requests:
    """Stands in for a current-API connection: notes what :class:`DayBoundary` sends on it."""

    symbols = SYMBOLS
    conn_id = 1
    broken = None  # its book never broke: no make-before-break repair

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    def send_now(self, messages: tuple[str, ...]) -> bool:
        self.sent.append(messages)
        return True


def test_depth_requests_go_once_right_after_each_midnight_and_not_after_the_end() -> None:
    now = [MIDNIGHT - 5 * S]
    conn = _Requests()
    boundary = DayBoundary([conn], lambda: now[0], lambda c: c.send_now(("depth",)))
    assert boundary.wait_s(0.1) == 0.1
    now[0] = MIDNIGHT - 50_000_000
    assert boundary.wait_s(0.1) == pytest.approx(0.051)  # wakes 1 ms after midnight
    boundary.tick()
    assert conn.sent == []
    now[0] = MIDNIGHT + 1_000_000
    boundary.tick()
    boundary.tick()
    assert conn.sent == [("depth",)]
    assert boundary.wait_s(0.1) == 0.1  # the next midnight is a day away: no busy loop
    now[0] = MIDNIGHT + NS_PER_DAY
    boundary.tick()
    assert conn.sent == [("depth",)] * 2
    # A run that ends at midnight sends nothing then.
    end = MIDNIGHT + 2 * NS_PER_DAY
    ending = DayBoundary([conn], lambda: now[0], lambda c: c.send_now(("x",)), end_ns=end)
    now[0] = end + 1
    ending.tick()
    assert conn.sent == [("depth",)] * 2
