"""Replays fanned out to worker processes and to a Dask LocalCluster on 127.0.0.1, from
local disk and from a loopback S3: byte-identical to a serial run, the book carried
over each midnight."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest
import s3
from dask.distributed import Client, LocalCluster
from test_overlap import Run, market
from typer.testing import CliRunner

import replay
from tickrec import contract
from tickrec.cli import app
from tickrec.contract import rows_to_table
from tickrec.errors import UsageError
from tickrec.store import as_root

DATES = ("2026-11-23", "2026-11-24", "2026-11-25")
SYMBOLS = ("BTCUSD", "ETHUSD")


def midnight(date: str) -> int:
    return int(pd.Timestamp(date, tz="UTC").value)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three dates of two symbols: one run over each of the two midnights, each its
    connection open across it (so each later date starts from the carried book)."""
    root = tmp_path_factory.mktemp("days")
    for symbol in SYMBOLS:
        for k, date in enumerate(DATES[1:]):
            run = market(Run(f"run{k}-{symbol.lower()}", t0=midnight(date) - 10 * 10**9))
            by_date: dict[str, list[contract.Row]] = {}
            for row in run.rows:
                by_date.setdefault(contract.date_of_ns(row.recv_ns), []).append(row)
            for n, rows in enumerate(by_date.values()):
                contract.write_part(root, "gemini", symbol, run.run_id, n, rows_to_table(rows))
    return root


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def cli(*args: str) -> str:
    done = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def replayed(root: Path | str, where: Path, *extra: str) -> tuple[str, bytes]:
    out = where / "snap.parquet"
    text = cli(
        "replay", "--from", DATES[0], "--to", DATES[-1], "--data", str(root),
        "--no-cache", "--every", "1s", "--out", str(out), *extra,
    )  # fmt: skip
    return text.replace(str(out), "OUT"), out.read_bytes()


def test_the_dataset_carries_a_book_over_each_midnight(root: Path):
    days = replay.open_range(DATES[0], DATES[-1], "BTCUSD", data=root, cache=False)
    assert [d.date for d in days.days] == list(DATES)
    for day in days.days[1:]:
        assert day.carried  # the book went on over midnight
        first = day.midnight_ns  # valid from the first instant: no gap over midnight
        assert not [g for g in day.gap_list() if g.start <= first < g.end], day.gap_list()


def test_cluster_and_workers_equal_a_serial_replay(root: Path, tmp_path: Path):
    serial = replayed(root, tmp_path)
    assert "no_data" in serial[0] and "BTCUSD" in serial[0] and "ETHUSD" in serial[0]
    assert replayed(root, tmp_path, "--workers", "2") == serial
    assert replayed(root, tmp_path, "--cluster", "local:2") == serial


def test_the_api_maps_partitions_on_a_client(root: Path, client: Client):
    tasks = [(d, s) for s in SYMBOLS for d in DATES]

    def summary(task: tuple[str, str]) -> dict:
        return replay.open(*task, data=root, cache=False).summary()

    assert list(replay.map_partitions(summary, tasks, cluster=client)) == [
        summary(t) for t in tasks
    ]
    # A different order of the same tasks gives the same results in that order.
    back = tasks[::-1]
    assert list(replay.map_partitions(summary, back, cluster=client)) == [summary(t) for t in back]


def test_workers_read_the_shared_object_store(root: Path, tmp_path: Path):
    serial = replayed(root, tmp_path)
    with s3.serve() as server:  # before the cluster starts, so its workers inherit the endpoint
        uri = server.bucket("days") + "/data"
        fs = as_root(uri).fs
        pafs.copy_files(str(root / "raw"), "days/data/raw", destination_filesystem=fs)
        assert replayed(uri, tmp_path, "--cluster", "local:2") == serial


def test_bad_cluster_options_are_refused():
    for args in (
        ["--cluster", "local:0"],
        ["--cluster", "nowhere"],
        ["--scheduler", "host:8786"],
        ["--cluster", "local:2", "--workers", "2"],
    ):
        done = CliRunner().invoke(app, ["replay", "--date", DATES[0], *args])
        assert isinstance(done.exception, UsageError), (args, done.output)
