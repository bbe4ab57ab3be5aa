"""What matters to plain code, written once and run against the async client and the blocking
client alike (tests/clients.py puts both behind one interface), on trio and on asyncio; the
blocking client runs its own loop on the same backend as the test."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import realtime_pubsub
from realtime_pubsub import CloseInfo, ConnectionInfo, ConnectionState, ReconnectPolicy
from realtime_pubsub.gateway import Gateway

from .clients import KINDS, Api, Calls, Kind, StreamApi, kind_named
from .raw import url_for

pytestmark = pytest.mark.anyio

FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)
BACKEND = ("realtime:subscriber:read:topic:secure/inbound", "realtime:publisher:write:topic:*")


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, anyio_backend: str) -> Kind:
    return kind_named(request.param, anyio_backend)


@pytest.fixture
def gateway(realtime_pubsub_gateway: Gateway) -> Gateway:
    return realtime_pubsub_gateway


async def next_message(messages: StreamApi, timeout: float = 10) -> Any:
    with anyio.fail_after(timeout):
        return await messages.__anext__()


def backend(kind: Kind, gateway: Gateway) -> Any:
    """A client whose token lets it serve ``secure/inbound``."""
    return kind.connect(url_for(gateway, subject="backend", permissions=BACKEND))


def caller(kind: Kind, gateway: Gateway, **options: Any) -> Any:
    return kind.connect(url_for(gateway, subject="caller"), **options)


# --------------------------------------------------------------------------- publishing


async def test_a_publish_is_acknowledged(kind: Kind, gateway: Gateway) -> None:
    async with caller(kind, gateway) as client:
        assert await client.state() is ConnectionState.OPEN
        receipt = await client.publish("chat", {"n": 1}, message_type="text")
        ack = await receipt.wait_for_ack(timeout=10)
        assert ack.id == receipt.id


async def test_listen_gets_what_is_published_in_order(kind: Kind, gateway: Gateway) -> None:
    async with caller(kind, gateway) as listener, backend(kind, gateway) as publisher:
        await listener.subscribe("chat")
        assert await listener.subscriptions() == {"chat"}
        async with listener.listen("chat.*") as messages:
            await gateway.wait_for_subscribers("chat")
            for n in range(5):
                await publisher.publish("chat", n, message_type="text")
            received = [await next_message(messages) for _ in range(5)]
        await listener.unsubscribe("chat")
        assert await listener.subscriptions() == frozenset()
    assert [message.payload for message in received] == [0, 1, 2, 3, 4]
    assert {(m.topic, m.message_type) for m in received} == {("chat", "text")}
    assert received[0].client is not None
    assert received[0].client.subject == "backend"


async def test_wait_for_returns_the_next_matching_message(kind: Kind, gateway: Gateway) -> None:
    async with caller(kind, gateway) as client, backend(kind, gateway) as publisher:
        await client.subscribe("chat")
        await gateway.wait_for_subscribers("chat")
        got: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def wait() -> None:
                got.append(await client.wait_for("chat.*", timeout=10))

            tg.start_soon(wait)
            # wait_for registers itself at some point of its own: publish until it has seen one.
            with anyio.fail_after(10):
                while not got:
                    await publisher.publish("chat", "hello", message_type="text")
                    await anyio.sleep(0.02)
    assert got[0].payload == "hello"
    assert got[0].message_type == "text"


# --------------------------------------------------------------------------- request/reply


async def test_a_backend_answers_what_is_sent_to_it(kind: Kind, gateway: Gateway) -> None:
    async with backend(kind, gateway) as service, caller(kind, gateway) as client:
        await service.subscribe("secure/inbound")
        async with service.listen("secure/inbound.sum") as requests:
            await gateway.wait_for_subscribers("secure/inbound")
            receipt = await client.send([1, 2, 3], message_type="sum")
            request = await next_message(requests)
            assert request.client.subject == "caller"
            await request.reply(sum(request.payload))
            reply = await receipt.wait_for_reply(timeout=10)
    assert (reply.data, reply.status, reply.id) == (6, "ok", receipt.id)


async def test_a_published_message_is_answered_with_a_status(kind: Kind, gateway: Gateway) -> None:
    async with caller(kind, gateway) as asker, backend(kind, gateway) as answerer:
        await answerer.subscribe("questions")
        async with answerer.listen("questions.*") as questions:
            await gateway.wait_for_subscribers("questions")
            receipt = await asker.publish("questions", "why?", message_type="ask")
            question = await next_message(questions)
            await question.reply("because", status="error")
            reply = await receipt.wait_for_reply(timeout=10)
    assert (reply.data, reply.status) == ("because", "error")


async def test_a_handler_answers_requests(kind: Kind, gateway: Gateway) -> None:
    async with backend(kind, gateway) as service, caller(kind, gateway) as client:
        await service.subscribe("secure/inbound")
        await service.on(
            "secure/inbound.double", lambda message, reply: reply(message.payload * 2)
        )
        await gateway.wait_for_subscribers("secure/inbound")
        replies = []
        for n in (1, 2, 3):
            receipt = await client.send(n, message_type="double")
            replies.append((await receipt.wait_for_reply(timeout=10)).data)
    assert replies == [2, 4, 6]


async def test_once_answers_the_first_request_only(kind: Kind, gateway: Gateway) -> None:
    async with backend(kind, gateway) as service, caller(kind, gateway) as client:
        await service.subscribe("secure/inbound")
        await service.once("secure/inbound.q", lambda message, reply: reply("first"))
        await gateway.wait_for_subscribers("secure/inbound")
        first = await client.send(None, message_type="q")
        assert (await first.wait_for_reply(timeout=10)).data == "first"
        second = await client.send(None, message_type="q")
        with pytest.raises(realtime_pubsub.ReplyTimeout):
            await second.wait_for_reply(timeout=0.3)


async def test_off_removes_a_handler(kind: Kind, gateway: Gateway) -> None:
    async with backend(kind, gateway) as service, caller(kind, gateway) as client:
        await service.subscribe("secure/inbound")
        handler = await service.on("secure/inbound.q", lambda message, reply: reply("yes"))
        await gateway.wait_for_subscribers("secure/inbound")
        receipt = await client.send(None, message_type="q")
        assert (await receipt.wait_for_reply(timeout=10)).data == "yes"
        assert await service.off(handler) is True
        assert await service.off(handler) is False
        receipt = await client.send(None, message_type="q")
        with pytest.raises(realtime_pubsub.ReplyTimeout):
            await receipt.wait_for_reply(timeout=0.3)


async def test_a_handler_that_raises_is_reported_as_an_error_event(
    kind: Kind, gateway: Gateway
) -> None:
    def fail(message: Any, reply: Any) -> None:
        raise LookupError(message.payload)

    errors = Calls()
    async with caller(kind, gateway) as client:
        await client.subscribe("chat")
        await client.on("error", errors)
        await client.on("chat.*", fail)
        ok = Calls()
        await client.on("chat.*", ok)  # another registration carries on
        await gateway.wait_for_subscribers("chat")
        await client.publish("chat", "boom")
        await client.publish("chat", "again")
        [first, second] = await errors.wait(2)
        assert await ok.wait(2)
    assert isinstance(first, LookupError)
    assert (first.args, second.args) == (("boom",), ("again",))


# --------------------------------------------------------------------------- the connection


async def test_handlers_see_the_connection_come_and_go(kind: Kind, gateway: Gateway) -> None:
    async with caller(kind, gateway, reconnect=FAST) as client:
        started, closed = Calls(), Calls()
        await client.on("session.started", started)
        await client.on("close", closed)
        first = await client.connection()
        gateway.close_connection(first.id, 4000, "bye")
        [info] = await started.wait(1)
        assert await closed.wait(1) == [CloseInfo(4000, "bye")]
    assert isinstance(info, ConnectionInfo)
    assert info.id != first.id


async def test_after_a_gateway_restart_the_client_comes_back(kind: Kind, gateway: Gateway) -> None:
    async with caller(kind, gateway, reconnect=FAST) as client:
        await client.subscribe("news")
        first = await client.connection()
        started = Calls()
        await client.on("session.started", started)
        async with client.listen("news.*") as messages:
            await gateway.restart()
            [info] = await started.wait(1)
            # Subscriptions are replayed before session.started; the gateway has them soon.
            with anyio.fail_after(10):
                await gateway.wait_for_subscribers("news")
            async with backend(kind, gateway) as publisher:
                await publisher.publish("news", "after")
            assert (await next_message(messages)).payload == "after"
        assert (await client.connection()).id == info.id != first.id
        receipt = await client.publish("news", "ack me")
        assert (await receipt.wait_for_ack(timeout=10)).id == receipt.id


# --------------------------------------------------------------------------- timeouts


async def test_an_ack_that_never_comes_times_out(kind: Kind, gateway: Gateway) -> None:
    gateway.acks = False
    async with caller(kind, gateway) as client:
        receipt = await client.publish("t", 1)
        with pytest.raises(realtime_pubsub.AckTimeout):
            await receipt.wait_for_ack(timeout=0.1)


async def test_a_reply_that_never_comes_times_out(kind: Kind, gateway: Gateway) -> None:
    async with caller(kind, gateway) as client:
        receipt = await client.send({"q": 1}, message_type="nobody-answers")
        with pytest.raises(realtime_pubsub.ReplyTimeout):
            await receipt.wait_for_reply(timeout=0.1)


async def test_an_event_that_never_comes_times_out(kind: Kind, gateway: Gateway) -> None:
    async with caller(kind, gateway) as client:
        with pytest.raises(realtime_pubsub.WaitTimeout):
            await client.wait_for("nothing.*", timeout=0.1)


# --------------------------------------------------------------------------- closing


async def test_closing_ends_listeners_and_waits(kind: Kind, gateway: Gateway) -> None:
    gateway.acks = False
    outcomes: list[str] = []

    async def consume(client: Api, listening: anyio.Event) -> None:
        async with client.listen("chat.*") as messages:
            listening.set()
            async for _ in messages:
                pass
        outcomes.append("listener ended")

    async def wait(client: Api, receipt: Any) -> None:
        with pytest.raises(realtime_pubsub.ClientClosed):
            await receipt.wait_for_ack(timeout=None)
        outcomes.append("wait failed")

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            async with caller(kind, gateway) as client:
                listening = anyio.Event()
                tg.start_soon(consume, client, listening)
                await listening.wait()
                tg.start_soon(wait, client, await client.publish("t", 1))
            assert await client.state() is ConnectionState.CLOSED
    assert sorted(outcomes) == ["listener ended", "wait failed"]
    with pytest.raises(realtime_pubsub.ClientClosed):
        await client.publish("t", 1)


async def test_leaving_the_block_disconnects(kind: Kind, gateway: Gateway) -> None:
    async with backend(kind, gateway) as watcher:
        await watcher.subscribe("secure/inbound")
        presence = Calls()
        await watcher.on("secure/inbound.presence", presence)
        await gateway.wait_for_subscribers("secure/inbound")
        async with caller(kind, gateway):
            pass
        connected, disconnected = await presence.wait(2)
    assert connected.payload == {"status": "connected"}
    assert disconnected.payload == {"status": "disconnected"}
