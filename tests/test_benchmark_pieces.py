"""The benchmark pieces still work (tiny counts, no timing asserted: speed is measured by
``nox -s bench``, never in the test suite). The charts need matplotlib, which only the bench
session installs: here, only what they are drawn from."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.charts import nines, percentile_series
from benchmarks.report import FLOORS, OURS, docs_files, percentile, quantiles, ratios
from benchmarks.run import source_server

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def source() -> Iterator[str]:
    with source_server() as base:
        yield base


@pytest.mark.parametrize("row", ["ours-trio", "ours-asyncio", "floor-trio", "floor-asyncio"])
def test_workers_measure_every_scenario(source: str, row: str) -> None:
    commands = [
        {"scenario": "receive", "url": f"{source}/apps/blast?count=300", "count": 300},
        {"scenario": "receive", "url": f"{source}/apps/blast?count=300&compress=1", "count": 300},
        {"scenario": "acks", "url": f"{source}/apps/ack", "count": 200, "inflight": 20},
        {"scenario": "rpc", "url": f"{source}/apps/rpc", "count": 20},
    ]
    if row.startswith("ours"):
        commands.append(
            {"scenario": "receive", "url": f"{source}/apps/blast?count=300", "count": 300,
             "patterns": 50}
        )  # fmt: skip
        commands.append({"scenario": "memory", "url": f"{source}/apps/blast", "count": 2000})
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.workers", row],
        input="".join(json.dumps(c) + "\n" for c in commands),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    results = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(results) == len(commands)
    assert all(r.get("rate", 1) > 0 for r in results)
    assert len(results[3]["latencies_us"]) == 20
    assert results[3]["lost"] == 0
    if row.startswith("ours"):
        memory = results[-1]
        assert memory["in_flight_after"] == 0
        assert [c["publishes"] for c in memory["checkpoints"]] == list(range(200, 2001, 200))
        assert memory["per_10k_receipts_heap_bytes"] > 0


def test_the_harness_imports_without_matplotlib() -> None:
    script = "import sys, benchmarks.run, benchmarks.charts; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_quantiles_run_from_the_fastest_call_to_the_slowest() -> None:
    calls = [float(n) for n in range(1, 2001)][::-1]
    q = quantiles(calls)
    assert len(q) == 1001
    assert (q[0], q[-1]) == (1.0, 2000.0)
    assert q == sorted(q)
    assert percentile(q, 0.5) == 1001.0
    assert percentile(q, 0.99) == 1980.0


def test_the_round_trip_chart_spaces_the_nines_evenly_and_stops_at_p999() -> None:
    assert [round(nines(share), 9) for share in (0.0, 0.9, 0.99, 0.999)] == [0, 1, 2, 3]
    positions, values = percentile_series(quantiles([float(n) for n in range(100_000)]))
    assert len(positions) == len(values) == 1000  # up to the 99.9th of 1,000 steps
    assert positions == sorted(positions)
    assert round(positions[-1], 9) == 3


def results_of_a_run(heap_after: int) -> dict[str, Any]:
    """A run's results as benchmarks/run.py builds them, with made-up figures."""
    rows = [*OURS, "official", *FLOORS]
    speed = {"ours-trio": 65.0, "ours-asyncio": 60.0, "official": 20.0}
    runs = {row: [speed.get(row, 100.0) * 1000 + i for i in range(3)] for row in rows}
    checkpoints = [
        {"publishes": n * 1000, "heap_bytes": 300_000, "rss_bytes": 40 << 20} for n in range(1, 11)
    ]
    checkpoints[-1]["heap_bytes"] = heap_after
    return {
        "info": {
            "date": "2026-11-28 08:00 UTC", "cpu": "a CPU, 2 cores", "system": "Linux",
            "python": "3.11.7", "realtime-pubsub": "0.1.0", "anyio": "4", "websockets": "15",
            "trio": "0.30", "orjson": "3", "official client": "1.0.0",
        },
        "quick": True, "repeats": 3, "elapsed": 60.0, "rows": rows,
        "sizes": {"receive": 100, "acks": 100, "rpc": 100, "memory": 10_000},
        "receive": runs, "receive_deflate": runs, "acks": runs,
        "acks_lost": dict.fromkeys(rows, 0),
        "rtt": {
            row: {"lost": 0, "quantiles_us": quantiles([1e7 / speed.get(row, 100.0) + i
                                                        for i in range(100)])}
            for row in rows
        },
        "patterns": {"1": [10.0, 11.0], "100": [10.0, 10.5], "10000": [12.0, 12.5]},
        "memory": {
            "per_10k_receipts_heap_bytes": 4_000_000, "per_idle_connection_heap_bytes": 300_000,
            "unkept_publishes": 10_000, "checkpoints": checkpoints, "in_flight_after": 0,
        },
    }  # fmt: skip


def test_the_report_reads_the_ratios_and_the_targets_from_the_results() -> None:
    results = results_of_a_run(heap_after=300_100)
    measured = ratios(results)
    assert round(measured["receive_vs_floor"], 2) == 0.65
    assert round(measured["receive_vs_official"], 2) == 3.25
    assert round(measured["rpc_vs_floor"], 2) == round(100 / 65, 2)
    assert round(measured["patterns_10k_vs_1"], 2) == round(12.25 / 10.5, 2)
    files = docs_files(results)
    targets = files["benchmarks-targets.inc"]
    # All but receive vs the floor (0.65 x) and the round trip (1.54 x).
    assert targets.count("     - yes") == 3
    assert "     - no" in targets
    assert "|receive_ours| replace:: 65,000" in files["benchmarks-figures.inc"]
    assert "quick mode" in files["benchmarks-run.inc"]


def test_a_heap_that_grows_a_byte_a_publish_fails_the_memory_target() -> None:
    targets = docs_files(results_of_a_run(heap_after=300_000 + 9_000))["benchmarks-targets.inc"]
    assert targets.rstrip().endswith("- no")
