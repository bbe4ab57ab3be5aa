"""The benchmark harness: our client on trio and on asyncio, the official Python client and the
floor, side by side, interleaved in one run, reported as medians and ratios.

    python -m benchmarks.run [--quick] [--official-python PATH] [--write-docs]
    python -m benchmarks.run --from-results benchmarks/results.json --write-docs
    nox -s bench [-- --quick] [-- --write-docs]

Every row runs in a long-lived process of its own (the official client in its own
virtualenv); the message source (benchmarks/server.py) runs in another, so it has a core of
its own. Each scenario repeats its rows in rotating order; the figures are medians. Every
run ends with one line: ``RESULT receive_vs_floor=... receive_vs_official=...
rpc_vs_floor=... patterns_10k_vs_1=...``. ``--write-docs`` saves the run as
benchmarks/results.json and writes from it the tables and the charts (matplotlib) that
docs/benchmarks.rst includes; ``--from-results`` redraws them from a saved run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from benchmarks.report import FLOORS, OURS, docs_files, median, quantiles, ratios

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHARTS = DOCS / "images" / "benchmarks"
RESULTS = ROOT / "benchmarks" / "results.json"


class Worker:
    """A long-lived measurement process: JSON commands in, JSON results out."""

    def __init__(self, row: str, command: list[str]) -> None:
        self.row = row
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def run(self, **command: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self.process.stdin
        stdout: IO[str] | None = self.process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.row} worker died (exit {self.process.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextmanager
def source_server() -> Iterator[str]:
    """The message source, on a free port; yields its ``ws://host:port`` base."""
    with subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as process:  # closes the pipe, too
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            yield f"ws://127.0.0.1:{int(line.split()[1])}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("realtime-pubsub", "anyio", "websockets", "trio", "orjson"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "-"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{model}, {os.cpu_count()} cores",
        "system": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        **versions,
    }


def official_version(python: str) -> str:
    script = (
        "import importlib.metadata as m;"
        "print(m.version('realtime-pubsub-client'), 'with websockets', m.version('websockets'))"
    )
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def interleave(
    rows: list[str], repeats: int, measure: Callable[[str], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Run every row ``repeats`` times, rotating the order so that no row always goes first."""
    results: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    for repeat in range(repeats):
        order = rows[repeat % len(rows) :] + rows[: repeat % len(rows)]
        for row in order:
            results[row].append(measure(row))
    return results


def measure(quick: bool, repeats: int, official_python: str | None) -> dict[str, Any]:
    """Run every scenario; the results as benchmarks/report.py describes them."""
    sizes = {
        "receive": 20_000 if quick else 100_000,
        "acks": 4_000 if quick else 20_000,
        "rpc": 500 if quick else 5_000,
        "memory": 100_000 if quick else 1_000_000,
    }
    started = time.monotonic()
    info = machine()
    if official_python:
        info["official client"] = official_version(official_python)
    for key, value in info.items():
        print(f"{key}: {value}")

    workers: dict[str, Worker] = {
        row: Worker(row, [sys.executable, "-m", "benchmarks.workers", row])
        for row in (*OURS, *FLOORS)
    }
    if official_python:
        workers["official"] = Worker(
            "official", [official_python, str(ROOT / "benchmarks" / "official_worker.py")]
        )
    rows = [*OURS, *(["official"] if "official" in workers else []), *FLOORS]
    results: dict[str, Any] = {"info": info, "quick": quick, "repeats": repeats}
    results |= {"sizes": sizes, "rows": rows}

    def rates(runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[float]]:
        return {row: [run["rate"] for run in runs[row]] for row in rows}

    try:
        with source_server() as base:
            # Receive throughput, plain and with permessage-deflate.
            for key, query in (
                ("receive", f"count={sizes['receive']}"),
                ("receive_deflate", f"count={sizes['receive']}&compress=1"),
            ):

                def receive(row: str, url: str = f"{base}/apps/blast?{query}") -> dict[str, Any]:
                    return workers[row].run(scenario="receive", url=url, count=sizes["receive"])

                results[key] = rates(interleave(rows, repeats, receive))
                report(key, results[key])

            # Publish with acks, 100 in flight.
            url = f"{base}/apps/ack"
            runs = interleave(
                rows,
                repeats,
                lambda row: workers[row].run(
                    scenario="acks", url=url, count=sizes["acks"], inflight=100
                ),
            )
            results["acks"] = rates(runs)
            results["acks_lost"] = {row: sum(r.get("lost", 0) for r in runs[row]) for row in rows}
            report("acks", results["acks"])

            # Request/reply round trip (the floor: a raw echo). The distribution is drawn
            # from the calls of every repeat together.
            url = f"{base}/apps/rpc"
            runs = interleave(
                rows,
                repeats,
                lambda row: workers[row].run(scenario="rpc", url=url, count=sizes["rpc"]),
            )
            results["rtt"] = {
                row: {
                    "lost": sum(r.get("lost", 0) for r in runs[row]),
                    "quantiles_us": quantiles(
                        [latency for r in runs[row] for latency in r["latencies_us"]]
                    ),
                }
                for row in rows
            }
            report("rtt median (µs)", {row: [r["median_us"] for r in runs[row]] for row in rows})

            # Pattern fan-out.
            url = f"{base}/apps/blast?count={sizes['receive']}"
            runs = interleave(
                ["1", "100", "10000"],
                repeats,
                lambda n: workers["ours-asyncio"].run(
                    scenario="receive", url=url, count=sizes["receive"], patterns=int(n)
                ),
            )
            results["patterns"] = {
                n: [r["per_message_us"] for r in result] for n, result in runs.items()
            }
            report("patterns (µs per message)", results["patterns"])

            # Memory.
            results["memory"] = workers["ours-asyncio"].run(
                scenario="memory", url=f"{base}/apps/blast", count=sizes["memory"]
            )
            print(f"memory: {results['memory']}")
    finally:
        for worker in workers.values():
            worker.close()
    results["elapsed"] = time.monotonic() - started
    return results


def report(title: str, runs: dict[str, list[float]]) -> None:
    print(f"{title}: " + ", ".join(f"{row} {median(values):,.1f}" for row, values in runs.items()))


def write_docs(results: dict[str, Any]) -> None:
    """Save the results and write the files docs/benchmarks.rst includes and shows."""
    from benchmarks.charts import write_charts

    # One line a key: a new run changes a dozen lines, not the thousands of its quantiles.
    lines = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in results.items()]
    RESULTS.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    for name, text in docs_files(results).items():
        (DOCS / name).write_text(text)
    for path in write_charts(results, CHARTS):
        print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and repeats")
    parser.add_argument("--official-python", help="the official client's virtualenv python")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="write the docs' tables and charts and benchmarks/results.json (needs matplotlib)",
    )
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="JSON",
        help="measure nothing: report a saved run (e.g. benchmarks/results.json)",
    )
    args = parser.parse_args()
    if args.from_results:
        results = json.loads(args.from_results.read_text())
    else:
        repeats = args.repeats or (3 if args.quick else 7)
        results = measure(args.quick, repeats, args.official_python)
    print()
    for name, text in docs_files(results).items():
        if name != "benchmarks-figures.inc":  # the substitutions say it all again
            print(text)
    if args.write_docs:
        write_docs(results)
    print(f"({results['elapsed']:.0f} s)")
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in ratios(results).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
