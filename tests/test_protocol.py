"""The sans-IO codec: client frames, gateway frames, and malformed input."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime_pubsub import Ack, ConnectionInfo, IncomingMessage, ProtocolError, ResponseMessage
from realtime_pubsub._protocol import (
    PublishFrame,
    SendFrame,
    SubscribeFrame,
    UnsubscribeFrame,
    encode_ack,
    encode_client_info,
    encode_delivery,
    encode_presence,
    encode_publish,
    encode_reply,
    encode_send,
    encode_subscribe,
    encode_unsubscribe,
    encode_welcome,
    new_message_id,
    parse_client_frame,
    parse_gateway_frame,
)

VECTORS = json.loads((Path(__file__).parent / "data" / "official-client-frames.json").read_text())
PYTHON_FRAMES = [v["frame"] for v in VECTORS["client_frames"] if v["client"] == "python-1.0.0"]
CLIENT = encode_client_info("conn-2", "alice", ["p"])


def test_client_frames_have_the_shape_of_the_official_python_client() -> None:
    sub, plain, compressed, done, create, reply, unsub = PYTHON_FRAMES

    def same(ours: bytes, theirs: dict[str, Any]) -> None:
        assert orjson.loads(ours) == theirs

    same(encode_subscribe("chat"), sub)
    same(encode_publish("chat", "plain", id=plain["data"]["id"]), plain)
    same(
        encode_publish(
            "chat",
            {"a": 1},
            message_type="text-message",
            compress=True,
            id=compressed["data"]["id"],
        ),
        compressed,
    )
    same(encode_send("Done!", message_type="broadcast", id=done["data"]["id"]), done)
    same(
        encode_send({"action": "create"}, message_type="create-user", id=create["data"]["id"]),
        create,
    )
    same(encode_reply("conn-2", "req-1", {"ok": True}, id=reply["data"]["id"]), reply)
    same(encode_unsubscribe("chat"), unsub)


def test_send_without_message_type_leaves_it_out() -> None:
    assert "messageType" not in orjson.loads(encode_send("x"))["data"]


@pytest.mark.parametrize("topic", ["", None, 5, b"bytes"])
def test_topic_must_be_a_non_empty_string(topic: Any) -> None:
    with pytest.raises(ValueError, match="topic"):
        encode_publish(topic, 1)
    with pytest.raises(ValueError, match="topic"):
        encode_subscribe(topic)


def test_unserializable_payload_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="JSON"):
        encode_publish("t", object())
    with pytest.raises(TypeError, match="JSON"):
        encode_send({1j: "complex key"})


def test_message_ids_are_unique_and_long() -> None:
    ids = {new_message_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 for i in ids)


@pytest.mark.parametrize("vector", VECTORS["client_frames"], ids=lambda v: v["client"])
def test_every_official_frame_parses(vector: dict[str, Any]) -> None:
    frame = parse_client_frame(orjson.dumps(vector["frame"]))
    kind = vector["frame"]["type"]
    expected = {
        "subscribe": SubscribeFrame,
        "unsubscribe": UnsubscribeFrame,
        "publish": PublishFrame,
        "message": SendFrame,
    }[kind]
    assert isinstance(frame, expected)


def test_parsed_publish_applies_the_defaults() -> None:
    frame = parse_client_frame(b'{"type":"publish","data":{"topic":"t","payload":null}}')
    assert frame == PublishFrame("t", None, "broadcast", False, None)
    send = parse_client_frame(b'{"type":"message","data":{"payload":[1],"id":"x"}}')
    assert send == SendFrame([1], "broadcast", False, "x")


def test_welcome_round_trip() -> None:
    info = ConnectionInfo(id="c1", app_id="app", remote_address="127.0.0.1")
    assert parse_gateway_frame(encode_welcome(info)) == info


def test_ack_round_trip() -> None:
    assert parse_gateway_frame(encode_ack("m1")) == Ack("m1")


def test_delivery_round_trip() -> None:
    message = parse_gateway_frame(
        encode_delivery("chat", "text", {"x": 1}, client=CLIENT, id="m1"), compression=True
    )
    assert isinstance(message, IncomingMessage)
    assert (message.topic, message.message_type, message.payload, message.id) == (
        "chat",
        "text",
        {"x": 1},
        "m1",
    )
    assert message.event == "chat.text"
    assert message.compression is True
    assert message.client is not None
    assert (message.client.connection_id, message.client.subject, message.client.permissions) == (
        "conn-2",
        "alice",
        ("p",),
    )
    assert message.can_reply


def test_reply_is_parsed_as_a_response() -> None:
    frame = encode_delivery(
        "priv/me", "response", {"data": 42, "status": "done", "id": "req"}, client=CLIENT, id="r"
    )
    response = parse_gateway_frame(frame)
    assert isinstance(response, ResponseMessage)
    assert (response.id, response.data, response.status) == ("req", 42, "done")


def test_response_without_a_request_id_is_still_delivered() -> None:
    frame = encode_delivery("priv/me", "response", "no id", client=CLIENT, id="r")
    assert isinstance(parse_gateway_frame(frame), IncomingMessage)


def test_http_api_messages_carry_raw_data() -> None:
    message = parse_gateway_frame(b'{"topic":"news","messageType":"flash","data":"hello"}')
    assert isinstance(message, IncomingMessage)
    assert (message.data, message.payload, message.id, message.client) == (
        "hello",
        "hello",
        None,
        None,
    )
    assert not message.can_reply


def test_presence_payload() -> None:
    message = parse_gateway_frame(encode_presence("connected", client=CLIENT))
    assert isinstance(message, IncomingMessage)
    presence = message.data_as_presence()
    assert (presence.status, presence.connection_id, presence.subject) == (
        "connected",
        "conn-2",
        "alice",
    )
    with pytest.raises(ValueError, match="presence"):
        parse_gateway_frame(encode_ack("x").replace(b"priv/acks", b"other")).data_as_presence()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"nope",
        b"[]",
        b'{"messageType":"x","data":1}',
        b'{"topic":"t","data":1}',
        b'{"topic":"t","messageType":"","data":1}',
        b'{"topic":"main","messageType":"welcome","data":{}}',
        b'{"topic":"priv/acks","messageType":"ack","data":{"data":5}}',
        b"\xff\xfe",
    ],
)
def test_unroutable_gateway_frames_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_gateway_frame(data)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_protocol_error(data: bytes) -> None:
    for parse in (parse_client_frame, parse_gateway_frame):
        with contextlib.suppress(ProtocolError):
            parse(data)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["subscribe", "unsubscribe", "publish", "message"])
            | json_values,
            "topic": st.text() | json_values,
            "messageType": st.text() | json_values,
            "data": json_values
            | st.fixed_dictionaries(
                {},
                optional={
                    "topic": json_values,
                    "payload": json_values,
                    "id": json_values,
                    "compress": json_values,
                    "messageType": json_values,
                    "connection": json_values,
                    "data": json_values,
                    "client": json_values,
                },
            ),
        },
    )
)
def test_any_json_object_parses_or_raises_protocol_error(frame: dict[str, Any]) -> None:
    data = orjson.dumps(frame)
    for parse in (parse_client_frame, parse_gateway_frame):
        try:
            parse(data)
        except ProtocolError as exc:
            assert exc.close_code == 1008
