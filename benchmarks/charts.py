"""The benchmark charts: SVG files that docs/benchmarks.rst shows, drawn with matplotlib from
one run's results (see benchmarks/report.py for their shape).

matplotlib is installed by the ``bench`` nox session only, so it is imported inside
:func:`write_charts`: the rest of this module (the series the charts draw) imports without
it. The files are deterministic for a given matplotlib and input (fixed ids, no date), so
that they can be committed, and drawn on a white card with mid-tone colours, readable on
furo's light and dark backgrounds. The machine and versions go in the page, not the images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.report import LABELS, median

if TYPE_CHECKING:
    from matplotlib.axes import Axes  # type: ignore[import-not-found, unused-ignore]

#: One colour per row: ours in blues, the official client in orange, the floor in greys.
COLORS = {
    "ours-trio": "#1f5fa8",
    "ours-asyncio": "#4a90d9",
    "official": "#d9822b",
    "floor-trio": "#6b6b6b",
    "floor-asyncio": "#a3a3a3",
}
INK = "#222222"
#: The percentiles the round-trip chart marks on its axis, and how it names them.
PERCENTILE_TICKS = {0.0: "min", 0.5: "median", 0.9: "p90", 0.99: "p99", 0.999: "p99.9"}
WIDTH = 7.5  # inches: the SVG is as wide as furo's text column at 96 px an inch


def nines(share: float) -> float:
    """Where a percentile sits on the round-trip chart's axis: ``-log10(1 - share)``, so
    that 90%, 99% and 99.9% are evenly spaced and the tail gets as much room as the body."""
    return -math.log10(1.0 - share)


def percentile_series(
    quantiles_us: Sequence[float], upto: float = 0.999
) -> tuple[list[float], list[float]]:
    """The round-trip chart's line for one row: the axis position of each quantile up to
    ``upto`` (beyond it, a few dozen calls decide the shape) and its value."""
    last = len(quantiles_us) - 1
    positions, values = [], []
    for i, value in enumerate(quantiles_us):
        share = i / last
        if share > upto + 1e-9:
            break
        positions.append(nines(share))
        values.append(value)
    return positions, values


def spread(count: int, width: float = 0.5) -> list[float]:
    """Evenly spaced offsets across a bar's thickness for the dots of ``count`` repeats."""
    if count == 1:
        return [0.0]
    return [-width / 2 + width * i / (count - 1) for i in range(count)]


def write_charts(results: dict[str, Any], directory: Path) -> list[Path]:
    """Draw every chart of the results into ``directory``; return the files written."""
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("svg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    plt.rcParams.update(
        {
            "svg.hashsalt": "realtime_pubsub benchmarks",
            "svg.fonttype": "path",
            "font.size": 10,
            "axes.titlesize": 10.5,
            "figure.titlesize": 12,
            "figure.titleweight": "bold",
            "text.color": INK,
            "axes.labelcolor": INK,
            "axes.edgecolor": "#888888",
            "xtick.color": INK,
            "ytick.color": INK,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": "#e3e3e3",
            "grid.linewidth": 0.8,
            "axes.axisbelow": True,
            "figure.facecolor": "white",
            # A margin inside the white card, which stands out on furo's dark background.
            "figure.constrained_layout.w_pad": 0.15,
            "figure.constrained_layout.h_pad": 0.12,
            "savefig.facecolor": "white",
        }
    )
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (
        ("receive.svg", _receive),
        ("acks.svg", _acks),
        ("round-trip.svg", _round_trip),
        ("patterns.svg", _patterns),
        ("memory.svg", _memory),
    ):
        figure = draw(plt, results)
        path = directory / name
        figure.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(figure)
        written.append(path)
    return written


def _bars(
    axes: Axes, labels: list[str], colors: list[str], runs: list[list[float]], unit: str
) -> None:
    """One horizontal bar per row at its median (the first row on top), a dot per repeat,
    and the median written after the row's longest run."""
    positions = list(range(len(labels)))[::-1]
    medians = [median(values) for values in runs]
    axes.barh(positions, medians, height=0.62, color=colors)
    top = max(max(values) for values in runs)
    for position, values, value in zip(positions, runs, medians, strict=True):
        axes.scatter(
            values,
            [position + offset for offset in spread(len(values))],
            s=14,
            color=INK,
            edgecolors="white",
            linewidths=0.6,
            zorder=3,
        )
        axes.text(
            max(values) + top * 0.03, position, f"{value:,.{1 if unit else 0}f}{unit}", va="center"
        )
    axes.set_yticks(positions, labels)
    axes.set_xlim(0, top * 1.25)
    axes.grid(axis="y", visible=False)
    axes.tick_params(axis="y", length=0)


def _rows(results: dict[str, Any], key: str) -> tuple[list[str], list[str], list[list[float]]]:
    """The labels, colours and repeats of every row of one scenario, for :func:`_bars`."""
    rows = results["rows"]
    return [LABELS[r] for r in rows], [COLORS[r] for r in rows], [results[key][r] for r in rows]


