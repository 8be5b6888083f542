"""The ``tickrec`` command line.

Each command parses its options here and imports the side that does the work
(``recorder``, ``replay``, ``tickrec.sim``) lazily, so ``tickrec --help`` stays
fast and the shared package depends on neither side.

Errors: every :class:`~tickrec.errors.TickrecError` is printed as one line
(exit code 2 for bad usage, 1 for any other failure); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tickrec.durations import parse_duration
from tickrec.errors import DatasetError, NotFoundError, TickrecError, UsageError
from tickrec.progress import terminal_progress

if TYPE_CHECKING:
    from recorder.importer import ImportResult
    from tickrec.contract import PartFile, Partition
    from tickrec.store import Root
    from tickrec.verify import Problem

__all__ = ["app", "main"]

app = typer.Typer(
    help="Record exchange market data losslessly; replay order books deterministically.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}

DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Dataset root: a directory or an object-store URI such as s3://bucket/prefix "
        "(default: $TICKREC_DATA or ./data).",
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Endpoint of an S3-compatible store (default: $AWS_ENDPOINT_URL, else AWS).",
    ),
]
JournalOpt = Annotated[
    str | None,
    typer.Option(
        "--journal",
        help="With --data s3://...: the local directory for the journal and the parts "
        "not yet uploaded.",
    ),
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache",
        help="Directory of the normalized cache (default: $TICKREC_CACHE, else {data}/normalized, "
        "or ~/.cache/tickrec/... for an object-store root).",
    ),
]


def _storage(endpoint: str | None, cache: str | None = None) -> None:
    """Apply --endpoint-url and --cache, as the variables that worker processes inherit."""
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    if cache:
        os.environ["TICKREC_CACHE"] = cache


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


def _split(value: str | None) -> list[str]:
    return [s.strip() for s in (value or "").split(",") if s.strip()]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _utc(ns: int) -> str:
    """A time of day in UTC to the second, for messages: ``21:04:05 UTC``."""
    return f"{dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC):%H:%M:%S} UTC"


# --- ls --------------------------------------------------------------------------


@app.command("ls")
def ls_cmd(
    date: Annotated[str | None, typer.Option(help="Only this UTC date (YYYY-MM-DD).")] = None,
    venue: Annotated[str | None, typer.Option(help="Only this venue.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    data: DataOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """List partitions and files with rows and time span, from Parquet footers only."""
    from tickrec import contract

    _storage(endpoint_url)
    root = contract.dataset_root(data)
    if symbol is not None:
        symbol = symbol.upper()
    for kind, value in (("venue", venue), ("symbol", symbol)):
        if value is not None:
            contract.check_name(kind, value)
    if date is not None:
        contract.check_date(date)
    if not (root / "raw").is_dir():
        raise NotFoundError(f"no dataset under {root} (no {root / 'raw'} directory)")
    partitions = contract.list_partitions(root, venue=venue, date=date, symbol=symbol)
    if not partitions:
        wanted = ", ".join(
            f"{k} {v}" for k, v in (("venue", venue), ("date", date), ("symbol", symbol)) if v
        )
        have = contract.list_partitions(root)
        raise NotFoundError(
            f"no partitions for {wanted} under {root / 'raw'}; it holds "
            + (", ".join(sorted({f"{p.venue} {p.date}" for p in have})) or "nothing")
        )

    def fmt(ns: int) -> str:
        t = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC)
        return t.strftime("%H:%M:%S") + f".{ns % 1_000_000_000 // 1_000_000:03d}"

    bad_files = 0
    for part in partitions:
        files, bad = _ls_parts(root, part)
        bad_files += len(bad)
        head = f"{part.venue} {part.date} {part.symbol}: {_plural(len(files), 'file')}"
        if files:
            rows = sum(f.rows for f in files)
            span = f"{fmt(files[0].first_recv_ns)}..{fmt(max(f.last_recv_ns for f in files))}"
            head += f", {_plural(rows, 'row')}, {span} UTC"
        if bad:
            head += f", {len(bad)} bad"
        typer.echo(head)
        for f in files:
            typer.echo(
                f"  {f.path.name}  rows={f.rows}  seq={f.first_seq}..{f.last_seq}  "
                f"{fmt(f.first_recv_ns)}..{fmt(f.last_recv_ns)}"
            )
        for problem in bad:
            typer.echo(f"  bad: {problem}")
    if bad_files:
        raise DatasetError(
            f"{_plural(bad_files, 'bad file')} left out above "
            "(tickrec verify checks every file; replay --skip-bad replays without them)"
        )


def _ls_parts(root: Root, partition: Partition) -> tuple[list[PartFile], list[Problem]]:
    """The good parts of *partition* in contract order, and a problem for each bad one,
    from the footers only (:func:`tickrec.verify.check_footer`)."""
    from tickrec import contract
    from tickrec.store import listing
    from tickrec.verify import Problem, check_footer, seq_overlaps

    directory = contract.partition_dir(root, partition.venue, partition.date, partition.symbol)
    good, bad = [], []
    for path in listing(directory):
        if not path.is_file() or contract.parse_part_name(path.name) is None:
            continue
        check = check_footer(path, partition)
        if check.problems or check.footer is None:
            bad.append(Problem(path, "; ".join(check.problems)))
        else:
            good.append(check.footer)
    gone = contract.replaced(good)
    good = [p for p in good if p.path.name not in gone]
    bad = [b for b in bad if b.path.name not in gone]
    overlaps = seq_overlaps(good)
    bad += [Problem(path, what) for path, what in overlaps.items()]
    parts = contract.contract_order([p for p in good if p.path not in overlaps])
    return parts, sorted(bad, key=lambda p: p.path.name)


# --- sim (tickrec.sim) ----------------------------------------------------------


def _fraction(value: float, option: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{option}: must be a fraction between 0 and 1, not {value}")
    return value


def _pair(text: str | None, option: str, example: str) -> tuple[str, str] | None:
    if text is None:
        return None
    first, sep, second = text.partition("/")
    if not sep or not first.strip() or not second.strip():
        raise UsageError(f"{option}: expected two values like {example}, not {text!r}")
    return first.strip(), second.strip()


@app.command("sim")
def sim_cmd(
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8765,
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols.")] = "BTCUSD,ETHUSD",
    rate: Annotated[float, typer.Option(help="Engine events per second, all symbols.")] = 50.0,
    seed: Annotated[int, typer.Option(help="Seed of the order flow and fault choices.")] = 0,
    heartbeat: Annotated[str, typer.Option(help="Heartbeat interval.")] = "5s",
    drop: Annotated[float, typer.Option(help="Fraction of websocket frames dropped.")] = 0.0,
    malformed: Annotated[float, typer.Option(help="Fraction of frames cut short.")] = 0.0,
    close_every: Annotated[
        str | None, typer.Option(help="Close each connection this long after it opens.")
    ] = None,
    abrupt: Annotated[
        bool, typer.Option(help="With --close-every: abort TCP, no close frame.")
    ] = False,
    shutdown_notice: Annotated[
        str | None,
        typer.Option(
            help="With --close-every: send the venue's maintenance notice (Binance "
            "serverShutdown) this long before each close."
        ),
    ] = None,
    stall: Annotated[
        str | None, typer.Option(help="FOR/EVERY: stop sending FOR, every EVERY (5s/60s).")
    ] = None,
    rest_429: Annotated[float, typer.Option(help="Fraction of REST replies that are 429.")] = 0.0,
    rest_500: Annotated[float, typer.Option(help="Fraction of REST replies that are 500.")] = 0.0,
    rest_slow: Annotated[
        str | None, typer.Option(help="DELAY/FRACTION: delay that share of REST replies (2s/0.1).")
    ] = None,
    retry_after: Annotated[int, typer.Option(help="Retry-After seconds on a 429.")] = 1,
    truth: Annotated[
        str | None, typer.Option(help="Write ground-truth JSONL files to this directory.")
    ] = None,
    status_every: Annotated[str, typer.Option(help="Status line interval.")] = "5s",
) -> None:
    """Serve local exchanges (Gemini, Binance spot) on loopback until Ctrl-C.

    Gemini's current WebSocket API at /, market data v1 at
    /v1/marketdata/{symbol}, v2 at /v2/marketdata and REST at /v1/book,
    /v1/trades, /v1/symbols; Binance's /stream?streams=, /ws/ and
    /api/v3/depth; all from one seeded order flow.
    """
    import logging
    from pathlib import Path

    from tickrec.sim import FaultConfig, SimConfig, SimStats, run
    from tickrec.sim.server import routes

    stall_pair = _pair(stall, "--stall", "5s/60s")
    slow_pair = _pair(rest_slow, "--rest-slow", "2s/0.1")
    slow_share = 0.0
    if slow_pair is not None:
        try:
            slow_share = float(slow_pair[1])
        except ValueError:
            raise UsageError(f"--rest-slow: cannot read fraction {slow_pair[1]!r}") from None
    faults = FaultConfig(
        drop=_fraction(drop, "--drop"),
        malformed=_fraction(malformed, "--malformed"),
        close_every=parse_duration(close_every, "--close-every") if close_every else 0.0,
        abrupt=abrupt,
        shutdown_notice=(
            parse_duration(shutdown_notice, "--shutdown-notice") if shutdown_notice else 0.0
        ),
        stall_for=parse_duration(stall_pair[0], "--stall") if stall_pair else 0.0,
        stall_every=parse_duration(stall_pair[1], "--stall") if stall_pair else 0.0,
        rest_429=_fraction(rest_429, "--rest-429"),
        rest_500=_fraction(rest_500, "--rest-500"),
        rest_slow=_fraction(slow_share, "--rest-slow"),
        rest_slow_for=parse_duration(slow_pair[0], "--rest-slow") if slow_pair else 0.0,
        retry_after=retry_after,
    )
    config = SimConfig(
        host=host,
        port=port,
        symbols=tuple(_split(symbols)),
        rate=rate,
        seed=seed,
        heartbeat_s=parse_duration(heartbeat, "--heartbeat"),
        faults=faults,
        truth_dir=Path(truth) if truth else None,
    )
    every = parse_duration(status_every, "--status-every")
    if every <= 0:
        raise UsageError("--status-every: must be positive")
    # Injected faults are logged by the simulator; show them on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    sim_log = logging.getLogger("tickrec.sim")
    sim_log.addHandler(handler)
    sim_log.setLevel(logging.INFO)
    last: list[SimStats] = []

    def ready(ws_url: str, rest_url: str) -> None:
        for label, scheme, path in routes():
            typer.echo(f"{label + ':':17}{ws_url if scheme == 'ws' else rest_url}{path}")
        typer.echo(f"symbols:         {', '.join(config.symbols)}")
        if config.truth_dir is not None:
            typer.echo(f"truth files:    {config.truth_dir}")
        typer.echo("Ctrl-C to stop")

    def status(stats: SimStats) -> None:
        before = last[-1] if last else SimStats(0, 0, 0, 0)
        typer.echo(
            f"{(stats.messages - before.messages) / every:,.0f} msgs/s, "
            f"{(stats.events - before.events) / every:,.0f} events/s, "
            f"{stats.connections} connections, {stats.rest} REST replies"
        )
        last[:] = [stats]

    run(config, ready, status, every)
    typer.echo("stopped")


# --- record, recover (recorder) ---------------------------------------------------


def _log_to_stderr() -> None:
    import logging

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    # The websockets library logs every connection and HTTP reply at INFO.
    logging.getLogger("websockets").setLevel(logging.WARNING)


def _duration_or_none(text: str | None, option: str) -> float | None:
    return None if text is None else parse_duration(text, option)


@app.command("record")
def record_cmd(
    symbols: Annotated[
        str | None,
        typer.Option(help="Symbols, comma-separated (e.g. BTCUSD,ETHUSD; Binance BTCUSDT)."),
    ] = None,
    venue: Annotated[
        str | None, typer.Option(help="Venue: gemini (default) or binance (spot).")
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Gemini: ws, the current API, one connection for all (default); "
            "v1: a connection per symbol; v2: one connection for all (v1, v2 archived). "
            "Binance: spot."
        ),
    ] = None,
    snapshot_every: Annotated[
        str | None, typer.Option(help="REST book snapshot interval; 0 = off (default 60s).")
    ] = None,
    snapshot_depth: Annotated[
        int | None, typer.Option(help="Levels per side in REST snapshots; 0 = whole book.")
    ] = None,
    sync_depth: Annotated[
        int | None,
        typer.Option(
            help="Binance: levels per side in the snapshots each book is built from "
            "(default 0 = 5000, the most)."
        ),
    ] = None,
    rotate: Annotated[
        str | None,
        typer.Option(help="Close files this often, and at UTC midnight (default 15m)."),
    ] = None,
    data: DataOpt = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="Websocket base URL (default wss://ws.gemini.com; v1/v2 wss://api.gemini.com; "
            "Binance wss://stream.binance.com:9443)."
        ),
    ] = None,
    rest_url: Annotated[
        str | None,
        typer.Option(
            help="REST base URL (default https://api.gemini.com; https://api.binance.com)."
        ),
    ] = None,
    fsync_interval: Annotated[
        str | None, typer.Option(help="Fsync the journal at least this often (default 100ms).")
    ] = None,
    stale_after: Annotated[
        str | None, typer.Option(help="Reconnect after this long with no message (default 15s).")
    ] = None,
    status_every: Annotated[
        str | None, typer.Option(help="Status line interval; 0 = off (default 30s).")
    ] = None,
    duration: Annotated[str | None, typer.Option(help="Stop after this long (e.g. 30s).")] = None,
    until: Annotated[str | None, typer.Option(help="Stop at this UTC time, HH:MM.")] = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="Serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9108)."),
    ] = None,
    max_offline: Annotated[
        str | None,
        typer.Option(
            help="Exit 1 at the end if a symbol was without a connection for longer "
            "(default 60s; 0 = no limit)."
        ),
    ] = None,
    journal: JournalOpt = None,
    endpoint_url: EndpointOpt = None,
    config: Annotated[
        str | None, typer.Option("--config", help="TOML file with these options; flags win.")
    ] = None,
) -> None:
    """Capture market data until stopped (SIGINT/SIGTERM stop cleanly).

    Exit status 0 when the run went well; 1 when a symbol received nothing or was
    without a connection past --max-offline, the journal failed, or segments were
    left unconverted or parts not uploaded (the last line says which); 130 after a
    second Ctrl-C.
    """
    from recorder.config import build_config, parse_until
    from recorder.record import record
    from tickrec import contract

    flags = {
        "symbols": _split(symbols) or None,
        "venue": venue,
        "protocol": protocol,
        "snapshot_every": _duration_or_none(snapshot_every, "--snapshot-every"),
        "snapshot_depth": snapshot_depth,
        "sync_depth": sync_depth,
        "rotate": _duration_or_none(rotate, "--rotate"),
        "data": data,
        "url": url,
        "rest_url": rest_url,
        "fsync_interval": _duration_or_none(fsync_interval, "--fsync-interval"),
        "stale_after": _duration_or_none(stale_after, "--stale-after"),
        "status_every": _duration_or_none(status_every, "--status-every"),
        "duration": _duration_or_none(duration, "--duration"),
        "until": parse_until(until) if until is not None else None,
        "metrics": metrics,
        "max_offline": _duration_or_none(max_offline, "--max-offline"),
        "journal": journal,
    }
    _storage(endpoint_url)
    cfg = build_config(config, flags)
    _log_to_stderr()
    try:
        result = record(cfg)
    except KeyboardInterrupt:
        from recorder.journal import list_segments

        where = (Path(cfg.journal) if cfg.journal else contract.resolve_root(cfg.data)) / "journal"
        runs = [d for d in where.iterdir() if d.is_dir()] if where.is_dir() else []
        if any(list_segments(d) for d in runs):
            said = (
                f"what was received is in the journal under {where}, left for "
                "`tickrec recover` (the next `tickrec record` runs it too)"
            )
        else:
            said = (
                "everything received was already written to parts; the next `tickrec "
                f"recover` or `tickrec record` removes what is left under {where}"
            )
        typer.echo(f"interrupted: recording stopped at once; {said}", err=True)
        raise typer.Exit(130) from None
    typer.echo(
        f"run {result.run_id} stopped ({result.stopped_by}): "
        f"{_plural(result.rows, 'row')} in {_plural(len(result.parts), 'file')}"
    )
    if cfg.journal:
        typer.echo(f"{_plural(result.uploaded, 'part')} uploaded to {cfg.data}")
    if result.not_uploaded:
        raise TickrecError(
            f"{_plural(len(result.not_uploaded), 'part')} not uploaded to {cfg.data} yet, "
            f"kept under {cfg.journal}; `tickrec recover --data {cfg.data} --journal "
            f"{cfg.journal}`, or the next `tickrec record` with that --journal, sends them"
        )
    if result.unconverted:
        for path, why in result.unconverted:
            typer.echo(f"not converted: {path}: {why}", err=True)
        raise TickrecError("some journal segments were left; run `tickrec recover` later")
    if result.silent:
        # A run that captured nothing must not pass for a good night's work under cron.
        raise TickrecError(
            f"nothing was received for {', '.join(result.silent)} "
            f"(from {cfg.url}); see the log above"
        )
    if result.offline:
        raise TickrecError(
            "without a connection for longer than --max-offline "
            f"{cfg.max_offline:g} s: "
            + ", ".join(
                f"{o.symbol} for {o.seconds(cfg.clock()):.1f} s from {_utc(o.start_ns)}"
                for o in result.offline
            )
            + "; see the log above"
        )


@app.command("recover")
def recover_cmd(
    data: DataOpt = None, journal: JournalOpt = None, endpoint_url: EndpointOpt = None
) -> None:
    """Turn journals left by dead recorder runs into Parquet (live runs are left alone).

    With ``--data s3://... --journal DIR`` the journals under DIR are recovered
    there, and every part waiting there is then uploaded.
    """
    from recorder.recovery import recover
    from recorder.upload import Uploader, local_roots

    _log_to_stderr()
    _storage(endpoint_url)
    root, store = local_roots(data, journal)
    results = recover(root, terminal_progress())
    if not results:
        typer.echo(f"nothing to recover under {root / 'journal'}")
    for r in results:
        lost = sum(s.lost_bytes for s in r.losses)
        typer.echo(
            f"run {r.run_id}: {_plural(r.segments, 'segment')}, {_plural(r.rows, 'row')} "
            f"into {_plural(len(r.parts), 'file')}"
            + (f", {lost} damaged bytes at the tail recorded as journal_loss" if r.losses else "")
        )
        for path, why in r.left:
            typer.echo(f"  {path}: {why}", err=True)
    if store is not None:
        typer.echo(f"{_plural(Uploader(root, store).send_all(), 'part')} uploaded to {store}")
    left = sum(len(r.left) for r in results)
    if left:
        raise DatasetError(
            f"{_plural(left, 'journal segment')} could not be recovered and "
            f"{'was' if left == 1 else 'were'} moved aside (see above)"
        )


@app.command("status")
def status_cmd(data: DataOpt = None) -> None:
    """Show the runs recording now and the age of each symbol's last stored row.

    Exits with 1 when no run is recording, or one has not refreshed its status
    for 10 s (a stuck recorder).
    """
    from recorder.journal import LOCK_NAME, list_segments, try_lock
    from recorder.status import read_status
    from tickrec import contract

    root = contract.resolve_root(data)
    journal = root / "journal"
    runs = sorted(p for p in journal.iterdir() if p.is_dir()) if journal.is_dir() else []
    now = dt.datetime.now(dt.UTC).timestamp()
    live = stuck = 0
    for run_dir in runs:
        if run_dir.name.startswith("."):
            continue
        try:
            fd = try_lock(run_dir / LOCK_NAME)
        except FileNotFoundError:
            continue  # its recorder just removed it
        if fd is not None:
            os.close(fd)
            if list_segments(run_dir):
                typer.echo(f"run {run_dir.name}: not running; its journal waits for recovery")
            continue
        live += 1
        status = read_status(run_dir)
        if status is None:
            typer.echo(f"run {run_dir.name}: recording (starting; no status yet)")
            continue
        updated = now - status["updated_ns"] / 1e9
        line = (
            f"run {run_dir.name} ({status['protocol']}, pid {status['pid']}): recording, "
            f"{_plural(status['connections_open'], 'connection')} open, "
            f"status {updated:.1f} s old"
        )
        if updated > 10:
            stuck += 1
            line += ": not refreshed for over 10 s, the recorder may be stuck"
        typer.echo(line)
        for symbol, st in sorted(status["symbols"].items()):
            last = st["last_recv_ns"]
            age = f"{now - last / 1e9:.1f} s ago" if last else "never"
            typer.echo(
                f"  {symbol}: last row {age}, {_plural(st['messages'], 'message')}, "
                f"{_plural(st['reconnects'], 'reconnect')}, {_plural(st['gaps'], 'gap')}"
            )
    dates: dict[tuple[str, str], list[contract.Partition]] = {}
    for part in contract.list_partitions(root):
        dates.setdefault((part.venue, part.symbol), []).append(part)
    latest: dict[tuple[str, str], int] = {}
    for key, partitions in dates.items():
        # The newest date with parts (an upload to a store leaves empty directories).
        for part in sorted(partitions, reverse=True):
            if files := contract.list_parts(root, part):
                latest[key] = max(f.last_recv_ns for f in files)
                break
    if latest:
        typer.echo("in parts:")
    for (venue, symbol), last in sorted(latest.items()):
        when = dt.datetime.fromtimestamp(last / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        typer.echo(f"  {venue} {symbol}: last stored row {now - last / 1e9:,.1f} s ago ({when})")
    if not live:
        raise NotFoundError(f"no run is recording under {root}")
    if stuck:
        raise TickrecError(f"{_plural(stuck, 'run')} did not refresh its status for over 10 s")


@app.command("verify")
def verify_cmd(
    date: Annotated[str | None, typer.Option(help="Only this UTC date (YYYY-MM-DD).")] = None,
    venue: Annotated[str | None, typer.Option(help="Only this venue.")] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also decode every partition as a replay would.")
    ] = False,
    data: DataOpt = None,
) -> None:
    """Check every part (checksums, footer against content, order, dates) and the journals.

    Prints one line per problem and exits with 1 if there is any; nothing is changed.
    """
    from recorder.recovery import check_journals
    from tickrec import contract
    from tickrec.verify import Problem, verify_root

    root = contract.resolve_root(data)
    if venue is not None:
        contract.check_name("venue", venue)
    if date is not None:
        contract.check_date(date)
    if not (root / "raw").is_dir() and not (root / "journal").is_dir():
        raise NotFoundError(f"no dataset under {root} (no {root / 'raw'} directory)")
    problems = 0
    partitions = 0
    for partition, found in verify_root(root, venue=venue, date=date):
        partitions += 1
        label = f"{partition.venue} {partition.date} {partition.symbol}"
        if deep and not found:
            found = _decode_problems(root, partition)
        problems += len(found)
        typer.echo(f"{label}: " + (_plural(len(found), "problem") if found else "ok"))
        for problem in found:
            typer.echo(f"  {problem}")
    journals = check_journals(root)
    for path, what in journals.damaged:
        typer.echo(f"  {Problem(path, what)}")
    for path, what in journals.set_aside:
        typer.echo(f"  {Problem(path, f'set aside by recovery, not in the dataset: {what}')}")
    problems += len(journals.damaged) + len(journals.set_aside)
    if journals.live_runs:
        typer.echo(f"journal: not checked, recording now: {', '.join(journals.live_runs)}")
    typer.echo(
        f"checked {_plural(partitions, 'partition')} and "
        f"{_plural(journals.segments, 'journal segment')}: "
        + (_plural(problems, "problem") if problems else "no problems")
    )
    if problems:
        raise typer.Exit(1)


def _decode_problems(root: Path, partition: Partition) -> list[Problem]:
    """A replay's decode of *partition*, as a list of the one problem it raised (or none)."""
    from replay.decode import decode
    from tickrec import contract
    from tickrec.verify import Problem

    try:
        table = contract.read_partition(root, partition.venue, partition.date, partition.symbol)
        decode(table, partition.symbol)
    except TickrecError as exc:
        where = contract.partition_dir(root, partition.venue, partition.date, partition.symbol)
        return [Problem(where, f"cannot be replayed: {exc}")]
    return []


