"""What a misbehaving client may cost the gateway: a bounded outgoing buffer, writes with a
deadline, faults and shutdown that finish whatever the peers do, and state that goes with
the connections that made it.

A *stuck* subscriber is a plain socket with a small receive buffer that stops reading
(tests/raw.py); a *paused* one is held half-open by the gateway. Time bounds here are
correctness checks with generous margins (the old gateway took forever), not speed
measurements.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import anyio
import pytest

from realtime_pubsub import tokens
from realtime_pubsub.gateway import Gateway, serve

from .raw import (
    SocketClient,
    connect,
    gateway_command,
    open_stuck_subscriber,
    settle,
    stuck_subscriber,
    subscribed,
    url_for,
)

pytestmark = pytest.mark.anyio

#: A publish payload: big messages fill buffers quickly.
PAYLOAD = "x" * 32_000
#: Enough to fill the kernel's buffers on both ends of a loopback connection many times.
BIG = 1 << 30
#: "Within one second", with room for a loaded machine.
PROMPTLY = 3.0


def buffered(gateway: Gateway, connection_id: str) -> int | None:
    """Bytes the gateway holds for the connection, or None once it is not listed."""
    for connection in gateway.connections():
        if connection.id == connection_id:
            return connection.buffered
    return None


async def publish_until(gateway: Gateway, topic: str, done: Callable[[], bool]) -> None:
    """Publish big messages to ``topic`` until ``done()`` (at most 64 MB), each once the
    gateway has acknowledged the one before (so ``done()`` sees what it did with it)."""
    async with connect(url_for(gateway)) as publisher:
        with anyio.fail_after(60):
            for index in range(2000):
                if done():
                    return
                await publisher.publish(topic, PAYLOAD, id=str(index))
                assert (await publisher.recv_json())["data"]["data"] == str(index)
    raise AssertionError("published 64 MB and the condition never held")


async def stuck_writing(gateway: Gateway, client: SocketClient) -> None:
    """Publish until the gateway's write to ``client`` is stuck with over 1 MiB behind it."""
    await publish_until(gateway, "busy", lambda: (buffered(gateway, client.id) or 0) > 1 << 20)


# --------------------------------------------------------------------------- the send buffer


@pytest.mark.parametrize("limit", [None, 256 * 1024], ids=["default", "configured"])
async def test_a_subscriber_that_stops_reading_is_closed_1013_at_the_send_buffer_limit(
    limit: int | None,
) -> None:
    """Regression: the gateway buffered everything for such a subscriber, without end."""
    gateway = serve() if limit is None else serve(max_send_buffer=limit)
    async with gateway as gw, stuck_subscriber(gw, "busy") as stuck:
        assert gw.max_send_buffer == (limit or 1 << 20)
        peak = 0

        def closed() -> bool:
            nonlocal peak
            now = buffered(gw, stuck.id)
            peak = max(peak, now or 0)
            return now is None

        await publish_until(gw, "busy", closed)
        # Never more than the limit and one message behind.
        assert peak <= gw.max_send_buffer + len(PAYLOAD) + 1024
        with anyio.fail_after(10):
            code, reason = await stuck.read_until_close()
    assert code == 1013
    assert f"max_send_buffer ({gw.max_send_buffer} bytes)" in reason


async def test_a_subscriber_that_reads_slowly_but_keeps_up_is_not_closed() -> None:
    async with (
        serve(max_send_buffer=256 * 1024) as gw,
        connect(url_for(gw)) as subscriber,
        connect(url_for(gw)) as publisher,
    ):
        await subscribed(gw, subscriber, "busy")
        count = 100  # 3.2 MB, 12 times the limit, in step with the reader
        for index in range(count):
            await publisher.publish("busy", PAYLOAD, id=str(index))
            assert (await publisher.recv_json())["data"]["data"] == str(index)
            assert (await subscriber.recv_json())["data"]["payload"] == PAYLOAD
        assert [c.id for c in gw.connections() if c.id == subscriber.id] == [subscriber.id]


async def test_a_write_that_overruns_the_write_timeout_aborts_the_connection() -> None:
    async with (
        serve(max_send_buffer=BIG, write_timeout=0.5) as gw,
        stuck_subscriber(gw, "busy") as stuck,
    ):
        await publish_until(gw, "busy", lambda: buffered(gw, stuck.id) is None)
        with anyio.fail_after(10):
            await gw.wait_for_disconnect(stuck.id)
            assert await stuck.read_until_close() == (1006, "")


# --------------------------------------------------------------------------- faults and exits


async def stuck(gw: Gateway, client: SocketClient) -> None:
    await stuck_writing(gw, client)


