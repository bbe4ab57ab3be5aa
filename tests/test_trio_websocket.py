"""The trio-websocket transport passes the client's core scenarios (trio only: it is a trio
library)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import realtime_pubsub
from realtime_pubsub.gateway import Gateway
from realtime_pubsub.testing import ALL_PERMISSIONS
from realtime_pubsub.transports import Transport, TrioWebsocketTransport

pytest.importorskip("trio_websocket")

pytestmark = pytest.mark.anyio
FAST = realtime_pubsub.ReconnectPolicy(initial_delay=0.01, max_delay=0.05)


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


def connect(gateway: Gateway, **kwargs: Any) -> Any:
    transport: Transport = TrioWebsocketTransport()
    token = kwargs.pop("token", None) or gateway.mint_token(permissions=ALL_PERMISSIONS)
    return realtime_pubsub.connect(
        gateway.url(token), transport=transport, reconnect=FAST, **kwargs
    )


async def test_publish_ack_and_listen(realtime_pubsub_gateway: Gateway) -> None:
    async with connect(realtime_pubsub_gateway) as client:
        await client.subscribe("chat")
        async with client.listen("chat.*") as messages:
            receipt = await client.publish("chat", {"a": 1}, compress=True)
            assert (await receipt.wait_for_ack(timeout=5)).id == receipt.id
            with anyio.fail_after(5):
                message = await messages.__anext__()
    assert message.payload == {"a": 1}
    assert message.compression is True


async def test_rpc(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(gw) as backend, connect(gw) as caller:
        await backend.subscribe("secure/inbound")
        backend.on("secure/inbound.q", lambda message, reply: reply(message.payload * 2))
        receipt = await caller.send(21, message_type="q")
        assert (await receipt.wait_for_reply(timeout=5)).data == 42


async def test_reconnects_and_restores_subscriptions(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(gw) as client:
        await client.subscribe("news")
        first = client.connection.id
        gw.drop_connection(first)
        info = await client.wait_for("session.started", timeout=5)
        assert info.id != first
        async with client.listen("news.*") as messages:
            await client.publish("news", "back")
            with anyio.fail_after(5):
                assert (await messages.__anext__()).payload == "back"


async def test_half_open_is_detected(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(gw, heartbeat_interval=0.1, heartbeat_timeout=0.2) as client:
        first = client.connection.id
        gw.pause_connection(first)
        info = await client.wait_for("session.started", timeout=5)
        assert info.id != first


async def test_refused_and_forbidden(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    with pytest.raises(realtime_pubsub.AuthenticationError):
        async with connect(gw, token=gw.mint_token(ttl=-5)):
            pass

    async def forbidden() -> None:
        async with connect(gw, token=gw.mint_token(permissions=[])) as client:
            await client.subscribe("secure/x")
            await anyio.sleep(5)

    with pytest.raises(realtime_pubsub.Forbidden):
        await forbidden()
