"""A month of days beyond one process (``python -m bench --only scale``).

1. **Replay.** A month of synthetic days (:mod:`bench.synth`; 30 days of 4
   symbols by default, each symbol-day a copy of that day's rows, cut into
   96 parts as a recorder rotating every 15 minutes leaves them) replayed
   by ``tickrec replay --from D1 --to D30 --no-cache`` serially
   (``--workers 1``), with ``--workers 2`` and on a Dask ``LocalCluster`` of
   2 workers (``--cluster local:2``), from local disk and from a loopback
   S3 (moto's server on 127.0.0.1, the dataset copied into it first). Every
   run must write the same snapshot bytes; the ratios are to the serial run
   from the same source.
2. **Compaction and DuckDB.** DuckDB reads one day of the month (every
   symbol, all columns but the payload aggregated) before and after
   ``tickrec compact`` of that day, on a copy: the file count, and the
   median time of ``--reps`` queries. The query's answer must not change.

The month is generated once and cached beside the synthetic days
(``$TICKREC_BENCH_DATA``). moto, boto3 and DuckDB come with the dev extra;
a step whose library is missing is reported as skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.processes import Child, Unavailable, add_day, run_child
from bench.synth import DayParams, bench_data_dir, make_day

__all__ = ["Month", "MonthParams", "Scale", "make_month", "measure", "report"]

SYMBOLS = ("BTCUSD", "ETHUSD", "SOLUSD", "LTCUSD")
#: Bumped when the month's files change for the same parameters.
GENERATOR_VERSION = 2
_BUCKET = "tickrec-bench"


@dataclass(frozen=True)
class MonthParams:
    """What the month depends on (all of it goes into its cache key)."""

    days: int = 30
    symbols: int = 4
    changes: int = 10_000
    parts: int = 96
    seed: int = 20260101
    first: str = "2026-01-01"

    def dates(self) -> list[str]:
        start = dt.date.fromisoformat(self.first)
        return [(start + dt.timedelta(days=k)).isoformat() for k in range(self.days)]

    def key(self) -> str:
        """Cache key: a hash of the parameters and :data:`GENERATOR_VERSION`."""
        text = json.dumps({**asdict(self), "v": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Month:
    root: Path
    params: MonthParams
    files: int
    bytes: int


def make_month(params: MonthParams) -> Month:
    """The month's dataset, generated on first use (``done`` is written last)."""
    if not 1 <= params.symbols <= len(SYMBOLS) or params.days < 1 or params.parts < 1:
        raise ValueError(f"1 to {len(SYMBOLS)} symbols, at least one day and one part a day")
    root = bench_data_dir() / f"month-{params.key()}"
    if not (root / "done").is_file():
        shutil.rmtree(root, ignore_errors=True)
        days = [
            DayParams(changes=params.changes, seed=params.seed + k, date=date, reconnects=1)
            for k, date in enumerate(params.dates())
        ]
        # Rows per part, so that a symbol-day has about `parts` of them (rows per
        # change from the first day, made in one part).
        rows = make_day(replace(days[0], part_rows=1 << 40)).rows
        part_rows = max(1, -(-rows // params.parts))
        for day in days:
            add_day(make_day(replace(day, part_rows=part_rows)), root, SYMBOLS[: params.symbols])
        (root / "done").write_text("")
    files = sorted((root / "raw").rglob("*.parquet"))
    return Month(root, params, len(files), sum(f.stat().st_size for f in files))


@contextmanager
def loopback_s3(month: Month) -> Iterator[tuple[str, float]]:
    """The tests' loopback S3 (``tests/s3.py``: moto's server on 127.0.0.1, the AWS
    variables set for the children) holding a copy of *month*: its URI and the copy
    time."""
    try:
        from pyarrow import fs as pafs

        from tests import s3
    except ImportError as exc:
        raise Unavailable(f"the loopback S3 needs moto[server] (the dev extra): {exc}") from exc
    with s3.serve() as server:
        uri = server.bucket(_BUCKET) + "/month"
        endpoint = server.url.split("://", 1)[1]
        store = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1")
        t0 = time.perf_counter()
        pafs.copy_files(
            str(month.root / "raw"),
            f"{_BUCKET}/month/raw",
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=store,
        )
        yield uri, time.perf_counter() - t0


@dataclass
class Run:
    source: str
    mode: str
    child: Child
    digest: str


@dataclass
class DuckRead:
    files: int
    seconds: float
    answer: list[tuple[object, ...]]


@dataclass
class Scale:
    month: Month
    runs: list[Run] = field(default_factory=list)
    s3_copy_s: float | None = None
    s3_skipped: str = ""
    duck: dict[str, DuckRead] = field(default_factory=dict)
    duck_skipped: str = ""

    @property
    def identical(self) -> bool:
        return len({r.digest for r in self.runs}) <= 1


MODES = {
    "serial": ("--workers", "1"),
    "--workers 2": ("--workers", "2"),
    "--cluster local:2": ("--cluster", "local:2"),
}


def _replay(month: Month, data: str, mode: str, out: Path, timeout: float) -> Run:
    dates = month.params.dates()
    with tempfile.TemporaryDirectory(prefix="tickrec-bench-cache-") as cache:
        argv = [
            *(sys.executable, "-m", "tickrec", "replay", "--from", dates[0], "--to", dates[-1]),
            *("--data", data, "--out", str(out), "--no-cache", "--cache", cache),
            *MODES[mode],
        ]
        child = run_child(argv, timeout)
    if child.returncode != 0:
        raise Unavailable(f"tickrec replay {' '.join(MODES[mode])} failed: {child.stderr_tail}")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    out.unlink()
    return Run("s3" if data.startswith("s3://") else "local", mode, child, digest)


_DUCK_QUERY = """
SELECT symbol, source, count(*) AS messages, sum(strlen(payload)) AS bytes,
       min(recv_ts) AS first, max(recv_ts) AS last
FROM read_parquet('{glob}', hive_partitioning = true)
GROUP BY ALL ORDER BY ALL
"""


def _duck_read(root: Path, date: str, reps: int) -> DuckRead:
    import duckdb

    day = root / "raw" / "venue=gemini" / f"date={date}"
    files = len(list(day.rglob("*.parquet")))
    query = _DUCK_QUERY.format(glob=f"{day}/symbol=*/*.parquet")
    times, answer = [], []
    for _ in range(reps):
        con = duckdb.connect()
        t0 = time.perf_counter()
        answer = con.execute(query).fetchall()
        times.append(time.perf_counter() - t0)
        con.close()
    return DuckRead(files, statistics.median(times), answer)


def _compaction(scale: Scale, reps: int, timeout: float) -> None:
    try:
        import duckdb  # noqa: F401
    except ImportError as exc:
        scale.duck_skipped = f"DuckDB is not installed (the dev extra has it): {exc}"
        return
    date = scale.month.params.dates()[0]
    with tempfile.TemporaryDirectory(prefix="tickrec-bench-compact-") as tmp:
        copy = Path(tmp)
        shutil.copytree(
            scale.month.root / "raw" / "venue=gemini" / f"date={date}",
            copy / "raw" / "venue=gemini" / f"date={date}",
        )
        scale.duck["before"] = _duck_read(copy, date, reps)
        argv = [sys.executable, "-m", "tickrec", "compact", "--date", date, "--data", str(copy)]
        child = run_child(argv, timeout)
        if child.returncode != 0:
            raise Unavailable(f"tickrec compact failed: {child.stderr_tail}")
        scale.duck["after"] = _duck_read(copy, date, reps)
    if scale.duck["before"].answer != scale.duck["after"].answer:
        raise Unavailable("DuckDB's answer changed with compaction")


def measure(params: MonthParams, reps: int = 3, timeout: float = 3600.0) -> Scale:
    """Every step of the module docstring, logged on stderr as it goes."""

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    month = make_month(params)
    made = time.perf_counter() - t0
    log(f"month: {month.root}: {month.files} files, {month.bytes / 1e6:.0f} MB ({made:.1f} s)")
    scale = Scale(month)
    with tempfile.TemporaryDirectory(prefix="tickrec-bench-out-") as out:
        _replay(month, str(month.root), "serial", Path(out) / "s.parquet", timeout)  # warm-up
        for mode in MODES:
            scale.runs.append(
                _replay(month, str(month.root), mode, Path(out) / "s.parquet", timeout)
            )
            log(f"local {mode}: {scale.runs[-1].child.seconds:.1f} s")
        try:
            with loopback_s3(month) as (uri, copied):
                scale.s3_copy_s = copied
                log(f"copied to {uri} in {copied:.1f} s")
                for mode in MODES:
                    scale.runs.append(_replay(month, uri, mode, Path(out) / "s.parquet", timeout))
                    log(f"s3 {mode}: {scale.runs[-1].child.seconds:.1f} s")
        except Unavailable as exc:
            scale.s3_skipped = str(exc)
    _compaction(scale, reps, timeout)
    return scale


def report(scale: Scale) -> tuple[str, bool]:
    """The figures as text, and whether every check held."""
    p = scale.month.params
    lines = [
        f"a month: {p.days} days x {p.symbols} symbols, {p.changes:,} changes per symbol-day, "
        f"{scale.month.files:,} files, {scale.month.bytes / 1e6:.0f} MB "
        f"(tickrec replay --from --to --no-cache; ratio: serial time / this run's)",
        "",
        f"{'source':<7} {'mode':<18} {'wall s':>8} {'ratio':>6} {'peak tree MB':>13}",
    ]
    serial = {r.source: r.child.seconds for r in scale.runs if r.mode == "serial"}
    for r in scale.runs:
        ratio = serial[r.source] / r.child.seconds
        lines.append(
            f"{r.source:<7} {r.mode:<18} {r.child.seconds:>8.1f} {ratio:>5.2f}x "
            f"{r.child.tree_bytes / 2**20:>13.0f}"
        )
    if scale.s3_copy_s is not None:
        lines.append(f"(copying the month into the loopback S3 took {scale.s3_copy_s:.1f} s)")
    if scale.s3_skipped:
        lines.append(f"s3: skipped: {scale.s3_skipped}")
    lines.append(
        "snapshots byte-identical across every run: " + ("yes" if scale.identical else "NO")
    )
    if scale.duck:
        before, after = scale.duck["before"], scale.duck["after"]
        lines += [
            "",
            f"DuckDB reading one day ({p.symbols} symbols), median of its queries:",
            f"  before tickrec compact: {before.files:>4} files  {before.seconds * 1e3:8.1f} ms",
            f"  after:                  {after.files:>4} files  {after.seconds * 1e3:8.1f} ms"
            f"  ({before.seconds / after.seconds:.1f}x faster, same answer)",
        ]
    if scale.duck_skipped:
        lines.append(f"DuckDB: skipped: {scale.duck_skipped}")
    return "\n".join(lines), scale.identical
