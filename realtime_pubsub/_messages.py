"""Typed, immutable views of what travels on the wire (PROTOCOL.md §2).

Every class keeps the decoded JSON it came from in ``raw``, so fields this library does not
model yet stay reachable without a new release.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._pending import Receipt

__all__ = [
    "Ack",
    "ClientInfo",
    "CloseInfo",
    "ConnectionInfo",
    "IncomingMessage",
    "PresenceMessage",
    "ResponseMessage",
]

#: How an :class:`IncomingMessage` answers its sender; set by the client that received it.
Replier = Callable[["IncomingMessage", Any, str, bool], Awaitable["Receipt"]]


def client_info(value: object) -> ClientInfo | None:
    """A :class:`ClientInfo` from a ``client`` member, or ``None`` if it is not an object."""
    if not isinstance(value, dict):
        return None
    connection_id = value.get("connectionId")
    subject = value.get("subject")
    permissions = value.get("permissions")
    return ClientInfo(
        connection_id=connection_id if isinstance(connection_id, str) else None,
        subject=subject if isinstance(subject, str) else None,
        permissions=tuple(p for p in permissions if isinstance(p, str))
        if isinstance(permissions, list)
        else (),
        raw=value,
    )


@attrs.frozen
class ClientInfo:
    """The sender of a message, as the gateway describes it (``data.client``)."""

    #: The sender's connection id; replies go to ``priv/<connection_id>``.
    connection_id: str | None
    #: The ``sub`` claim of the sender's token.
    subject: str | None = None
    #: The sender's permission strings.
    permissions: tuple[str, ...] = ()
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen
class ConnectionInfo:
    """The identity of one connection, from the gateway's welcome frame."""

    #: The connection id (CID); replies to this connection's messages are addressed to it.
    id: str
    app_id: str | None = None
    remote_address: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen
class CloseInfo:
    """How a connection ended: the close code and reason the gateway sent (1006 when the
    connection was lost without a closing handshake). What the ``close`` event carries."""

    code: int
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}" if self.reason else str(self.code)


@attrs.frozen
class Ack:
    """The gateway's acknowledgement of a publish or send, by message ``id``."""

    id: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen
class PresenceMessage:
    """A connection appeared or went away (delivered to ``secure/inbound`` subscribers)."""

    #: ``"connected"`` or ``"disconnected"``.
    status: str
    connection_id: str | None
    subject: str | None = None
    permissions: tuple[str, ...] = ()
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen
class ResponseMessage:
    """A reply to one of this connection's messages.

    ``id`` is the id of the publish or send being answered, ``data`` what the replier
    sent, ``status`` its status string (``"ok"`` unless it said otherwise).
    """

    id: str
    data: Any
    status: str = "ok"
    client: ClientInfo | None = None
    topic: str = ""
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen(cache_hash=False)
class IncomingMessage:
    """A message delivered on a topic this connection listens to.

    ``data`` is the frame's ``data`` member as sent. For messages published by a WebSocket
    client it is ``{"client": ..., "payload": ..., "id": ...}``, and :attr:`payload`,
    :attr:`id` and :attr:`client` are its parts; for messages published over the HTTP API,
    ``data`` is the raw message, :attr:`payload` is that same value and :attr:`id` and
    :attr:`client` are ``None``. ``compression`` tells whether it arrived as a binary
    (compressed) frame.
    """

    topic: str
    message_type: str
    data: Any
    compression: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    _replier: Replier | None = attrs.field(default=None, repr=False, eq=False, alias="replier")

    # The parts of ``data`` are read when asked for, not for every message received: most
    # consumers look at a few of them, and the reader's time is everybody's time.

    @classmethod
    def _from_frame(
        cls,
        topic: str,
        message_type: str,
        data: Any,
        compression: bool,
        raw: Mapping[str, Any],
        replier: Replier | None,
    ) -> IncomingMessage:
        """The codec's constructor: the same fields as ``__init__``, set through the slot
        descriptors. A frozen class's ``__init__`` pays for its immutability on every field,
        and this runs for every message received."""
        message = _new(cls)
        _set_topic(message, topic)
        _set_message_type(message, message_type)
        _set_data(message, data)
        _set_compression(message, compression)
        _set_raw(message, raw)
        _set_replier(message, replier)
        return message

    @property
    def _wrapped(self) -> bool:
        data = self.data
        return isinstance(data, dict) and ("payload" in data or "client" in data)

    @property
    def payload(self) -> Any:
        """What the sender published (``data`` itself for HTTP API messages)."""
        return self.data.get("payload") if self._wrapped else self.data

    @property
    def id(self) -> str | None:
        """The sender's message id, which a reply refers to."""
        message_id = self.data.get("id") if self._wrapped else None
        return message_id if isinstance(message_id, str) else None

    @functools.cached_property
    def client(self) -> ClientInfo | None:
        """Who sent it (``data.client``), or ``None``."""
        return client_info(self.data.get("client")) if self._wrapped else None

    @property
    def event(self) -> str:
        """The event name this message is routed under, ``<topic>.<message_type>``."""
        return f"{self.topic}.{self.message_type}"

    @property
    def can_reply(self) -> bool:
        """Whether :meth:`reply` can address the sender (it needs the sender's connection
        id and the message id)."""
        return self.id is not None and self.client is not None and bool(self.client.connection_id)

    async def reply(self, data: Any, status: str = "ok", *, compress: bool = False) -> Receipt:
        """Answer the sender: publish ``{"data": data, "status": status, "id": self.id}`` to
        ``priv/<sender connection id>`` with message type ``response``.

        Args:
            data: any JSON-serializable value.
            status: the status string the requester sees.
            compress: ask the gateway to deliver the reply compressed.

        Returns:
            A :class:`~realtime_pubsub.Receipt` for the reply's own ack.

        Raises:
            ValueError: the message cannot be replied to (see :attr:`can_reply`).
            RuntimeError: the message was not received through a client.
            TypeError, MessageTooLarge, ConnectionClosed, ClientClosed: as for
                :meth:`Client.publish <realtime_pubsub.Client.publish>`.
        """
        if not self.can_reply:
            raise ValueError(
                f"message on {self.event!r} carries no sender connection id and message id;"
                " it cannot be replied to"
            )
        if self._replier is None:
            raise RuntimeError("this message was not received through a client; cannot reply")
        return await self._replier(self, data, status, compress)

    def data_as_presence(self) -> PresenceMessage:
        """Read this message as a presence event (``secure/inbound.presence``).

        Raises :class:`ValueError` when the payload has no ``status``.
        """
        payload = self.payload
        status = payload.get("status") if isinstance(payload, dict) else None
        if not isinstance(status, str):
            raise ValueError(f"message on {self.event!r} is not a presence event")
        client = self.client
        return PresenceMessage(
            status=status,
            connection_id=client.connection_id if client else None,
            subject=client.subject if client else None,
            permissions=client.permissions if client else (),
            raw=self.raw,
        )


_new = object.__new__
_set_topic = IncomingMessage.__dict__["topic"].__set__
_set_message_type = IncomingMessage.__dict__["message_type"].__set__
_set_data = IncomingMessage.__dict__["data"].__set__
_set_compression = IncomingMessage.__dict__["compression"].__set__
_set_raw = IncomingMessage.__dict__["raw"].__set__
_set_replier = IncomingMessage.__dict__["_replier"].__set__
