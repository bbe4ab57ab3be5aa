"""Round-trip summaries shared by the workers (ours, the floor's, and the official client's,
which runs in a virtualenv of its own: so this module needs the standard library only)."""

from __future__ import annotations

import statistics
from typing import Any


def summarize(latencies: list[float], lost: int = 0) -> dict[str, Any]:
    """A worker's answer for per-call round trips in seconds (in call order): the median and
    p99 in microseconds, the number of calls that got no answer, and every call's round trip
    in microseconds, in call order, from which the harness draws the distribution."""
    if not latencies:
        return {"median_us": float("nan"), "p99_us": float("nan"), "lost": lost}
    ordered = sorted(latencies)
    return {
        "median_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1e6,
        "lost": lost,
        "latencies_us": [round(latency * 1e6, 1) for latency in latencies],
    }