async def paused(gw: Gateway, client: SocketClient) -> None:
    gw.pause_connection(client.id)
    await publish_until(gw, "busy", lambda: (buffered(gw, client.id) or 0) > 10 * len(PAYLOAD))


PEERS = [stuck, paused]


async def drop(gw: Gateway, connection_id: str) -> None:
    gw.drop_connection(connection_id)


async def close(gw: Gateway, connection_id: str) -> None:
    gw.close_connection(connection_id, 4000, "bye")


async def stop_accepting(gw: Gateway, connection_id: str) -> None:
    await gw.stop_accepting()


async def restart(gw: Gateway, connection_id: str) -> None:
    await gw.restart()


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("operation", [drop, close, stop_accepting, restart])
async def test_a_fault_ends_a_stuck_or_paused_connection_promptly(
    peer: Callable[[Gateway, SocketClient], Awaitable[None]],
    operation: Callable[[Gateway, str], Awaitable[None]],
) -> None:
    """Regression: with a write in progress to a subscriber that stopped reading, these
    left its connection listed (and its socket open) until the peer reset it."""
    async with (
        serve(max_send_buffer=BIG) as gw,
        stuck_subscriber(gw, "busy") as client,
    ):
        await peer(gw, client)
        with anyio.fail_after(PROMPTLY):
            await operation(gw, client.id)
            await gw.wait_for_disconnect(client.id)
        assert buffered(gw, client.id) is None
        with anyio.fail_after(10):
            # Nothing but what the kernel held, then the end: no close frame got through.
            assert await client.read_until_close() == (1006, "")


@pytest.mark.parametrize("peer", PEERS)
async def test_leaving_serve_is_prompt_whatever_the_peers_do(
    peer: Callable[[Gateway, SocketClient], Awaitable[None]],
) -> None:
    clients: list[SocketClient] = []
    try:
        with anyio.fail_after(60) as deadline:
            async with serve(max_send_buffer=BIG) as gw:
                clients.append(await open_stuck_subscriber(gw, "busy"))
                await peer(gw, clients[0])
                # From here on, only leaving the block is left to do.
                deadline.deadline = anyio.current_time() + PROMPTLY
    finally:
        for client in clients:
            client.vanish()


async def test_a_paused_connection_whose_client_leaves_is_gone() -> None:
    """Regression: it stayed listed after its client closed the socket."""
    async with serve() as gw:
        async with connect(url_for(gw), close_timeout=0.1) as client:
            gw.pause_connection(client.id)
        # The client sent its close frame, heard nothing back, and closed the socket.
        with anyio.fail_after(PROMPTLY):
            await gw.wait_for_disconnect(client.id)
        assert gw.connections() == []


async def test_a_paused_connection_whose_client_vanishes_is_gone() -> None:
    async with serve() as gw:
        client = SocketClient(url_for(gw))
        await client.connect()
        await client.subscribe("t")
        await settle(gw, client.id, "t")
        gw.pause_connection(client.id)
        await client.send_json({"type": "publish", "data": {"topic": "t", "payload": 1}})
        client.vanish()
        with anyio.fail_after(PROMPTLY):
            await gw.wait_for_disconnect(client.id)
        assert gw.connections() == []


@pytest.mark.slow
async def test_ctrl_c_stops_the_gateway_command_promptly_with_a_stuck_subscriber() -> None:
    """Regression: ``realtime-pubsub gateway`` waited for such a peer to reset its socket."""
    async with gateway_command("--max-send-buffer", str(BIG)) as (process, port, _):
        # Development mode: any token passes.
        token = tokens.client_token("k" * 64, subject="s", permissions=[tokens.can_publish("*")])
        url = f"ws://127.0.0.1:{port}/apps/demo?access_token={token}"
        client = SocketClient(url)
        try:
            await client.connect()
            await client.subscribe("busy")
            async with connect(url) as publisher:
                for index in range(500):  # 16 MB: more than the kernel buffers hold
                    await publisher.publish("busy", PAYLOAD, id=str(index))
                    assert (await publisher.recv_json())["data"]["data"] == str(index)
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(PROMPTLY):
                code = await process.wait()
        finally:
            client.vanish()
    assert code == 0


async def test_an_apps_state_goes_with_its_last_connection() -> None:
    """Regression: every app id ever seen kept its state."""
    async with serve() as gw:
        for index in range(50):
            async with connect(gw.url(gw.mint_token(), app_id=f"app-{index}")) as client:
                await subscribed(gw, client, "chat")
            await gw.wait_for_disconnect(client.id)
        assert gw._broker.app_ids() == []
