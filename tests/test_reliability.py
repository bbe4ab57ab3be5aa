"""Reliability under faults and load: the scenarios of the reliability issue, on trio and
asyncio, against the gateway's fault injection."""

from __future__ import annotations

import gc
import itertools
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import realtime_pubsub
from realtime_pubsub import ConnectionState, ReconnectPolicy
from realtime_pubsub._backoff import REFUSALS
from realtime_pubsub.gateway import Gateway

from .raw import url_for
from .support import FAST, Collector, RawPeer, client_for, next_message, raw_server

pytestmark = pytest.mark.anyio


async def test_gateway_restart_while_messages_flow(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as subscriber, client_for(gw) as publisher:
        await subscriber.subscribe("flow")
        started, publisher_started = Collector(), Collector()
        subscriber.on("session.started", started)
        publisher.on("session.started", publisher_started)
        async with subscriber.listen("flow.*", max_buffer=10_000) as messages:
            stop = anyio.Event()

            async def keep_publishing() -> None:
                n = 0
                while not stop.is_set():
                    with anyio.move_on_after(0.5):
                        await publisher.publish("flow", {"n": n, "phase": "during"})
                    n += 1
                    await anyio.sleep(0.002)

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_publishing)
                await anyio.sleep(0.1)
                await gw.restart(downtime=0.2)
                await started.wait_for(1, timeout=10)
                await publisher_started.wait_for(1, timeout=10)
                with anyio.fail_after(10):
                    await gw.wait_for_subscribers("flow")
                stop.set()
            assert len(started.items) == 1
            receipt = await publisher.publish("flow", {"phase": "after"})
            await receipt.wait_for_ack(timeout=5)
            with anyio.fail_after(5):
                async for message in messages:
                    if message.payload.get("phase") == "after":
                        break


@pytest.mark.parametrize("fault", ["drop", "half-open"])
async def test_loss_is_detected_waits_fail_at_once_and_the_client_recovers(
    realtime_pubsub_gateway: Gateway, fault: str
) -> None:
    gw = realtime_pubsub_gateway
    gw.acks = False
    interval, timeout = 0.2, 0.3
    async with client_for(gw, heartbeat_interval=interval, heartbeat_timeout=timeout) as client:
        await client.subscribe("t")
        first = client.connection.id
        receipt = await client.publish("t", 1)
        injected = time.monotonic()
        if fault == "drop":
            gw.drop_connection(first)
        else:
            gw.pause_connection(first)
        with pytest.raises(realtime_pubsub.ConnectionClosed):
            await receipt.wait_for_ack(timeout=60)
        detected = time.monotonic() - injected
        # The half-open loss is found by the heartbeat, within interval + timeout (plus the
        # scheduling slack of a shared machine).
        assert detected < interval + timeout + 1.0
        info = await client.wait_for("session.started", timeout=10)
        assert info.id != first
        gw.acks = True
        assert (await (await client.publish("t", 2)).wait_for_ack()).id


async def test_refused_connections_back_off_with_jitter() -> None:
    async with realtime_pubsub.gateway.serve() as gw:
        policy = ReconnectPolicy(initial_delay=0.02, max_delay=0.16)
        attempts: list[float] = []
        async with client_for(gw, reconnect=policy) as client:
            client.on("error", lambda exc: attempts.append(time.monotonic()))
            await gw.stop_accepting()
            await anyio.sleep(1.5)
            await gw.start_accepting()
            await client.wait_for("session.started", timeout=10)
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        # Full jitter: every gap is at most the cap (plus slack for the attempt itself),
        # they vary, and there are few enough attempts that it is no busy loop.
        assert 3 <= len(attempts) <= 1.5 / 0.005
        assert max(gaps) < policy.max_delay + 0.25
        assert len({round(g, 3) for g in gaps}) > 1
        mean_cap = sum(min(policy.max_delay, policy.initial_delay * 2**i) for i in range(30)) / 30
        assert sum(gaps) / len(gaps) < mean_cap + 0.1


def test_policy_delays_stay_within_the_full_jitter_bounds() -> None:
    policy = ReconnectPolicy(initial_delay=0.5, max_delay=30.0)
    for attempt in range(40):
        cap = min(30.0, 0.5 * 2**attempt)
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # spread over the range, not pinned at one value
    with pytest.raises(ValueError, match="initial_delay"):
        ReconnectPolicy(initial_delay=-1)
    with pytest.raises(ValueError, match="max_attempts"):
        ReconnectPolicy(max_attempts=0)


