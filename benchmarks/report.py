"""From one run's results to what the docs show: the ``RESULT`` ratios, the reStructuredText
tables and figures that docs/benchmarks.rst includes, and the series the charts draw. Pure
functions of the results dict that benchmarks/run.py builds (and saves as
benchmarks/results.json), so that the docs can be redrawn without measuring again.

The results dict: ``info`` (the machine and versions), ``quick``, ``repeats``, ``elapsed``,
``sizes`` (messages per scenario), ``rows``; per row, one value per repeat for ``receive``,
``receive_deflate`` and ``acks`` (msg/s); ``acks_lost`` and, under ``rtt``, each row's
``lost`` replies and ``quantiles_us`` (QUANTILES + 1 evenly spaced quantiles of the per-call
round trips of all its repeats); ``patterns`` (per-message cost in µs per repeat, by the
number of registered patterns); ``memory`` (the memory worker's answer).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

OURS = ("ours-trio", "ours-asyncio")
FLOORS = ("floor-trio", "floor-asyncio")
#: How each row is called on the page and in the charts.
LABELS = {
    "ours-trio": "ours, trio",
    "ours-asyncio": "ours, asyncio",
    "official": "official client",
    "floor-trio": "floor, trio",
    "floor-asyncio": "floor, asyncio",
}
NAN = float("nan")
#: The round trips are kept as this many evenly spaced quantiles (plus the minimum).
QUANTILES = 1000


def quantiles(values: Sequence[float], count: int = QUANTILES) -> list[float]:
    """``count + 1`` evenly spaced quantiles of ``values``, from the minimum to the maximum
    (the nearest rank, no interpolation: each one is a value that was measured)."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[round(i * last / count)] for i in range(count + 1)]


def percentile(quantiles_us: Sequence[float], share: float) -> float:
    """The value below which ``share`` (0 to 1) of the calls fall, read from quantiles."""
    return quantiles_us[round(share * (len(quantiles_us) - 1))]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """The four figures of the ``RESULT`` line: our best receive rate against the best floor
    and against the official client, our best round-trip median against the floor's, and
    the per-message cost with 10,000 patterns against one."""
    receive = {row: median(rates) for row, rates in results["receive"].items()}
    rtt = {row: percentile(r["quantiles_us"], 0.5) for row, r in results["rtt"].items()}
    patterns = {n: median(costs) for n, costs in results["patterns"].items()}
    return {
        "receive_vs_floor": max(receive[r] for r in OURS) / max(receive[f] for f in FLOORS),
        "receive_vs_official": max(receive[r] for r in OURS) / receive.get("official", NAN),
        "rpc_vs_floor": min(rtt[r] for r in OURS) / min(rtt[f] for f in FLOORS),
        "patterns_10k_vs_1": patterns["10000"] / patterns["1"],
    }


def fmt(value: float, unit: str = "") -> str:
    """A figure for a table: thousands separated, ``-`` for one not measured."""
    if value != value:  # NaN
        return "-"
    if unit == "us":
        return f"{value:,.0f} µs"
    return f"{value:,.0f}"


def about(value: float, step: float) -> str:
    """A figure for prose, rounded to ``step``: ``about(69_724, 1000)`` is ``70,000``."""
    return f"{round(value / step) * step:,.0f}"


def list_table(header: list[str], rows: list[list[str]], widths: str = "auto") -> str:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(lines) + "\n"


def run_line(results: dict[str, Any]) -> str:
    """Where and how the figures were measured: the caption of the results."""
    info = results["info"]
    mode = "quick" if results["quick"] else "full"
    return (
        f"Measured {info['date']} in one run ({mode} mode: each figure is the median of "
        f"{results['repeats']} interleaved repeats; {results['elapsed']:.0f} s in all) on "
        f"{info['cpu']} (a shared virtual machine), {info['system']}, Python "
        f"{info['python']}; realtime-pubsub {info['realtime-pubsub']}, anyio {info['anyio']}, "
        f"websockets {info['websockets']}, trio {info['trio']}, orjson {info['orjson']}; "
        f"official client {info.get('official client', 'not run')}.\n"
    )


