"""Datasets on object storage: a loopback S3 (moto's server, tests/s3.py) as the root of
``tickrec import``, ``ls``, ``replay`` and ``gaps`` and of the Python API, against the
same dataset on local disk."""

from __future__ import annotations

import filecmp
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import realdata
import s3
from typer.testing import CliRunner

import replay
from tickrec import contract
from tickrec.cli import app
from tickrec.errors import UsageError
from tickrec.store import StorePath, as_root

DATE = "2021-06-24"


@pytest.fixture(scope="module")
def server() -> Iterator[s3.S3]:
    with s3.serve() as srv:
        yield srv


@pytest.fixture(scope="module")
def roots(server: s3.S3, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The real v2 capture imported twice: to a local directory and to ``s3://ticks/data``."""
    local = tmp_path_factory.mktemp("local")
    realdata.import_gemini_v2(local)
    uri = server.bucket("ticks") + "/data"
    realdata.import_gemini_v2(uri)  # type: ignore[arg-type]
    return local, uri


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's object-store cache in its own directory (XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # Empty is unset; set, so that monkeypatch puts back what --cache sets in-process.
    monkeypatch.setenv("TICKREC_CACHE", "")
    return tmp_path / "xdg"


def cli(*args: str) -> str:
    done = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def test_import_writes_whole_objects_named_as_on_disk(server: s3.S3, roots: tuple[Path, str]):
    local, _ = roots
    keys = server.keys("ticks", "data/")
    on_disk = sorted(str(p.relative_to(local)) for p in local.rglob("*.parquet"))
    assert keys == ["data/" + k for k in on_disk]
    assert len(keys) == 10
    # The same rows and footers: the object is the file.
    for part in contract.list_parts(as_root(roots[1]), contract.list_partitions(roots[1])[0]):
        assert isinstance(part.path, StorePath)
        twin = local / part.path.path.removeprefix("ticks/data/")
        assert contract.read_parts([part]).equals(contract.read_parts([contract.read_footer(twin)]))


def test_ls_replay_and_gaps_from_s3_equal_local(roots: tuple[Path, str], tmp_path: Path):
    local, uri = roots
    assert cli("ls", "--data", uri) == cli("ls", "--data", str(local))
    out_s3, out_local = tmp_path / "s3.parquet", tmp_path / "local.parquet"
    text_s3 = cli("replay", "--date", DATE, "--data", uri, "--out", str(out_s3))
    text_local = cli("replay", "--date", DATE, "--data", str(local), "--out", str(out_local))
    assert text_s3.replace(str(out_s3), "OUT") == text_local.replace(str(out_local), "OUT")
    assert filecmp.cmp(out_s3, out_local, shallow=False)
    assert cli("gaps", "--date", DATE, "--data", uri) == cli(
        "gaps", "--date", DATE, "--data", str(local)
    )


def test_the_cache_of_an_s3_root_is_local(server: s3.S3, roots: tuple[Path, str], own_cache: Path):
    _, uri = roots
    first = replay.open(DATE, "BTCGBP", data=uri)
    entries = sorted(own_cache.rglob("manifest.json"))
    assert [p.parent.name for p in entries] == ["symbol=BTCGBP"]
    assert "tickrec/s3/ticks/data/normalized" in str(entries[0])
    assert server.keys("ticks", "data/normalized") == []
    again = replay.open(DATE, "BTCGBP", data=uri)  # from the cache
    assert again.book_snapshots(depth=5).equals(first.book_snapshots(depth=5))


def test_tickrec_cache_names_the_cache(roots: tuple[Path, str], tmp_path: Path):
    _, uri = roots
    chosen = tmp_path / "mine"
    cli("replay", "--date", DATE, "--symbol", "ZECLTC", "--data", uri, "--cache", str(chosen))
    assert [p.parent.name for p in chosen.rglob("manifest.json")] == ["symbol=ZECLTC"]


def test_a_local_only_command_refuses_an_s3_root(roots: tuple[Path, str]):
    with pytest.raises(UsageError, match="local dataset directory"):
        contract.resolve_root(roots[1])


def test_an_unreachable_store_is_one_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    done = CliRunner().invoke(app, ["ls", "--data", "s3://nowhere/data"])
    assert done.exit_code != 0
    assert isinstance(done.exception, OSError), done.exception


def test_store_paths_list_stat_and_glob(server: s3.S3):
    root = as_root(server.bucket("paths") + "/p")
    assert isinstance(root, StorePath) and not root.exists() and not root.is_dir()
    (root / "a" / "x.bin").put(lambda fh: fh.write(b"12345"))
    (root / "a" / "y.bin").put(lambda fh: fh.write(b"1"))
    with pytest.raises(FileExistsError):
        (root / "a" / "y.bin").put(lambda fh: fh.write(b"2"), replace=False)
    assert [p.name for p in (root / "a").iterdir()] == ["x.bin", "y.bin"]
    assert [p.name for p in root.glob("a/*.bin")] == ["x.bin", "y.bin"]
    assert (root / "a" / "x.bin").stat().st_size == 5
    assert (root / "a" / "y.bin").read_bytes() == b"1"
    (root / "a" / "x.bin").unlink()
    assert [p.name for p in (root / "a").iterdir()] == ["y.bin"]
    assert isinstance(root.fs, pafs.S3FileSystem)


def test_serve_replays_an_s3_root_as_a_local_one(roots: tuple[Path, str]):
    import orjson
    import requests

    from replay.serve import ServeConfig, Server

    local, uri = roots
    options = orjson.dumps(
        {
            "exchange": "gemini",
            "from": DATE,
            "to": "2021-06-25",
            "filters": [{"channel": "l2_updates"}],
        }
    )
    bodies = []
    for data in (local, as_root(uri)):
        with Server(ServeConfig(data=data)) as server:
            got = requests.get(
                server.url.rest_url + "/replay", params={"options": options}, timeout=30
            )
            assert got.status_code == 200, got.text
            bodies.append(got.content)
            symbols = requests.get(server.url.rest_url + "/v1/symbols", timeout=5).json()
            assert len(symbols) == 10
    assert bodies[0] == bodies[1] and bodies[0].count(b"\n") > 100


def test_kept_reads_a_version_once_and_drops_the_least_recently_used_past_its_limit():
    from tickrec.store import Kept

    reads: list[str] = []

    def read(name: str) -> bytes:
        reads.append(name)
        return b"x" * 40

    kept: Kept[bytes] = Kept(100, len)
    for name in ("a", "b", "a", "c"):  # 40 bytes each: a and b fit, c pushes out b
        kept.get((name, 40, 1), lambda n=name: read(n))
    assert reads == ["a", "b", "c"]
    kept.get(("a", 40, 1), lambda: read("a"))
    kept.get(("b", 40, 1), lambda: read("b"))
    assert reads == ["a", "b", "c", "b"]  # a was used last, b had gone
    kept.get(("a", 40, 2), lambda: read("a"))  # a new version is read again
    assert reads[-1] == "a"
