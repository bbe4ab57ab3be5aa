"""Measurements in a process of their own: our client on trio or asyncio, or the floor
(websockets' sans-IO protocol over anyio doing only what is unavoidable: read, decode frames,
parse JSON).

    python -m benchmarks.workers ROW      (then JSON commands on stdin; see main())
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import resource
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import orjson
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

import realtime_pubsub
from benchmarks.latency import summarize

SUBSCRIBE = orjson.dumps({"type": "subscribe", "data": {"topic": "bench"}})


def rss_bytes() -> int:
    """The process's resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize()


# --------------------------------------------------------------------------- the floor


class Raw:
    """The floor: a sans-IO client protocol over an anyio stream, nothing else."""

    def __init__(self, protocol: ClientProtocol, stream: anyio.abc.SocketStream) -> None:
        self.protocol = protocol
        self.stream = stream
        self.early = 0  # data frames that came with the handshake response

    @classmethod
    async def open(cls, url: str, *, compression: bool) -> Raw:
        uri = parse_uri(url)
        protocol = ClientProtocol(
            uri,
            extensions=[ClientPerMessageDeflateFactory()] if compression else None,
            max_size=None,
        )
        protocol.debug = False
        stream = await anyio.connect_tcp(uri.host, uri.port)
        protocol.send_request(protocol.connect())
        await stream.send(b"".join(protocol.data_to_send()))
        raw = cls(protocol, stream)
        response = False
        while not response:
            protocol.receive_data(await stream.receive(65536))
            for event in protocol.events_received():
                if isinstance(event, Response):
                    response = True
                elif isinstance(event, Frame):
                    raw.early += 1
        return raw

    async def send(self, data: bytes) -> None:
        self.protocol.send_text(data)
        await self.stream.send(b"".join(self.protocol.data_to_send()))

    async def messages(self) -> list[Any]:
        """Read once; the JSON of every data frame received. Reads are 8 KiB, like our
        client's: measured here, smaller reads beat 64 KiB ones for the floor as well."""
        self.protocol.receive_data(await self.stream.receive(8192))
        return [
            orjson.loads(event.data)
            for event in self.protocol.events_received()
            if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY)
        ]


async def floor_receive(url: str, count: int, compression: bool) -> dict[str, Any]:
    raw = await Raw.open(url, compression=compression)
    got = raw.early - 1  # the welcome
    await raw.send(SUBSCRIBE)
    started = time.perf_counter()
    while got < count:
        got += len(await raw.messages())
    elapsed = time.perf_counter() - started
    return {"rate": count / elapsed, "seconds": elapsed}


async def floor_acks(url: str, count: int, inflight: int) -> dict[str, Any]:
    """One task keeps ``inflight`` publishes outstanding: it writes as many as the window
    allows in one write, then reads the acks that have come. The same frames on the wire
    as a client's publishes with acks, and nothing else (no per-message write, no task per
    publisher, no receipts)."""
    raw = await Raw.open(url, compression=False)
    if not raw.early:
        await raw.messages()  # the welcome
    sent = acked = 0
    started = time.perf_counter()
    while acked < count:
        batch = min(inflight - (sent - acked), count - sent)
        for i in range(sent, sent + batch):
            raw.protocol.send_text(
                orjson.dumps(
                    {"type": "publish", "data": {"topic": "b", "payload": i, "id": f"m{i}"}}
                )
            )
        sent += batch
        if batch:
            await raw.stream.send(b"".join(raw.protocol.data_to_send()))
        acked += len(await raw.messages())
    elapsed = time.perf_counter() - started
    return {"rate": count / elapsed, "seconds": elapsed}


async def floor_echo(url: str, count: int) -> dict[str, Any]:
    raw = await Raw.open(url, compression=False)
    if not raw.early:
        await raw.messages()  # the welcome
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        await raw.send(orjson.dumps({"type": "message", "data": {"payload": i, "id": f"q{i}"}}))
        while not await raw.messages():
            pass
        latencies.append(time.perf_counter() - started)
    return summarize(latencies)


# --------------------------------------------------------------------------- our client


