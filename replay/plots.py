"""Plots of a replayed day: mid and spread, depth, trades, gaps and latency.

Every helper takes a :class:`~replay.api.Day` (or the DataFrames it returns)
and an optional matplotlib ``ax`` to draw into; without one it makes a new
figure with :mod:`matplotlib.pyplot`, so figures show inline in Jupyter and
render headless with the Agg backend. Each returns the Axes it drew on
(:func:`overview` returns its Figure). Prices and sizes become floats here,
for display only; the exact values stay in the replay.

matplotlib is an optional dependency (``pip install 'tickrec[plots]'``) and is
imported only when a helper is called.

Times on the x axes are UTC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from replay.api import Day, to_ns
from replay.gaps import KINDS, MASKING_KINDS
from replay.view import BookView

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "GAP_COLORS",
    "cumulative_depth",
    "depth_heatmap",
    "gap_timeline",
    "latency_histogram",
    "mid_spread",
    "overview",
    "trade_prints",
]

F64 = npt.NDArray[np.float64]

#: Colour of each gap kind, shared by the shaded spans and the gap timeline.
GAP_COLORS = {
    "disconnect": "tab:red",
    "sequence": "tab:orange",
    "silence": "tab:purple",
    "snapshot_mismatch": "tab:brown",
    "crossed": "tab:pink",
    "journal_loss": "black",
    "unsynced": "tab:olive",
    "no_connection": "tab:gray",
}

_SIDES = (("buy", "^", "tab:green"), ("sell", "v", "tab:red"), ("unknown", "o", "tab:gray"))


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # the `plots` extra is optional
        raise ImportError(
            "replay.plots needs matplotlib: pip install 'tickrec[plots]' (or matplotlib)"
        ) from exc
    return plt


def _axes(ax: Axes | None, figsize: tuple[float, float] = (10.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    _, new = _pyplot().subplots(figsize=figsize, layout="constrained")
    return new


def _datenum(ts: Any) -> F64:
    """matplotlib date numbers (float days, display only) of UTC times or ns integers."""
    import matplotlib.dates as mdates

    values = pd.to_datetime(np.atleast_1d(np.asarray(ts)), utc=True)
    return np.asarray(mdates.date2num(values.tz_convert(None).to_numpy()), np.float64)


def _time_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


def _top(quotes: pd.DataFrame) -> tuple[F64, F64, F64]:
    """Times (date numbers), best bid and best ask of quotes or snapshots; NaN where invalid."""
    bid = quotes["bid_px"] if "bid_px" in quotes else quotes["bid_px_0"]
    ask = quotes["ask_px"] if "ask_px" in quotes else quotes["ask_px_0"]
    ok = quotes["valid"].to_numpy(bool) if "valid" in quotes else np.ones(len(quotes), bool)
    b = np.where(ok, bid.to_numpy(np.float64), np.nan)
    a = np.where(ok, ask.to_numpy(np.float64), np.nan)
    return _datenum(quotes["ts"]), b, a


def _mid_line(quotes: pd.DataFrame, gaps: pd.DataFrame | None) -> tuple[F64, F64, F64]:
    """Times, mid and spread, with a break (NaN) at the start of every gap that masks the book."""
    t, bid, ask = _top(quotes)
    if gaps is not None and len(gaps):
        masking = gaps[gaps["kind"].astype(str).isin(MASKING_KINDS)]
        starts = _datenum(masking["start"]) if len(masking) else np.zeros(0)
        order = np.argsort(np.concatenate([t, starts]), kind="stable")
        t = np.concatenate([t, starts])[order]
        bid = np.concatenate([bid, np.full(len(starts), np.nan)])[order]
        ask = np.concatenate([ask, np.full(len(starts), np.nan)])[order]
    return t, (bid + ask) / 2, ask - bid


def _plain(axis: Any) -> None:
    """Show prices in full on *axis* (no "+6e4" offset)."""
    formatter = axis.get_major_formatter()
    if hasattr(formatter, "set_useOffset"):
        formatter.set_useOffset(False)


def _shade_gaps(ax: Axes, gaps: pd.DataFrame) -> None:
    """One shaded span per gap (``gid="gap"``), coloured by kind, one legend entry per kind."""
    labelled: set[str] = set()
    for kind, start, end in zip(gaps["kind"], gaps["start"], gaps["end"], strict=True):
        a, z = _datenum([start, end])
        ax.axvspan(
            float(a),
            float(z),
            color=GAP_COLORS.get(str(kind), "gray"),
            alpha=0.25,
            linewidth=0,
            gid="gap",
            label=f"gap: {kind}" if kind not in labelled else None,
        )
        labelled.add(str(kind))


def mid_spread(
    data: Day | pd.DataFrame, gaps: pd.DataFrame | None = None, *, ax: Axes | None = None
) -> Axes:
    """Mid price over time, spread on a second y axis, and every gap shaded.

    *data* is a :class:`Day` (its :meth:`~Day.quotes` and :meth:`~Day.gaps`
    are used) or a quotes or snapshots DataFrame (``bid_px``/``ask_px`` or
    ``bid_px_0``/``ask_px_0``, ``valid``), with *gaps* from :meth:`Day.gaps`.
    Rows where the book is not valid are left out of both lines. The spread
    line (label ``spread``) is on a twin y axis, the figure's other Axes;
    each gap is one span with ``gid="gap"`` on the returned Axes.
    """
    if isinstance(data, Day):
        quotes, gaps = data.quotes(), data.gaps() if gaps is None else gaps
        title = f"{data.symbol} {data.date}: mid and spread"
    else:
        quotes, title = data, "mid and spread"
    ax = _axes(ax)
    t, mid, spread = _mid_line(quotes, gaps)
    ax.plot(t, mid, drawstyle="steps-post", color="tab:blue", lw=1.0, label="mid")
    twin = ax.twinx()
    twin.plot(
        t, spread, drawstyle="steps-post", color="tab:gray", lw=0.8, alpha=0.8, label="spread"
    )
    twin.set_ylabel("spread")
    if gaps is not None:
        _shade_gaps(ax, gaps)
    ax.set_ylabel("mid price")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(
        handles + h2, labels + l2, loc="upper left", fontsize="x-small", ncols=3, framealpha=0.8
    )
    _plain(ax.yaxis)
    _time_axis(ax)
    return ax


def _heat_grid(snaps: pd.DataFrame, bins: int) -> tuple[F64, F64, F64]:
    """``(grid, price_edges, time_edges)``: size summed per price bin (rows) and time (columns)."""
    depth = sum(1 for c in snaps.columns if c.startswith("bid_px_"))
    ok = snaps["valid"].to_numpy(bool) if "valid" in snaps else np.ones(len(snaps), bool)
    px = np.column_stack(
        [snaps[f"{s}_px_{i}"].to_numpy(np.float64) for s in ("bid", "ask") for i in range(depth)]
    )
    sz = np.column_stack(
        [snaps[f"{s}_sz_{i}"].to_numpy(np.float64) for s in ("bid", "ask") for i in range(depth)]
    )
    present = ok[:, None] & np.isfinite(px) & np.isfinite(sz)
    t = _datenum(snaps["ts"])
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0 / 86_400
    time_edges = np.append(t, t[-1] + step) if len(t) else np.zeros(1)
    grid = np.zeros((bins, len(t)))
    if not present.any():
        return grid, np.linspace(0.0, 1.0, bins + 1), time_edges
    lo, hi = float(px[present].min()), float(px[present].max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    price_edges = np.linspace(lo, hi, bins + 1)
    rows, cols = np.nonzero(present)
    where = np.clip(np.searchsorted(price_edges, px[rows, cols], "right") - 1, 0, bins - 1)
    np.add.at(grid, (where, rows), sz[rows, cols])
    return grid, price_edges, time_edges


def depth_heatmap(
    data: Day | pd.DataFrame,
    *,
    depth: int = 10,
    every: str = "1s",
    bins: int = 60,
    ax: Axes | None = None,
) -> Axes:
    """Resting size by price (y) and time (x): the top *depth* levels of both sides.

    *data* is a :class:`Day` (snapshotted with ``book_snapshots(depth, every)``)
    or a snapshots DataFrame. Prices fall into *bins* equal bins over the
    range shown; the colour of a cell is the total size resting in it, so the
    array drawn (``ax.collections[0].get_array()``) has shape
    ``(bins, number of snapshots)`` and sums to the size shown. Cells with no
    size, and snapshots where the book is not valid, stay blank.
    """
    snaps = data.book_snapshots(depth, every) if isinstance(data, Day) else data
    grid, price_edges, time_edges = _heat_grid(snaps, bins)
    ax = _axes(ax)
    mesh = ax.pcolormesh(
        time_edges, price_edges, np.ma.masked_equal(grid, 0.0), cmap="viridis", shading="flat"
    )
    ax.figure.colorbar(mesh, ax=ax, label="size", pad=0.01)
    ax.set_ylabel("price")
    _plain(ax.yaxis)
    name = f"{data.symbol} {data.date}: " if isinstance(data, Day) else ""
    ax.set_title(f"{name}depth heatmap")
    _time_axis(ax)
    return ax


def trade_prints(
    data: Day | pd.DataFrame, trades: pd.DataFrame | None = None, *, ax: Axes | None = None
) -> Axes:
    """Trades as markers over the mid price: buys ``^`` green, sells ``v`` red.

    *data* is a :class:`Day` or a quotes/snapshots DataFrame with *trades* from
    :meth:`Day.trades`. Marker area grows with the square root of the size.
    Each taker side present is one scatter collection, labelled ``buy``,
    ``sell`` or ``unknown``.
    """
    gaps = None
    if isinstance(data, Day):
        quotes, trades = data.quotes(), data.trades() if trades is None else trades
        gaps, title = data.gaps(), f"{data.symbol} {data.date}: trades over the mid"
    else:
        quotes, title = data, "trades over the mid"
    ax = _axes(ax)
    t, mid, _ = _mid_line(quotes, gaps)
    ax.plot(t, mid, drawstyle="steps-post", color="tab:blue", lw=0.8, label="mid")
    if trades is not None and len(trades):
        biggest = float(trades["size"].max()) or 1.0
        for side, marker, color in _SIDES:
            these = trades[trades["side"].astype(str) == side]
            if len(these):
                ax.scatter(
                    _datenum(these["ts"]),
                    these["price"].to_numpy(np.float64),
                    s=12 + 80 * np.sqrt(these["size"].to_numpy(np.float64) / biggest),
                    marker=marker,
                    color=color,
                    alpha=0.7,
                    linewidths=0,
                    label=side,
                )
    ax.set_ylabel("price")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="x-small", framealpha=0.8)
    _plain(ax.yaxis)
    _time_axis(ax)
    return ax


def cumulative_depth(
    data: Day | BookView, at: Any = None, *, levels: int | None = 25, ax: Axes | None = None
) -> Axes:
    """Cumulative size by price at one instant: bids to the left, asks to the right.

    *data* is a :class:`Day` (the book is ``day.book_at(at, levels)``; *at*
    defaults to the middle of the recorded span) or a :class:`BookView`. The
    lines labelled ``bids`` and ``asks`` end at each side's total size over
    the levels shown; a dashed line marks the mid.
    """
    if isinstance(data, Day):
        if at is None:
            first, last = data.span
            at = first + (last - first) // 2
        book, name = data.book_at(at, levels), f"{data.symbol} "
    else:
        book, name = data, ""
    ax = _axes(ax, (7.0, 4.0))
    for label, levels_, color in (("bids", book.bids, "tab:green"), ("asks", book.asks, "tab:red")):
        if len(levels_):
            cum = np.cumsum(levels_[:, 1])
            ax.plot(levels_[:, 0], cum, drawstyle="steps-post", color=color, label=label)
            ax.fill_between(levels_[:, 0], cum, step="post", color=color, alpha=0.2)
    if book.mid is not None:
        ax.axvline(book.mid, color="tab:blue", ls="--", lw=0.8, label="mid")
    when = pd.Timestamp(book.ts, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S.%f")
    state = "valid" if book.valid else "NOT valid"
    ax.set_title(f"{name}cumulative depth at {when} UTC ({state})")
    ax.set_xlabel("price")
    ax.set_ylabel("cumulative size")
    _plain(ax.xaxis)
    ax.legend(loc="upper center", fontsize="small")
    return ax


def gap_timeline(
    data: Day | pd.DataFrame,
    *,
    span: tuple[Any, Any] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """One row per gap kind, one bar per gap, over the recorded span.

    *data* is a :class:`Day` or a gaps DataFrame (:meth:`Day.gaps`); *span*
    (start, end) sets the x range (a Day's own span by default). Each kind
    with gaps is one bar collection (``gid`` = the kind) holding one bar per
    gap; gaps of zero length show as their edge line.
    """
    if isinstance(data, Day):
        gaps, span = data.gaps(), data.span if span is None else span
        title = (
            f"{data.symbol} {data.date}: {len(gaps)} gaps, "
            f"book valid {data.span_coverage:.1%} of the span"
        )
    else:
        gaps, title = data, f"{len(data)} gaps"
    ax = _axes(ax, (10.0, 2.8))
    for row, kind in enumerate(KINDS):
        these = gaps[gaps["kind"].astype(str) == kind]
        if not len(these):
            continue
        a, z = _datenum(these["start"]), _datenum(these["end"])
        color = GAP_COLORS[kind]
        bars = ax.broken_barh(
            list(zip(a, z - a, strict=True)),
            (row - 0.35, 0.7),
            facecolors=color,
            edgecolors=color,
            linewidth=1.0,
        )
        bars.set_gid(kind)
    if span is not None:
        lo, hi = _datenum([to_ns(span[0]), to_ns(span[1])])
        ax.set_xlim(float(lo), float(hi))
    ax.set_yticks(range(len(KINDS)), list(KINDS))
    ax.set_ylim(-0.6, len(KINDS) - 0.4)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    _time_axis(ax)
    return ax


def latency_histogram(
    data: Day | pd.DataFrame, *, bins: int = 50, log: bool = True, ax: Axes | None = None
) -> Axes:
    """Distribution of exchange-to-local latency (``recv_ts - exch_ts``) in milliseconds.

    *data* is a :class:`Day` (:meth:`Day.latency`) or a DataFrame with a
    ``latency`` timedelta column. One bar per bin (the bars' heights sum to
    the number of messages with an exchange time); dashed lines mark the
    median and the 99th percentile. The count axis is logarithmic unless
    ``log=False``, so a thin tail of late messages stays visible. Exchange
    and local clocks are not synchronized and Gemini stamps in ms, so read
    small values with care.
    """
    lat = data.latency() if isinstance(data, Day) else data
    ms = lat["latency"].to_numpy("timedelta64[ns]").astype(np.int64) / 1e6
    ax = _axes(ax, (7.0, 4.0))
    name = f"{data.symbol}: " if isinstance(data, Day) else ""
    if len(ms) == 0:
        ax.text(0.5, 0.5, "no messages with an exchange time", ha="center", transform=ax.transAxes)
        ax.set_title(f"{name}latency")
        return ax
    ax.hist(ms, bins=bins, log=log, color="tab:blue", alpha=0.8)
    med, p99 = np.percentile(ms, [50, 99])
    ax.axvline(med, color="black", ls="--", lw=1, label=f"median {med:.2f} ms")
    ax.axvline(p99, color="tab:red", ls="--", lw=1, label=f"p99 {p99:.2f} ms")
    ax.set_title(f"{name}exchange-to-local latency, {len(ms)} messages")
    ax.set_xlabel("recv_ts - exch_ts (ms)")
    ax.set_ylabel("messages")
    ax.legend(fontsize="small")
    return ax


def overview(
    day: Day, *, every: str = "1s", depth: int = 10, figsize: tuple[float, float] = (13.0, 7.5)
) -> Figure:
    """A 2x2 figure of one day: mid/spread with gaps, depth heatmap, trades, gap timeline."""
    fig, axes = _pyplot().subplots(2, 2, figsize=figsize, layout="constrained")
    snaps = day.book_snapshots(depth, every)
    mid_spread(day, ax=axes[0, 0])
    depth_heatmap(snaps, ax=axes[0, 1])
    axes[0, 1].set_title(f"{day.symbol}: top {depth} levels every {every}")
    trade_prints(day, ax=axes[1, 0])
    gap_timeline(day, ax=axes[1, 1])
    return fig
