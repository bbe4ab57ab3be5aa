"""The pytest plugin we ship to users (realtime_pubsub.testing), used as a user would."""

from __future__ import annotations

import anyio
import pytest

from realtime_pubsub.gateway import Gateway

from .raw import connect

pytestmark = pytest.mark.anyio


async def test_gateway_fixture_serves_on_a_free_port(realtime_pubsub_gateway: Gateway) -> None:
    assert realtime_pubsub_gateway.port > 0
    assert realtime_pubsub_gateway.accepting


async def test_url_fixture_has_every_permission(
    realtime_pubsub_gateway: Gateway, realtime_pubsub_url: str
) -> None:
    async with connect(realtime_pubsub_url) as client:
        await client.subscribe("secure/inbound")
        await client.publish("anything", 1, id="ok")
        assert (await client.recv_json())["data"]["data"] == "ok"
    with anyio.fail_after(5):
        await realtime_pubsub_gateway.wait_for_disconnect(client.id)
    assert realtime_pubsub_gateway.connections() == []


def test_plugin_is_registered_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("realtime_pubsub")
