"""The benchmark harness: our client on trio and on asyncio, the official Python client and the
floor, side by side, interleaved in one run, reported as medians and ratios.

    python -m benchmarks.run [--quick] [--official-python PATH] [--write-docs]
    nox -s bench [-- --quick]

Every row runs in a long-lived process of its own (the official client in its own
virtualenv); the message source (benchmarks/server.py) runs in another, so it has a core of
its own. Each scenario repeats its rows in rotating order; the figures are medians. The
quick mode ends with one line: ``RESULT receive_vs_floor=... receive_vs_official=...
rpc_vs_floor=... patterns_10k_vs_1=...``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
OURS = ("ours-trio", "ours-asyncio")
FLOORS = ("floor-trio", "floor-asyncio")


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


def median(results: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(result[key] for result in results))


def fmt(value: float, unit: str = "") -> str:
    if value != value:  # NaN
        return "-"
    if unit == "us":
        return f"{value:,.0f} µs"
    return f"{value:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and repeats")
    parser.add_argument("--official-python", help="the official client's virtualenv python")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--write-docs", action="store_true", help="write docs/benchmarks-results.inc"
    )
    args = parser.parse_args()
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    sizes = {
        "receive": 20_000 if quick else 100_000,
        "acks": 4_000 if quick else 20_000,
        "rpc": 500 if quick else 5_000,
        "memory": 100_000 if quick else 1_000_000,
    }
    started = time.monotonic()
    info = machine()
    if args.official_python:
        info["official client"] = official_version(args.official_python)
    for key, value in info.items():
        print(f"{key}: {value}")

    workers: dict[str, Worker] = {
        row: Worker(row, [sys.executable, "-m", "benchmarks.workers", row])
        for row in (*OURS, *FLOORS)
    }
    if args.official_python:
        workers["official"] = Worker(
            "official", [args.official_python, str(ROOT / "benchmarks" / "official_worker.py")]
        )
    rows = [*OURS, *(["official"] if "official" in workers else []), *FLOORS]
    tables: list[tuple[str, list[str], list[list[str]]]] = []
    figures: dict[str, float] = {}
    try:
        with source_server() as base:
            # 1 and 6: receive throughput, plain and with permessage-deflate.
            for title, query in (
                ("Receive throughput (msg/s)", f"count={sizes['receive']}"),
                (
                    "Receive throughput, deflate + compress (msg/s)",
                    f"count={sizes['receive']}&compress=1",
                ),
            ):

                def receive(row: str, url: str = f"{base}/apps/blast?{query}") -> dict[str, Any]:
                    return workers[row].run(scenario="receive", url=url, count=sizes["receive"])

                results = interleave(rows, repeats, receive)
                rates = {row: median(results[row], "rate") for row in rows}
                tables.append(
                    (
                        title,
                        ["row", "median", "x floor"],
                        [
                            [
                                row,
                                fmt(rates[row]),
                                f"{rates[row] / max(rates[f] for f in FLOORS):.2f}",
                            ]
                            for row in rows
                        ],
                    )
                )
                if "compress" not in query:
                    figures["receive_ours"] = max(rates[r] for r in OURS)
                    figures["receive_floor"] = max(rates[f] for f in FLOORS)
                    figures["receive_official"] = rates.get("official", float("nan"))
                print(f"{title}: " + ", ".join(f"{r} {fmt(v)}" for r, v in rates.items()))

            # 2: publish with acks, 100 in flight.
            url = f"{base}/apps/ack"
            results = interleave(
                rows,
                repeats,
                lambda row: workers[row].run(
                    scenario="acks", url=url, count=sizes["acks"], inflight=100
                ),
            )
            rates = {row: median(results[row], "rate") for row in rows}
            lost = {row: sum(r.get("lost", 0) for r in results[row]) for row in rows}
            tables.append(
                (
                    "Publish with acks, 100 in flight (acked msg/s)",
                    ["row", "median", "lost acks"],
                    [[row, fmt(rates[row]), str(lost[row])] for row in rows],
                )
            )
            print("acks: " + ", ".join(f"{r} {fmt(v)}" for r, v in rates.items()))

            # 3: request/reply round trip (the floor: a raw echo).
            url = f"{base}/apps/rpc"
            results = interleave(
                rows,
                repeats,
                lambda row: workers[row].run(scenario="rpc", url=url, count=sizes["rpc"]),
            )
            medians = {row: median(results[row], "median_us") for row in rows}
            p99 = {row: median(results[row], "p99_us") for row in rows}
            lost = {row: sum(r.get("lost", 0) for r in results[row]) for row in rows}
            floor_rtt = min(medians[f] for f in FLOORS)
            tables.append(
                ("Request/reply round trip", ["row", "median", "p99", "x floor", "lost replies"], [
                    [row, fmt(medians[row], "us"), fmt(p99[row], "us"),
                     f"{medians[row] / floor_rtt:.2f}", str(lost[row])]
                    for row in rows
                ])
            )  # fmt: skip
            figures["rpc_ours"] = min(medians[r] for r in OURS)
            figures["rpc_floor"] = floor_rtt
            print("rpc: " + ", ".join(f"{r} {fmt(v, 'us')}" for r, v in medians.items()))

            # 4: pattern fan-out.
            url = f"{base}/apps/blast?count={sizes['receive']}"
            pattern_rows = ["1", "100", "10000"]
            results = interleave(
                pattern_rows,
                repeats,
                lambda n: workers["ours-asyncio"].run(
                    scenario="receive", url=url, count=sizes["receive"], patterns=int(n)
                ),
            )
            cost = {n: median(results[n], "per_message_us") for n in pattern_rows}
            tables.append(
                ("Pattern fan-out, ours on asyncio (one matching listener)",
                 ["registered patterns", "per message", "x 1 pattern"], [
                    [n, f"{cost[n]:.1f} µs", f"{cost[n] / cost['1']:.2f}"] for n in pattern_rows
                 ])
            )  # fmt: skip
            figures["patterns_ratio"] = cost["10000"] / cost["1"]
            print("patterns: " + ", ".join(f"{n} {cost[n]:.1f} µs" for n in pattern_rows))

            # 5: memory.
            memory = workers["ours-asyncio"].run(
                scenario="memory", url=f"{base}/apps/blast", count=sizes["memory"]
            )
            tables.append(
                ("Memory, ours on asyncio (RSS)", ["measure", "value"], [
                    ["per 10,000 receipts waiting for acks",
                     f"{memory['per_10k_receipts_bytes'] / 1024:,.0f} KiB"],
                    ["per idle connection",
                     f"{memory['per_idle_connection_bytes'] / 1024:,.1f} KiB"],
                    [f"growth over {memory['unkept_publishes']:,} publishes after the first "
                     "tenth (receipts not kept)",
                     f"{memory['growth_after_first_tenth_bytes'] / 1024:,.0f} KiB"],
                    ["slots left after them", str(memory["in_flight_after"])],
                ])
            )  # fmt: skip
            print(f"memory: {memory}")
    finally:
        for worker in workers.values():
            worker.close()

    elapsed = time.monotonic() - started
    report = render(info, tables, repeats, quick, elapsed)
    print()
    print(report)
    ratios = {
        "receive_vs_floor": figures["receive_ours"] / figures["receive_floor"],
        "receive_vs_official": figures["receive_ours"] / figures["receive_official"],
        "rpc_vs_floor": figures["rpc_ours"] / figures["rpc_floor"],
        "patterns_10k_vs_1": figures["patterns_ratio"],
    }
    if args.write_docs:
        (ROOT / "docs" / "benchmarks-results.inc").write_text(report + "\n")
        substitutions = {
            "receive_vs_floor": "receive_vs_floor",
            "receive_vs_official": "receive_vs_official",
            "rpc_vs_floor": "rpc_vs_floor",
            "patterns": "patterns_10k_vs_1",
        }
        (ROOT / "docs" / "benchmarks-ratios.inc").write_text(
            "".join(
                f".. |{name}| replace:: {ratios[key]:.2f}\n" for name, key in substitutions.items()
            )
        )
    print(f"({elapsed:.0f} s)")
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in ratios.items()))
    return 0


def render(
    info: dict[str, str],
    tables: list[tuple[str, list[str], list[list[str]]]],
    repeats: int,
    quick: bool,
    elapsed: float,
) -> str:
    """The results as reStructuredText (the docs include it as it is)."""
    lines = [
        f"Measured {info['date']} ({'quick' if quick else 'full'} mode, medians of {repeats} "
        f"interleaved runs, {elapsed:.0f} s in all) on {info['cpu']}, {info['system']}, "
        f"Python {info['python']}; realtime-pubsub {info['realtime-pubsub']}, anyio "
        f"{info['anyio']}, websockets {info['websockets']}, trio {info['trio']}, orjson "
        f"{info['orjson']}; official client {info.get('official client', 'not run')}.",
        "",
    ]
    for title, header, rows in tables:
        lines += [f".. list-table:: {title}", "   :header-rows: 1", ""]
        for row in [header, *rows]:
            lines.append(f"   * - {row[0]}")
            lines += [f"     - {cell}" for cell in row[1:]]
        lines.append("")
    return "\n".join(lines).rstrip()


if __name__ == "__main__":
    sys.exit(main())
