"""How long the local gateway takes to fan one message out to N concurrent connections.

    python -m benchmarks.gateway_fanout [--connections 1000] [--messages 5] [--backend trio]

Subscribers are raw sans-IO WebSocket connections (websockets' ClientProtocol over anyio),
so the figure is the gateway's, not a client library's.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import anyio
import anyio.abc
import attrs
import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

import realtime_pubsub
from realtime_pubsub.gateway import serve


@attrs.define
class FanOutResult:
    connections: int
    received: int
    connect_seconds: float
    fan_out_seconds: list[float]


async def _open(url: str) -> tuple[ClientProtocol, anyio.abc.SocketStream]:
    uri = parse_uri(url)
    protocol = ClientProtocol(uri)
    stream = await anyio.connect_tcp(uri.host, uri.port)
    protocol.send_request(protocol.connect())
    await stream.send(b"".join(protocol.data_to_send()))
    frames = 0
    while frames == 0:  # the 101 response, then the welcome
        protocol.receive_data(await stream.receive())
        frames = sum(isinstance(e, Frame) for e in protocol.events_received())
    return protocol, stream


async def _subscribe(protocol: ClientProtocol, stream: anyio.abc.SocketStream) -> None:
    protocol.send_text(orjson.dumps({"type": "subscribe", "data": {"topic": "all"}}))
    await stream.send(b"".join(protocol.data_to_send()))


async def _receive(
    protocol: ClientProtocol, stream: anyio.abc.SocketStream, count: int, done: list[float]
) -> None:
    got = 0
    while got < count:
        protocol.receive_data(await stream.receive())
        for event in protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                got += 1
                done.append(time.perf_counter())


async def fan_out(*, connections: int, messages: int = 1) -> FanOutResult:
    """Connect ``connections`` subscribers, publish ``messages`` one at a time, and time how
    long each takes to reach every subscriber."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * connections + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * connections + 1000), hard))
    async with serve() as gateway:
        url = gateway.url(gateway.mint_token())
        started = time.perf_counter()
        peers: list[tuple[ClientProtocol, anyio.abc.SocketStream]] = []
        limiter = anyio.CapacityLimiter(50)

        async def open_one() -> None:
            async with limiter:
                peer = await _open(url)
                await _subscribe(*peer)
                peers.append(peer)

        async with anyio.create_task_group() as tg:
            for _ in range(connections):
                tg.start_soon(open_one)
        connect_seconds = time.perf_counter() - started
        await gateway.wait_for_subscribers("all", connections)

        publisher = await _open(url)
        times: list[float] = []
        received = 0
        for index in range(messages):
            arrivals: list[float] = []
            async with anyio.create_task_group() as tg:
                for peer in peers:
                    tg.start_soon(_receive, *peer, 1, arrivals)
                await anyio.sleep(0.05)  # every receiver is waiting
                sent = time.perf_counter()
                publisher[0].send_text(
                    orjson.dumps(
                        {"type": "publish", "data": {"topic": "all", "payload": {"n": index}}}
                    )
                )
                await publisher[1].send(b"".join(publisher[0].data_to_send()))
            times.append(max(arrivals) - sent)
            received = len(arrivals)
        for _, stream in [*peers, publisher]:
            await stream.aclose()
    return FanOutResult(connections, received, connect_seconds, times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    result = anyio.run(
        lambda: fan_out(connections=args.connections, messages=args.messages),
        backend=args.backend,
    )
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} Python "
        f"{platform.python_version()} realtime_pubsub {realtime_pubsub.__version__} "
        f"backend {args.backend}"
    )
    print(
        f"{result.connections} connections opened and subscribed in {result.connect_seconds:.2f} s"
    )
    times = [t * 1000 for t in result.fan_out_seconds]
    print(
        f"one message to all {result.received}: median {statistics.median(times):.1f} ms "
        f"over {args.messages} messages (min {min(times):.1f}, max {max(times):.1f})"
    )


if __name__ == "__main__":
    main()
