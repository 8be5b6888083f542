"""Damaged messages cost gaps around them, never the day, and never invent a book.

A valid dataset (a synthetic v1 day with reconnects and REST snapshots, and
the real v2 capture) is replayed clean, then with random messages damaged:
a price or size replaced by a value no fixed-point column holds, or random
bytes overwritten (invalid UTF-8 and broken JSON among them), or a message
cut short. The damaged replay must never raise; before the first damaged
row it is identical to the clean one; and where values were replaced,
every instant it calls valid shows exactly the clean book, and every damaged
row lies in a gap.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import V2_DATE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.synth import DayParams, make_day
from replay import report
from replay.api import Day
from tickrec.contract import read_partition

BAD_VALUES = [
    "-1",
    "NaN",
    "Infinity",
    "1e999999999",
    "1e-999999999",
    "9" * 10_000,
    "1." + "1" * 40,
    "0.0000000000001",
    "",
    "1.2.3",
    "+5",
]
_VALUE = re.compile(rb'"(price|remaining|amount|quantity)":"([^"]*)"|\["(buy|sell)","([^"]*)"')


@pytest.fixture(scope="module")
def v1_day(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    params = DayParams(changes=3_000, seed=11, span_s=240, reconnects=2, part_rows=10**6)
    day = make_day(params, cache=tmp_path_factory.mktemp("synth"))
    return _named(read_partition(day.root, day.venue, day.date, day.symbol), day.symbol)


@pytest.fixture(scope="module")
def v2_day(v2_root: Path) -> pa.Table:
    """The real v2 capture's partition with the most rows."""
    tables = [
        _named(read_partition(v2_root, "gemini", V2_DATE, symbol), symbol)
        for symbol in report.resolve_symbols(v2_root, "gemini", V2_DATE, None)
    ]
    return max(tables, key=lambda t: t.num_rows)


