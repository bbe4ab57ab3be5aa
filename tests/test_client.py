"""The client against the local gateway over loopback, on trio and asyncio: the whole public
API, one behaviour per test."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import realtime_pubsub
from realtime_pubsub import (
    Ack,
    AckTimeout,
    ClientClosed,
    CloseInfo,
    ConnectionInfo,
    ConnectionState,
    IncomingMessage,
    MessageTooLarge,
    ReconnectPolicy,
    ReplyTimeout,
    ResponseMessage,
    WaitTimeout,
)
from realtime_pubsub.gateway import Gateway
from realtime_pubsub.testing import ALL_PERMISSIONS

from .raw import url_for
from .support import FAST, Collector, RawPeer, client_for, next_message, raw_server

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- connecting


async def test_connect_yields_after_the_welcome(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        state_inside = client.state
        assert [c.id for c in gw.connections()] == [client.connection.id]
        assert client.connection.app_id == "default"
        assert client.connection.remote_address == "127.0.0.1"
    assert state_inside is ConnectionState.OPEN
    assert client.state is ConnectionState.CLOSED


async def test_leaving_the_block_closes_with_1000_and_leaves_no_task(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        await gw.wait_for_connections(1)
        cid = client.connection.id
    with anyio.fail_after(5):
        await gw.wait_for_disconnect(cid)
    assert gw.connections() == []
    assert client.state is ConnectionState.CLOSED


async def test_leaving_the_block_closes_the_connection_with_1000() -> None:
    peers: list[RawPeer] = []

    async def on_frame(peer: RawPeer, frame: dict[str, Any]) -> None:
        peers.append(peer)

    async with raw_server(on_frame=on_frame) as url:
        async with realtime_pubsub.connect(url) as client:
            await client.subscribe("t")  # the server meets its peer
        # The closing handshake is over when the block is: the server saw the close frame.
        [peer] = peers
    assert peer.protocol.close_rcvd is not None
    assert peer.protocol.close_rcvd.code == 1000


async def test_url_provider_may_be_sync_or_async_and_is_called_per_attempt(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    calls: list[str] = []

    def sync_provider() -> str:
        calls.append("sync")
        return url_for(gw)

    async def async_provider() -> str:
        calls.append("async")
        await anyio.lowlevel.checkpoint()
        return url_for(gw)

    provider: Callable[[], Any]
    for provider in (sync_provider, async_provider):
        async with realtime_pubsub.connect(provider, reconnect=FAST) as client:
            first = client.connection.id
            gw.drop_connection(first)
            await client.wait_for("session.started", timeout=5)
            assert client.connection.id != first
    assert calls == ["sync", "sync", "async", "async"]


# --------------------------------------------------------------------------- pub/sub


async def test_publish_is_acked_and_delivered_to_listeners(
    realtime_pubsub_gateway: Gateway,
) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("chat")
        async with client.listen("chat.*") as messages:
            receipt = await client.publish("chat", {"text": "hi"}, message_type="text-message")
            ack = await receipt.wait_for_ack(timeout=5)
            message = await next_message(messages)
    assert ack == Ack(receipt.id)
    assert isinstance(message, IncomingMessage)
    assert (message.topic, message.message_type, message.payload) == (
        "chat",
        "text-message",
        {"text": "hi"},
    )
    assert message.id == receipt.id
    assert message.client is not None
    assert message.client.connection_id == client.connection.id
    assert message.compression is False


async def test_messages_between_two_clients(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as alice, client_for(gw) as bob:
        await bob.subscribe("room")
        async with bob.listen("room.**") as messages:
            await alice.publish("room", 1)
            await alice.publish("room", 2, message_type="x")
            got = [await next_message(messages), await next_message(messages)]
    assert [(m.payload, m.message_type) for m in got] == [(1, "broadcast"), (2, "x")]


async def test_compress_is_delivered_as_compression(realtime_pubsub_gateway: Gateway) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("z")
        async with client.listen("z.*") as messages:
            await client.publish("z", "x" * 500, compress=True)
            message = await next_message(messages)
    assert message.compression is True
    assert message.payload == "x" * 500


async def test_unsubscribe_stops_delivery_and_is_forgotten(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client, client_for(gw) as other:
        await client.subscribe("a")
        await client.subscribe("a")  # idempotent
        await client.unsubscribe("a")
        await client.unsubscribe("a")
        assert client.subscriptions == frozenset()
        async with client.listen("a.*") as messages:
            receipt = await other.publish("a", 1)
            await receipt.wait_for_ack()
            await client.subscribe("b")
            await (await other.publish("b", 2)).wait_for_ack()
            with anyio.move_on_after(0.2):
                message = await messages.__anext__()
                raise AssertionError(f"unexpected {message}")


async def test_aliases_of_the_official_clients(realtime_pubsub_gateway: Gateway) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe_remote_topic("t")
        assert client.subscriptions == {"t"}
        await client.unsubscribe_remote_topic("t")
        assert client.subscriptions == frozenset()


async def test_wildcards_route_by_event_name(realtime_pubsub_gateway: Gateway) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        for topic in ("chat", "news"):
            await client.subscribe(topic)
        async with (
            client.listen("chat.*") as chat,
            client.listen("*.alert") as alerts,
            client.listen("**") as everything,
        ):
            await client.publish("chat", 1, message_type="text")
            await client.publish("news", 2, message_type="alert")
            assert (await next_message(chat)).payload == 1
            assert (await next_message(alerts)).payload == 2
            assert [(await next_message(everything)).payload for _ in range(2)] == [1, 2]


async def test_user_topics_named_ack_or_response_do_not_collide(
    realtime_pubsub_gateway: Gateway,
) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("priv")
        await client.subscribe("ack")
        async with client.listen("**") as messages:
            r1 = await client.publish("ack", "a", message_type="ack")
            r2 = await client.publish("priv", "b", message_type="response")
            await r1.wait_for_ack()
            await r2.wait_for_ack()
            got = [await next_message(messages), await next_message(messages)]
    assert [(m.topic, m.payload) for m in got] == [("ack", "a"), ("priv", "b")]


async def test_messages_published_over_the_http_api_are_accepted(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        async with client.listen("news.flash") as messages:
            gw.send_raw(client.connection.id, '{"topic":"news","messageType":"flash","data":"hi"}')
            message = await next_message(messages)
    assert (message.data, message.payload, message.id, message.client) == ("hi", "hi", None, None)


# --------------------------------------------------------------------------- acks and replies


async def test_rpc_send_and_reply(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as backend, client_for(gw) as caller:
        await backend.subscribe("secure/inbound")
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                async with backend.listen("secure/inbound.gettime") as requests:
                    request = await next_message(requests)
                    await request.reply({"time": 42}, status="done")

            tg.start_soon(serve)
            await anyio.sleep(0.05)
            receipt = await caller.send({"q": 1}, message_type="gettime")
            reply = await receipt.wait_for_reply(timeout=5)
    assert isinstance(reply, ResponseMessage)
    assert (reply.id, reply.data, reply.status) == (receipt.id, {"time": 42}, "done")
    assert reply.client is not None and reply.client.connection_id == backend.connection.id
    assert caller.in_flight == 0


async def test_an_ack_that_arrives_before_the_wait_is_not_lost(
    realtime_pubsub_gateway: Gateway,
) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        receipt = await client.publish("t", 1)
        await anyio.sleep(0.2)  # the ack is long here before anyone waits
        assert await receipt.wait_for_ack(timeout=0.01) == Ack(receipt.id)


async def test_a_reply_that_arrives_before_the_wait_is_not_lost(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as backend, client_for(gw) as caller:
        await backend.subscribe("secure/inbound")
        replied = anyio.Event()

        async def answer(message: IncomingMessage, reply: Any) -> None:
            await reply("early")
            replied.set()

        backend.on("secure/inbound.ask", answer)
        receipt = await caller.send(None, message_type="ask")
        with anyio.fail_after(5):
            await replied.wait()
        await anyio.sleep(0.1)
        assert (await receipt.wait_for_reply(timeout=0.01)).data == "early"


async def test_the_reader_goes_on_reading_after_answering_a_caller_that_writes_nothing_more(
    realtime_pubsub_gateway: Gateway,
) -> None:
    # After an answer the reader lets the task it woke write first; it must not wait for
    # that write: here the caller never writes again, and what follows still arrives.
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client, client.listen("news.*") as messages:
        cid = client.connection.id
        for n in (1, 2):
            receipt = await client.send("question")
            gw.send_raw(
                cid,
                f'{{"topic":"priv/{cid}","messageType":"response",'
                f'"data":{{"payload":{{"id":"{receipt.id}","data":"answer"}}}}}}',
            )
            if n == 1:  # the message right behind the reply, maybe in the same read
                gw.send_raw(cid, '{"topic":"news","messageType":"flash","data":1}')
            assert (await receipt.wait_for_reply(timeout=5)).data == "answer"
            if n == 2:  # the message after the reply was read
                gw.send_raw(cid, '{"topic":"news","messageType":"flash","data":2}')
            assert (await next_message(messages)).data == n


async def test_ack_timeout_when_acks_are_withheld(realtime_pubsub_gateway: Gateway) -> None:
    realtime_pubsub_gateway.acks = False
    async with client_for(realtime_pubsub_gateway) as client:
        receipt = await client.publish("t", 1)
        with pytest.raises(AckTimeout) as info:
            await receipt.wait_for_ack(timeout=0.1)
        assert isinstance(info.value, TimeoutError)
        assert client.in_flight == 0


async def test_reply_timeout_without_a_backend(realtime_pubsub_gateway: Gateway) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        receipt = await client.send("anyone?")
        with pytest.raises(ReplyTimeout):
            await receipt.wait_for_reply(timeout=0.1)
        assert client.in_flight == 0


async def test_delayed_ack_still_reaches_its_receipt(realtime_pubsub_gateway: Gateway) -> None:
    realtime_pubsub_gateway.ack_delay = 0.2
    async with client_for(realtime_pubsub_gateway) as client:
        receipt = await client.publish("t", 1)
        assert (await receipt.wait_for_ack(timeout=5)).id == receipt.id


async def test_a_hundred_tasks_publishing_each_get_their_own_ack(
    realtime_pubsub_gateway: Gateway,
) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("load")
        acked: list[str] = []
        async with client.listen("load.*", max_buffer=10_000) as messages:

            async def publisher(n: int) -> None:
                for i in range(10):
                    receipt = await client.publish("load", {"n": n, "i": i})
                    ack = await receipt.wait_for_ack(timeout=10)
                    assert ack.id == receipt.id
                    acked.append(ack.id)

            async with anyio.create_task_group() as tg:
                for n in range(100):
                    tg.start_soon(publisher, n)
            received = [await next_message(messages) for _ in range(1000)]
    assert len(set(acked)) == 1000
    assert sorted((m.payload["n"], m.payload["i"]) for m in received) == sorted(
        (n, i) for n in range(100) for i in range(10)
    )
    assert client.in_flight == 0


async def test_receipts_nobody_keeps_free_their_slots(realtime_pubsub_gateway: Gateway) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        for _ in range(200):
            await client.publish("t", 1)
        gc.collect()
        assert client.in_flight == 0
        kept = [await client.publish("t", 1) for _ in range(3)]
        assert client.in_flight == 3
        del kept
        gc.collect()
        assert client.in_flight == 0


async def test_cancelling_waits_leaves_the_pending_table_empty(
    realtime_pubsub_gateway: Gateway,
) -> None:
    realtime_pubsub_gateway.acks = False
    async with client_for(realtime_pubsub_gateway) as client:
        receipts = [await client.publish("t", i) for i in range(5)]
        for receipt in receipts:
            with anyio.move_on_after(0.01):
                await receipt.wait_for_ack(timeout=None)
        for receipt in [await client.send(i) for i in range(5)]:
            with anyio.move_on_after(0.01):
                await receipt.wait_for_reply(timeout=None)
        assert client.in_flight == 0


# --------------------------------------------------------------------------- bad input


async def test_bad_input_is_refused_before_anything_is_written(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw, max_message_size=2048) as client:
        with pytest.raises(TypeError):
            await client.publish("t", object())
        with pytest.raises(ValueError, match="topic"):
            await client.publish("", 1)
        with pytest.raises(ValueError, match="topic"):
            await client.subscribe(5)  # type: ignore[arg-type]
        with pytest.raises(MessageTooLarge):
            await client.publish("t", "x" * 4096)
        with pytest.raises(ValueError, match="pattern"):
            client.listen("a..b")
        with pytest.raises(ValueError, match="overflow"):
            client.listen("a", overflow="block")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="id"):
            await client.publish("t", 1, id="")
        assert client.in_flight == 0
        # ...and the connection is still fine.
        assert (await (await client.publish("t", 1)).wait_for_ack()).id


async def test_a_malformed_frame_is_an_error_event_and_delivery_goes_on(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        errors = Collector()
        client.on("error", errors)
        async with client.listen("t.*") as messages:
            gw.send_raw(client.connection.id, "this is not json")
            gw.send_raw(client.connection.id, '{"topic":"t"}')
            gw.send_raw(client.connection.id, '{"topic":"t","messageType":"m","data":1}')
            assert (await next_message(messages)).payload == 1
        await errors.wait_for(2)
    assert all(isinstance(e, realtime_pubsub.ProtocolError) for e in errors.items)


# --------------------------------------------------------------------------- listeners


@pytest.mark.parametrize(
    ("overflow", "expected"), [("drop-oldest", [7, 8, 9]), ("drop-newest", [0, 1, 2])]
)
async def test_overflow_policies(
    realtime_pubsub_gateway: Gateway, overflow: Any, expected: list[int]
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        await client.subscribe("fast")
        async with (
            client.listen("fast.*", max_buffer=3, overflow=overflow) as slow,
            client.listen("fast.*", max_buffer=100) as quick,
        ):
            for i in range(10):
                await client.publish("fast", i)
            assert [(await next_message(quick)).payload for _ in range(10)] == list(range(10))
            assert [slow.receive_nowait().payload for _ in range(3)] == expected
            assert slow.dropped == 7


async def test_overflow_error_raises_slow_consumer_after_the_buffer(
    realtime_pubsub_gateway: Gateway,
) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("fast")
        async with (
            client.listen("fast.*", max_buffer=2, overflow="error") as slow,
            client.listen("fast.*") as quick,
        ):
            for i in range(5):
                await client.publish("fast", i)
            for _ in range(5):
                await next_message(quick)
            assert [(await next_message(slow)).payload for _ in range(2)] == [0, 1]
            with pytest.raises(realtime_pubsub.SlowConsumer) as info:
                await next_message(slow)
            assert info.value.dropped == 1


async def test_listen_iteration_ends_when_the_client_closes(
    realtime_pubsub_gateway: Gateway,
) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        listening = client.listen("**")
        messages = await listening.__aenter__()
    with anyio.fail_after(5):
        assert [m async for m in messages] == []
    with pytest.raises(ClientClosed):
        await client.publish("t", 1)


# --------------------------------------------------------------------------- callbacks


async def test_on_off_once_and_wait_for(realtime_pubsub_gateway: Gateway) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("c")
        seen: list[Any] = []
        first: list[Any] = []

        async def async_handler(message: IncomingMessage, reply: Any) -> None:
            await anyio.lowlevel.checkpoint()
            seen.append(message.payload)

        listener = client.on("c.*", async_handler)
        client.once("c.*", lambda message, reply: first.append(message.payload))
        await client.publish("c", 1)
        message = await client.wait_for("c.*", timeout=5)
        assert message.payload == 1
        await client.publish("c", 2)
        assert (await client.wait_for("c.*", timeout=5)).payload == 2
        await anyio.sleep(0.05)
        assert client.off(listener) is True
        assert client.off(listener) is False
        await client.publish("c", 3)
        assert (await client.wait_for("c.*", timeout=5)).payload == 3
        await anyio.sleep(0.05)
    assert seen == [1, 2]
    assert first == [1]


async def test_off_drops_what_is_still_queued_for_the_handler(
    realtime_pubsub_gateway: Gateway,
) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("c")
        seen: list[Any] = []
        release = anyio.Event()

        async def handler(message: IncomingMessage, reply: Any) -> None:
            seen.append(message.payload)
            await release.wait()

        listener = client.on("c.*", handler)
        for i in range(3):
            # The gateway delivers a message before its ack: once acked, it is queued.
            await (await client.publish("c", i)).wait_for_ack()
        assert client.off(listener)
        release.set()
        await anyio.wait_all_tasks_blocked()
    assert seen == [0]


async def test_wait_for_times_out(realtime_pubsub_gateway: Gateway) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        with pytest.raises(WaitTimeout):
            await client.wait_for("nothing.*", timeout=0.05)


async def test_a_raising_handler_is_reported_and_others_carry_on(
    realtime_pubsub_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("c")
        errors = Collector()
        client.on("error", errors)

        def broken(message: IncomingMessage, reply: Any) -> None:
            raise RuntimeError("handler bug")

        client.on("c.*", broken)
        good = Collector()
        client.on("c.*", good)
        for i in range(3):
            await client.publish("c", i)
        await good.wait_for(3)
        await errors.wait_for(3)
    assert [message.payload for message in good.items] == [0, 1, 2]
    assert all(isinstance(e, RuntimeError) for e in errors.items)
    assert "handler bug" in caplog.text


async def test_a_sync_handler_that_holds_the_loop_is_reported_once_by_name(
    realtime_pubsub_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    done = anyio.Event()

    def slow_handler(message: IncomingMessage, reply: Any) -> None:
        time.sleep(0.15)  # a database call, say: it holds the event loop
        calls.append(message.payload)
        if len(calls) == 3:
            done.set()

    async with client_for(realtime_pubsub_gateway) as client:
        await client.subscribe("c")
        client.on("c.*", slow_handler)
        client.on("c.*", lambda message, reply: None)  # quick: never reported
        for i in range(3):
            await client.publish("c", i)
        with anyio.fail_after(5):
            await done.wait()
    reports = [r.getMessage() for r in caplog.records if "held the event loop" in r.getMessage()]
    assert len(reports) == 1
    assert "slow_handler" in reports[0] and "'c.*'" in reports[0]


async def test_a_handler_awaiting_a_reply_does_not_deadlock(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as backend, client_for(gw) as client:
        await backend.subscribe("secure/inbound")
        backend.on("secure/inbound.ping", lambda m, reply: reply("pong"))
        await client.subscribe("trigger")
        results = Collector()

        async def handler(message: IncomingMessage, reply: Any) -> None:
            receipt = await client.send(None, message_type="ping")
            results((await receipt.wait_for_reply(timeout=5)).data)

        client.on("trigger.*", handler)
        await client.publish("trigger", 1)
        assert await results.wait_for(1) == ["pong"]


async def test_lifecycle_events(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        started: list[ConnectionInfo] = []
        closed: list[CloseInfo] = []
        client.on("session.started", started.append)
        client.on("close", closed.append)
        gw.close_connection(client.connection.id, 4000, "bye")
        info = await client.wait_for("session.started", timeout=5)
        await anyio.sleep(0.05)
    assert started == [info]
    assert closed == [CloseInfo(4000, "bye")]


# --------------------------------------------------------------------------- reconnection


@pytest.mark.parametrize("code", [1000, 1001, 1011, 1013, 4000])
async def test_a_close_with_any_code_but_1008_is_retried(
    realtime_pubsub_gateway: Gateway, code: int
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        first = client.connection.id
        gw.close_connection(first, code, "try again later")
        info = await client.wait_for("session.started", timeout=5)
        assert info.id != first
        assert client.state is ConnectionState.OPEN


async def test_after_a_drop_subscriptions_are_restored(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client, client_for(gw) as other:
        await client.subscribe("news")
        first = client.connection.id
        gw.drop_connection(first)
        info = await client.wait_for("session.started", timeout=5)
        assert info.id != first
        with anyio.fail_after(5):
            await gw.wait_for_subscribers("news")
        assert [c.subscriptions for c in gw.connections() if c.id == info.id] == [{"news"}]
        async with client.listen("news.*") as messages:
            await other.publish("news", "after")
            assert (await next_message(messages)).payload == "after"


async def test_after_a_gateway_restart_the_client_comes_back(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        await client.subscribe("news")
        await gw.stop_accepting()
        await anyio.sleep(0.2)
        await gw.start_accepting()
        info = await client.wait_for("session.started", timeout=5)
        async with client.listen("news.*") as messages:
            await client.publish("news", 1)
            assert (await next_message(messages)).payload == 1
        assert client.connection == info


async def test_a_half_open_connection_is_detected_by_the_heartbeat(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw, heartbeat_interval=0.1, heartbeat_timeout=0.2) as client:
        closes: list[CloseInfo] = []
        client.on("close", closes.append)
        first = client.connection.id
        gw.pause_connection(first)
        with anyio.fail_after(5):
            info = await client.wait_for("session.started")
        assert info.id != first
        await anyio.sleep(0.05)
    assert closes[0].code == 1006


async def test_waits_on_a_dead_connection_fail_at_once(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    gw.acks = False
    async with client_for(gw) as client:
        receipt = await client.publish("t", 1)
        gw.drop_connection(client.connection.id)
        with anyio.fail_after(2), pytest.raises(realtime_pubsub.ConnectionClosed) as info:
            await receipt.wait_for_ack(timeout=60)
        assert info.value.code == 1006
        with anyio.fail_after(2), pytest.raises(realtime_pubsub.ConnectionClosed):
            await receipt.wait_for_reply(timeout=60)


async def test_publish_during_a_reconnection_waits_for_the_new_connection(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with client_for(gw) as client:
        closes = Collector()
        client.on("close", closes)
        await gw.stop_accepting()
        await closes.wait_for(1)
        assert client.state is ConnectionState.RECONNECTING
        async with anyio.create_task_group() as tg:
            results: list[Ack] = []

            async def publish() -> None:
                receipt = await client.publish("t", 1)
                results.append(await receipt.wait_for_ack())

            tg.start_soon(publish)
            await anyio.sleep(0.2)
            assert results == []
            await gw.start_accepting()
        assert len(results) == 1
        await gw.stop_accepting()
        await closes.wait_for(2)
        assert client.state is ConnectionState.RECONNECTING
        with anyio.move_on_after(0.05) as scope:
            await client.publish("t", 2)  # bounded by the caller's own cancel scope
        assert scope.cancelled_caught
        assert client.in_flight == 0
        await gw.start_accepting()


async def test_refused_handshake_ends_the_block_without_retrying(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        return gw.url(gw.mint_token(ttl=-10))

    with pytest.raises(realtime_pubsub.AuthenticationError) as info:
        async with realtime_pubsub.connect(provider, reconnect=FAST):
            raise AssertionError("unreachable")
    assert info.value.status == 401
    assert calls == 1


async def test_forbidden_subscription_ends_the_block_with_forbidden(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    token = gw.mint_token(permissions=["realtime:publisher:write:topic:*"])

    async def subscribe_forbidden() -> None:
        async with client_for(gw, token=token) as client:
            await client.subscribe("secure/inbound")
            await anyio.sleep(5)

    with pytest.raises(realtime_pubsub.Forbidden) as info:
        await subscribe_forbidden()
    assert info.value.code == 1008
    assert info.value.reason == "Subscription to secure topic is forbidden!"
    await anyio.sleep(0.1)
    assert gw.connections() == []


async def test_policy_giving_up_raises_the_last_error() -> None:
    async with realtime_pubsub.gateway.serve() as gw:
        url = url_for(gw)
        await gw.stop_accepting()
        with pytest.raises(realtime_pubsub.ConnectError):
            async with realtime_pubsub.connect(
                url, reconnect=ReconnectPolicy(initial_delay=0.01, max_attempts=3)
            ):
                raise AssertionError("unreachable")


async def test_a_refused_connection_is_named_as_such() -> None:
    # Not anyio's "All connection attempts failed", which says nothing of why.
    async with realtime_pubsub.gateway.serve() as gw:
        url = url_for(gw)
        await gw.stop_accepting()
        with pytest.raises(realtime_pubsub.ConnectError) as info:
            async with realtime_pubsub.connect(url, reconnect=ReconnectPolicy(enabled=False)):
                raise AssertionError("unreachable")
    assert str(info.value) == (
        f"cannot connect to ws://127.0.0.1:{gw.port}/apps/default?access_token=***: "
        "connection refused"
    )


async def test_a_bad_url_from_the_provider_is_retried_then_reported(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    answers: Any = iter(["http://not-websocket", 42, url_for(gw)])
    async with realtime_pubsub.connect(lambda: next(answers), reconnect=FAST) as client:
        assert client.state is ConnectionState.OPEN


async def test_the_body_exception_is_not_wrapped(realtime_pubsub_gateway: Gateway) -> None:
    with pytest.raises(KeyError):
        async with client_for(realtime_pubsub_gateway):
            raise KeyError("mine")


# --------------------------------------------------------------------------- secrets


async def test_the_token_never_reaches_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with realtime_pubsub.gateway.serve(secret="x" * 32) as gw:
        token = gw.mint_token(permissions=ALL_PERMISSIONS)
        async with client_for(gw, token=token) as client:
            text = repr(client)
            gw.drop_connection(client.connection.id)
            await client.wait_for("session.started", timeout=5)
            assert "access_token=***" in text
        bad_signature = token + "x"
        with pytest.raises(realtime_pubsub.AuthenticationError) as info:
            async with realtime_pubsub.connect(gw.url(bad_signature), reconnect=FAST):
                pass
    for text in (repr(client), caplog.text, str(info.value), repr(info.value)):
        assert token not in text
        assert token.split(".")[2] not in text


# --------------------------------------------------------------------------- the package


def test_importing_the_client_imports_neither_the_gateway_nor_pyjwt() -> None:
    code = (
        "import sys, realtime_pubsub\n"
        "assert 'realtime_pubsub.gateway' not in sys.modules\n"
        "assert 'jwt' not in sys.modules\n"
        "assert realtime_pubsub.gateway.serve\n"  # there when asked for
        "assert 'realtime_pubsub.gateway' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_a_welcome_in_the_read_of_the_handshake_response_opens_the_block() -> None:
    # The 101 response, the welcome and a message in one write, then nothing until the
    # client speaks: the block is entered at once, and what follows reads as usual.
    early = {"topic": "t", "messageType": "m", "data": {"payload": "early", "id": "e"}}

    async def on_frame(peer: RawPeer, frame: dict[str, Any]) -> None:
        if frame["type"] == "subscribe":
            peer.send_json({"topic": "t", "messageType": "m", "data": {"payload": "later"}})

    async with raw_server(with_welcome=[early], on_frame=on_frame) as url:
        with anyio.fail_after(5):
            async with realtime_pubsub.connect(url) as client:
                assert client.connection.id == "raw1"
                async with client.listen("t.m") as messages:
                    await client.subscribe("t")
                    message = await next_message(messages)
    assert message.payload == "later"