# --- replay, gaps (replay) -------------------------------------------------------

VenueOpt = Annotated[str, typer.Option(help="Venue.")]
SilenceOpt = Annotated[
    str, typer.Option("--silence", help="Report no message for longer than this as a gap.")
]
NoCacheOpt = Annotated[
    bool,
    typer.Option(
        "--no-cache", help="Decode from the raw files; neither read nor write {data}/normalized."
    ),
]


NoCarryOpt = Annotated[
    bool,
    typer.Option(
        "--no-carry",
        help="Replay each date strictly alone: no book carried over midnight from the day before.",
    ),
]
DateOpt = Annotated[str | None, typer.Option(help="UTC date (YYYY-MM-DD); or --from and --to.")]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="First UTC date of a range replayed as one book.")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last UTC date of the range (included).")]
SkipBadOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad",
        help="Leave out parts that are unreadable or contradict their footer, date or order, "
        "as bad_file gaps (default: stop at the first, naming it).",
    ),
]


def _dates(date: str | None, start: str | None, end: str | None) -> tuple[str, str | None]:
    """``(date, None)`` for ``--date``, ``(first, last)`` for ``--from``/``--to``."""
    if date is not None:
        if start is not None or end is not None:
            raise UsageError("--date and --from/--to exclude each other")
        return date, None
    if start is None or end is None:
        raise UsageError("give --date, or both --from and --to")
    return start, end


