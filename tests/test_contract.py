"""The dataset contract: layout, schema, footers, atomic writes and contract order."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tickrec import contract
from tickrec.contract import Partition, Row
from tickrec.errors import CorruptFileError, DatasetError, NotFoundError, UsageError

DAY = 1_795_478_400_000_000_000  # 2026-11-24T00:00:00Z in ns
SEC = 1_000_000_000


def make_rows(
    run_id: str, first_seq: int, count: int, start_ns: int, step_ns: int = SEC
) -> list[Row]:
    return [
        Row(
            recv_ns=start_ns + i * step_ns,
            seq=first_seq + i,
            run_id=run_id,
            conn_id=1,
            protocol="gemini.v1",
            source="ws",
            payload=f'{{"type":"heartbeat","socket_sequence":{i}}}',
            exch_ns=None,
            venue_seq=i,
        )
        for i in range(count)
    ]


def test_date_of_ns_is_utc_date_at_the_boundaries() -> None:
    assert contract.date_of_ns(DAY) == "2026-11-24"
    assert contract.date_of_ns(DAY - 1) == "2026-11-23"
    assert contract.date_of_ns(DAY + 86_400 * SEC - 1) == "2026-11-24"


def test_round_trip_keeps_every_value_and_writes_footer(tmp_path: Path) -> None:
    rows = make_rows("20261124T000000-abcd", 0, 5, DAY + 5 * SEC)
    rows[1] = rows[1]._replace(source="rest", protocol="gemini.rest", sent_ns=DAY + 5 * SEC + 1)
    rows[2] = rows[2]._replace(
        payload='{"price":"61000.10","emoji":"\u00e9\u4e2d"}', exch_ns=DAY + 7
    )
    path = contract.write_part(
        tmp_path, "gemini", "BTCUSD", rows[0].run_id, 0, contract.rows_to_table(rows)
    )

    assert path == (
        tmp_path
        / "raw/venue=gemini/date=2026-11-24/symbol=BTCUSD"
        / f"part-{DAY + 5 * SEC}-20261124T000000-abcd-0.parquet"
    )
    table = contract.read_partition(tmp_path, "gemini", "2026-11-24", "BTCUSD")
    assert table.schema.equals(contract.SCHEMA)
    got = [
        Row(
            recv_ns=r["recv_ts"].value,
            seq=r["seq"],
            run_id=r["run_id"],
            conn_id=r["conn_id"],
            protocol=r["protocol"],
            source=r["source"],
            payload=r["payload"],
            exch_ns=None if r["exch_ts"] is None else r["exch_ts"].value,
            venue_seq=r["venue_seq"],
            sent_ns=None if r["sent_ts"] is None else r["sent_ts"].value,
        )
        for r in table.to_pandas()
        .astype(object)
        .where(table.to_pandas().notna(), None)
        .to_dict("records")
    ]
    assert got == rows

    footer = contract.read_footer(path)
    assert (footer.venue, footer.symbol, footer.run_id, footer.n) == (
        "gemini",
        "BTCUSD",
        rows[0].run_id,
        0,
    )
    assert (footer.first_seq, footer.last_seq, footer.rows) == (0, 4, 5)
    assert (footer.first_recv_ns, footer.last_recv_ns) == (rows[0].recv_ns, rows[-1].recv_ns)
    # no temporary file is left behind
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_extra_metadata_round_trips(tmp_path: Path) -> None:
    rows = make_rows("r1", 0, 2, DAY)
    path = contract.write_part(
        tmp_path,
        "gemini",
        "BTCUSD",
        "r1",
        0,
        contract.rows_to_table(rows),
        extra={"source_hash": "ab12"},
    )
    assert dict(contract.read_footer(path).extra) == {"source_hash": "ab12"}


def test_pyarrow_dataset_and_duckdb_read_the_tree_as_it_is(tmp_path: Path) -> None:
    for symbol, n in (("BTCUSD", 3), ("ETHUSD", 4)):
        rows = make_rows("r1", 0, n, DAY + SEC)
        contract.write_part(tmp_path, "gemini", symbol, "r1", 0, contract.rows_to_table(rows))
    contract.write_part(
        tmp_path,
        "gemini",
        "BTCUSD",
        "r1",
        1,
        contract.rows_to_table(make_rows("r1", 3, 2, DAY + 10 * SEC)),
    )

    dataset = ds.dataset(tmp_path / "raw", partitioning="hive", format="parquet")
    table = dataset.to_table()
    assert table.num_rows == 9
    counts = table.group_by("symbol").aggregate([("seq", "count")]).to_pydict()
    assert dict(zip(counts["symbol"], counts["seq_count"], strict=True)) == {
        "BTCUSD": 5,
        "ETHUSD": 4,
    }

    con = duckdb.connect()
    result = con.execute(
        "select symbol, count(*), min(seq), max(seq), any_value(venue) "
        f"from read_parquet('{tmp_path}/raw/**/*.parquet', hive_partitioning=true) "
        "group by symbol order by symbol"
    ).fetchall()
    assert result == [("BTCUSD", 5, 0, 4, "gemini"), ("ETHUSD", 4, 0, 3, "gemini")]


def test_a_file_that_is_not_parquet_is_named_in_the_error(tmp_path: Path) -> None:
    contract.write_part(
        tmp_path, "gemini", "BTCUSD", "r1", 0, contract.rows_to_table(make_rows("r1", 0, 2, DAY))
    )
    bad = (
        contract.partition_dir(tmp_path, "gemini", "2026-11-24", "BTCUSD")
        / f"part-{DAY + 5}-r1-1.parquet"
    )
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(CorruptFileError, match=bad.name) as info:
        contract.read_partition(tmp_path, "gemini", "2026-11-24", "BTCUSD")
    assert str(bad) in str(info.value)


@pytest.mark.parametrize(
    "bad", ["..", ".", "", "a/b", "../etc", "a\\b", "BTC USD", "x\x00", "é", "...", "/abs"]
)
def test_names_are_validated_before_they_become_path_parts(tmp_path: Path, bad: str) -> None:
    table = contract.rows_to_table(make_rows("r1", 0, 1, DAY))
    with pytest.raises(UsageError):
        contract.write_part(tmp_path, "gemini", bad, "r1", 0, table)
    with pytest.raises(UsageError):
        contract.write_part(tmp_path, bad, "BTCUSD", "r1", 0, table)
    with pytest.raises(UsageError):
        contract.write_part(
            tmp_path,
            "gemini",
            "BTCUSD",
            bad,
            0,
            contract.rows_to_table(make_rows(bad or "r", 0, 1, DAY)),
        )
    # nothing was written anywhere
    assert not any(tmp_path.rglob("*"))


@pytest.mark.parametrize("good", ["BTCUSD", "GEMI-BTC05M2606011000-UP", "btc_usd.perp", "a..b"])
def test_reasonable_names_pass(good: str) -> None:
    assert contract.check_name("symbol", good) == good


def test_reader_uses_contract_order_not_filesystem_order(tmp_path: Path) -> None:
    # Run "zzz" starts first but sorts last by name; part 10 sorts before part 2 as text.
    early, late = "zzz-early", "aaa-late"
    parts = [
        (early, 0, make_rows(early, 0, 3, DAY + 1 * SEC)),
        (early, 2, make_rows(early, 3, 3, DAY + 10 * SEC)),
        (early, 10, make_rows(early, 6, 3, DAY + 20 * SEC)),
        (late, 0, make_rows(late, 0, 3, DAY + 100 * SEC)),
    ]
    for run_id, n, rows in reversed(parts):
        contract.write_part(tmp_path, "gemini", "BTCUSD", run_id, n, contract.rows_to_table(rows))
    listed = contract.list_parts(tmp_path, Partition("gemini", "2026-11-24", "BTCUSD"))
    assert [(p.run_id, p.n) for p in listed] == [(early, 0), (early, 2), (early, 10), (late, 0)]

    table = contract.read_partition(tmp_path, "gemini", "2026-11-24", "BTCUSD")
    recv = table.column("recv_ts").cast(pa.int64()).to_pylist()
    assert recv == sorted(recv)
    assert table.column("run_id").to_pylist() == [early] * 9 + [late] * 3


def test_overlapping_runs_are_merged_by_recv_ts_run_id_seq(tmp_path: Path) -> None:
    a = make_rows("run-a", 0, 4, DAY, step_ns=2 * SEC)  # 0, 2, 4, 6 s
    b = make_rows("run-b", 0, 4, DAY + SEC, step_ns=2 * SEC)  # 1, 3, 5, 7 s
    b[0] = b[0]._replace(recv_ns=DAY + 2 * SEC)  # 2, 3, 5, 7 s: ties with a[1], run id breaks it
    contract.write_part(tmp_path, "gemini", "BTCUSD", "run-b", 0, contract.rows_to_table(b))
    contract.write_part(tmp_path, "gemini", "BTCUSD", "run-a", 0, contract.rows_to_table(a))
    table = contract.read_partition(tmp_path, "gemini", "2026-11-24", "BTCUSD")
    got = list(
        zip(table.column("run_id").to_pylist(), table.column("seq").to_pylist(), strict=True)
    )
    assert got == [
        ("run-a", 0),
        ("run-a", 1),
        ("run-b", 0),
        ("run-b", 1),
        ("run-a", 2),
        ("run-b", 2),
        ("run-a", 3),
        ("run-b", 3),
    ]


def test_write_refuses_rows_across_midnight_out_of_order_or_existing(tmp_path: Path) -> None:
    across = make_rows("r1", 0, 2, DAY - SEC // 2)
    with pytest.raises(DatasetError, match="partition date"):
        contract.write_part(tmp_path, "gemini", "BTCUSD", "r1", 0, contract.rows_to_table(across))
    rows = make_rows("r1", 0, 3, DAY)
    disordered = [rows[0], rows[2], rows[1]]
    with pytest.raises(DatasetError, match="seq order"):
        contract.write_part(
            tmp_path, "gemini", "BTCUSD", "r1", 0, contract.rows_to_table(disordered)
        )
    contract.write_part(tmp_path, "gemini", "BTCUSD", "r1", 0, contract.rows_to_table(rows))
    with pytest.raises(DatasetError, match="never rewritten"):
        contract.write_part(tmp_path, "gemini", "BTCUSD", "r1", 0, contract.rows_to_table(rows))
    bad_source = [rows[0]._replace(source="nonsense")]
    with pytest.raises(DatasetError, match="unknown source"):
        contract.write_part(
            tmp_path, "gemini", "BTCUSD", "r1", 5, contract.rows_to_table(bad_source)
        )


def test_missing_partition_error_lists_what_exists(tmp_path: Path) -> None:
    contract.write_part(
        tmp_path, "gemini", "BTCUSD", "r1", 0, contract.rows_to_table(make_rows("r1", 0, 1, DAY))
    )
    with pytest.raises(NotFoundError, match="symbols on 2026-11-24: BTCUSD"):
        contract.read_partition(tmp_path, "gemini", "2026-11-24", "ETHUSD")
    with pytest.raises(NotFoundError, match="dates for gemini: 2026-11-24"):
        contract.read_partition(tmp_path, "gemini", "2026-11-25", "BTCUSD")
    # A partition's directory with no part in it (left by an upload to a store) says so.
    empty = contract.partition_dir(tmp_path, "gemini", "2026-11-24", "ETHUSD")
    Path(empty).mkdir(parents=True)
    with pytest.raises(NotFoundError, match="symbol=ETHUSD holds no part files"):
        contract.read_partition(tmp_path, "gemini", "2026-11-24", "ETHUSD")
    with pytest.raises(UsageError, match="invalid date"):
        contract.read_partition(tmp_path, "gemini", "2026-13-01", "BTCUSD")


def test_hidden_and_temporary_files_are_ignored(tmp_path: Path) -> None:
    path = contract.write_part(
        tmp_path, "gemini", "BTCUSD", "r1", 0, contract.rows_to_table(make_rows("r1", 0, 2, DAY))
    )
    (path.parent / f".part-{DAY}-r1-1.parquet.tmp").write_bytes(b"partial")
    assert len(contract.list_parts(tmp_path, Partition("gemini", "2026-11-24", "BTCUSD"))) == 1
    assert ds.dataset(tmp_path / "raw", partitioning="hive", format="parquet").count_rows() == 2


def test_event_payload_is_canonical_json() -> None:
    assert contract.event_payload("disconnect", reason="bye", code=1006) == (
        '{"code":1006,"event":"disconnect","reason":"bye"}'
    )
    with pytest.raises(ValueError, match="unknown event kind"):
        contract.event_payload("bogus")


def test_resolve_root_prefers_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKREC_DATA", "/somewhere")
    assert contract.resolve_root("mine") == Path("mine")
    assert contract.resolve_root(None) == Path("/somewhere")
    monkeypatch.delenv("TICKREC_DATA")
    assert contract.resolve_root(None) == Path("data")
    assert os.fspath(contract.resolve_root(Path("x"))) == "x"
