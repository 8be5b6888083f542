"""A recording through UTC midnight replays both days equal to the true book, each day alone.

The recordings of :mod:`test_midnight` (a shifted clock shared by the
recorder and the simulator, a drop and a reconnect in the last seconds
before midnight) are split into their two dates, each copied alone to an
empty root, and replayed there: nothing of day 1 is available to day 2.
Then, for v1, v2 and the current API:

- every valid row of the 100 ms top-10 grid of both days is the simulator's
  true book as the messages received by then had made it (the book of one of
  the connections alive then: around a make-before-break handover two
  connections carry the same events a few microseconds apart);
- day 2 is valid from its own midnight snapshot on, to the end of the run:
  the handover leaves no invalid moment;
- day 1 is valid up to midnight, except for the drop before it;
- valid time plus the gaps is the span on both days.

And two recorders writing one dataset at the same time (redundant capture)
replay as one clean run, equal to the true book.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_ground_truth import DEPTH, GRID, expected_row, snapshot_columns
from test_midnight import DAY1, DAY2, MIDNIGHT, SYMBOLS, Run, record_through_midnight
from test_overlap import _union_ns
from truth import UNREADABLE, Partition, TrueBooks, load_json, read_jsonl

import replay
from recorder.record import RecordConfig, record
from replay.api import Day
from tickrec import contract
from tickrec.sim import Simulator

S = 1_000_000_000
Key = tuple[str, int]


def alone(run: Run, date: str, dest: Path) -> Path:
    """Copy *date*'s partitions of *run* to the empty root *dest*."""
    for p in contract.list_partitions(run.root, date=date):
        src = contract.partition_dir(run.root, p.venue, p.date, p.symbol)
        shutil.copytree(src, contract.partition_dir(dest, p.venue, p.date, p.symbol))
    return dest


def ws_positions(root: Path, symbol: str, truth_dir: Path) -> list[tuple[int, Key, int]]:
    """``(recv, connection, engine event id)`` of the current API's book-placing messages.

    A ``depthUpdate`` brings the book to its ``u``, a ``depth`` reply to its
    ``lastUpdateId``; update ids name engine events through the truth's book log.
    """
    event_of = {
        line["update_id"]: line["event_id"]
        for line in read_jsonl(truth_dir / "book.jsonl")
        if line["symbol"] == symbol
    }
    (part,) = contract.list_partitions(root, symbol=symbol)
    table = contract.read_partition(root, part.venue, part.date, symbol)
    recv = table.column("recv_ts").cast("int64").to_pylist()
    asked: dict[tuple[Key, Any], str] = {}
    out = []
    for t, row in zip(np.maximum.accumulate(recv).tolist(), table.to_pylist(), strict=True):
        key = (row["run_id"], row["conn_id"])
        msg = load_json(row["payload"])
        if not isinstance(msg, dict):
            continue
        if row["source"] == "ws_sent" and msg.get("method") == "depth":
            asked[(key, msg.get("id"))] = msg["params"]["symbol"].upper()
        elif row["source"] != "ws":
            continue
        elif msg.get("e") == "depthUpdate" and msg["s"].upper() == symbol:
            out.append((t, key, event_of[msg["u"]]))
        elif asked.get((key, msg.get("id"))) == symbol and isinstance(msg.get("result"), dict):
            out.append((t, key, event_of[msg["result"]["lastUpdateId"]]))
    return out


def positions(
    protocol: str, root: Path, symbol: str, books: TrueBooks, truth_dir: Path
) -> list[tuple[int, Key, int]]:
    """``(recv, connection, engine event id)`` of every message that placed *symbol*'s book."""
    if protocol == "ws":
        return ws_positions(root, symbol, truth_dir)
    part = Partition.load(root, symbol, books)
    return [
        (part.recv[i], (part.rows[i]["run_id"], part.rows[i]["conn_id"]), pos)
        for i, pos in part.positions.items()
        if pos != UNREADABLE
    ]


