"""Progress inside one symbol-day's replay: rows decoded of the total, with a rate, throttled."""

from __future__ import annotations

import io
from pathlib import Path

import replay
from bench.synth import DayParams, make_day
from replay import cache
from tickrec import contract
from tickrec.progress import RowMeter, terminal_progress


class Clock:
    """A clock that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_meter_shows_rows_rate_and_is_throttled():
    clock, shown = Clock(), []
    meter = RowMeter(shown.append, "decode gemini 2026-01-15 BTCUSD", 1000, 0.25, clock)
    clock.now += 1.0
    meter(100)  # first call always shows
    clock.now += 0.1
    meter(100)  # too soon: not shown
    clock.now += 0.2
    meter(100)
    meter(700)  # the end always shows
    assert shown == [
        "decode gemini 2026-01-15 BTCUSD: 100/1,000 rows (10%), 100 rows/s",
        "decode gemini 2026-01-15 BTCUSD: 300/1,000 rows (30%), 231 rows/s",
        "decode gemini 2026-01-15 BTCUSD: 1,000/1,000 rows (100%), 769 rows/s",
    ]


def test_terminal_only():
    assert terminal_progress(io.StringIO()) is None
    tty = Tty()
    show = terminal_progress(tty)
    assert show is not None
    show("x")
    assert tty.getvalue() == "\r\033[Kx"


def test_long_decode_reports_rows_as_batches_are_decoded(tmp_path: Path):
    day = make_day(
        DayParams(changes=3_000, seed=3, span_s=600, reconnects=0, part_rows=500), cache=tmp_path
    )
    parts = contract.list_parts(day.root, contract.Partition(day.venue, day.date, day.symbol))
    total = sum(p.rows for p in parts)
    assert len(parts) > 2
    shown: list[str] = []
    progressed = replay.open(
        day.date, day.symbol, data=day.root, cache=False, progress=shown.append
    )
    plain = replay.open(day.date, day.symbol, data=day.root, cache=False)
    assert len(shown) >= 2  # the first batch and the last, at least
    assert shown[-1].startswith(
        f"decode {day.venue} {day.date} {day.symbol}: {total:,}/{total:,} rows (100%)"
    )
    assert progressed.book_snapshots().equals(plain.book_snapshots())
    assert progressed.gap_list() == plain.gap_list()
    # decoding from raw into the cache reports too; a current cache entry has nothing to decode
    building: list[str] = []
    cache.decode_partition(day.root, day.venue, day.date, day.symbol, progress=building.append)
    assert f"{total:,}/{total:,}" in building[-1]
    cached: list[str] = []
    cache.decode_partition(day.root, day.venue, day.date, day.symbol, progress=cached.append)
    assert cached == []