def receive_table(results: dict[str, Any]) -> str:
    rows = results["rows"]
    columns = []
    for key in ("receive", "receive_deflate"):
        rates = {row: median(results[key][row]) for row in rows}
        floor = max(rates[f] for f in FLOORS)
        columns.append({row: (fmt(rates[row]), f"{rates[row] / floor:.2f}") for row in rows})
    plain, deflate = columns
    return list_table(
        ["client", "plain (msg/s)", "x floor", "deflate + compress (msg/s)", "x floor"],
        [[LABELS[row], *plain[row], *deflate[row]] for row in rows],
    )


def acks_table(results: dict[str, Any]) -> str:
    rows = results["rows"]
    rates = {row: median(results["acks"][row]) for row in rows}
    floor = max(rates[f] for f in FLOORS)
    return list_table(
        ["client", "acked (msg/s)", "x floor", "lost acks"],
        [
            [LABELS[row], fmt(rates[row]), f"{rates[row] / floor:.2f}", str(lost)]
            for row, lost in results["acks_lost"].items()
        ],
    )


def rtt_table(results: dict[str, Any]) -> str:
    rows = results["rows"]
    rtt = results["rtt"]
    floor = min(percentile(rtt[f]["quantiles_us"], 0.5) for f in FLOORS)
    table = []
    for row in rows:
        q = rtt[row]["quantiles_us"]
        table.append(
            [LABELS[row]]
            + [fmt(percentile(q, share), "us") for share in (0.5, 0.9, 0.99)]
            + [f"{percentile(q, 0.5) / floor:.2f}", str(rtt[row]["lost"])]
        )
    return list_table(["client", "median", "p90", "p99", "x floor", "lost replies"], table)


def patterns_table(results: dict[str, Any]) -> str:
    cost = {n: median(costs) for n, costs in results["patterns"].items()}
    return list_table(
        ["registered patterns", "per message", "x 1 pattern"],
        [[f"{int(n):,}", f"{cost[n]:.1f} µs", f"{cost[n] / cost['1']:.2f}"] for n in cost],
    )


def memory_table(results: dict[str, Any]) -> str:
    memory = results["memory"]
    first, last = memory["checkpoints"][0], memory["checkpoints"][-1]
    receipts = memory["per_10k_receipts_heap_bytes"]
    kib = 1024
    mib = 1024 * 1024
    return list_table(
        ["measure", "value"],
        [
            [
                "10,000 receipts waiting for acks",
                f"{receipts / kib:,.0f} KiB, {receipts / 10_000:,.0f} bytes each",
            ],
            [
                "one more idle connection",
                f"{memory['per_idle_connection_heap_bytes'] / kib:,.1f} KiB",
            ],
            [
                f"held after {first['publishes']:,} and after {last['publishes']:,} "
                "publishes whose receipts nobody keeps",
                f"{first['heap_bytes'] / kib:,.1f} KiB, then {last['heap_bytes'] / kib:,.1f} KiB",
            ],
            [
                "the process's RSS at the same two points",
                f"{first['rss_bytes'] / mib:,.1f} MiB, then {last['rss_bytes'] / mib:,.1f} MiB",
            ],
            ["receipt slots still held after them", str(memory["in_flight_after"])],
        ],
        widths="3 2",
    )


#: The goals the client was built to, each with how it reads the results.
TARGETS = (
    ("receive throughput at least 0.7 x the floor's", "receive_vs_floor", ">=", 0.7),
    ("receive throughput at least 3 x the official client's", "receive_vs_official", ">=", 3),
    ("round-trip median at most 1.5 x the raw echo floor's", "rpc_vs_floor", "<=", 1.5),
    ("10,000 patterns cost at most 1.5 x one pattern", "patterns_10k_vs_1", "<=", 1.5),
)


