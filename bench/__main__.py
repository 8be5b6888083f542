"""``python -m bench``: every measurement of the suite in one run, as a table of medians.

Usage::

    python -m bench [--changes N] [--reps 3] [--quick] [--skip e2e,workers,recorder,node,naive]
    python -m bench --venue binance [--changes N] [--reps 3]
    python -m bench --only recorder [--recorder-rates 1000,20000] [--recorder-seconds 20]
    python -m bench --only soak [--soak-seconds 600] [--soak-rate 5000] [--soak-rotate 20s]
    python -m bench --only serve [--changes N]
    python -m bench --only scale [--scale-days 30] [--scale-changes 10000] [--scale-parts 96]

Steps, all on one synthetic Gemini v1 day (:mod:`bench.synth`; with ``--venue
binance``, a Binance spot day of the same flow, :mod:`bench.synth_binance`,
where the steps that only Gemini has are skipped; cached under
``$TICKREC_BENCH_DATA``, default ``tickrec-bench`` in the temp directory):

1. raw decode: tickrec's decoder, raw contract rows to book operations (messages/s);
2. book rebuild: tickrec's kernel over the operations read back from the normalized
   cache (the read is timed too), with top-10
   rows every 1 s and with the best bid/offer after every change (changes/s);
3. peers on the same changes, same two jobs (:mod:`bench.peers`), each
   checked against tickrec's result; the naive baseline runs on a prefix of
   the day and its rate is extrapolated from it;
4. ``tickrec replay --date`` end to end, from raw and again (wall time, peak RSS);
   then over the day stored under two symbols, with ``--workers 1`` and ``2``;
5. the recorder against the loopback simulator (messages/s with zero loss,
   CPU per 1,000 messages).

``--only soak`` runs :mod:`bench.soak` instead (10 minutes by default): the
simulator and the recorder in two processes across many rotations, with
``recv_ts`` lag, RSS over time and its slope, fds and CPU; it exits with
status 1 when a target is not met. ``--only serve`` runs :mod:`bench.serve`:
``tickrec serve`` streaming the synthetic day to one client process
(messages/s and MB/s; 1,000,000 changes unless ``--changes``). ``--only
scale`` runs :mod:`bench.scale`: a month of days replayed serially, with
``--workers 2`` and on a Dask LocalCluster, from local disk and from a
loopback S3, and DuckDB reading a day before and after ``tickrec compact``.

Every figure is the median of ``--reps`` runs (peak memory: the highest),
except the two-symbol ``--workers`` and recorder runs, which are single
runs. A check mismatch, or snapshots that differ between worker counts,
exits with status 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import peers, processes, serve, soak, subject
from bench import scale as month_scale
from bench.changes import Changes, load_changes, time_grid
from bench.synth import DayParams, make_day
from tickrec.contract import read_partition

GIB = 1 << 30

# Targets.
DECODE_MSGS = 1.5e6
REBUILD_CHANGES = 20e6
PEER_FACTOR = 5.0
NAIVE_FACTOR = 50.0
E2E_RAW_S = 15.0
E2E_CACHE_S = 3.0
PEAK_BYTES = 2 * GIB
TARGET_CHANGES = 10_000_000  # the day size the end-to-end targets are set for
REC_MSGS = 20_000  # sustained msgs/s on one connection with zero loss
REC_CPU_AT, REC_CPU_SHARE = 1_000, 0.05  # at most 5% of one core at 1,000 msgs/s

_SKIPPABLE = ("e2e", "workers", "recorder", "node", "naive", "order-book", "sortedcontainers")


def _rate(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} "


def _status(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _spread(runs: Sequence[processes.Child]) -> str:
    """The range of wall times of several runs, e.g. ``(2.01-2.15 s)``; empty for one run."""
    times = [c.seconds for c in runs]
    return f"({min(times):.2f}-{max(times):.2f} s)" if len(times) > 1 else ""


@dataclass
class _PeerRow:
    name: str
    rates: dict[str, float] = field(default_factory=dict)  # mode -> changes/s
    note: str = ""
    skipped: str = ""
    mismatch: list[str] = field(default_factory=list)


def _median_rate(results: Sequence[peers.Result | subject.Timed]) -> float:
    return float(statistics.median(r[0] / r[1] for r in results))


def _prefix(changes: Changes, target: int) -> Changes:
    """The shortest prefix by raw rows holding at least *target* changes (or everything)."""
    sets = np.flatnonzero(changes.op == 0)
    if target >= len(sets):
        return changes
    return changes.prefix(int(changes.row[sets[target - 1]]) + 1)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def _try(label: str, fn: Callable[[], None], row: _PeerRow) -> None:
    try:
        fn()
    except (peers.Unavailable, processes.Unavailable) as exc:
        row.skipped = str(exc)
        _log(f"  {label}: skipped: {exc}")


def _record(rates: Sequence[float], seconds: float) -> tuple[list[processes.RecordResult], str]:
    """Record the simulator at each rate in turn, stopping after the first with loss."""
    recs: list[processes.RecordResult] = []
    for rate in rates:
        _log(f"recorder: sim at {rate:,.0f} events/s for {seconds:g} s")
        try:
            res = processes.record_sim(rate, seconds)
        except processes.Unavailable as exc:
            return recs, f"not available: {exc}"
        recs.append(res)
        if res.breaks:
            break
    return recs, ""


def _recorder_rows(
    recs: Sequence[processes.RecordResult], note: str
) -> list[tuple[str, str, str, str]]:
    """Report rows of the recorder runs: each rate, CPU near 1,000 msgs/s, best zero-loss rate."""
    if not recs:
        return [("recorder", note, "", "")]
    rows = []
    for rr in recs:
        rows.append(
            (
                f"recorder, sim at {rr.rate:,.0f} events/s",
                f"{_rate(rr.msgs_per_s)}msgs/s, {rr.cpu_ms_per_1000:.1f} ms CPU/1,000 msgs "
                f"({rr.cpu_seconds:.2f} s CPU in all)",
                "zero loss",
                f"{rr.breaks} breaks, {rr.in_flight} in flight at close",
            )
        )
    low = min(recs, key=lambda r: abs(r.steady_msgs_per_s - REC_CPU_AT))
    rows.append(
        (
            f"recorder CPU at {_rate(low.steady_msgs_per_s)}msgs/s (while capturing)",
            f"{100 * low.steady_cpu:.1f}% of one core",
            f"<= {100 * REC_CPU_SHARE:g}% at {_rate(REC_CPU_AT)}msgs/s",
            _status(low.steady_cpu <= REC_CPU_SHARE * max(low.steady_msgs_per_s, 1) / REC_CPU_AT),
        )
    )
    good = [r for r in recs if r.breaks == 0]
    best = max(good, key=lambda r: r.msgs_per_s) if good else None
    if best:
        bound = " (the highest rate tried)" if best is recs[-1] and not recs[-1].breaks else ""
        rows.append(
            (
                "recorder, sustained with zero loss" + bound,
                f"{_rate(best.msgs_per_s)}msgs/s",
                f">= {_rate(REC_MSGS)}msgs/s",
                _status(best.msgs_per_s >= REC_MSGS),
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--changes", type=int, help="book changes in the day (default 10,000,000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (>= 1)")
    parser.add_argument("--quick", action="store_true", help="1,000,000 changes, short runs")
    parser.add_argument("--seed", type=int, default=DayParams.seed)
    parser.add_argument(
        "--venue",
        choices=("gemini", "binance"),
        default="gemini",
        help="the synthetic day's venue: Gemini v1, or Binance spot's combined stream",
    )
    parser.add_argument("--naive-changes", type=int, help="prefix for the naive top-10 job")
    parser.add_argument("--naive-bbo-changes", type=int, help="prefix for the naive BBO job")
    parser.add_argument("--recorder-rates", default="1000,10000,20000,30000", help="sim events/s")
    parser.add_argument("--recorder-seconds", type=float, help="capture time per rate")
    parser.add_argument(
        "--only",
        choices=("recorder", "soak", "serve", "scale"),
        help="run just this part (no synthetic day)",
    )
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="soak run length")
    parser.add_argument("--soak-rate", type=float, default=5000.0, help="soak sim events/s")
    parser.add_argument("--soak-rotate", default="20s", help="soak recorder --rotate")
    parser.add_argument("--scale-days", type=int, default=month_scale.MonthParams.days)
    parser.add_argument("--scale-changes", type=int, default=month_scale.MonthParams.changes)
    parser.add_argument("--scale-parts", type=int, default=month_scale.MonthParams.parts)
    parser.add_argument("--skip", default="", help=f"comma-separated: {', '.join(_SKIPPABLE)}")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(_SKIPPABLE) or args.reps < 1:
        parser.error(f"--skip takes {', '.join(_SKIPPABLE)}; --reps must be >= 1")
    n_changes = args.changes or (1_000_000 if args.quick else TARGET_CHANGES)
    naive_grid = args.naive_changes or (20_000 if args.quick else 100_000)
    naive_bbo = args.naive_bbo_changes or (2_000 if args.quick else 5_000)
    rec_seconds = args.recorder_seconds or (3.0 if args.quick else 8.0)
    rates = [float(r) for r in args.recorder_rates.split(",") if r]
    reps = args.reps
    if args.only == "soak":
        text, ok = soak.report(soak.soak(args.soak_rate, args.soak_seconds, args.soak_rotate))
        print(text)
        return 0 if ok else 1
    if args.only == "serve":
        print(serve.report(serve.throughput(args.changes or 1_000_000, args.seed)))
        return 0
    if args.only == "scale":
        params = month_scale.MonthParams(
            days=args.scale_days, changes=args.scale_changes, parts=args.scale_parts
        )
        text, ok = month_scale.report(month_scale.measure(params, reps))
        print("\n" + text)
        return 0 if ok else 1
    if args.only == "recorder":
        recs, rec_note = _record(rates, rec_seconds)
        print(
            "\n" + _table(("measure", "value", "target", "status"), _recorder_rows(recs, rec_note))
        )
        return 0

    # --- the day ---------------------------------------------------------------------
    t0 = time.perf_counter()
    day = make_day(DayParams(changes=n_changes, seed=args.seed, venue=args.venue))
    if day.venue != "gemini":
        # The two-symbol copy renames Gemini partitions, the recorder runs are against
        # the Gemini simulator, and the naive baseline reads Gemini v1 payloads.
        why = f"Gemini only (this is a {day.venue} day)"
        skips = {"workers": why, "recorder": why, "naive": why}
    else:
        skips = {}
    skip |= set(skips)
    _log(f"day: {day.root} ({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    table = read_partition(day.root, day.venue, day.date, day.symbol)
    read_s = time.perf_counter() - t0
    changes = load_changes(table, day.root / "changes.npz")
    recv = table.column("recv_ts").cast(pa.int64()).to_numpy()
    grid = time_grid(int(recv[0]), int(recv.max()))

    # --- tickrec -----------------------------------------------------------------------
    _log("tickrec: decode")
    decodes = []
    for _ in range(reps):
        dec, timed = subject.decode(table, day.symbol)
        decodes.append(timed)
    decode_rate = _median_rate(decodes)
    del dec
    _log("tickrec: normalized cache")
    loads = []
    for _ in range(reps):
        dec, timed = subject.load_cache(day.root, day.venue, day.date, day.symbol)
        loads.append(timed)
    load_rate = _median_rate(loads)
    subject.warm_up(dec, grid)
    _log("tickrec: rebuild (from the cache)")
    tk_runs = {
        "grid": [subject.rebuild_grid(dec, grid) for _ in range(reps)],
        "bbo": [subject.rebuild_bbo(dec) for _ in range(reps)],
    }
    tk = _PeerRow("tickrec", {m: _median_rate(r) for m, r in tk_runs.items()})
    expected = {m: r[0].check for m, r in tk_runs.items()}
    for m, runs in tk_runs.items():
        if len({r.check for r in runs}) != 1:
            tk.mismatch.append(f"{m}: differs between repetitions")
    del dec

    # --- peers -------------------------------------------------------------------------
    rows: list[_PeerRow] = [tk]

    def record(row: _PeerRow, mode: str, results: Sequence[peers.Result], want: str) -> None:
        row.rates[mode] = _median_rate(results)
        bad = {r.check for r in results} - {want}
        if bad:
            row.mismatch.append(f"{mode}: {sorted(bad)} != {want}")

    for name in ("sortedcontainers", "order-book"):
        row = _PeerRow(name)
        rows.append(row)
        if name in skip:
            row.skipped = "skipped by --skip"
            continue
        for mode in peers.MODES:
            _log(f"peer {name}: {mode}")

            def go(name: str = name, mode: str = mode, row: _PeerRow = row) -> None:
                record(row, mode, peers.run_peer(name, changes, mode, grid, reps), expected[mode])

            _try(name, go, row)
            if row.skipped:
                break

    row = _PeerRow("tardis-dev (node)")
    rows.append(row)
    if "node" in skip:
        row.skipped = "skipped by --skip"
    else:
        with tempfile.TemporaryDirectory(prefix="tickrec-bench-node-") as tmp:
            peers.write_node_input(changes, grid, Path(tmp))
            for mode in peers.MODES:
                _log(f"peer tardis-dev: {mode}")

                def go_node(mode: str = mode) -> None:
                    record(row, mode, peers.run_node(Path(tmp), mode, reps), expected[mode])

                _try("tardis-dev", go_node, row)
                if row.skipped:
                    break

    naive = _PeerRow("naive (dict + sorted)")
    rows.append(naive)
    if "naive" in skip:
        naive.skipped = skips.get("naive", "skipped by --skip")
    else:
        notes = []
        for mode, target in (("grid", naive_grid), ("bbo", naive_bbo)):
            _log(f"peer naive: {mode} on a prefix of {target:,} changes")
            pre = _prefix(changes, target)
            pre_grid = grid[grid <= pre.ts[-1]] if len(pre) else grid[:0]
            inp = peers.NaiveInput.of(table, pre)
            ref = peers.run_peer("sortedcontainers", pre, mode, pre_grid, 1)[0].check
            record(naive, mode, peers.run_peer("naive", pre, mode, pre_grid, reps, inp), ref)
            notes.append(f"{mode}: first {pre.n_changes:,} changes")
        naive.note = (
            "includes json.loads; run on a prefix and extrapolated ("
            + "; ".join(notes)
            + "; checked against sortedcontainers on the same prefix)"
        )
    del table

    # --- end to end and recorder -----------------------------------------------------------
    e2e: processes.EndToEnd | str
    if "e2e" in skip:
        e2e = "skipped by --skip"
    else:
        _log("tickrec replay: end to end")
        try:
            e2e = processes.replay_day(day, reps)
        except processes.Unavailable as exc:
            e2e = f"not available: {exc}"
    workers: processes.Workers | str
    if "workers" in skip:
        workers = skips.get("workers", "skipped by --skip")
    else:
        _log("tickrec replay: two symbols, --workers 1 and 2")
        try:
            workers = processes.replay_workers(day)
        except processes.Unavailable as exc:
            workers = f"not available: {exc}"
    recs, rec_note = (
        ([], skips.get("recorder", "skipped by --skip"))
        if "recorder" in skip
        else _record(rates, rec_seconds)
    )

    # --- report -------------------------------------------------------------------------
    print(
        f"\ntickrec benchmark ({reps} repetitions, medians)\n"
        f"day: {day.date} {day.symbol}, {day.changes:,} changes in {day.messages:,} messages "
        f"({day.trades:,} trades, {day.heartbeats:,} heartbeats, {day.rest_snapshots:,} REST "
        f"snapshots, {day.connections} connections), {day.rows:,} rows in {day.parts} parts; "
        f"read in {read_s:.2f} s\n  {day.root}\n"
    )
    results: list[tuple[str, str, str, str]] = []
    results.append(
        (
            "raw decode (tickrec)",
            f"{_rate(decode_rate)}msgs/s",
            f">= {_rate(DECODE_MSGS)}msgs/s",
            _status(decode_rate >= DECODE_MSGS),
        )
    )
    results.append(("normalized cache read (tickrec)", f"{_rate(load_rate)}changes/s", "", ""))
    results.append(
        (
            "rebuild, top-10 every 1 s (ops read from the cache)",
            f"{_rate(tk.rates['grid'])}changes/s",
            f">= {_rate(REBUILD_CHANGES)}changes/s from cache",
            _status(tk.rates["grid"] >= REBUILD_CHANGES),
        )
    )
    results.append(
        ("rebuild, BBO after every change", f"{_rate(tk.rates['bbo'])}changes/s", "", "")
    )
    if isinstance(e2e, str):
        results.append(("tickrec replay --date", e2e, "", ""))
    else:
        scale = day.changes / TARGET_CHANGES
        note = "" if abs(scale - 1) < 0.05 else f" (day is {scale:.2g}x the 10 M target)"
        raw_s = statistics.median(c.seconds for c in e2e.raw)
        again_s = statistics.median(c.seconds for c in e2e.again)
        results.append(
            (
                "tickrec replay --date, from raw" + note,
                f"{raw_s:.2f} s {_spread(e2e.raw)}",
                f"< {E2E_RAW_S:g} s",
                _status(raw_s < E2E_RAW_S * scale),
            )
        )
        label = "tickrec replay --date, second run" + (
            " (cache)" if e2e.cached else " (no normalized cache written)"
        )
        results.append(
            (
                label,
                f"{again_s:.2f} s {_spread(e2e.again)}",
                f"< {E2E_CACHE_S:g} s",
                _status(e2e.cached and again_s < E2E_CACHE_S * scale),
            )
        )
        for name, children in (("from raw", e2e.raw), ("second run", e2e.again)):
            peak = max(c.peak_bytes for c in children)
            results.append(
                (
                    f"tickrec replay peak memory, {name} (highest)",
                    f"{peak / GIB:.2f} GiB",
                    "< 2 GiB",
                    _status(peak < PEAK_BYTES),
                )
            )
    if isinstance(workers, str):
        results.append(("tickrec replay --workers", workers, "", ""))
    else:
        for source, by_count in (("from raw", workers.raw), ("from cache", workers.cached)):
            for n, child in sorted(by_count.items()):
                results.append(
                    (
                        f"tickrec replay, 2 symbols, --workers {n}, {source}",
                        f"{child.seconds:.2f} s, all processes {child.tree_bytes / GIB:.2f} GiB",
                        "",
                        "",
                    )
                )
        results.append(
            (
                "tickrec replay --workers 1 vs 2 output",
                "identical" if workers.identical else "DIFFERENT",
                "identical",
                _status(workers.identical),
            )
        )
    results += _recorder_rows(recs, rec_note)
    print(_table(("measure", "value", "target", "status"), results))

    peer_rows = []
    for r in rows:
        cells = [r.name]
        for mode in peers.MODES:
            got = r.rates.get(mode)
            ratio = tk.rates[mode] / got if got else None
            cells += [_rate(got) if got else "-", f"{ratio:.1f}x" if ratio else "-"]
        status = f"skipped: {r.skipped}" if r.skipped else ("MISMATCH" if r.mismatch else "ok")
        cells.append(status)
        peer_rows.append(cells)
    print("\nbook rebuild on the same changes (changes/s; ratio = tickrec / peer)")
    header = ("book", "top-10 @1 s", "ratio", "BBO/change", "ratio", "check")
    print(_table(header, peer_rows))
    for r in rows:
        if r.note:
            print(f"  {r.name}: {r.note}")
        for m in r.mismatch:
            print(f"  {r.name}: check mismatch, {m}")

    fastest = [r for r in rows[1:-1] if r.rates and not r.skipped]
    print("\ntargets against peers")
    for mode in peers.MODES:
        if fastest:
            top = max(fastest, key=lambda r: r.rates.get(mode, 0.0))
            f = tk.rates[mode] / top.rates[mode]
            print(
                f"  {mode}: {f:.1f}x the fastest peer ({top.name}); "
                f">= {PEER_FACTOR:g}x: {_status(f >= PEER_FACTOR)}"
            )
        if naive.rates.get(mode):
            f = tk.rates[mode] / naive.rates[mode]
            print(f"  {mode}: {f:,.0f}x naive; >= {NAIVE_FACTOR:g}x: {_status(f >= NAIVE_FACTOR)}")
    differs = not isinstance(workers, str) and not workers.identical
    return 1 if differs or any(r.mismatch for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
