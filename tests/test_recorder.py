"""The recorder against the real loopback simulator: what it stores, and how it stays up."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import record_sim

from recorder.feed import Connection, ConnectLimiter
from recorder.journal import Journal, RunMeta, journal_dir, list_segments, scan_segment
from recorder.status import Stats
from tickrec import contract
from tickrec.errors import JournalError, UsageError
from tickrec.sim import Simulator
from tickrec.venues import VENUES
from tickrec.venues.gemini import ws as gemini_ws
from tickrec.venues.gemini.session import V2Session, WsSession

SYMS = ("BTCUSD", "ETHUSD")
Rows = list[dict[str, Any]]


def _rows(tmp_path: Path, symbol: str) -> Rows:
    root = tmp_path / "data"
    (part,) = [p for p in contract.list_partitions(root) if p.symbol == symbol]
    rows: Rows = contract.read_partition(root, part.venue, part.date, symbol).to_pylist()
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(set(seqs)), "seq must be strictly increasing"
    return rows


def _events(rows: Rows, name: str | None = None) -> list[dict[str, Any]]:
    out = [
        dict(json.loads(r["payload"]), conn_id=r["conn_id"]) for r in rows if r["source"] == "event"
    ]
    return [e for e in out if name is None or e["event"] == name]


def _truth(tmp_path: Path, read_jsonl: Callable[[Path], Rows], name: str = "messages") -> Rows:
    return read_jsonl(tmp_path / "truth" / f"{name}.jsonl")


def _by_conn(truth: Rows) -> dict[int, Rows]:
    conns: dict[int, Rows] = {}
    for m in truth:
        conns.setdefault(m["conn"], []).append(m)
    return conns


def test_v1_stores_every_frame_byte_for_byte(
    sim_factory: Callable[..., Simulator], tmp_path: Path, read_jsonl: Callable[[Path], Rows]
) -> None:
    sim = sim_factory(symbols=SYMS, truth_dir=tmp_path / "truth")
    record_sim(sim, tmp_path, protocol="v1")
    truth = _by_conn(_truth(tmp_path, read_jsonl))
    assert len(truth) == 2
    for msgs in truth.values():
        symbol = msgs[0]["path"].split("/")[3].split("?")[0].upper()
        rows = _rows(tmp_path, symbol)
        ws = [r for r in rows if r["source"] == "ws"]
        assert [r["payload"] for r in ws] == [m["msg"] for m in msgs]
        assert all(r["protocol"] == "gemini.v1" and r["conn_id"] == ws[0]["conn_id"] for r in ws)
        for r in ws:
            frame = json.loads(r["payload"])
            assert r["venue_seq"] == frame["socket_sequence"]
            if "timestampms" in frame:
                assert r["exch_ts"].timestamp() * 1000 == pytest.approx(frame["timestampms"])
        assert [r["venue_seq"] for r in ws] == list(range(len(ws)))
        kinds = [e["event"] for e in _events(rows)]
        assert kinds[:2] == ["run_start", "connect"] and "shutdown" in kinds
        assert kinds[-1] == "disconnect"


def test_v2_one_connection_split_by_symbol(
    sim_factory: Callable[..., Simulator], tmp_path: Path, read_jsonl: Callable[[Path], Rows]
) -> None:
    sim = sim_factory(symbols=SYMS, truth_dir=tmp_path / "truth")
    record_sim(sim, tmp_path, protocol="v2")
    (msgs,) = _by_conn(_truth(tmp_path, read_jsonl)).values()
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        want = [m["msg"] for m in msgs if json.loads(m["msg"]).get("symbol", symbol) == symbol]
        assert [r["payload"] for r in rows if r["source"] == "ws"] == want
        (sent,) = [r for r in rows if r["source"] == "ws_sent"]
        assert json.loads(sent["payload"])["subscriptions"][0]["symbols"] == list(SYMS)
        beats = [r for r in rows if r["source"] == "ws" and '"heartbeat"' in r["payload"]]
        assert beats and all(r["exch_ts"] is not None for r in beats)
    # a heartbeat is the same row (same seq) in both partitions
    a = {r["seq"] for r in _rows(tmp_path, "BTCUSD") if '"heartbeat"' in r["payload"]}
    b = {r["seq"] for r in _rows(tmp_path, "ETHUSD") if '"heartbeat"' in r["payload"]}
    assert a == b


def test_rest_snapshots_errors_and_retry_after(
    sim_factory: Callable[..., Simulator], tmp_path: Path, read_jsonl: Callable[[Path], Rows]
) -> None:
    sim = sim_factory(
        symbols=SYMS, truth_dir=tmp_path / "truth", rest_429=0.25, rest_500=0.25, retry_after=1
    )
    record_sim(
        sim,
        tmp_path,
        protocol="v1",
        duration=3.0,
        snapshot_every=0.1,
        rest_min_gap=0.05,
        snapshot_depth=5,
    )
    # the run's first request checks the symbols (GET /v1/symbols); the rest are books
    replies = [r for r in _truth(tmp_path, read_jsonl, "rest") if "/v1/book/" in r["path"]]
    ok = [r for r in replies if r["status"] == 200]
    assert ok and len(ok) < len(replies)
    stored: Rows = []
    errors: list[dict[str, Any]] = []
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        stored += [r for r in rows if r["source"] == "rest"]
        errors += [
            dict(e, recv=r["recv_ts"])
            for r, e in zip([r for r in rows if r["source"] == "event"], _events(rows), strict=True)
            if e["event"] == "rest_error"
        ]
        ws = [r for r in rows if r["source"] == "ws"]
        assert ws[-1]["recv_ts"].timestamp() - ws[0]["recv_ts"].timestamp() > 2.5  # streaming on
    assert sorted(r["payload"] for r in stored) == sorted(r["body"] for r in ok)
    for r in stored:
        assert r["protocol"] == "gemini.rest" and r["sent_ts"] <= r["recv_ts"]
        assert len(json.loads(r["payload"])["bids"]) <= 5
    assert {e["status"] for e in errors} == {429, 500}
    # after a 429 with Retry-After: 1, the next request waits a second
    sent = sorted([r["sent_ts"].timestamp() for r in stored] + [e["sent_ns"] / 1e9 for e in errors])
    for e in errors:
        if e["status"] == 429:
            later = [t for t in sent if t > e["sent_ns"] / 1e9]
            if later:
                assert later[0] - e["recv"].timestamp() >= 0.99


def test_v1_sequence_gap_records_and_reconnects(
    sim_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    sim = sim_factory(symbols=("BTCUSD",), drop=0.02)
    record_sim(sim, tmp_path, symbols=("BTCUSD",), protocol="v1", duration=2.0)
    rows = _rows(tmp_path, "BTCUSD")
    gaps = _events(rows, "gap")
    assert gaps and all(g["got"] > g["expected"] for g in gaps)
    conns = sorted({r["conn_id"] for r in rows if r["source"] == "ws"})
    assert len(conns) >= 2 and conns == list(range(1, len(conns) + 1))
    for c in conns:  # every new connection starts again at socket_sequence 0
        first = next(r for r in rows if r["source"] == "ws" and r["conn_id"] == c)
        dropped_first = any(g["conn_id"] == c and g["expected"] == 0 for g in gaps)
        assert first["venue_seq"] == 0 or dropped_first
    # make-before-break: a connection with a gap records on until a successor has the book
    ends = {e["conn_id"]: e["why"] for e in _events(rows, "disconnect")}
    assert all(ends[g["conn_id"]] in ("resync handover", "shutdown") for g in gaps)
    assert any(ends[g["conn_id"]] == "resync handover" for g in gaps)


@pytest.mark.parametrize("abrupt", [False, True])
def test_server_close_reconnects_with_next_conn_id(
    sim_factory: Callable[..., Simulator], tmp_path: Path, abrupt: bool
) -> None:
    sim = sim_factory(symbols=("BTCUSD",), close_every=0.4, abrupt=abrupt)
    record_sim(sim, tmp_path, symbols=("BTCUSD",), protocol="v2", duration=1.6)
    rows = _rows(tmp_path, "BTCUSD")
    drops = [e for e in _events(rows, "disconnect") if e["why"] != "shutdown"]
    assert len(drops) >= 2
    if abrupt:
        assert all(e["code"] is None for e in drops)
    else:
        assert all(e["code"] == 1000 and e["reason"] == "scheduled close" for e in drops)
    connects = [e["conn_id"] for e in _events(rows, "connect")]
    assert connects == list(range(1, len(connects) + 1)) and len(connects) >= 3
    assert len(_events(rows, "reconnect")) == len(connects) - 1
    # every connection subscribed again
    assert len([r for r in rows if r["source"] == "ws_sent"]) == len(connects)


def test_stall_trips_the_watchdog(sim_factory: Callable[..., Simulator], tmp_path: Path) -> None:
    sim = sim_factory(symbols=("BTCUSD",), stall_every=0.3, stall_for=5.0)
    record_sim(sim, tmp_path, symbols=("BTCUSD",), protocol="v1", duration=2.0, stale_after=0.4)
    rows = _rows(tmp_path, "BTCUSD")
    stale = _events(rows, "stale")
    assert stale and all(e["silent_s"] >= 0.4 for e in stale)
    assert any(e["why"].startswith("stale") for e in _events(rows, "disconnect"))
    assert len(_events(rows, "connect")) >= 2


def test_malformed_frames_are_stored_raw_and_noted(
    sim_factory: Callable[..., Simulator], tmp_path: Path, read_jsonl: Callable[[Path], Rows]
) -> None:
    """On v2 the recorder also opens a successor at once: only a new snapshot can be trusted
    (no sequence numbers, docs/venues/gemini.md section 2)."""
    sim = sim_factory(symbols=SYMS, malformed=0.02, truth_dir=tmp_path / "truth")
    record_sim(sim, tmp_path, protocol="v2")
    truth = _truth(tmp_path, read_jsonl)
    bad = {m["msg"] for m in truth if not _is_json(m["msg"])}
    assert bad
    seen: set[str] = set()
    for symbol in SYMS:
        rows = _rows(tmp_path, symbol)
        by_seq = {r["seq"]: r for r in rows}
        for e in _events(rows, "malformed"):
            row = by_seq[e["seq"]]
            assert row["source"] == "ws" and not _is_json(row["payload"])
            seen.add(row["payload"])
    assert seen == bad
    rows = _rows(tmp_path, SYMS[0])
    ends = {e["conn_id"]: e["why"] for e in _events(rows, "disconnect")}
    first_bad = {e["conn_id"] for e in _events(rows, "malformed")}
    assert len(first_bad) >= 2, "every connection with a bad frame was replaced"
    assert all(ends[c] in ("resync handover", "shutdown") for c in first_bad)
    assert any(ends[c] == "resync handover" for c in first_bad)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_table_matches_the_contract(sim_factory: Callable[..., Simulator], tmp_path: Path) -> None:
    sim = sim_factory(symbols=SYMS)
    result = record_sim(sim, tmp_path, protocol="v2", duration=1.0, snapshot_every=0.3)
    assert result.parts and result.stopped_by == "duration"
    for p in result.parts:
        footer = contract.read_footer(p)
        assert footer.run_id == result.run_id and footer.rows > 0
    import pyarrow.dataset as ds

    table = ds.dataset(tmp_path / "data" / "raw", partitioning="hive").to_table()
    assert set(table.column("source").to_pylist()) == {"ws", "ws_sent", "rest", "event"}
    assert table.schema.field("recv_ts").type == pa.timestamp("ns", tz="UTC")


def test_watchdog_after_the_journal_gave_up_leaves_the_stop_to_the_run(
    sim: Simulator, tmp_path: Path
) -> None:
    # The run's loop calls check_stale before it looks at journal.fatal; a keepalive
    # ping or stale event written then must not raise past it (the run would end
    # without closing its journal or converter).
    journal = Journal(tmp_path, RunMeta("run-fatal", "gemini", gemini_ws.PROTOCOL, ("BTCUSD",)))
    stop = threading.Event()
    conn = Connection(
        gemini_ws.stream_url(sim.ws_url),
        gemini_ws.PROTOCOL,
        ("BTCUSD",),
        journal,
        Stats(("BTCUSD",)),
        ConnectLimiter(),
        itertools.count(1).__next__,
        stop,
        session=WsSession,
    )
    conn.start()
    try:
        deadline = time.monotonic() + 10
        while conn._ws is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert conn._ws is not None
        journal.fatal = JournalError("cannot write the journal")
        conn.check_stale(time.monotonic() + 60)  # silent long enough to ping and to be stale
    finally:
        stop.set()
        conn.abort()
        conn.join(5)
        journal.close()
        journal.release()


def test_a_surprise_in_a_capture_thread_costs_one_connection_not_the_run(
    sim_factory: Callable[..., Simulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception (a codec bug, say) while reading or polling is recorded and
    survived: the connection is replaced and REST polling goes on, instead of the thread dying
    while the run keeps going and records nothing."""
    import recorder.feed
    from tickrec.venues.gemini import rest as gemini_rest

    real_header, real_url = recorder.feed.header_of, gemini_rest.book_url
    calls = itertools.count()

    def header_once_broken(protocol: str, text: str) -> Any:
        if next(calls) == 20:
            raise RuntimeError("codec bug")
        return real_header(protocol, text)

    urls = itertools.count()

    def url_once_broken(base: str, symbol: str, depth: int) -> str:
        if next(urls) == 0:
            raise RuntimeError("url bug")
        return real_url(base, symbol, depth)

    monkeypatch.setattr(recorder.feed, "header_of", header_once_broken)
    gemini = VENUES["gemini"]
    recordings = tuple(dataclasses.replace(r, book_url=url_once_broken) for r in gemini.recordings)
    monkeypatch.setitem(VENUES, "gemini", dataclasses.replace(gemini, recordings=recordings))
    sim = sim_factory(symbols=SYMS[:1])
    record_sim(sim, tmp_path, symbols=SYMS[:1], protocol="v1", duration=2.0, snapshot_every=0.3)
    rows = _rows(tmp_path, SYMS[0])
    [broken] = [e for e in _events(rows, "disconnect") if "codec bug" in str(e.get("why"))]
    later = [r for r in rows if r["source"] == "ws" and r["conn_id"] > broken["conn_id"]]
    assert later, "capture went on on a new connection"
    [rest_error] = [e for e in _events(rows, "rest_error") if "url bug" in str(e.get("error"))]
    assert rest_error["symbol"] == SYMS[0]
    assert [r for r in rows if r["source"] == "rest"], "REST polling went on"


