"""Typed, immutable views of what travels on the wire (PROTOCOL.md §2).

Every class keeps the decoded JSON it came from in ``raw``, so fields this library does not
model yet stay reachable without a new release.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "Ack",
    "ClientInfo",
    "ConnectionInfo",
    "IncomingMessage",
    "PresenceMessage",
    "ResponseMessage",
]

#: How an :class:`IncomingMessage` answers its sender; set by the client that received it.
Replier = Callable[["IncomingMessage", Any, str, bool], Awaitable[Any]]


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


@attrs.frozen
class IncomingMessage:
    """A message delivered on a topic this connection listens to.

    ``data`` is the frame's ``data`` member as sent. For messages published by a WebSocket
    client it is ``{"client": ..., "payload": ..., "id": ...}``, and ``payload``, ``id`` and
    ``client`` are its parts; for messages published over the HTTP API, ``data`` is the raw
    message, ``payload`` is that same value and ``id`` and ``client`` are ``None``.
    ``compression`` tells whether it arrived as a binary (compressed) frame.
    """

    topic: str
    message_type: str
    data: Any
    payload: Any
    id: str | None = None
    client: ClientInfo | None = None
    compression: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    _replier: Replier | None = attrs.field(default=None, repr=False, eq=False, alias="replier")

    @property
    def event(self) -> str:
        """The event name this message is routed under: ``<topic>.<message_type>``."""
        return f"{self.topic}.{self.message_type}"

    @property
    def can_reply(self) -> bool:
        """Whether :meth:`reply` can address the sender (it needs the sender's connection
        id and the message id)."""
        return self.id is not None and self.client is not None and bool(self.client.connection_id)

    async def reply(self, data: Any, status: str = "ok", *, compress: bool = False) -> Any:
        """Answer the sender: publish ``{"data": data, "status": status, "id": self.id}`` to
        ``priv/<sender connection id>`` with message type ``response``.

        Raises :class:`ValueError` when the message cannot be replied to (see
        :attr:`can_reply`) and :class:`RuntimeError` when it was not received through a
        client.
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