def assert_valid_rows_are_a_true_book(
    day: Day, placed: list[tuple[int, Key, int]], books: TrueBooks
) -> Any:
    """Every valid grid row is the true book at the position of one connection then."""
    snaps = day.book_snapshots(depth=DEPTH, every=GRID, exact=True)
    ps, ss = snaps.attrs["price_scale"], snaps.attrs["size_scale"]
    values = snaps[snapshot_columns()].to_numpy(np.int64)
    ts = snaps["ts"].astype("int64").to_numpy()
    latest: dict[Key, int] = {}
    k = 0
    for row in range(len(ts)):
        t = int(ts[row])
        while k < len(placed) and placed[k][0] <= t:
            # A connection's book only moves forward: a stale diff (update ids already in a
            # depth reply before it) leaves it where it was.
            key, pos = placed[k][1], placed[k][2]
            latest[key] = max(latest.get(key, pos), pos)
            k += 1
        if not snaps["valid"].iat[row]:
            continue
        wants = [expected_row(books.after(day.symbol, pos), ps, ss) for pos in latest.values()]
        assert values[row].tolist() in wants, f"{day.symbol} {day.date}: row at {t} is no true book"
    return snaps


@pytest.mark.parametrize("protocol", ["v1", "v2", "ws"])
def test_both_days_replay_alone_equal_to_the_true_book(
    sim_factory: Callable[..., Simulator], tmp_path: Path, protocol: str
) -> None:
    run = record_through_midnight(sim_factory, tmp_path, protocol)
    books = TrueBooks(run.truth_dir)
    for date in (DAY1, DAY2):
        root = alone(run, date, tmp_path / f"alone-{date}")
        for symbol in SYMBOLS:
            day = replay.open(date, symbol, data=root, cache=False)
            placed = positions(protocol, root, symbol, books, run.truth_dir)
            snaps = assert_valid_rows_are_a_true_book(day, placed, books)
            first, last = day.span
            gaps = day.gap_list()
            union = _union_ns(gaps)
            assert day.valid_ns + union == last - first
            ts = snaps["ts"].astype("int64").to_numpy()
            valid = snaps["valid"].to_numpy()
            if date == DAY2:
                # valid from the midnight snapshot (well within a second) to the shutdown
                # (the shutdown's gap is empty when its event is the last row)
                stop = next((g.start for g in gaps if g.start > MIDNIGHT + S), last + 1)
                keep = (ts >= MIDNIGHT + S) & (ts < stop)
                assert keep.sum() > 40 and valid[keep].all(), (symbol, protocol)
                assert all(g.end <= MIDNIGHT + S or g.start >= stop for g in gaps), gaps
            else:
                # valid to the last row before midnight, but for the drop and its reconnect
                late = (ts > MIDNIGHT - 2 * S) & (ts <= last)
                assert late.sum() > 10 and valid[late].all(), (symbol, protocol, gaps)
                assert valid.mean() > 0.5


@pytest.mark.parametrize("protocol", ["v1", "ws"])
def test_two_recorders_on_one_dataset_replay_as_one_clean_run(
    sim_factory: Callable[..., Simulator], tmp_path: Path, protocol: str
) -> None:
    """Redundant capture: two runs of the same feed into one ``--data`` follow one book."""
    sim = sim_factory(symbols=SYMBOLS, rate=300.0, heartbeat_s=0.25, truth_dir=tmp_path / "truth")
    data = tmp_path / "data"

    def one(delay: float, duration: float) -> None:
        time.sleep(delay)
        record(
            RecordConfig(
                symbols=SYMBOLS, protocol=protocol, url=sim.ws_url, rest_url=sim.rest_url,
                data=str(data), duration=duration, snapshot_every=0.0, status_every=0.0,
                fsync_interval=0.02, connects_per_minute=600.0,
            )
        )  # fmt: skip

    # the second run starts later and stops later: each covers the other's edge
    runs = [threading.Thread(target=one, args=a) for a in ((0.0, 4.0), (1.5, 4.0))]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    sim.stop()
    books = TrueBooks(tmp_path / "truth")
    (date,) = {p.date for p in contract.list_partitions(data)}
    for symbol in SYMBOLS:
        day = replay.open(date, symbol, data=data, cache=False)
        assert {r for r in day.decoded.markers if r.kind == "follow"}, "never switched runs"
        placed = positions(protocol, data, symbol, books, tmp_path / "truth")
        snaps = assert_valid_rows_are_a_true_book(day, placed, books)
        first, last = day.span
        gaps = day.gap_list()
        # only the lead-in before the first book and the tail after the last run's shutdown:
        # neither run's start or stop is a gap while the other one is in sync
        # (the tail is empty when the last run's shutdown event is the last row)
        assert gaps and gaps[0].start == first, gaps
        assert all(g.end < first + S or g.start > last - S for g in gaps), gaps
        valid = snaps["valid"].to_numpy()
        assert valid.mean() > 0.85 and day.valid_ns + _union_ns(gaps) == last - first