def test_a_url_the_client_refuses_is_a_failed_connect_not_a_dead_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """websocket-client raises ValueError for a URL it cannot use: each attempt is an
    ``error`` event and a warning, and the connection keeps retrying with backoff."""
    from recorder.feed import FeedSettings

    journal = Journal(tmp_path, RunMeta("run-badurl", "gemini", "gemini.v2", ("BTCUSD",)))
    stop = threading.Event()
    conn = Connection(
        "http://127.0.0.1:9/v2/marketdata",
        "gemini.v2",
        ("BTCUSD",),
        journal,
        Stats(("BTCUSD",)),
        ConnectLimiter(600.0),
        itertools.count(1).__next__,
        stop,
        FeedSettings(backoff_base=0.01, backoff_cap=0.05),
        session=V2Session,
    )
    with caplog.at_level(logging.WARNING, "tickrec.recorder"):
        conn.start()
        try:
            time.sleep(0.5)
            assert conn.is_alive()
        finally:
            stop.set()
            conn.join(5)
            journal.close()
    failed = [r for r in caplog.records if "failed: ValueError" in r.getMessage()]
    assert len(failed) >= 2 and all(r.levelno == logging.WARNING for r in failed)
    (_, segment), *_ = list_segments(journal_dir(tmp_path, "run-badurl"))
    events = [json.loads(r.row.payload) for r in scan_segment(segment).records]
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) >= 2 and all(e["error"].startswith("ValueError") for e in errors)
    assert len([e for e in events if e["event"] == "reconnect"]) == len(errors) - 1
    journal.release()


