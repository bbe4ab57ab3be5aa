"""The blocking facade, from plain (non-async) tests; the gateway runs on a thread of its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from anyio.from_thread import start_blocking_portal

import realtime_pubsub
import realtime_pubsub.blocking
from realtime_pubsub.gateway import Gateway, serve
from realtime_pubsub.testing import ALL_PERMISSIONS


@pytest.fixture(params=["asyncio", "trio"])
def gateway(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with (
        start_blocking_portal(request.param) as portal,
        portal.wrap_async_context_manager(serve()) as gateway,
    ):
        yield gateway


def url(gateway: Gateway) -> str:
    return gateway.url(gateway.mint_token(permissions=ALL_PERMISSIONS))


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_publish_ack_and_iterate(gateway: Gateway, backend: str) -> None:
    threads = threading.active_count()
    with realtime_pubsub.blocking.connect(url(gateway), backend=backend) as client:  # type: ignore[arg-type]
        assert client.state is realtime_pubsub.ConnectionState.OPEN
        client.subscribe("chat")
        assert client.subscriptions == {"chat"}
        with client.listen("chat.*") as messages:
            receipt = client.publish("chat", {"n": 1}, message_type="text")
            assert receipt.wait_for_ack(timeout=5).id == receipt.id
            message = next(iter(messages))
            assert message.payload == {"n": 1}
            assert messages.get(timeout=0.05) is None
        client.unsubscribe("chat")
    assert threading.active_count() == threads  # the loop's thread is gone


def test_rpc_and_callbacks(gateway: Gateway) -> None:
    with (
        realtime_pubsub.blocking.connect(url(gateway)) as backend,
        realtime_pubsub.blocking.connect(url(gateway)) as caller,
    ):
        backend.subscribe("secure/inbound")
        listener = backend.on("secure/inbound.q", lambda m, reply: reply(m.payload + 1))
        reply = caller.send(41, message_type="q").wait_for_reply(timeout=5)
        assert reply.data == 42
        assert backend.off(listener) is True
        caller.once("priv/*.nothing", lambda m, r: None)
        with pytest.raises(realtime_pubsub.WaitTimeout):
            caller.wait_for("nothing.*", timeout=0.05)


def test_errors_come_through_as_themselves(gateway: Gateway) -> None:
    with pytest.raises(realtime_pubsub.AuthenticationError):
        with realtime_pubsub.blocking.connect(gateway.url(gateway.mint_token(ttl=-5))):
            pass
    with realtime_pubsub.blocking.connect(url(gateway)) as client:
        with pytest.raises(TypeError):
            client.publish("t", object())
        gateway_acks = client.publish("t", 1)
        assert "BlockingReceipt" in repr(gateway_acks)
        assert "access_token=***" in repr(client)
