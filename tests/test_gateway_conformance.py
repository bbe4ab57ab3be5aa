"""The gateway against PROTOCOL.md, one behaviour per test, driven by websockets' own client
over loopback on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from websockets.exceptions import InvalidStatus

from realtime_pubsub.gateway import Gateway, serve
from realtime_pubsub.testing import ALL_PERMISSIONS

from .raw import connect, subscribed, url_for

pytestmark = pytest.mark.anyio

VECTORS = json.loads((Path(__file__).parent / "data" / "official-client-frames.json").read_text())


# --------------------------------------------------------------------------- §1 connecting


async def test_welcome_is_the_first_frame_with_id_app_and_address(
    realtime_pubsub_gateway: Gateway,
) -> None:
    async with connect(url_for(realtime_pubsub_gateway), welcome=False) as client:
        frame, binary = await client.recv_frame()
    assert not binary
    assert frame["topic"] == "main" and frame["messageType"] == "welcome"
    connection = frame["data"]["connection"]
    assert isinstance(connection["id"], str) and connection["id"]
    assert connection["appId"] == "default"
    assert connection["remoteAddress"] == "127.0.0.1"


async def test_each_connection_gets_its_own_id(realtime_pubsub_gateway: Gateway) -> None:
    url = url_for(realtime_pubsub_gateway)
    async with connect(url) as a, connect(url) as b:
        assert a.id != b.id
        assert {c.id for c in realtime_pubsub_gateway.connections()} == {a.id, b.id}


@pytest.mark.parametrize(
    "query",
    ["", "?access_token=", "?access_token=not-a-jwt", "?other=1"],
    ids=["no-query", "empty", "malformed", "absent"],
)
async def test_missing_or_malformed_token_is_refused_with_401(
    realtime_pubsub_gateway: Gateway, query: str
) -> None:
    url = f"ws://127.0.0.1:{realtime_pubsub_gateway.port}/apps/demo{query}"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    assert info.value.response.status_code == 401


async def test_expired_token_is_refused_with_401(realtime_pubsub_gateway: Gateway) -> None:
    token = realtime_pubsub_gateway.mint_token(ttl=-60)
    with pytest.raises(InvalidStatus) as info:
        async with connect(realtime_pubsub_gateway.url(token)):
            pass
    assert info.value.response.status_code == 401


async def test_with_a_secret_only_tokens_signed_with_it_pass() -> None:
    import jwt

    async with serve(secret="a-secret-of-at-least-thirty-two-bytes") as gateway:
        async with connect(gateway.url(gateway.mint_token())) as client:
            assert client.id
        forged = [
            jwt.encode(
                {"sub": "x", "exp": 2**40},
                "another-secret-of-thirty-two-bytes-or-more",
                algorithm="HS256",
            ),
            jwt.encode({"sub": "x", "exp": 2**40}, "", algorithm="none"),
        ]
        for token in forged:
            with pytest.raises(InvalidStatus) as info:
                async with connect(gateway.url(token)):
                    pass
            assert info.value.response.status_code == 401


@pytest.mark.parametrize("path", ["/", "/apps", "/apps/", "/other/x", "/apps/x/y"])
async def test_a_path_other_than_apps_app_id_is_404(
    realtime_pubsub_gateway: Gateway, path: str
) -> None:
    token = realtime_pubsub_gateway.mint_token()
    url = f"ws://127.0.0.1:{realtime_pubsub_gateway.port}{path}?access_token={token}"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    assert info.value.response.status_code == 404


async def test_with_an_app_id_other_apps_are_404() -> None:
    async with serve(app_id="mine") as gateway:
        token = gateway.mint_token()
        async with connect(gateway.url(token)) as client:
            assert client.welcome["data"]["connection"]["appId"] == "mine"
        with pytest.raises(InvalidStatus) as info:
            async with connect(gateway.url(token, app_id="theirs")):
                pass
        assert info.value.response.status_code == 404


async def test_apps_never_see_each_others_topics(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    token = gw.mint_token(permissions=ALL_PERMISSIONS)
    async with (
        connect(gw.url(token, app_id="one")) as one,
        connect(gw.url(token, app_id="two")) as two,
    ):
        await subscribed(gw, one, "chat")
        await subscribed(gw, one, "secure/inbound")
        await two.publish("chat", "hello?")
        await two.send_json({"type": "message", "data": {"payload": "x"}})
        await one.expect_silence()


# --------------------------------------------------------------------------- §2 frames


async def test_publish_fans_out_with_client_and_id(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with (
        connect(url_for(gw, subject="alice")) as alice,
        connect(url_for(gw, subject="bob")) as bob,
    ):
        await subscribed(gw, bob, "chat")
        await alice.publish("chat", {"text": "hi"}, messageType="text-message", id="m-1")
        frame = await bob.recv_json()
    assert frame["topic"] == "chat"
    assert frame["messageType"] == "text-message"
    assert frame["data"]["payload"] == {"text": "hi"}
    assert frame["data"]["id"] == "m-1"
    assert frame["data"]["client"] == {
        "connectionId": alice.id,
        "subject": "alice",
        "permissions": list(ALL_PERMISSIONS),
    }


async def test_publisher_subscribed_to_the_topic_receives_its_own_message(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as client:
        await subscribed(gw, client, "chat")
        await client.publish("chat", "echo")
        frame = await client.recv_json()
    assert frame["data"]["payload"] == "echo"


async def test_message_type_defaults_to_broadcast(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as a, connect(url_for(gw)) as b:
        await subscribed(gw, b, "chat")
        await a.publish("chat", "plain")
        frame = await b.recv_json()
    assert frame["messageType"] == "broadcast"
    assert "id" not in frame["data"]


async def test_unsubscribe_stops_delivery(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as a, connect(url_for(gw)) as b:
        await subscribed(gw, b, "chat")
        await b.send_json({"type": "unsubscribe", "data": {"topic": "chat"}})
        # The gateway handles one connection's frames in order: once this is acked, the
        # unsubscribe has been processed.
        await b.publish("elsewhere", 0, id="after-unsubscribe")
        assert (await b.recv_json())["data"]["data"] == "after-unsubscribe"
        await a.publish("chat", "gone")
        await b.expect_silence()


async def test_subscribing_twice_delivers_once(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as a, connect(url_for(gw)) as b:
        await subscribed(gw, b, "chat")
        await subscribed(gw, b, "chat")
        await a.publish("chat", 1)
        assert (await b.recv_json())["data"]["payload"] == 1
        await b.expect_silence()


async def test_send_reaches_secure_inbound_subscribers(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with (
        connect(url_for(gw, subject="backend")) as backend,
        connect(url_for(gw, subject="caller", permissions=[])) as caller,
    ):
        await subscribed(gw, backend, "secure/inbound")
        await caller.send_json(
            {"type": "message", "data": {"messageType": "create-user", "payload": {"a": 1}}}
        )
        await caller.send_json({"type": "message", "data": {"payload": "Done!", "id": "r1"}})
        first = await backend.recv_json()
        second = await backend.recv_json()
    assert first["topic"] == "secure/inbound"
    assert first["messageType"] == "create-user"
    assert first["data"]["payload"] == {"a": 1}
    assert first["data"]["client"]["connectionId"] == caller.id
    assert first["data"]["client"]["subject"] == "caller"
    assert second["messageType"] == "broadcast"
    assert second["data"]["id"] == "r1"


async def test_reply_on_priv_topic_reaches_only_the_requester(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with (
        connect(url_for(gw)) as backend,
        connect(url_for(gw, permissions=[])) as caller,
        connect(url_for(gw)) as bystander,
    ):
        await subscribed(gw, backend, "secure/inbound")
        await caller.send_json({"type": "message", "data": {"payload": "time?", "id": "q-1"}})
        request = await backend.recv_json()
        requester = request["data"]["client"]["connectionId"]
        await backend.publish(
            f"priv/{requester}",
            {"data": {"t": 1}, "status": "ok", "id": request["data"]["id"]},
            messageType="response",
            id="reply-1",
        )
        frames = [await caller.recv_json(), await caller.recv_json()]
        await bystander.expect_silence()
    reply = next(f for f in frames if f["messageType"] == "response")
    assert reply["topic"] == f"priv/{caller.id}"
    assert reply["data"]["payload"] == {"data": {"t": 1}, "status": "ok", "id": "q-1"}
    assert reply["data"]["client"]["connectionId"] == backend.id


async def test_another_connections_priv_topic_cannot_be_subscribed(
    realtime_pubsub_gateway: Gateway,
) -> None:
    """[E] Replies travel on priv/<connection id>: reading someone else's is refused the
    way a secure topic without permission is (regression: any connection could)."""
    gw = realtime_pubsub_gateway
    async with (
        connect(url_for(gw)) as backend,
        connect(url_for(gw)) as caller,
        connect(url_for(gw)) as snoop,
    ):
        await snoop.subscribe(f"priv/{caller.id}")
        assert await snoop.expect_close() == (1008, "Subscription to secure topic is forbidden!")
        await backend.publish(f"priv/{caller.id}", {"data": 1, "status": "ok", "id": "q"})
        assert (await caller.recv_json())["topic"] == f"priv/{caller.id}"


async def test_subscribing_to_ones_own_priv_topic_changes_nothing(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as client:
        await client.subscribe(f"priv/{client.id}")
        await client.publish(f"priv/{client.id}", "to myself", id="own")
        frames = [await client.recv_json(), await client.recv_json()]
        assert {f["topic"] for f in frames} == {f"priv/{client.id}", "priv/acks"}
        assert [c.subscriptions for c in gw.connections()] == [frozenset()]


async def test_publish_and_send_with_an_id_are_acked_to_the_sender_only(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as a, connect(url_for(gw)) as b:
        await a.publish("nobody-listens", 1, id="p-1")
        await a.send_json({"type": "message", "data": {"payload": 2, "id": "s-1"}})
        acks = [await a.recv_json(), await a.recv_json()]
        await b.expect_silence(0.1)
    assert acks == [
        {"topic": "priv/acks", "messageType": "ack", "data": {"data": "p-1"}},
        {"topic": "priv/acks", "messageType": "ack", "data": {"data": "s-1"}},
    ]


async def test_no_ack_without_an_id(realtime_pubsub_gateway: Gateway) -> None:
    async with connect(url_for(realtime_pubsub_gateway)) as a:
        await a.publish("t", 1)
        await a.send_json({"type": "message", "data": {"payload": 2}})
        await a.expect_silence()


async def test_acks_can_be_switched_off() -> None:
    async with serve(acks=False) as gateway, connect(url_for(gateway)) as a:
        await a.publish("t", 1, id="p-1")
        await a.expect_silence()


async def test_compress_true_is_delivered_as_a_binary_frame(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as a, connect(url_for(gw)) as b:
        await subscribed(gw, b, "chat")
        await a.publish("chat", {"a": 1}, compress=True)
        await a.publish("chat", {"a": 2}, compress=False)
        first, first_binary = await b.recv_frame()
        second, second_binary = await b.recv_frame()
    assert (first["data"]["payload"], first_binary) == ({"a": 1}, True)
    assert (second["data"]["payload"], second_binary) == ({"a": 2}, False)


async def test_permessage_deflate_is_negotiated_when_offered(
    realtime_pubsub_gateway: Gateway,
) -> None:
    url = url_for(realtime_pubsub_gateway)
    async with connect(url) as offered, connect(url, compression=None) as plain:
        offered_header = offered.ws.response.headers.get("Sec-WebSocket-Extensions", "")
        plain_header = plain.ws.response.headers.get("Sec-WebSocket-Extensions")
    assert offered_header.startswith("permessage-deflate")
    assert plain_header is None


async def test_every_official_client_frame_is_accepted(realtime_pubsub_gateway: Gateway) -> None:
    """The frames captured from the official JS and Python clients (test vectors)."""
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as sender, connect(url_for(gw)) as watcher:
        await subscribed(gw, watcher, "secure/inbound")
        for vector in VECTORS["client_frames"]:
            await sender.send_json(vector["frame"])
        # Every frame with an id is acknowledged: the connection survived all of them.
        ids = [
            v["frame"]["data"]["id"]
            for v in VECTORS["client_frames"]
            if "id" in v["frame"]["data"]
        ]
        acked: list[str] = []
        while len(acked) < len(ids):
            frame = await sender.recv_json()
            if frame["topic"] == "priv/acks":
                acked.append(frame["data"]["data"])
        assert [c.id for c in gw.connections() if c.id == sender.id] == [sender.id]
        sends = [v["frame"] for v in VECTORS["client_frames"] if v["frame"]["type"] == "message"]
        delivered = [await watcher.recv_json() for _ in sends]
    assert acked == ids
    assert [d["data"]["payload"] for d in delivered] == [s["data"]["payload"] for s in sends]
    assert [d["messageType"] for d in delivered] == [
        s["data"].get("messageType", "broadcast") for s in sends
    ]


# --------------------------------------------------------------------------- §5 permissions


async def test_secure_subscription_without_permission_closes_1008(
    realtime_pubsub_gateway: Gateway,
) -> None:
    url = url_for(realtime_pubsub_gateway, permissions=["realtime:publisher:write:topic:*"])
    async with connect(url) as client:
        await client.subscribe("secure/inbound")
        assert await client.expect_close() == (1008, "Subscription to secure topic is forbidden!")


async def test_plain_topics_need_no_read_permission(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw, permissions=[])) as client:
        await subscribed(gw, client, "news")


@pytest.mark.parametrize(
    ("permission", "topic", "allowed"),
    [
        ("realtime:subscriber:read:topic:*", "secure/inbound", True),
        ("realtime:subscriber:read:topic:secure/*", "secure/a/b", True),
        ("realtime:subscriber:read:topic:secure/inbound", "secure/inbound", True),
        ("realtime:subscriber:read:topic:secure/in*", "secure/inbound", True),
        ("realtime:subscriber:read:topic:secure/other", "secure/inbound", False),
        ("realtime:publisher:write:topic:*", "secure/inbound", False),
    ],
)
async def test_read_permission_patterns(
    realtime_pubsub_gateway: Gateway, permission: str, topic: str, allowed: bool
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw, permissions=[permission])) as client:
        if allowed:
            await subscribed(gw, client, topic)
        else:
            await client.subscribe(topic)
            assert (await client.expect_close())[0] == 1008


async def test_publish_without_write_permission_closes_1008(
    realtime_pubsub_gateway: Gateway,
) -> None:
    url = url_for(realtime_pubsub_gateway, permissions=["realtime:publisher:write:topic:chat"])
    async with connect(url) as client:
        await client.publish("chat", "allowed", id="ok-1")
        assert (await client.recv_json())["data"]["data"] == "ok-1"
        await client.publish("chat/other", "not allowed")
        assert await client.expect_close() == (1008, "Publishing to topic is forbidden!")


async def test_scope_claim_grants_permissions_too(realtime_pubsub_gateway: Gateway) -> None:
    import jwt

    gw = realtime_pubsub_gateway
    token = jwt.encode(
        {"sub": "s", "scope": "realtime:subscriber:read:topic:secure/*"},
        "any-key-of-thirty-two-bytes-or-longer",
        algorithm="HS256",
    )
    async with connect(gw.url(token)) as client:
        await subscribed(gw, client, "secure/inbound")


async def test_replies_need_no_write_permission(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw, permissions=[])) as a, connect(url_for(gw)) as b:
        await a.publish(
            f"priv/{b.id}", {"data": 1, "status": "ok", "id": "x"}, messageType="response"
        )
        assert (await b.recv_json())["messageType"] == "response"


# --------------------------------------------------------------------------- presence


async def test_presence_connected_and_disconnected(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw, subject="backend")) as backend:
        await subscribed(gw, backend, "secure/inbound")
        async with connect(url_for(gw, subject="device-7", permissions=[])) as device:
            joined = await backend.recv_json()
        left = await backend.recv_json()
    for frame, status in ((joined, "connected"), (left, "disconnected")):
        assert frame["topic"] == "secure/inbound"
        assert frame["messageType"] == "presence"
        assert frame["data"]["payload"] == {"status": status}
        assert frame["data"]["client"]["connectionId"] == device.id
        assert frame["data"]["client"]["subject"] == "device-7"


# --------------------------------------------------------------------------- §6 bad input


@pytest.mark.parametrize(
    ("data", "code", "reason_part"),
    [
        ("not json", 1003, "JSON"),
        ("[1, 2]", 1003, "not a JSON object"),
        ('"text"', 1003, "not a JSON object"),
        (b"\xff\xfe\x00garbage", 1003, "UTF-8"),
        ("{}", 1008, "'type'"),
        ('{"type": 7, "data": {}}', 1008, "'type'"),
        ('{"type": "dance", "data": {}}', 1008, "unknown message type 'dance'"),
        ('{"type": "subscribe"}', 1008, "'data'"),
        ('{"type": "subscribe", "data": {}}', 1008, "missing field 'topic'"),
        ('{"type": "subscribe", "data": {"topic": ""}}', 1008, "'topic'"),
        ('{"type": "unsubscribe", "data": {"topic": 5}}', 1008, "'topic'"),
        ('{"type": "publish", "data": {"topic": "t"}}', 1008, "missing field 'payload'"),
        ('{"type": "publish", "data": {"payload": 1}}', 1008, "missing field 'topic'"),
        ('{"type": "publish", "data": {"topic": "t", "payload": 1, "id": 5}}', 1008, "'id'"),
        ('{"type": "message", "data": {"payload": 1, "compress": "yes"}}', 1008, "'compress'"),
        ('{"type": "message", "data": {"payload": 1, "messageType": []}}', 1008, "'messageType'"),
        ('{"type": "message", "data": {}}', 1008, "missing field 'payload'"),
    ],
)
async def test_bad_frames_close_only_the_offender(
    realtime_pubsub_gateway: Gateway, data: str | bytes, code: int, reason_part: str
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as bystander, connect(url_for(gw)) as offender:
        await subscribed(gw, bystander, "chat")
        await offender.send(data)
        closed_code, reason = await offender.expect_close()
        assert closed_code == code
        assert reason_part in reason
        await bystander.publish("chat", "still here", id="a-1")
        frames = [await bystander.recv_json(), await bystander.recv_json()]
        assert {f["topic"] for f in frames} == {"chat", "priv/acks"}


async def test_frames_above_the_size_limit_close_1009() -> None:
    async with serve(max_message_size=1024) as gw:
        async with connect(url_for(gw)) as bystander, connect(url_for(gw)) as offender:
            await offender.publish("chat", "x" * 900, id="fits")
            assert (await offender.recv_json())["data"]["data"] == "fits"
            await offender.publish("chat", "x" * 2000)
            assert (await offender.expect_close())[0] == 1009
            await bystander.publish("t", 1, id="b")
            assert (await bystander.recv_json())["data"]["data"] == "b"


async def test_a_client_vanishing_mid_frame_affects_nobody_else(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with connect(url_for(gw)) as bystander:
        token = gw.mint_token()
        async with await anyio.connect_tcp("127.0.0.1", gw.port) as tcp:
            await tcp.send(
                f"GET /apps/default?access_token={token} HTTP/1.1\r\nHost: x\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            response = await tcp.receive()
            assert response.startswith(b"HTTP/1.1 101")
            await gw.wait_for_connections(2)
            # A masked text frame header announcing 100 bytes, then only 3 of them.
            await tcp.send(b"\x81\xe4\x00\x00\x00\x00abc")
        with anyio.fail_after(5):
            while len(gw.connections()) != 1:
                await anyio.sleep(0.005)
        await bystander.publish("t", 1, id="still")
        assert (await bystander.recv_json())["data"]["data"] == "still"


async def test_plain_http_request_is_answered_and_closed(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    token = gw.mint_token()
    async with await anyio.connect_tcp("127.0.0.1", gw.port) as tcp:
        await tcp.send(f"GET /apps/x?access_token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        response = await tcp.receive()
    assert response.startswith(b"HTTP/1.1 4")