def test_unknown_symbols_are_refused_before_recording(
    sim_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    """The simulator lists BTCUSD and ETHUSD; ``/v1/symbols`` says so (lower case)."""
    sim = sim_factory(symbols=SYMS)
    with pytest.raises(UsageError, match=r"^--symbols: .*not list XRPUSD .*e\.g\. BTCUSD, ETHUSD"):
        record_sim(sim, tmp_path, symbols=("btcusd", "XRPUSD"), protocol="v2", duration=5.0)
    assert not (tmp_path / "data" / "raw").exists()


def test_symbols_go_unchecked_when_rest_cannot_tell_and_every_close_is_logged(
    sim_factory: Callable[..., Simulator], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """REST failing never stops a capture; the exchange closing on an unknown symbol shows
    in the log, with its code and reason, every time (not only in the event rows)."""
    sim = sim_factory(symbols=SYMS, rest_500=1.0)
    with caplog.at_level(logging.INFO, "tickrec.recorder"):
        record_sim(sim, tmp_path, symbols=("BTCUSD", "XRPUSD"), protocol="v2", duration=1.0)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert any(
        level == logging.WARNING and "cannot check the symbols" in m and "status 500" in m
        for level, m in messages
    )
    closes = [(level, m) for level, m in messages if "code 1008" in m and "xrpusd" in m.lower()]
    assert len(closes) >= 2 and all(level == logging.WARNING for level, _ in closes)
    rows = _rows(tmp_path, "XRPUSD")
    assert len(_events(rows, "disconnect")) >= len(closes)


def test_slow_rest_replies_time_out_as_events_and_streaming_goes_on(
    sim_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    """A REST reply slower than the timeout is a `rest_error` event; one within it is stored
    with its true latency (`recv_ts - sent_ts`); the websocket stream never waits for REST."""
    sim = sim_factory(symbols=SYMS[:1], rest_slow=0.5, rest_slow_for=0.8)
    record_sim(
        sim,
        tmp_path,
        symbols=SYMS[:1],
        protocol="v1",
        duration=4.0,
        snapshot_every=0.2,
        rest_min_gap=0.05,
        rest_timeout=0.4,
    )
    rows = _rows(tmp_path, SYMS[0])
    timeouts = [e for e in _events(rows, "rest_error") if "Timeout" in str(e.get("error"))]
    stored = [r for r in rows if r["source"] == "rest"]
    assert timeouts and stored
    for r in stored:  # only the fast replies got through, each with its own latency
        assert 0 < (r["recv_ts"] - r["sent_ts"]).total_seconds() < 0.4
    ws = [r for r in rows if r["source"] == "ws"]
    gaps = [(b["recv_ts"] - a["recv_ts"]).total_seconds() for a, b in itertools.pairwise(ws)]
    assert max(gaps) < 0.4, "the stream stalled while REST was slow"