async def test_a_raising_url_provider_is_an_error_event_and_is_retried(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("vault unreachable")
        if calls == 2:
            return "https://example.invalid/not-a-websocket"
        return url_for(gw)

    async with realtime_pubsub.connect(provider, reconnect=FAST) as client:
        assert client.state is ConnectionState.OPEN
        errors: list[BaseException] = []
        client.on("error", errors.append)
        # Again after a loss: the provider fails once more, then recovers.
        calls = 0
        gw.drop_connection(client.connection.id)
        await client.wait_for("session.started", timeout=10)
        await anyio.sleep(0.05)
    assert [type(e) for e in errors[:2]] == [realtime_pubsub.ConnectError] * 2
    assert "vault unreachable" in str(errors[0])
    assert calls == 3


async def test_forbidden_makes_no_reconnection_storm(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        return gw.url(gw.mint_token(permissions=[]))

    async def forbidden() -> None:
        async with realtime_pubsub.connect(provider, reconnect=FAST) as client:
            await client.subscribe("secure/inbound")
            await anyio.sleep(10)

    with pytest.raises(realtime_pubsub.Forbidden):
        await forbidden()
    await anyio.sleep(0.3)
    assert calls == 1
    assert gw.connections() == []


@pytest.mark.parametrize("overflow", ["drop-oldest", "drop-newest", "error"])
async def test_a_slow_consumer_stalls_nothing(
    realtime_pubsub_gateway: Gateway, overflow: Any
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw, heartbeat_interval=0.05, heartbeat_timeout=0.5) as client:
        first = client.connection.id
        await client.subscribe("firehose")
        async with (
            client.listen("firehose.*", max_buffer=5, overflow=overflow) as stuck,
            client.listen("firehose.*", max_buffer=1000) as fast,
        ):
            for i in range(300):
                await client.publish("firehose", i)
            got = [(await next_message(fast)).payload for _ in range(300)]
            await anyio.sleep(0.3)  # several heartbeats while the slow consumer never reads
            assert got == list(range(300))
            assert client.connection.id == first  # no reconnection: pongs kept coming
            assert stuck.dropped == (295 if overflow != "error" else 1)


@pytest.mark.parametrize("operation", ["publish", "send", "ack", "reply", "subscribe", "listen"])
async def test_cancellation_at_any_point_leaves_nothing_behind(
    realtime_pubsub_gateway: Gateway, operation: str
) -> None:
    gw = realtime_pubsub_gateway
    gw.ack_delay = 0.002
    async with client_for(gw) as client:

        async def run_once() -> None:
            if operation == "publish":
                await client.publish("t", 1)
            elif operation == "send":
                await client.send(1)
            elif operation == "ack":
                await (await client.publish("t", 1)).wait_for_ack(timeout=None)
            elif operation == "reply":
                await (await client.send(1)).wait_for_reply(timeout=None)
            elif operation == "subscribe":
                await client.subscribe(f"topic-{time.monotonic_ns()}")
            else:
                async with client.listen("x.*") as messages:
                    await messages.__anext__()

        # Cancel after 0, 1, 2... checkpoints' worth of time: every await point is hit.
        for step in range(60):
            with anyio.move_on_after(step * 0.0002):
                await run_once()
        gc.collect()  # a receipt in a cancelled frame's traceback cycle
        assert client.in_flight == 0
        assert len(client._router) == 0
        # ...and the client still works.
        assert (await (await client.publish("t", 2)).wait_for_ack(timeout=5)).id


async def test_no_task_outlives_the_block(
    realtime_pubsub_gateway: Gateway, anyio_backend: str
) -> None:
    def live_tasks() -> int:
        if anyio_backend == "trio":
            import trio

            def count(task: Any) -> int:
                return 1 + sum(
                    count(child)
                    for nursery in task.child_nurseries
                    for child in nursery.child_tasks
                )

            return count(trio.lowlevel.current_root_task())
        import asyncio

        return len(asyncio.all_tasks())

    before = live_tasks()
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("t")
        client.on("t.*", lambda m, r: None)
        async with client.listen("t.*"):
            await (await client.publish("t", 1)).wait_for_ack()
        assert live_tasks() > before
    await anyio.sleep(0.05)  # let the gateway side finish closing too
    assert live_tasks() <= before


@pytest.mark.slow
async def test_load_a_hundred_tasks_ten_thousand_acked_messages(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as publisher, client_for(gw) as subscriber:
        await subscriber.subscribe("load")
        await gw.wait_for_subscribers("load")
        async with subscriber.listen("load.*", max_buffer=20_000) as messages:

            async def worker(n: int) -> None:
                for i in range(100):
                    receipt = await publisher.publish("load", [n, i, "x" * 64])
                    ack = await receipt.wait_for_ack(timeout=30)
                    assert ack.id == receipt.id

            async with anyio.create_task_group() as tg:
                for n in range(100):
                    tg.start_soon(worker, n)
            received = [(await next_message(messages, 30)).payload for _ in range(10_000)]
            assert messages.dropped == 0
    # Frames never interleaved: every payload arrived whole and exactly once.
    assert sorted((n, i) for n, i, pad in received) == [
        (n, i) for n in range(100) for i in range(100)
    ]
    assert all(pad == "x" * 64 for _, _, pad in received)
    assert publisher.in_flight == 0


@pytest.mark.slow
async def test_a_short_soak_loses_and_duplicates_nothing() -> None:
    from .soak import soak

    counts = await soak(6.0, seed=7)
    assert counts.eligible > 0
    assert (counts.lost, counts.duplicated) == (0, 0), counts.line()


# --------------------------------------------------------------------------- a server's answers


@pytest.mark.parametrize("trigger", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize("answer", ["ping", "close"])
async def test_subscribe_and_unsubscribe_return_when_the_server_answers_at_once(
    trigger: str, answer: str
) -> None:
    # The server answers the frame at once, with a ping or a close: the answer's bytes
    # (the pong, the close echo) go out through somebody else's write, or the connection
    # ends; either way the call returns well before the next heartbeat (15 s).
    answered = anyio.Event()

    async def on_frame(peer: RawPeer, frame: dict[str, Any]) -> None:
        if frame["type"] == trigger:
            peer.ping() if answer == "ping" else peer.close(4000, "go away")
            answered.set()

    async with (
        raw_server(on_frame=on_frame) as url,
        realtime_pubsub.connect(url, reconnect=FAST) as client,
    ):
        with anyio.fail_after(5):
            await client.subscribe("chat")
            await client.unsubscribe("chat")
            await answered.wait()


def test_the_guarantees_page_shows_the_code_s_retry_table() -> None:
    page = (Path(__file__).parent.parent / "docs/reference/guarantees.rst").read_text()
    table = page.split("Reconnection\n------------")[1].split("\n\n``ReconnectPolicy")[0]
    rows = [row for row in table.split("   * - ")[2:]]
    refused = {name for row in rows if "no: the block ends" in row for name in _errors_in(row)}
    retried = {name for row in rows if "\n     - yes" in row for name in _errors_in(row)}
    assert refused == {error.__name__ for error in REFUSALS}
    policy = ReconnectPolicy()
    for name in refused | retried:
        error = getattr(realtime_pubsub, name)("x", **_fields(name))
        assert policy.retries(error, 1) is (name in retried), name
        assert ReconnectPolicy(retry_refused=True).retries(error, 1)


def _errors_in(row: str) -> set[str]:
    return set(re.findall(r":class:`~realtime_pubsub\.(\w+)`", row))


def _fields(name: str) -> dict[str, Any]:
    return {"status": 401} if name == "AuthenticationError" else {}


async def test_a_publish_cancelled_on_a_full_socket_returns_at_once() -> None:
    # The server stops reading after the first frame: the client's socket fills. A publish
    # whose cancel scope expires meanwhile returns then (not when the heartbeat gives up),
    # and a write it cut in the middle costs the connection, which the client replaces.
    async def on_frame(peer: RawPeer, frame: dict[str, Any]) -> None:
        if frame["data"].get("topic") == "stop-reading":
            await anyio.sleep_forever()

    async with (
        raw_server(on_frame=on_frame) as url,
        realtime_pubsub.connect(url, reconnect=FAST, heartbeat_interval=60) as client,
    ):
        first = client.connection.id
        await client.subscribe("stop-reading")
        started = Collector()
        client.on("session.started", started)
        with anyio.fail_after(10):
            with anyio.move_on_after(0.5) as scope:
                while True:
                    await client.publish("t", "x" * 60_000)
            assert scope.cancelled_caught
            [info] = await started.wait_for(1)
        assert info.id != first