@app.command("replay")
def replay_cmd(
    date: DateOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    symbol: Annotated[str | None, typer.Option(help="One symbol (default: all).")] = None,
    venue: VenueOpt = "gemini",
    depth: Annotated[int, typer.Option(help="Levels per side in snapshots.")] = 10,
    every: Annotated[
        str, typer.Option(help="Snapshot interval since UTC midnight; 0 = every change.")
    ] = "1s",
    out: Annotated[
        str | None,
        typer.Option(help="Write snapshots (all symbols, with a symbol column): .parquet or .csv."),
    ] = None,
    silence: SilenceOpt = "10s",
    workers: Annotated[
        int, typer.Option(help="Replay symbols in this many processes (same output).")
    ] = 1,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Replay the (date, symbol) partitions on a Dask LocalCluster of N workers "
            "on 127.0.0.1 (local:N); same output."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Replay on the running Dask cluster of this scheduler (tcp://host:8786); "
            "its workers must reach --data."
        ),
    ] = None,
    no_cache: NoCacheOpt = False,
    no_carry: NoCarryOpt = False,
    skip_bad: SkipBadOpt = False,
    data: DataOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Rebuild books for a day (or a range of days as one book), write snapshots,
    print a summary and the gaps."""
    from replay import parallel, report
    from tickrec import contract

    date, end = _dates(date, from_, to)
    report.check_options(out, every, silence)
    for name, value in (("--depth", depth), ("--workers", workers)):
        if value < 1:
            raise UsageError(f"{name}: must be at least 1, not {value}")
    if cluster is not None and scheduler is not None:
        raise UsageError("--cluster and --scheduler exclude each other")
    if scheduler is not None and "://" not in scheduler:
        raise UsageError(f"--scheduler {scheduler!r}: give an address such as tcp://host:8786")
    dask = cluster if cluster is not None else scheduler
    if dask is not None:
        parallel.parse_cluster(dask)
        if workers != 1:
            raise UsageError("--workers and --cluster/--scheduler exclude each other")
    _storage(endpoint_url, cache_dir)
    root = contract.dataset_root(data)
    symbols = report.resolve_symbols(root, venue, date, symbol, end)
    progress = terminal_progress()
    job = report.ReplayJob(
        root,
        venue,
        date,
        silence,
        not no_cache,
        depth,
        every,
        snapshots=out is not None,
        end=end,
        carry=not no_carry,
        progress=progress is not None and workers == 1 and dask is None,
        skip_bad=skip_bad,
    )
    if end is not None:
        date = f"{date}..{end}"
    frames, summaries, gap_lists, left_out = {}, [], [], []

    def step(k: int, n: int, sym: str) -> None:
        if progress is not None:
            progress(f"replay {venue} {date}: {k}/{n} partitions done ({sym})")

    for done in report.run_jobs(job, symbols, workers, dask, step):
        if done.snapshots is not None:
            frames[done.symbol] = done.snapshots
        summaries.append(done.summary)
        gap_lists.append((done.symbol, done.gaps))
        left_out += done.left_out
    if progress is not None:
        progress("")
        typer.echo("", err=True)
    typer.echo(report.format_summary(summaries))
    for sym, gaps in gap_lists:
        if gaps:
            typer.echo(report.format_gaps(sym, gaps))
    for line in left_out:
        typer.echo(line)
    if out is not None:
        params: dict[str, object] = {"venue": venue, "depth": depth, "every": every}
        params.update({"date": date} if end is None else {"from": date.split("..")[0], "to": end})
        path = report.write_snapshots(frames, out, params)
        typer.echo(f"wrote {path}")


@app.command("gaps")
def gaps_cmd(
    date: DateOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    symbol: Annotated[str | None, typer.Option(help="One symbol (default: all).")] = None,
    venue: VenueOpt = "gemini",
    silence: SilenceOpt = "10s",
    no_cache: NoCacheOpt = False,
    no_carry: NoCarryOpt = False,
    skip_bad: SkipBadOpt = False,
    data: DataOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Print the gap report of a day (or a range of days): disconnects, sequence breaks,
    silences, mismatches, bad files left out."""
    from replay import report
    from tickrec import contract

    date, end = _dates(date, from_, to)
    report.check_options(None, "1s", silence)
    _storage(endpoint_url, cache_dir)
    root = contract.dataset_root(data)
    symbols = report.resolve_symbols(root, venue, date, symbol, end)
    progress = terminal_progress()
    days = report.open_days(
        root,
        venue,
        date,
        symbols,
        silence,
        progress,
        not no_cache,
        end=end,
        carry=not no_carry,
        skip_bad=skip_bad,
    )
    for day in days:
        if progress is not None:
            progress("")
        typer.echo(report.format_gaps(day.symbol, day.gap_list()))
        for line in report.left_out(root, day):
            typer.echo(line)


