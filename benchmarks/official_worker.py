"""One measurement with the official Python client (realtime-pubsub-client 1.0.0), run by the
interpreter of its own virtualenv (it needs websockets 13, and only the standard library
besides, and benchmarks/latency.py through the PYTHONPATH the harness sets): the same
scenarios as benchmarks/workers.py, on asyncio.

    PYTHONPATH=. python benchmarks/official_worker.py      (then JSON commands on stdin)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from realtime_pubsub_client.client import RealtimeClient

from benchmarks.latency import summarize

WAIT = 1.0  # seconds before an ack or a reply is counted as lost


def client_for(url: str) -> RealtimeClient:
    logger = logging.getLogger("official")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return RealtimeClient({"websocket_options": {"url_provider": url}, "logger": logger})


async def receive(url: str, count: int) -> dict[str, Any]:
    client = client_for(url)
    got = 0
    done = asyncio.Event()

    def on_tick(message: Any, reply: Any) -> None:
        nonlocal got
        got += 1
        if got == count:
            done.set()

    client.on("bench.*", on_tick)
    await client.connect()
    await client.subscribe_remote_topic("bench")
    started = time.perf_counter()
    await done.wait()
    elapsed = time.perf_counter() - started
    await client.disconnect()
    return {"rate": count / elapsed, "seconds": elapsed}


async def acks(url: str, count: int, inflight: int) -> dict[str, Any]:
    client = client_for(url)
    await client.connect()
    lost = 0

    async def worker(n: int) -> None:
        nonlocal lost
        for i in range(n):
            waiter = await client.publish("b", i)
            try:
                await waiter.wait_for_ack(WAIT)
            except TimeoutError:
                lost += 1  # the ack came before the waiter was registered

    started = time.perf_counter()
    await asyncio.gather(*(worker(count // inflight) for _ in range(inflight)))
    elapsed = time.perf_counter() - started
    await client.disconnect()
    return {"rate": (count - lost) / elapsed, "seconds": elapsed, "lost": lost}


async def rpc(url: str, count: int) -> dict[str, Any]:
    client = client_for(url)
    await client.connect()
    latencies = []
    lost = 0
    for i in range(count):
        started = time.perf_counter()
        waiter = await client.send(i, message_type="q")
        try:
            await waiter.wait_for_reply(WAIT)
        except TimeoutError:
            lost += 1
            continue
        latencies.append(time.perf_counter() - started)
    await client.disconnect()
    return summarize(latencies, lost)


def main() -> None:
    """One JSON command a line on stdin, one JSON result a line on stdout (as
    benchmarks/workers.py), each on a fresh event loop."""
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    for line in sys.stdin:
        command = json.loads(line)
        scenario, url, count = command["scenario"], command["url"], command["count"]
        if scenario == "receive":
            result = asyncio.run(receive(url, count))
        elif scenario == "acks":
            result = asyncio.run(acks(url, count, command["inflight"]))
        else:
            result = asyncio.run(rpc(url, count))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
