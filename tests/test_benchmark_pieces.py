"""The benchmark pieces still work (tiny counts, no timing asserted: speed is measured by
``nox -s bench``, never in the test suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    if row.startswith("ours"):
        assert results[-1]["in_flight_after"] == 0
