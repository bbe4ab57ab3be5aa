"""Property-based fuzzing of both directions of the wire, through real sockets: hostile frames
from the gateway (its raw-frame fault) to the client, and from a raw client to the gateway."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import realtime_pubsub
from realtime_pubsub import ProtocolError
from realtime_pubsub._protocol import parse_gateway_frame
from realtime_pubsub.gateway import serve
from realtime_pubsub.gateway._auth import Identity
from realtime_pubsub.gateway._broker import Broker, Close
from realtime_pubsub.testing import ALL_PERMISSIONS

from .raw import connect as raw_connect
from .support import Collector

BACKENDS = ["asyncio", "trio"]
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
field_values = json_values | st.sampled_from(["main", "priv/acks", "ack", "welcome", "response"])
gateway_objects = st.fixed_dictionaries(
    {},
    optional={
        "topic": field_values,
        "messageType": field_values,
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "connection": json_values,
                "data": json_values,
                "payload": json_values,
                "client": json_values,
                "id": json_values,
            },
        ),
    },
)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


#: (data, binary) frames as the gateway may send them.
hostile_frames = st.one_of(
    json_values.map(lambda v: (orjson.dumps(v), False)),
    gateway_objects.map(lambda v: (orjson.dumps(v), False)),
    gateway_objects.map(lambda v: (orjson.dumps(v), True)),
    st.binary(max_size=64).map(lambda b: (b"\xff" + b, True)),  # never valid UTF-8
    st.text(max_size=40).map(lambda t: (t.encode(), False)),
    st.integers(1100, 3000).map(lambda depth: (_deep(depth).encode(), False)),
)


def _is_error(data: bytes) -> bool:
    try:
        parse_gateway_frame(data)
    except ProtocolError:
        return True
    return False


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(frames=st.lists(hostile_frames, min_size=1, max_size=8))
def test_hostile_gateway_frames_are_errors_and_valid_ones_still_arrive(
    backend: str, frames: list[tuple[bytes, bool]]
) -> None:
    async def scenario() -> None:
        async with serve() as gw:
            url = gw.url(gw.mint_token(permissions=ALL_PERMISSIONS))
            async with realtime_pubsub.connect(url) as client:
                errors = Collector()
                client.on("error", errors)
                cid = client.connection.id
                async with client.listen("marker.done") as markers:
                    for data, binary in frames:
                        gw.send_raw(cid, data, text=not binary)
                    gw.send_raw(cid, '{"topic":"marker","messageType":"done","data":1}')
                    with anyio.fail_after(10):
                        await markers.__anext__()
                expected = sum(_is_error(data) for data, _ in frames)
                await errors.wait_for(expected, timeout=10)
                assert all(isinstance(e, ProtocolError) for e in errors.items)
                assert client.connection.id == cid  # no reconnection was needed

    anyio.run(scenario, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_at_and_over_the_size_limit(backend: str) -> None:
    async def scenario() -> None:
        async with serve() as gw:
            url = gw.url(gw.mint_token(permissions=ALL_PERMISSIONS))
            limit = 2048
            async with realtime_pubsub.connect(url, max_message_size=limit) as client:
                errors: list[BaseException] = []
                closes: list[Any] = []
                client.on("error", errors.append)
                client.on("close", closes.append)
                cid = client.connection.id
                head = b'{"topic":"big","messageType":"m","data":"'
                at_limit = head + b"x" * (limit - len(head) - 2) + b'"}'
                assert len(at_limit) == limit
                async with client.listen("big.m") as messages:
                    gw.send_raw(cid, at_limit)
                    with anyio.fail_after(5):
                        assert len((await messages.__anext__()).data) == limit - len(head) - 2
                    # Over the limit: the client closes with 1009 (what RFC 6455 asks), reports
                    # it, reconnects, and what is sent next arrives.
                    gw.send_raw(cid, at_limit + b" ")
                    info = await client.wait_for("session.started", timeout=10)
                    gw.send_raw(info.id, '{"topic":"big","messageType":"m","data":"again"}')
                    with anyio.fail_after(5):
                        assert (await messages.__anext__()).data == "again"
                assert closes[0].code == 1009

    anyio.run(scenario, backend=backend)


client_objects = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["subscribe", "unsubscribe", "publish", "message"]) | json_values,
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "topic": json_values | st.sampled_from(["chat", "priv/x", "secure/inbound"]),
                "payload": json_values,
                "id": json_values | st.text(min_size=1, max_size=8),
                "compress": json_values,
                "messageType": json_values,
            },
        ),
    },
)
hostile_client_frames = st.one_of(
    client_objects.map(orjson.dumps),
    json_values.map(orjson.dumps),
    st.binary(max_size=32).map(lambda b: b"\xff" + b),
    st.text(max_size=30).map(str.encode),
)


def _expected_close(data: bytes) -> int | None:
    """The close code the gateway's rules answer ``data`` with (the broker decides, without
    sockets), or None."""
    broker = Broker()
    member, _ = broker.connect("app", Identity("user", ALL_PERMISSIONS), "127.0.0.1")
    closes = [a for a in broker.receive(member.id, data) if isinstance(a, Close)]
    return closes[0].code if closes else None


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(frame=hostile_client_frames)
@example(
    frame=b'{"type":"subscribe","data":{"topic":"priv/x"}}'
)  # the broker's rule, not the codec's
def test_hostile_client_frames_close_only_the_offender(backend: str, frame: bytes) -> None:
    async def scenario() -> None:
        async with serve() as gw:
            url = gw.url(gw.mint_token(permissions=ALL_PERMISSIONS))
            async with raw_connect(url) as bystander, raw_connect(url) as offender:
                await offender.send(frame)  # bytes: a binary frame, the worst case
                expected = _expected_close(frame)
                if expected is None:
                    assert await offender.ping_answered(5)
                else:
                    assert (await offender.expect_close())[0] == expected
                await bystander.publish("t", 1, id="alive")
                with anyio.fail_after(5):
                    while True:
                        reply = await bystander.recv_json()
                        if reply["topic"] == "priv/acks":
                            break
                assert reply["data"]["data"] == "alive"

    anyio.run(scenario, backend=backend)
