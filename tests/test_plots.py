"""The plot helpers render real data to real PNG files, and draw what the data says.

Two datasets: a few seconds recorded from the loopback simulator with faults
injected (so there are gaps of several kinds), and the real Gemini v2 capture
imported with the cryptofeed importer (real exchange timestamps).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.patches import Rectangle
from realdata import GEMINI_V2

import replay
from recorder.importer import import_cryptofeed
from recorder.record import RecordConfig, record
from replay import plots
from replay.api import Day
from tickrec import contract
from tickrec.sim import FaultConfig, SimConfig, Simulator

matplotlib.use("Agg")  # headless, whatever the environment says

DPI = 50


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sim_day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    """About 4 s of BTCUSD over v1 with dropped frames, closes and stalls.

    The drops are seeded by frame count: the first connection loses its 274th
    frame (after its first stall, a silence), and the recorder opens a successor
    that takes the book over; that second connection is closed 0.8 s after it
    opens, well before its own first drop, so its loss is a disconnect gap. A
    close of a connection whose successor already holds the book is no gap.
    """
    root = tmp_path_factory.mktemp("sim") / "data"
    faults = FaultConfig(
        drop=0.002, close_every=0.8, close_conns=(2,), stall_for=0.7, stall_every=1.0
    )
    config = SimConfig(symbols=("BTCUSD",), rate=200.0, seed=3, heartbeat_s=0.2, faults=faults)
    with Simulator(config) as sim:
        record(
            RecordConfig(
                symbols=("BTCUSD",),
                protocol="v1",
                url=sim.ws_url,
                rest_url=sim.rest_url,
                data=str(root),
                duration=4.0,
                snapshot_every=1.0,
                status_every=0.0,
                fsync_interval=0.02,
                connects_per_minute=600.0,
                backoff_base=0.05,
            )
        )
    partitions = contract.list_partitions(root, symbol="BTCUSD")
    # A run can straddle UTC midnight: take the date with the most data.
    best = max(partitions, key=lambda p: sum(f.rows for f in contract.list_parts(root, p)))
    return replay.open(best.date, "BTCUSD", data=root, silence="0.5s")


@pytest.fixture(scope="module")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemini v2 capture, imported as it would be with ``tickrec import``."""
    root = tmp_path_factory.mktemp("real") / "data"
    import_cryptofeed([GEMINI_V2], root)
    return root


@pytest.fixture(scope="module")
def real_day(real_root: Path) -> Day:
    """FILUSD of the real capture: the symbol with the most messages and trades."""
    return replay.open("2021-06-24", "FILUSD", data=real_root)


def _png(fig: Figure, path: Path) -> None:
    """Save *fig* and check the file is a picture of the expected size, not a blank one."""
    fig.savefig(path, dpi=DPI)
    image = imread(path)
    width, height = fig.get_size_inches() * DPI
    assert image.shape[:2] == (round(height), round(width))
    rgb = image[..., :3]
    assert (rgb < 0.9).any(axis=-1).mean() > 0.01, "almost all white"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20, "too few colours to be a plot"


def _fig(ax: Axes) -> Figure:
    fig = ax.figure
    assert isinstance(fig, Figure)
    return fig


def _mesh_array(ax: Axes) -> np.ndarray:
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    array = mesh.get_array()
    assert array is not None
    return array


def _line(ax: Axes, label: str) -> np.ndarray:
    (line,) = [x for x in ax.get_lines() if x.get_label() == label]
    return np.column_stack([line.get_xdata(), line.get_ydata()]).astype(np.float64)


def test_sim_day_has_gaps_of_several_kinds(sim_day: Day) -> None:
    kinds = set(sim_day.gaps()["kind"].astype(str))
    assert {"disconnect", "sequence", "silence"} <= kinds


def test_mid_spread_shades_every_gap(sim_day: Day, tmp_path: Path) -> None:
    ax = plots.mid_spread(sim_day)
    _png(_fig(ax), tmp_path / "mid.png")
    gaps = sim_day.gaps()
    spans = [p for p in ax.patches if p.get_gid() == "gap"]
    assert len(spans) == len(gaps) > 0
    quotes = sim_day.quotes()
    mid = _line(ax, "mid")
    valid = quotes[quotes["valid"]]
    # One point per quote row plus a break at each masking gap; finite only where valid.
    assert np.isfinite(mid[:, 1]).sum() == len(valid)
    assert np.nanmax(mid[:, 1]) == pytest.approx(
        ((valid["bid_px"] + valid["ask_px"]) / 2).max(), rel=1e-12
    )
    (twin,) = [a for a in _fig(ax).axes if a is not ax]
    spread = _line(twin, "spread")
    assert np.nanmin(spread[:, 1]) > 0, "a valid book is never crossed or locked here"