def _named(table: pa.Table, symbol: str) -> pa.Table:
    """*table* with its symbol in its schema's metadata, for :func:`_replay`."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"symbol": symbol})


def _replay(table: pa.Table) -> tuple[Day, pd.DataFrame]:
    first = table.column("recv_ts").cast(pa.int64())[0].as_py()
    date = pd.Timestamp(first, unit="ns", tz="UTC").date().isoformat()
    symbol = table.schema.metadata[b"symbol"].decode()
    day = Day(table, date=date, symbol=symbol)  # type: ignore[arg-type]
    return day, day.book_snapshots(depth=5, every="1s")


def _with_payloads(table: pa.Table, payloads: list[bytes]) -> pa.Table:
    large = pa.types.is_large_string(table.schema.field("payload").type)
    raw = pa.array(payloads, pa.large_binary() if large else pa.binary())
    col = raw.view(pa.large_string() if large else pa.string())  # may hold invalid UTF-8
    out = table.set_column(table.schema.get_field_index("payload"), "payload", col)
    return out.replace_schema_metadata(table.schema.metadata)


def _replace_value(payload: bytes, bad: str, which: int) -> bytes | None:
    """*payload* with its *which*-th price or size (cyclically) replaced by *bad*."""
    found = list(_VALUE.finditer(payload))
    if not found:
        return None
    m = found[which % len(found)]
    group = 2 if m.group(2) is not None else 4
    s, e = m.span(group)
    return payload[:s] + bad.encode() + payload[e:]


def _received_rows(table: pa.Table) -> list[int]:
    return [i for i, s in enumerate(table.column("source").to_pylist()) if s == "ws"]


def _same_before(clean: pd.DataFrame, damaged: pd.DataFrame, t: int) -> None:
    before = clean["ts"].astype("int64") < t
    pd.testing.assert_frame_equal(
        damaged[before.to_numpy()].reset_index(drop=True),
        clean[before.to_numpy()].reset_index(drop=True),
    )


damage = st.lists(
    st.tuples(st.integers(0, 10**9), st.sampled_from(BAD_VALUES), st.integers(0, 50)),
    min_size=1,
    max_size=4,
)


def _check_replaced(table: pa.Table, picks: list[tuple[int, str, int]]) -> None:
    _, clean = _replay(table)
    rows = _received_rows(table)
    payloads = [p.encode() for p in table.column("payload").to_pylist()]
    damaged_at = []
    for pick, bad, which in picks:
        r = rows[pick % len(rows)]
        new = _replace_value(payloads[r], bad, which)
        if new is not None:
            payloads[r] = new
            damaged_at.append(r)
    if not damaged_at:
        return
    day, snaps = _replay(_with_payloads(table, payloads))
    recv = table.column("recv_ts").cast(pa.int64()).to_pylist()
    first = min(recv[r] for r in damaged_at)
    _same_before(clean, snaps, first)
    # Nothing invented: where the damaged day is valid, it is the clean book.
    valid = snaps["valid"].to_numpy()
    pd.testing.assert_frame_equal(
        snaps[valid].reset_index(drop=True), clean[valid].reset_index(drop=True)
    )
    gaps = day.gap_list()
    for r in damaged_at:
        assert any(g.start <= recv[r] <= g.end for g in gaps), (r, gaps)
    assert any("undecodable message at run " in g.detail for g in gaps)
    # What was invalid stays invalid: the damage adds gaps, it never removes one.
    clean_invalid = ~clean["valid"].to_numpy()
    assert not valid[clean_invalid].any()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(picks=damage)
def test_bad_values_in_v1_cost_gaps_only(v1_day: pa.Table, picks: list[tuple[int, str, int]]):
    _check_replaced(v1_day, picks)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(picks=damage)
def test_bad_values_in_v2_cost_gaps_only(v2_day: pa.Table, picks: list[tuple[int, str, int]]):
    _check_replaced(v2_day, picks)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    hits=st.lists(
        st.tuples(st.integers(0, 10**9), st.integers(0, 10**4), st.binary(min_size=1, max_size=3)),
        min_size=1,
        max_size=4,
    ),
    cut=st.booleans(),
)
def test_random_bytes_never_raise(v1_day: pa.Table, hits: list[tuple[int, int, bytes]], cut: bool):
    _, clean = _replay(v1_day)
    rows = _received_rows(v1_day)
    payloads = [p.encode() for p in v1_day.column("payload").to_pylist()]
    damaged_at = []
    for pick, offset, junk in hits:
        r = rows[pick % len(rows)]
        p = payloads[r]
        k = offset % max(len(p), 1)
        payloads[r] = p[:k] if cut else p[:k] + junk + p[k + len(junk) :]
        damaged_at.append(r)
    day, snaps = _replay(_with_payloads(v1_day, payloads))
    day.gap_list()
    recv = v1_day.column("recv_ts").cast(pa.int64()).to_pylist()
    _same_before(clean, snaps, min(recv[r] for r in damaged_at))


def test_invalid_utf8_is_a_gap_naming_its_row(v1_day: pa.Table):
    rows = _received_rows(v1_day)
    payloads = [p.encode() for p in v1_day.column("payload").to_pylist()]
    r = rows[len(rows) // 2]
    payloads[r] = payloads[r][:10] + b"\xff\xfe" + payloads[r][12:]
    day, _ = _replay(_with_payloads(v1_day, payloads))
    seq = v1_day.column("seq")[r].as_py()
    (gap,) = [g for g in day.gap_list() if "not valid UTF-8" in g.detail]
    assert f" seq {seq} (not valid UTF-8)" in gap.detail


def test_damage_in_a_file_replays_from_disk(tmp_path: Path, v1_day: pa.Table):
    """Written to a Parquet part and read back, a bad value still costs only a gap."""
    rows = _received_rows(v1_day)
    payloads = [p.encode() for p in v1_day.column("payload").to_pylist()]
    r = rows[len(rows) // 3]
    new = _replace_value(payloads[r], "1e999999999", 0)
    assert new is not None
    payloads[r] = new
    path = tmp_path / "part.parquet"
    pq.write_table(_with_payloads(v1_day, payloads), path)
    day, snaps = _replay(pq.read_table(path))
    assert snaps["valid"].any() and any("1e999999999" in g.detail for g in day.gap_list())