def targets_table(results: dict[str, Any]) -> str:
    """Each target, what this run measured, and whether it was met."""
    measured = ratios(results)
    rows = []
    for target, key, relation, limit in TARGETS:
        value = measured[key]
        met = value >= limit if relation == ">=" else value <= limit
        rows.append([target, f"{value:.2f} x", "yes" if met else "no"])
    memory = results["memory"]
    first, last = memory["checkpoints"][0], memory["checkpoints"][-1]
    # A leak of even one byte a publish would add up to more than this between the first
    # and the last checkpoint.
    flat = last["heap_bytes"] - first["heap_bytes"] < last["publishes"] - first["publishes"]
    rows.append(
        [
            "receipts that nobody keeps leave nothing behind",
            f"{first['heap_bytes'] / 1024:,.0f} KiB held, then {last['heap_bytes'] / 1024:,.0f} "
            f"KiB; {memory['in_flight_after']} slots left",
            "yes" if flat and memory["in_flight_after"] == 0 else "no",
        ]
    )
    return list_table(["target", "measured in this run", "met?"], rows, widths="5 4 1")


def figures(results: dict[str, Any]) -> str:
    """Substitutions for the figures the page's prose quotes, so that it stays true when the
    benchmarks are run again."""
    receive = {row: median(rates) for row, rates in results["receive"].items()}
    deflate = {row: median(rates) for row, rates in results["receive_deflate"].items()}
    acks = {row: median(rates) for row, rates in results["acks"].items()}
    rtt = {row: r["quantiles_us"] for row, r in results["rtt"].items()}
    ours_rtt = min(OURS, key=lambda row: percentile(rtt[row], 0.5))
    memory = results["memory"]
    best = max(receive[r] for r in OURS)
    values = {
        **{name: f"{value:.2f}" for name, value in ratios(results).items()},
        "receive_ours": about(best, 1000),
        "receive_ours_deflate": about(max(deflate[r] for r in OURS), 1000),
        "receive_official": about(receive.get("official", NAN), 1000),
        "per_message_ours": f"{1e6 / best:.0f} µs",
        "acks_ours": about(max(acks[r] for r in OURS), 1000),
        "rtt_ours": f"{percentile(rtt[ours_rtt], 0.5):.0f} µs",
        "rtt_ours_p99": f"{percentile(rtt[ours_rtt], 0.99):,.0f} µs",
        "rtt_floor": f"{min(percentile(rtt[f], 0.5) for f in FLOORS):.0f} µs",
        "rtt_official": (
            fmt(percentile(rtt["official"], 0.5), "us") if "official" in rtt else "-"
        ),
        "receipt_bytes": f"{memory['per_10k_receipts_heap_bytes'] / 10_000:,.0f} bytes",
        "receipts_100k": f"{memory['per_10k_receipts_heap_bytes'] * 10 / 2**20:,.0f} MiB",
        "connection_kib": f"{memory['per_idle_connection_heap_bytes'] / 1024:,.0f} KiB",
        "unkept": f"{memory['unkept_publishes']:,}",
    }
    return "".join(f".. |{name}| replace:: {value}\n" for name, value in values.items())


def docs_files(results: dict[str, Any]) -> dict[str, str]:
    """The generated files docs/benchmarks.rst includes, by name."""
    return {
        "benchmarks-run.inc": run_line(results),
        "benchmarks-figures.inc": figures(results),
        "benchmarks-targets.inc": targets_table(results),
        "benchmarks-receive.inc": receive_table(results),
        "benchmarks-acks.inc": acks_table(results),
        "benchmarks-rtt.inc": rtt_table(results),
        "benchmarks-patterns.inc": patterns_table(results),
        "benchmarks-memory.inc": memory_table(results),
    }