async def ours_receive(url: str, count: int, patterns: int) -> dict[str, Any]:
    async with (
        realtime_pubsub.connect(url) as client,
        contextlib.AsyncExitStack() as listeners,
    ):
        for i in range(patterns - 1):
            await listeners.enter_async_context(client.listen(f"other{i}.*"))
        async with client.listen("bench.*", max_buffer=count) as messages:
            await client.subscribe("bench")
            started = time.perf_counter()
            got = 0
            async for _ in messages:
                got += 1
                if got == count:
                    break
            elapsed = time.perf_counter() - started
            assert messages.dropped == 0
    return {"rate": count / elapsed, "seconds": elapsed, "per_message_us": elapsed / count * 1e6}


async def ours_acks(url: str, count: int, inflight: int) -> dict[str, Any]:
    async with realtime_pubsub.connect(url) as client:

        async def worker(n: int) -> None:
            for i in range(n):
                receipt = await client.publish("b", i)
                await receipt.wait_for_ack(timeout=10)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(inflight):
                tg.start_soon(worker, count // inflight)
        elapsed = time.perf_counter() - started
    return {"rate": count / elapsed, "seconds": elapsed}


async def ours_rpc(url: str, count: int) -> dict[str, Any]:
    async with realtime_pubsub.connect(url) as client:
        latencies = []
        for i in range(count):
            started = time.perf_counter()
            receipt = await client.send(i, message_type="q")
            await receipt.wait_for_reply(timeout=5)
            latencies.append(time.perf_counter() - started)
    return summarize(latencies)


def heap_bytes() -> int:
    """The Python heap allocated since tracemalloc started and still alive."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def ours_memory(url: str, count: int) -> dict[str, Any]:
    """What receipts and connections cost, and what ``count`` publishes whose receipts
    nobody keeps leave behind, at ten checkpoints. Measured as the Python heap that
    tracemalloc sees (every block allocated since tracing started and still alive: exact,
    where the RSS moves by whole pages and shrinks when the allocator hands some back), and
    for the checkpoints also as the RSS."""
    idle = url.replace("/apps/blast", "/apps/idle")
    tracemalloc.start()
    try:
        async with realtime_pubsub.connect(idle) as client:
            for _ in range(2000):  # warm up allocators and caches
                await client.publish("b", 1)
            before = heap_bytes()
            kept = [await client.publish("b", i) for i in range(10_000)]
            per_10k_receipts = heap_bytes() - before
            assert client.in_flight >= 10_000
            del kept

            checkpoints = []
            step = max(1, count // 10)
            for i in range(count):
                await client.publish("b", i)
                if (i + 1) % step == 0:
                    checkpoints.append(
                        {"publishes": i + 1, "heap_bytes": heap_bytes(), "rss_bytes": rss_bytes()}
                    )
            in_flight_after = client.in_flight

        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(realtime_pubsub.connect(idle))
            before = heap_bytes()
            for _ in range(100):
                await stack.enter_async_context(realtime_pubsub.connect(idle))
            per_connection = (heap_bytes() - before) / 100
    finally:
        tracemalloc.stop()
    return {
        "per_10k_receipts_heap_bytes": per_10k_receipts,
        "per_idle_connection_heap_bytes": per_connection,
        "unkept_publishes": count,
        "checkpoints": checkpoints,
        "in_flight_after": in_flight_after,
    }


Scenario = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("receive", "ours"): lambda c: ours_receive(c["url"], c["count"], c.get("patterns", 1)),
    ("receive", "floor"): lambda c: floor_receive(c["url"], c["count"], "compress=1" in c["url"]),
    ("acks", "ours"): lambda c: ours_acks(c["url"], c["count"], c["inflight"]),
    ("acks", "floor"): lambda c: floor_acks(c["url"], c["count"], c["inflight"]),
    ("rpc", "ours"): lambda c: ours_rpc(c["url"], c["count"]),
    ("rpc", "floor"): lambda c: floor_echo(
        c["url"].replace("/apps/rpc", "/apps/echo"), c["count"]
    ),
    ("memory", "ours"): lambda c: ours_memory(c["url"], c["count"]),
}


def main() -> None:
    """Serve measurements: one JSON command a line on stdin (``scenario``, ``url``,
    ``count``...), one JSON result a line on stdout, each run on a fresh event loop. A
    long-lived worker per row lets the harness interleave rows without paying for a new
    interpreter each time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", help="ours-trio, ours-asyncio, floor-trio or floor-asyncio")
    args = parser.parse_args()
    kind, _, backend = args.row.partition("-")
    for line in sys.stdin:
        command = orjson.loads(line)
        scenario = SCENARIOS[command["scenario"], kind]
        result = anyio.run(scenario, command, backend=backend)
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
