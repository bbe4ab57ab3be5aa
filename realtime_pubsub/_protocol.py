"""The sans-IO codec of the Realtime Pub/Sub wire protocol (PROTOCOL.md): every frame the
client sends and the gateway answers is built and parsed here, and nowhere else, so the
client and the local gateway cannot drift apart. No I/O, no event loop: bytes in, typed
values out, and :class:`~realtime_pubsub.ProtocolError` for anything malformed.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import orjson

from ._errors import ProtocolError
from ._messages import (
    Ack,
    ConnectionInfo,
    IncomingMessage,
    Replier,
    ResponseMessage,
    client_info,
)

__all__ = [
    "ACK_TOPIC",
    "CLOSE_FORBIDDEN_PUBLISH",
    "CLOSE_FORBIDDEN_SUBSCRIBE",
    "DEFAULT_MESSAGE_TYPE",
    "INBOUND_TOPIC",
    "POLICY_VIOLATION",
    "PRIVATE_PREFIX",
    "READ_PERMISSION_PREFIX",
    "REFUSAL_CLOSE_CODES",
    "SECURE_PREFIX",
    "UNSUPPORTED_DATA",
    "WRITE_PERMISSION_PREFIX",
    "ClientFrame",
    "GatewayEvent",
    "PublishFrame",
    "SendFrame",
    "SubscribeFrame",
    "UnsubscribeFrame",
    "encode_ack",
    "encode_client_info",
    "encode_delivery",
    "encode_gateway_frame",
    "encode_presence",
    "encode_publish",
    "encode_reply",
    "encode_send",
    "encode_subscribe",
    "encode_unsubscribe",
    "encode_welcome",
    "new_message_id",
    "parse_client_frame",
    "parse_gateway_frame",
    "private_topic",
    "validate_topic",
]

#: ``messageType`` of a publish (and, in the emulator, of a send) that names none.
DEFAULT_MESSAGE_TYPE: Final = "broadcast"
#: Where acknowledgements arrive (messageType ``ack``).
ACK_TOPIC: Final = "priv/acks"
#: Where backend services receive ``send`` messages and presence events.
INBOUND_TOPIC: Final = "secure/inbound"
#: Close reasons the gateway uses on permission failures (PROTOCOL.md §5).
CLOSE_FORBIDDEN_SUBSCRIBE: Final = "Subscription to secure topic is forbidden!"
CLOSE_FORBIDDEN_PUBLISH: Final = "Publishing to topic is forbidden!"

#: Topics under ``priv/`` are connections' own (replies are published there).
PRIVATE_PREFIX: Final = "priv/"
#: Topics under ``secure/`` need a read permission to subscribe to (PROTOCOL.md §5).
SECURE_PREFIX: Final = "secure/"
#: Permission strings (PROTOCOL.md §1): a prefix, then a topic pattern.
READ_PERMISSION_PREFIX: Final = "realtime:subscriber:read:topic:"
WRITE_PERMISSION_PREFIX: Final = "realtime:publisher:write:topic:"
_WELCOME_TOPIC: Final = "main"
#: Close codes (RFC 6455, 7.4.1): a frame that is not a UTF-8 JSON object; one that the
#: token does not allow (or a frame that breaks the protocol's rules).
UNSUPPORTED_DATA: Final = 1003
POLICY_VIOLATION: Final = 1008
#: The close codes of a peer that refuses what it was sent: data it does not take (1003),
#: invalid data (1007), what the token does not allow (1008), a frame too large (1009).
REFUSAL_CLOSE_CODES: Final = frozenset({UNSUPPORTED_DATA, 1007, POLICY_VIOLATION, 1009})


_ID_BYTES: Final = 16
_ID_POOL_IDS: Final = 256
_id_pool: list[str] = []


def new_message_id() -> str:
    """A fresh message id: 128 random bits as 32 hex digits (PROTOCOL.md asks for >= 64).

    The bits come from the operating system's CSPRNG (ids must not be guessable, or another
    connection could forge replies), fetched 256 ids at a time: one system call per message
    shows up in the round-trip time.
    """
    if not _id_pool:
        pool = secrets.token_hex(_ID_BYTES * _ID_POOL_IDS)
        step = _ID_BYTES * 2
        _id_pool.extend(pool[i : i + step] for i in range(0, len(pool), step))
    return _id_pool.pop()


def private_topic(connection_id: str) -> str:
    """The topic every connection is implicitly subscribed to: ``priv/<connection id>``."""
    return PRIVATE_PREFIX + connection_id


def validate_topic(topic: object) -> str:
    """Return ``topic`` if it is a non-empty string, else raise :class:`ValueError`."""
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic must be a non-empty string, not {topic!r}")
    return topic


def _dumps(frame: object) -> bytes:
    # orjson raises JSONEncodeError, a TypeError subclass, for anything it cannot encode,
    # before a single byte is written: exactly the contract publish() and send() promise.
    try:
        return orjson.dumps(frame)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"payload is not JSON-serializable: {exc}") from None


def _check_message_type(message_type: object) -> None:
    if message_type is not None and not isinstance(message_type, str):
        raise TypeError(f"message_type must be a string, not {message_type!r}")


# --------------------------------------------------------------------------- client -> gateway


def encode_subscribe(topic: str) -> bytes:
    """``{"type":"subscribe","data":{"topic":T}}``."""
    return _dumps({"type": "subscribe", "data": {"topic": validate_topic(topic)}})


def encode_unsubscribe(topic: str) -> bytes:
    """``{"type":"unsubscribe","data":{"topic":T}}``."""
    return _dumps({"type": "unsubscribe", "data": {"topic": validate_topic(topic)}})


def encode_publish(
    topic: str,
    payload: Any,
    *,
    message_type: str = DEFAULT_MESSAGE_TYPE,
    compress: bool = False,
    id: str | None = None,
) -> bytes:
    """A publish frame. ``id`` correlates the ack and any reply; omit it to ask for none."""
    validate_topic(topic)
    _check_message_type(message_type)
    data: dict[str, Any] = {
        "topic": topic,
        "messageType": message_type or DEFAULT_MESSAGE_TYPE,
        "compress": bool(compress),
        "payload": payload,
    }
    if id is not None:
        data["id"] = id
    return _dumps({"type": "publish", "data": data})


def encode_send(
    payload: Any,
    *,
    message_type: str | None = None,
    compress: bool = False,
    id: str | None = None,
) -> bytes:
    """A frame for backend services (``type: message``); ``messageType`` is left out when
    none is given, as the Go client does."""
    _check_message_type(message_type)
    data: dict[str, Any] = {"compress": bool(compress), "payload": payload}
    if message_type:
        data["messageType"] = message_type
    if id is not None:
        data["id"] = id
    return _dumps({"type": "message", "data": data})


def encode_reply(
    connection_id: str,
    request_id: str,
    data: Any,
    *,
    status: str = "ok",
    compress: bool = False,
    id: str | None = None,
) -> bytes:
    """A reply (PROTOCOL.md §3): a publish to ``priv/<connection_id>`` of message type
    ``response`` whose payload is ``{"data":X,"status":S,"id":<request id>}``."""
    if not isinstance(status, str):
        raise TypeError(f"status must be a string, not {status!r}")
    return encode_publish(
        private_topic(connection_id),
        {"data": data, "status": status, "id": request_id},
        message_type="response",
        compress=compress,
        id=id,
    )


@attrs.frozen
class SubscribeFrame:
    topic: str


@attrs.frozen
class UnsubscribeFrame:
    topic: str


@attrs.frozen
class PublishFrame:
    topic: str
    payload: Any
    message_type: str = DEFAULT_MESSAGE_TYPE
    compress: bool = False
    id: str | None = None


@attrs.frozen
class SendFrame:
    payload: Any
    message_type: str = DEFAULT_MESSAGE_TYPE
    compress: bool = False
    id: str | None = None


ClientFrame = SubscribeFrame | UnsubscribeFrame | PublishFrame | SendFrame


def _loads_object(data: bytes | bytearray | memoryview | str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError(
            f"{what} is not valid UTF-8 JSON", close_code=UNSUPPORTED_DATA
        ) from None
    if not isinstance(value, dict):
        raise ProtocolError(
            f"{what} is not a JSON object (got {type(value).__name__})",
            close_code=UNSUPPORTED_DATA,
        )
    return value


def _field(data: Mapping[str, Any], kind: str, name: str, types: type | tuple[type, ...]) -> Any:
    """An optional field: absent or null gives None; present with another type is an error."""
    value = data.get(name)
    if value is not None and not isinstance(value, types):
        raise ProtocolError(f"{kind}: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _required_topic(data: Mapping[str, Any], kind: str) -> str:
    topic = data.get("topic")
    if topic is None:
        raise ProtocolError(f"{kind}: missing field 'topic'")
    if not isinstance(topic, str) or not topic:
        raise ProtocolError(f"{kind}: field 'topic' must be a non-empty string")
    return topic


def _delivery_fields(data: Mapping[str, Any], kind: str) -> tuple[Any, str, bool, str | None]:
    if "payload" not in data:
        raise ProtocolError(f"{kind}: missing field 'payload'")
    message_type = _field(data, kind, "messageType", str) or DEFAULT_MESSAGE_TYPE
    compress = _field(data, kind, "compress", bool) or False
    message_id = _field(data, kind, "id", str)
    return data["payload"], message_type, compress, message_id


def parse_client_frame(data: bytes | bytearray | memoryview | str) -> ClientFrame:
    """Parse a frame a client sent (the gateway's side of PROTOCOL.md §2).

    Optional fields may be absent (the official clients omit them); a present field of the
    wrong type, a missing required field or an unknown ``type`` is a
    :class:`ProtocolError` with ``close_code`` 1008, and anything that is not a UTF-8 JSON
    object one with ``close_code`` 1003.
    """
    frame = _loads_object(data, "frame")
    kind = frame.get("type")
    if kind is None:
        raise ProtocolError("missing field 'type'")
    if not isinstance(kind, str):
        raise ProtocolError("field 'type' must be a string")
    if kind not in ("subscribe", "unsubscribe", "publish", "message"):
        raise ProtocolError(f"unknown message type {kind[:64]!r}")
    body = frame.get("data")
    if not isinstance(body, dict):
        raise ProtocolError(f"{kind}: field 'data' must be an object")
    if kind == "subscribe":
        return SubscribeFrame(_required_topic(body, kind))
    if kind == "unsubscribe":
        return UnsubscribeFrame(_required_topic(body, kind))
    if kind == "publish":
        topic = _required_topic(body, kind)
        payload, message_type, compress, message_id = _delivery_fields(body, kind)
        return PublishFrame(topic, payload, message_type, compress, message_id)
    payload, message_type, compress, message_id = _delivery_fields(body, kind)
    return SendFrame(payload, message_type, compress, message_id)


# --------------------------------------------------------------------------- gateway -> client


def encode_gateway_frame(topic: str, message_type: str, data: Any) -> bytes:
    """The one shape of every gateway frame: ``{"topic":T,"messageType":MT,"data":D}``."""
    return orjson.dumps({"topic": topic, "messageType": message_type, "data": data})


def encode_welcome(connection: ConnectionInfo) -> bytes:
    """The first frame of every connection (``main.welcome``)."""
    return encode_gateway_frame(
        _WELCOME_TOPIC,
        "welcome",
        {
            "connection": {
                "id": connection.id,
                "appId": connection.app_id,
                "remoteAddress": connection.remote_address,
            }
        },
    )


def encode_ack(message_id: str) -> bytes:
    """An acknowledgement of the publish or send ``message_id`` (``priv/acks.ack``)."""
    return encode_gateway_frame(ACK_TOPIC, "ack", {"data": message_id})


def encode_client_info(
    connection_id: str, subject: str | None, permissions: Sequence[str]
) -> dict[str, Any]:
    """The ``client`` member describing a sender."""
    return {"connectionId": connection_id, "subject": subject, "permissions": list(permissions)}


def encode_delivery(
    topic: str,
    message_type: str,
    payload: Any,
    *,
    client: Mapping[str, Any],
    id: str | None,
) -> bytes:
    """A published or sent message as subscribers receive it."""
    data: dict[str, Any] = {"client": client, "payload": payload}
    if id is not None:
        data["id"] = id
    return encode_gateway_frame(topic, message_type, data)


def encode_presence(status: str, *, client: Mapping[str, Any]) -> bytes:
    """A presence event (``secure/inbound.presence``)."""
    return encode_gateway_frame(
        INBOUND_TOPIC, "presence", {"client": client, "payload": {"status": status}}
    )


GatewayEvent = ConnectionInfo | Ack | ResponseMessage | IncomingMessage


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


_INTERNAL_TYPES: Final = frozenset({"welcome", "ack", "response"})


def parse_gateway_frame(
    data: bytes | bytearray | memoryview | str,
    compression: bool = False,
    replier: Replier | None = None,
) -> GatewayEvent:
    """Parse a frame the gateway sent (the client's side of PROTOCOL.md §2).

    Returns a :class:`ConnectionInfo` for the welcome, an :class:`Ack`, a
    :class:`ResponseMessage` for a reply to this connection, or an
    :class:`IncomingMessage` for everything else. ``compression`` tells whether the frame
    arrived binary. Raises :class:`ProtocolError` for a frame that cannot be routed.
    """
    # The hot path of the client: one dict lookup per field, the common case first.
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError(
            "gateway frame is not valid UTF-8 JSON", close_code=UNSUPPORTED_DATA
        ) from None
    if type(frame) is not dict:
        raise ProtocolError(
            f"gateway frame is not a JSON object (got {type(frame).__name__})",
            close_code=UNSUPPORTED_DATA,
        )
    topic = frame.get("topic")
    message_type = frame.get("messageType")
    if type(topic) is not str or not topic:
        raise ProtocolError("gateway frame has no topic")
    if type(message_type) is not str or not message_type:
        raise ProtocolError(f"gateway frame on {topic[:64]!r} has no messageType")
    body = frame.get("data")
    if message_type not in _INTERNAL_TYPES:
        return IncomingMessage._from_frame(topic, message_type, body, compression, frame, replier)

    if message_type == "welcome" and topic == _WELCOME_TOPIC:
        connection = body.get("connection") if isinstance(body, dict) else None
        cid = connection.get("id") if isinstance(connection, dict) else None
        if not isinstance(cid, str) or not cid or not isinstance(connection, dict):
            raise ProtocolError("welcome frame carries no connection id")
        return ConnectionInfo(
            id=cid,
            app_id=_optional_str(connection.get("appId")),
            remote_address=_optional_str(connection.get("remoteAddress")),
            raw=frame,
        )

    if message_type == "ack" and topic == ACK_TOPIC:
        acked = body.get("data") if isinstance(body, dict) else None
        if not isinstance(acked, str):
            raise ProtocolError("ack frame carries no message id")
        return Ack(acked, raw=frame)

    if message_type == "response" and topic.startswith(PRIVATE_PREFIX) and type(body) is dict:
        # A reply: read straight from the frame (this is every request/reply's path).
        wrapped = "payload" in body or "client" in body
        payload = body.get("payload") if wrapped else body
        if type(payload) is dict and type(request_id := payload.get("id")) is str:
            status = payload.get("status")
            return ResponseMessage(
                id=request_id,
                data=payload.get("data"),
                status=status if type(status) is str else "ok",
                client=client_info(body.get("client")) if wrapped else None,
                topic=topic,
                raw=frame,
            )
    # A "response" that names no request cannot be correlated, and an "ack" or "welcome"
    # elsewhere is somebody's own message type: deliver them as ordinary messages.
    return IncomingMessage._from_frame(topic, message_type, body, compression, frame, replier)