def _receive(plt: Any, results: dict[str, Any]) -> Any:
    figure, (plain, deflate) = plt.subplots(
        1, 2, figsize=(WIDTH, 3.1), sharey=True, layout="constrained"
    )
    for axes, key, title in (
        (plain, "receive", "plain frames"),
        (deflate, "receive_deflate", "every message deflated"),
    ):
        _bars(axes, *_rows(results, key), "")
        axes.set_title(title)
        axes.set_xlabel("messages received per second")
        axes.xaxis.set_major_formatter(_kilo(plt))
    figure.suptitle("Receive throughput: one connection, ~150-byte messages")
    return figure


def _acks(plt: Any, results: dict[str, Any]) -> Any:
    figure, axes = plt.subplots(figsize=(WIDTH, 2.7), layout="constrained")
    _bars(axes, *_rows(results, "acks"), "")
    axes.set_xlabel("publishes acknowledged per second")
    axes.xaxis.set_major_formatter(_kilo(plt))
    figure.suptitle("Publish with acks: 100 publishes in flight on one connection")
    return figure


def _round_trip(plt: Any, results: dict[str, Any]) -> Any:
    rows = results["rows"]
    figure, axes = plt.subplots(figsize=(WIDTH, 3.6), layout="constrained")
    for row in rows:
        positions, values = percentile_series(results["rtt"][row]["quantiles_us"])
        axes.plot(
            positions,
            values,
            color=COLORS[row],
            linewidth=2,
            linestyle="--" if row.startswith("floor") else "-",
            label=LABELS[row],
        )
    axes.set_yscale("log")
    axes.set_xticks([nines(share) for share in PERCENTILE_TICKS], PERCENTILE_TICKS.values())
    axes.get_xticklabels()[0].set_horizontalalignment("left")
    axes.set_xlim(0, nines(max(PERCENTILE_TICKS)))
    axes.yaxis.set_major_formatter(_thousands(plt))
    axes.yaxis.set_minor_formatter(_thousands(plt, minor=True))
    axes.set_xlabel("share of calls at or under the round trip (every call of every repeat)")
    axes.set_ylabel("round trip (µs, log scale)")
    axes.legend(loc="upper left", frameon=False, ncols=2)
    figure.suptitle("Request/reply round trip on loopback: the whole distribution")
    return figure


def _patterns(plt: Any, results: dict[str, Any]) -> Any:
    costs = results["patterns"]
    figure, axes = plt.subplots(figsize=(WIDTH, 2.3), layout="constrained")
    _bars(
        axes,
        [f"{int(n):,} pattern{'s' if int(n) > 1 else ''}" for n in costs],
        [COLORS["ours-asyncio"]] * len(costs),
        list(costs.values()),
        " µs",
    )
    axes.set_xlabel("time per message received (µs), ours on asyncio")
    figure.suptitle("Pattern fan-out: listeners registered, one of them matching")
    return figure


#: The heap chart's yardstick: what one pointer kept per publish would add up to.
LEAK_YARDSTICK = 8


def _memory(plt: Any, results: dict[str, Any]) -> Any:
    checkpoints = results["memory"]["checkpoints"]
    publishes = [c["publishes"] for c in checkpoints]
    thousands = [n / 1000 for n in publishes]
    mib = 1024 * 1024
    figure, (heap, rss) = plt.subplots(1, 2, figsize=(WIDTH, 3.0), layout="constrained")
    heap.plot(
        [0, thousands[-1]],
        [0, publishes[-1] * LEAK_YARDSTICK / mib],
        color=COLORS["floor-asyncio"],
        linestyle="--",
        label=f"had each publish kept {LEAK_YARDSTICK} bytes",
    )
    for axes, key, title in (
        (heap, "heap_bytes", "Python heap held (tracemalloc)"),
        (rss, "rss_bytes", "the process's resident set (RSS)"),
    ):
        values = [c[key] / mib for c in checkpoints]
        axes.plot(
            thousands,
            values,
            marker="o",
            markersize=4,
            color=COLORS["ours-asyncio"],
            label="measured",
        )
        axes.set_ylim(0, max(*values, *axes.get_ylim()) * 1.15)
        axes.set_xlim(0, thousands[-1] * 1.04)
        axes.set_title(title)
        axes.set_ylabel("MiB")
        axes.set_xlabel("publishes so far (thousands)")
    heap.legend(loc="upper left", frameon=False)
    figure.suptitle("Memory while publishing without keeping the receipts (ours, asyncio)")
    return figure


def _kilo(plt: Any) -> Any:
    """Tick labels in thousands: ``50k``."""
    return plt.FuncFormatter(lambda value, _position: f"{value / 1000:,.0f}k" if value else "0")


def _thousands(plt: Any, *, minor: bool = False) -> Any:
    """Tick labels with thousands separators (on a log axis, only for 2x and 5x minors)."""

    def label(value: float, _position: Any) -> str:
        if minor:
            mantissa = value / 10 ** math.floor(math.log10(value))
            if round(mantissa) not in (2, 5):
                return ""
        return f"{value:,.0f}"

    return plt.FuncFormatter(label)
