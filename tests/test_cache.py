"""The normalized cache: same bytes with and without it, rebuilt when raw files change or it breaks.

Also ``tickrec replay --workers``: the same bytes as a serial run.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest
from conftest import V2_DATE, sha

import replay
from bench.synth import DayParams, make_day
from replay import cache, columns, report, sources
from replay.parallel import map_partitions
from tickrec import contract
from tickrec.contract import Row, rows_to_table, write_part

TICKREC = str(Path(sys.executable).with_name("tickrec"))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TICKREC, *args], capture_output=True, text=True, timeout=300)


def replay_out(root: Path, out: Path, *extra: str) -> str:
    done = run_cli("replay", "--date", V2_DATE, "--data", str(root), "--out", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return sha(out)


def entries(root: Path) -> list[Path]:
    return sorted((root / cache.CACHE_DIR).glob("venue=*/date=*/symbol=*/manifest.json"))


def test_outputs_identical_with_without_cache_and_in_parallel(v2_root: Path, tmp_path: Path):
    symbols = report.resolve_symbols(v2_root, "gemini", V2_DATE, None)
    assert len(symbols) > 1
    no_cache = replay_out(v2_root, tmp_path / "a.parquet", "--no-cache")
    assert entries(v2_root) == []
    building = replay_out(v2_root, tmp_path / "b.parquet")
    assert len(entries(v2_root)) == len(symbols)
    cached = replay_out(v2_root, tmp_path / "c.parquet")
    parallel = replay_out(v2_root, tmp_path / "d.parquet", "--workers", "2")
    assert no_cache == building == cached == parallel


def test_decoded_equal_from_cache(tmp_path: Path):
    day = make_day(DayParams(changes=4_000, seed=5, span_s=600, reconnects=1), cache=tmp_path)
    root = day.root
    fresh = replay.open(day.date, day.symbol, data=root, cache=False)
    assert entries(root) == []
    first = replay.open(day.date, day.symbol, data=root)
    again = replay.open(day.date, day.symbol, data=root)
    for d in (first, again):
        assert d.decoded.counts == fresh.decoded.counts
        assert d.decoded.markers == fresh.decoded.markers
        assert d.decoded.breaks == fresh.decoded.breaks
        assert len(d.decoded.rest) == len(fresh.decoded.rest)
        assert d.book_snapshots().equals(fresh.book_snapshots())
        assert d.trades().equals(fresh.trades())
        assert d.gap_list() == fresh.gap_list()
        assert d.latency().equals(fresh.latency())


def test_added_part_rebuilds(tmp_path: Path):
    day = make_day(DayParams(changes=3_000, seed=9, span_s=600, reconnects=0), cache=tmp_path)
    root = day.root
    before = replay.open(day.date, day.symbol, data=root).summary()
    manifest = entries(root)[0]
    key = json.loads(manifest.read_text())["key"]
    parts = contract.list_parts(root, contract.Partition(day.venue, day.date, day.symbol))
    last = parts[-1]
    t = last.last_recv_ns + 1_000_000_000
    rows = [
        Row(t, last.last_seq + 1, "later-run", 1, "gemini.v1", "event", '{"event":"connect"}'),
        Row(t + 1, last.last_seq + 2, "later-run", 1, "gemini.v1", "ws", '{"type":"heartbeat"}'),
    ]
    write_part(root, day.venue, day.symbol, "later-run", 0, rows_to_table(rows))
    after = replay.open(day.date, day.symbol, data=root).summary()
    assert json.loads(manifest.read_text())["key"] != key
    assert after["messages"] == before["messages"] + 1
    assert after == replay.open(day.date, day.symbol, data=root, cache=False).summary()


def test_corrupt_cache_is_ignored_and_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    day = make_day(DayParams(changes=2_000, seed=11, span_s=600, reconnects=0), cache=tmp_path)
    root = day.root
    want = replay.open(day.date, day.symbol, data=root).book_snapshots()
    directory = entries(root)[0].parent
    (directory / "ops.parquet").write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING, logger="replay.cache"):
        got = replay.open(day.date, day.symbol, data=root).book_snapshots()
    assert got.equals(want)
    assert any("unreadable" in r.message for r in caplog.records)
    (directory / "manifest.json").write_text("{")
    assert replay.open(day.date, day.symbol, data=root).book_snapshots().equals(want)
    assert cache.load(directory, "some other key") is None


def test_a_flipped_byte_in_the_cache_is_found_by_its_page_checksums(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    day = make_day(DayParams(changes=20_000, seed=12, span_s=600, reconnects=0), cache=tmp_path)
    root = day.root
    want = replay.open(day.date, day.symbol, data=root).book_snapshots()
    ops = entries(root)[0].parent / "ops.parquet"
    meta = pa.parquet.read_metadata(ops)
    column = meta.row_group(0).column(meta.schema.names.index("price"))
    # One byte in the middle of the price column's first data page.
    start = column.data_page_offset
    data = bytearray(ops.read_bytes())
    data[start + column.total_compressed_size // 2] ^= 0x10
    ops.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="replay.cache"):
        got = replay.open(day.date, day.symbol, data=root).book_snapshots()
    assert got.equals(want)
    assert any("unreadable" in r.message and "CRC" in r.message for r in caplog.records)


def _square(x: int) -> int:
    return x * x


def test_columns_read_back_as_read_only_numpy():
    """Cache columns become numpy without pyarrow's to_numpy, bools unpacked from bits."""
    flags = pa.array([True, False, True, True, False, False, True, False, True, True])
    for arr in (flags, flags.slice(3), flags.slice(9), flags.slice(10)):
        got = columns.to_numpy(arr)
        assert got.dtype == np.bool_ and got.tolist() == arr.to_pylist()
        assert not got.flags.writeable
    ints = pa.array(np.arange(-5, 5, dtype=np.int64)).slice(2, 5)
    got = columns.to_numpy(ints)
    assert got.dtype == np.int64 and got.tolist() == [-3, -2, -1, 0, 1]
    assert not got.flags.writeable
    with pytest.raises(ValueError, match="nulls"):
        columns.to_numpy(pa.array([1, None], pa.int64()))


def test_map_partitions_keeps_order():
    assert list(map_partitions(_square, [3, 1, 2], workers=2)) == [9, 1, 4]
    assert list(map_partitions(_square, [3, 1, 2], workers=1)) == [9, 1, 4]


def test_key_covers_every_module_decoding_runs():
    """A change to any replay module the decoding imports (transitively) rebuilds the cache."""
    import ast

    base = Path(cache.__file__).resolve().parent
    hashed = {sources.module_file(name) for name in sources.closure(cache.DECODER_MODULES)}
    todo, seen = [base / "decode.py", base / "overlap.py"], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for mod in names:
                if mod.startswith("replay."):
                    parts = mod.split(".")[1:]
                    file = base.joinpath(*parts).with_suffix(".py")
                    todo.append(file if file.exists() else base.joinpath(*parts, "__init__.py"))
    assert seen <= hashed, sorted(str(p.relative_to(base)) for p in seen - hashed)