# --- serve (replay.serve) --------------------------------------------------------


@app.command("compact")
def compact_cmd(
    date: Annotated[str, typer.Option(help="UTC date (YYYY-MM-DD) whose parts are merged.")],
    symbol: Annotated[str | None, typer.Option(help="One symbol (default: all).")] = None,
    venue: Annotated[str | None, typer.Option(help="One venue (default: all).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Compact a date that is not over yet (UTC).")
    ] = False,
    data: DataOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Merge a day's parts into one part per (venue, date, symbol), in contract order.

    The merged part is written first, then the parts it replaces are removed;
    a reader never reads both. Safe to stop and to run again; replays are
    byte-identical before and after.
    """
    from tickrec import contract
    from tickrec.compact import Compacted, compact

    _storage(endpoint_url)
    root = contract.dataset_root(data)

    def report(done: Compacted) -> None:
        p = done.partition
        where = f"{p.venue} {p.date} {p.symbol}"
        if done.merged is not None:
            typer.echo(
                f"{where}: {_plural(done.parts, 'part')} merged into {done.merged.name} "
                f"({done.rows:,} rows); {done.removed} removed"
            )
        elif done.removed:
            typer.echo(f"{where}: already merged; {done.removed} replaced parts removed")
        else:
            typer.echo(f"{where}: already one part")

    results = compact(root, date, venue, symbol.upper() if symbol else None, force, report)
    merged = sum(1 for r in results if r.merged is not None)
    cleaned = sum(1 for r in results if r.merged is None and r.removed)
    tail = f", {cleaned} cleaned of replaced parts" if cleaned else ""
    typer.echo(f"compacted {merged} of {_plural(len(results), 'partition')}{tail}")


@app.command("serve")
def serve_cmd(
    data: DataOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Replay from this time or date (UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Replay up to this time or date (UTC), exclusive.")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Pace by the stored receive times, this many times faster (1: real time)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8765,
    max_connections: Annotated[int, typer.Option(help="Open connections at most.")] = 64,
) -> None:
    """Replay recorded data on the venue's own websocket and REST routes until Ctrl-C.

    Market data v1 at /v1/marketdata/{symbol}, v2 at /v2/marketdata (after an
    l2 subscribe), the current API at / (SUBSCRIBE and depth requests), REST
    at /v1/book/{symbol} and /v1/symbols, Binance spot's /stream?streams=,
    /ws/<stream>, /ws and /stream (streams by SUBSCRIBE), /api/v3/depth and
    /api/v3/exchangeInfo, and tardis-machine's /replay and /ws-replay: the stored
    messages, byte for byte, in recorded order. tardis-machine's /replay-normalized
    and /ws-replay-normalized: trades, book changes, snapshots, quotes and
    disconnects computed by the replay engine. By default as fast as the client
    reads.
    """
    from replay.api import to_ns
    from replay.serve import ServeConfig, Served, run, venue_routes
    from tickrec import contract

    if speed is not None and speed <= 0:
        raise UsageError(f"--speed: must be positive, not {speed}")
    if max_connections < 1:
        raise UsageError(f"--max-connections: must be at least 1, not {max_connections}")

    def instant(text: str | None, option: str) -> int | None:
        if text is None:
            return None
        try:
            return to_ns(text)
        except ValueError:
            raise UsageError(f"{option}: cannot read time {text!r} (ISO-8601 UTC)") from None

    _storage(endpoint_url, cache_dir)
    config = ServeConfig(
        data=contract.dataset_root(data),
        start_ns=instant(start, "--from"),
        end_ns=instant(end, "--to"),
        speed=speed,
        host=host,
        port=port,
        max_connections=max_connections,
    )

    def ready(url: Served) -> None:
        for label, kind, paths in venue_routes():
            base = url.ws_url if kind == "ws" else url.rest_url
            typer.echo(f"{label + ':':16}{base}{paths}")
        typer.echo(
            f"{'tardis-machine:':16}{url.rest_url}/replay?options=..., {url.ws_url}/ws-replay"
        )
        typer.echo(
            f"{'normalized:':16}{url.rest_url}/replay-normalized?options=..., "
            f"{url.ws_url}/ws-replay-normalized?options=..."
        )
        typer.echo("Ctrl-C to stop")

    _log_to_stderr()
    run(config, ready)
    typer.echo("stopped")


# --- import (recorder.importer) ---------------------------------------------------

import_app = typer.Typer(
    help="Bring captures made by other tools into the dataset.", no_args_is_help=True
)
app.add_typer(import_app, name="import")

StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail on the first malformed line instead of skipping it.")
]


def _report_import(result: ImportResult) -> None:
    for message in result.skipped:
        typer.echo(f"skipped {message}", err=True)
    source = " + ".join(str(p) for p in (result.source, *result.with_files))
    if result.already_imported:
        typer.echo(f"{source}: already imported (run {result.run_id}); nothing added")
    else:
        typer.echo(
            f"{source}: {_plural(result.rows, 'row')} in "
            f"{_plural(len(result.parts), 'file')} (run {result.run_id}), "
            f"{_plural(len(result.skipped), 'line')} skipped"
        )


@import_app.command("cryptofeed")
def import_cryptofeed_cmd(
    files: Annotated[list[str], typer.Argument(help="cryptofeed raw log files.")],
    data: DataOpt = None,
    endpoint_url: EndpointOpt = None,
    strict: StrictOpt = False,
    venue: Annotated[
        str | None,
        typer.Option(help="Venue of every URL (a capture through a proxy or mirror)."),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(help="With --venue: the wire protocol of its websocket URLs (e.g. spot)."),
    ] = None,
) -> None:
    """Import cryptofeed raw logs (AsyncFileCallback lines); venue and protocol from the URLs.

    A capture's REST log (`X.http.*`) given with its websocket logs (`X.ws.*`) goes into
    the same run, so its depth replies sync their connections' books (Binance).
    """
    from recorder.importer import import_cryptofeed
    from tickrec import contract

    _storage(endpoint_url)
    import_cryptofeed(
        files,
        contract.dataset_root(data),
        strict=strict,
        on_file=_report_import,
        progress=terminal_progress(),
        venue=venue,
        protocol=protocol,
    )


@import_app.command("lines")
def import_lines_cmd(
    files: Annotated[list[str], typer.Argument(help="Files with one message per line.")],
    venue: Annotated[str, typer.Option(help="Venue of the messages.")] = "gemini",
    protocol: Annotated[
        str | None,
        typer.Option(help="Wire protocol: v1, v2, ws (gemini); spot (binance). Default: first."),
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Symbol (required for v1; for v2, keep only this one).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="Receive time of the first line when lines carry none (ISO-8601 UTC)."),
    ] = None,
    step: Annotated[
        str, typer.Option(help="Spacing of synthetic receive times (with --start).")
    ] = "1ms",
    data: DataOpt = None,
    endpoint_url: EndpointOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Import one message per line, optionally prefixed by `<ISO-8601 or epoch> ` (Tardis style)."""
    from recorder.importer import import_lines, parse_time_ns
    from tickrec import contract

    start_ns = None
    if start is not None:
        try:
            start_ns = parse_time_ns(start)
        except ValueError:
            raise UsageError(
                f"--start: cannot read {start!r} (use e.g. 2026-11-23T00:00:00Z)"
            ) from None
    _storage(endpoint_url)
    import_lines(
        files,
        contract.dataset_root(data),
        venue=venue,
        protocol=protocol,
        symbol=symbol,
        start_ns=start_ns,
        step_ns=round(parse_duration(step, "--step") * 1e9),
        strict=strict,
        on_file=_report_import,
        progress=terminal_progress(),
    )


# --- demo ------------------------------------------------------------------------


@app.command("demo")
def demo_cmd(
    duration: Annotated[str, typer.Option(help="How long to record.")] = "20s",
    protocol: Annotated[str, typer.Option(help="Gemini protocol to record: v1, v2 or ws.")] = "v1",
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols.")] = "BTCUSD,ETHUSD",
    faults: Annotated[
        bool, typer.Option("--faults/--no-faults", help="Inject faults so gaps show up.")
    ] = True,
    data: Annotated[
        str, typer.Option("--data", help="Where to write the demo dataset.")
    ] = "tickrec-demo",
) -> None:
    """Start the local simulator, record from it, replay, and print the report."""
    from pathlib import Path

    from tickrec.demo import DemoConfig, run_demo

    if protocol not in ("v1", "v2", "ws"):
        raise UsageError(f"--protocol: use v1, v2 or ws, not {protocol!r}")
    config = DemoConfig(
        data=Path(data),
        duration=parse_duration(duration, "--duration"),
        protocol=protocol,
        symbols=tuple(_split(symbols)),
        faults=faults,
    )
    typer.echo("tickrec demo: a simulated Gemini exchange on 127.0.0.1, recorded and replayed")
    run_demo(config, typer.echo)


def main() -> None:
    """Console entry point: run the app, turning tickrec errors into one clear line."""
    # Before numpy is imported (numpy reads it then; a value set by the user wins).
    # Replay writes its large arrays once, front to back, so huge pages gain it
    # little, while a kernel that must compact memory to provide them spends
    # much of a replay's time doing so (README, "Performance").
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    debug = "--debug" in sys.argv[1:]
    try:
        app()  # click's standalone mode reports bad usage itself, with exit code 2
    except TickrecError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug or an OS failure: still one line unless --debug
        if debug:
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        sys.exit(1)
