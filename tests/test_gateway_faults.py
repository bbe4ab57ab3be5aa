"""The gateway's public fault injection, which our client tests and users' tests rely on."""

from __future__ import annotations

import anyio
import pytest

from realtime_pubsub.gateway import Gateway
from realtime_pubsub.testing import ALL_PERMISSIONS

from .raw import connect, subscribed, url_for

pytestmark = pytest.mark.anyio


async def test_connections_lists_subject_permissions_and_subscriptions(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw, subject="alice")) as alice:
        await subscribed(gw, alice, "chat")
        await subscribed(gw, alice, "secure/inbound")
        [snapshot] = gw.connections()
    assert snapshot.id == alice.id
    assert snapshot.subject == "alice"
    assert snapshot.permissions == ALL_PERMISSIONS
    assert snapshot.subscriptions == {"chat", "secure/inbound"}
    assert snapshot.app_id == "default"
    assert not snapshot.paused


async def test_close_connection_with_code_and_reason(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as client:
        gw.close_connection(client.id, 4001, "maintenance")
        assert await client.expect_close() == (4001, "maintenance")
    with anyio.fail_after(5):
        await gw.wait_for_disconnect(client.id)
    assert gw.connections() == []


async def test_drop_connection_sends_no_close_frame(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as client, connect(url_for(gw)) as other:
        gw.drop_connection(client.id)
        assert await client.expect_close() == (1006, "")
        await other.publish("t", 1, id="alive")
        assert (await other.recv_json())["data"]["data"] == "alive"


async def test_paused_connection_answers_no_pings_until_resumed(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as client, connect(url_for(gw)) as other:
        await subscribed(gw, client, "chat")
        assert await client.ping_answered(2.0)
        gw.pause_connection(client.id)
        assert [c.paused for c in gw.connections() if c.id == client.id] == [True]
        assert not await client.ping_answered(0.3)
        await other.publish("chat", "while paused")
        await client.expect_silence(0.2)
        gw.resume_connection(client.id)
        frame = await client.recv_json()
        assert frame["data"]["payload"] == "while paused"
        assert await client.ping_answered(2.0)


async def test_restart_refuses_connections_then_serves_on_the_same_port(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    port = gw.port
    async with connect(url_for(gw)) as client:
        await gw.stop_accepting()
        assert not gw.accepting
        assert (await client.expect_close())[0] == 1006
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)
    await gw.start_accepting()
    assert gw.port == port and gw.accepting
    async with connect(url_for(gw)) as again:
        assert again.id
    await gw.restart(downtime=0.05)
    async with connect(url_for(gw)) as after_restart:
        assert after_restart.id


async def test_acks_can_be_withheld_and_delayed_at_run_time(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as client:
        gw.acks = False
        await client.publish("t", 1, id="withheld")
        await client.expect_silence(0.1)
        gw.acks = True
        gw.ack_delay = 0.3
        await client.publish("t", 2, id="late")
        await client.expect_silence(0.1)
        assert (await client.recv_json())["data"]["data"] == "late"


async def test_send_raw_text_and_bytes(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as client:
        gw.send_raw(client.id, '{"topic":"x","messageType":"y","data":1}')
        gw.send_raw(client.id, b'{"topic":"x","messageType":"z","data":2}')
        assert await client.recv_frame() == ({"topic": "x", "messageType": "y", "data": 1}, False)
        assert await client.recv_frame() == ({"topic": "x", "messageType": "z", "data": 2}, True)
        gw.send_raw(client.id, b"\xff not utf-8", text=True)
        # websockets' client refuses invalid UTF-8 in a text frame, as RFC 6455 says: 1007.
        assert (await client.expect_close())[0] == 1007


async def test_unknown_connection_is_a_key_error(realtime_pubsub_gateway: Gateway) -> None:
    with pytest.raises(KeyError):
        realtime_pubsub_gateway.drop_connection("nope")