def test_depth_heatmap_grid_is_levels_by_times(sim_day: Day, tmp_path: Path) -> None:
    snaps = sim_day.book_snapshots(depth=5, every="100ms")
    ax = plots.depth_heatmap(snaps, bins=40)
    _png(_fig(ax), tmp_path / "heat.png")
    grid = np.ma.filled(_mesh_array(ax), 0.0)
    assert grid.shape == (40, len(snaps))
    valid = snaps[snaps["valid"]]
    sizes = valid.filter(regex=r"^(bid|ask)_sz_").to_numpy(np.float64)
    assert grid.sum() == pytest.approx(np.nansum(sizes), rel=1e-9)
    assert (grid[:, ~snaps["valid"].to_numpy()] == 0).all(), "invalid snapshots stay blank"


def test_depth_heatmap_from_a_day(real_day: Day, tmp_path: Path) -> None:
    ax = plots.depth_heatmap(real_day, depth=10, every="1s", bins=30)
    _png(_fig(ax), tmp_path / "heat_real.png")
    assert _mesh_array(ax).shape == (30, len(real_day.book_snapshots(10, "1s")))


def test_trade_prints_one_marker_per_trade(sim_day: Day, tmp_path: Path) -> None:
    ax = plots.trade_prints(sim_day)
    _png(_fig(ax), tmp_path / "trades.png")
    trades = sim_day.trades()
    assert len(trades) > 0
    scatters = {c.get_label(): c for c in ax.collections if isinstance(c, PathCollection)}
    counts = trades["side"].astype(str).value_counts()
    assert {k: len(np.asarray(c.get_offsets())) for k, c in scatters.items()} == {
        k: int(v) for k, v in counts.items() if v
    }
    buys = np.asarray(scatters["buy"].get_offsets())[:, 1]
    assert sorted(buys) == sorted(trades.loc[trades["side"] == "buy", "price"])


def test_cumulative_depth_ends_at_the_total_size(sim_day: Day, tmp_path: Path) -> None:
    snaps = sim_day.book_snapshots(depth=1, every="100ms")
    valid_times = snaps.loc[snaps["valid"], "ts"]
    at = valid_times.iloc[len(valid_times) // 2]
    ax = plots.cumulative_depth(sim_day, at, levels=20)
    _png(_fig(ax), tmp_path / "depth.png")
    book = sim_day.book_at(at, depth=20)
    assert book.valid
    bids, asks = _line(ax, "bids"), _line(ax, "asks")
    assert bids[0, 0] == book.best_bid and asks[0, 0] == book.best_ask
    assert bids[-1, 1] == pytest.approx(book.bids[:, 1].sum())
    assert asks[-1, 1] == pytest.approx(book.asks[:, 1].sum())
    assert np.all(np.diff(bids[:, 0]) < 0) and np.all(np.diff(asks[:, 0]) > 0)
    assert "(valid)" in ax.get_title()


def test_gap_timeline_one_bar_per_gap(sim_day: Day, tmp_path: Path) -> None:
    ax = plots.gap_timeline(sim_day)
    _png(_fig(ax), tmp_path / "gaps.png")
    gaps = sim_day.gaps()
    bars = {
        c.get_gid(): len(c.get_paths()) for c in ax.collections if isinstance(c, PolyCollection)
    }
    counts = gaps["kind"].astype(str).value_counts()
    assert bars == {k: int(v) for k, v in counts.items() if v}
    assert f"{len(gaps)} gaps" in ax.get_title()


def test_latency_is_exact_and_counts_every_stamped_message(real_day: Day, real_root: Path) -> None:
    lat = real_day.latency()
    # v2 stamps trades and heartbeats (docs/venues/gemini.md); l2_updates carry no time.
    counts = real_day.decoded.counts
    assert len(lat) == counts["trade"] + counts["heartbeat"] > 0
    table = contract.read_partition(real_root, "gemini", "2021-06-24", "FILUSD")
    rows = [r for r in table.to_pylist() if r["source"] == "ws" and r["exch_ts"] is not None]
    recv = np.array([r["recv_ts"].value for r in rows], np.int64)
    exch = np.array([r["exch_ts"].value for r in rows], np.int64)
    assert (exch % 1_000_000 == 0).all(), "Gemini stamps in whole ms"
    assert lat["latency"].to_numpy("timedelta64[ns]").astype(np.int64).tolist() == list(recv - exch)
    assert table.column("exch_ts").type == pa.timestamp("ns", tz="UTC")


@pytest.mark.parametrize("which", ["sim", "real"])
def test_latency_histogram_counts_every_message(
    which: str, sim_day: Day, real_day: Day, tmp_path: Path
) -> None:
    day = sim_day if which == "sim" else real_day
    ax = plots.latency_histogram(day, bins=25)
    _png(_fig(ax), tmp_path / "latency.png")
    heights = [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]
    assert len(heights) == 25
    assert sum(heights) == len(day.latency()) > 0


def test_overview_is_two_by_two(sim_day: Day, tmp_path: Path) -> None:
    fig = plots.overview(sim_day, every="250ms")
    _png(fig, tmp_path / "overview.png")
    # Four panels, the spread's twin axis and the heatmap's colour bar.
    assert len(fig.axes) == 6
    assert (tmp_path / "overview.png").stat().st_size < 200_000


def test_clear_error_without_matplotlib(monkeypatch: pytest.MonkeyPatch, sim_day: Day) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"tickrec\[plots\]"):
        plots.gap_timeline(sim_day)
