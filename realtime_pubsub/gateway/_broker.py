"""The gateway's protocol rules, with no I/O: who may subscribe, publish and send, fan-out,
presence, acknowledgements, replies, the ``priv/`` and ``secure/`` rules of PROTOCOL.md,
and what the HTTP admin API's operations do (§8).

The :class:`Broker` takes events (a connection joined with these claims, this frame arrived
from it, it left) and returns what to do (:class:`Send` these bytes to these connections,
:class:`Ack` a message, :class:`Close` that connection). It never blocks, never awaits and
never touches a socket: the server module does the I/O around it, and the unit tests drive
it with plain calls.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any, Final

import attrs

from .._errors import ProtocolError
from .._messages import ConnectionInfo
from .._protocol import (
    CLOSE_FORBIDDEN_PUBLISH,
    CLOSE_FORBIDDEN_SUBSCRIBE,
    DEFAULT_MESSAGE_TYPE,
    INBOUND_TOPIC,
    POLICY_VIOLATION,
    PRIVATE_PREFIX,
    READ_PERMISSION_PREFIX,
    SECURE_PREFIX,
    WRITE_PERMISSION_PREFIX,
    PublishFrame,
    SendFrame,
    SubscribeFrame,
    UnsubscribeFrame,
    encode_ack,
    encode_client_info,
    encode_delivery,
    encode_gateway_frame,
    encode_presence,
    encode_welcome,
    parse_client_frame,
    private_topic,
)
from ._auth import Identity

__all__ = ["Ack", "Action", "Broker", "Close", "Member", "Send", "matches_any", "permits"]

#: The close code and reason of a connection terminated over the HTTP admin API ([E]):
#: "going away", which clients answer by reconnecting (with a fresh token).
TERMINATED: Final = 1001
TERMINATED_REASON: Final = "Connection terminated by an administrator"
#: How many topics' write permission a connection remembers (publishing is checked once
#: per topic, not once per message; the cap keeps a topic-hopping client from growing it).
_WRITE_CACHE_SIZE: Final = 1024


@attrs.frozen
class Send:
    """Queue ``frame`` (the JSON of one gateway frame) for every connection in ``to``: as
    a text frame, or as a binary, deflated one when ``compress``."""

    to: tuple[str, ...]
    frame: bytes
    compress: bool = False


@attrs.frozen
class Ack:
    """Acknowledge a publish or send: queue ``frame`` for connection ``to`` (when is the
    I/O's business: the gateway can withhold or delay acks)."""

    to: str
    frame: bytes


@attrs.frozen
class Close:
    """Close ``connection_id`` with ``code`` and ``reason``. The broker has already
    forgotten it: nothing more is sent to it and nothing it sends counts."""

    connection_id: str
    code: int
    reason: str


Action = Send | Ack | Close


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    # [E] In a permission pattern, "*" matches any run of characters, "/" included.
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def matches_any(patterns: Iterable[str], topic: str) -> bool:
    """Whether any of the topic ``patterns`` matches ``topic``: the patterns of permissions,
    of an admin token's ``allowedTopics`` and of an admin unsubscribe alike."""
    return any(_compile(pattern).match(topic) for pattern in patterns)


def permits(permissions: Iterable[str], prefix: str, topic: str) -> bool:
    """Whether any permission ``<prefix><pattern>`` has a pattern matching ``topic``."""
    return matches_any((p[len(prefix) :] for p in permissions if p.startswith(prefix)), topic)


@attrs.define(eq=False)
class Member:
    """One open connection as the broker knows it."""

    id: str
    app_id: str
    identity: Identity
    remote_address: str
    #: Topics subscribed explicitly (not the implicit ``priv/<id>``).
    subscriptions: set[str] = attrs.field(factory=set)
    #: The ``client`` member of what it sends, built once.
    client_info: dict[str, Any] = attrs.field(init=False)
    #: Whether it may publish to a topic, by topic (see _WRITE_CACHE_SIZE).
    may_write: dict[str, bool] = attrs.field(factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        self.client_info = encode_client_info(
            self.id, self.identity.subject, self.identity.permissions
        )


class _App:
    """One application's connections and topics: created with its first connection,
    dropped with its last."""

    __slots__ = ("members", "topics")

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        #: Subscribers by topic, each connection's own ``priv/<id>`` included.
        self.topics: dict[str, set[str]] = {}


class Broker:
    """The rules of the protocol for every app the gateway serves; see the module
    docstring. Apps are isolated: connections of one never see another's topics."""

    def __init__(self, *, acks: bool = True) -> None:
        #: Whether publishes and sends that carry an ``id`` are acknowledged (the service's
        #: "WebSocket Inbound ACK" setting).
        self.acks = acks
        #: Changes whenever a connection joins or leaves or a subscription changes, so the
        #: I/O knows when to wake whoever waits on those.
        self.generation = 0
        self._apps: dict[str, _App] = {}
        self._members: dict[str, Member] = {}

    # ------------------------------------------------------------------ what it knows

    def member(self, connection_id: str) -> Member | None:
        """The open connection ``connection_id``, if there is one."""
        return self._members.get(connection_id)

    def members(self, app_id: str | None = None) -> Iterator[Member]:
        """Every open connection (of ``app_id``, if given)."""
        if app_id is None:
            return iter(list(self._members.values()))
        app = self._apps.get(app_id)
        return iter(list(app.members.values()) if app else [])

    def app_ids(self) -> list[str]:
        """The apps that have at least one open connection (no other app has any state)."""
        return list(self._apps)

    def count_members(self, app_id: str | None = None) -> int:
        """How many connections are open (in ``app_id``, if given)."""
        if app_id is None:
            return len(self._members)
        app = self._apps.get(app_id)
        return len(app.members) if app else 0

    def count_subscribers(self, topic: str, app_id: str | None = None) -> int:
        """How many connections are subscribed to ``topic`` (in ``app_id``, if given)."""
        apps = [self._apps.get(app_id)] if app_id is not None else self._apps.values()
        return sum(len(app.topics.get(topic, ())) for app in apps if app is not None)

    # ------------------------------------------------------------------ events

    def connect(
        self, app_id: str, identity: Identity, remote_address: str
    ) -> tuple[Member, list[Action]]:
        """A connection joined ``app_id`` with these claims: it gets its id and welcome,
        and the app's backend services its ``connected`` presence."""
        connection_id = secrets.token_hex(8)
        while connection_id in self._members:  # pragma: no cover - 64 random bits
            connection_id = secrets.token_hex(8)
        member = Member(connection_id, app_id, identity, remote_address)
        app = self._apps.get(app_id)
        if app is None:
            app = self._apps[app_id] = _App()
        app.members[connection_id] = member
        app.topics[private_topic(connection_id)] = {connection_id}
        self._members[connection_id] = member
        self.generation += 1
        welcome = encode_welcome(
            ConnectionInfo(id=connection_id, app_id=app_id, remote_address=remote_address)
        )
        return member, [Send((connection_id,), welcome), *self._presence(member, "connected")]

    def receive(
        self, connection_id: str, data: bytes | bytearray | memoryview | str
    ) -> list[Action]:
        """A data frame arrived from ``connection_id``. Frames from a connection the broker
        does not know (any more) are ignored."""
        member = self._members.get(connection_id)
        if member is None:
            return []
        try:
            frame = parse_client_frame(data)
        except ProtocolError as exc:
            return self._refuse(member, exc.close_code, str(exc))
        if isinstance(frame, PublishFrame):
            return self._publish(member, frame)
        if isinstance(frame, SendFrame):
            return self._deliver(member, INBOUND_TOPIC, frame)
        if isinstance(frame, SubscribeFrame):
            return self._subscribe(member, frame.topic)
        assert isinstance(frame, UnsubscribeFrame)
        return self._unsubscribe(member, frame.topic)

    def disconnect(self, connection_id: str) -> list[Action]:
        """``connection_id`` left (or is being closed): forget it, its subscriptions and,
        with its app's last connection, the app; tell the backend services. Idempotent."""
        member = self._members.pop(connection_id, None)
        if member is None:
            return []
        app = self._apps[member.app_id]
        del app.members[connection_id]
        for topic in (*member.subscriptions, private_topic(connection_id)):
            subscribers = app.topics.get(topic)
            if subscribers is not None:
                subscribers.discard(connection_id)
                if not subscribers:
                    del app.topics[topic]
        if not app.members:
            del self._apps[member.app_id]
        self.generation += 1
        return self._presence(member, "disconnected")

    # ------------------------------------------------------------------ the HTTP admin API

    def publish_message(
        self, app_id: str, topic: str, message: Any, *, compress: bool = False
    ) -> list[Action]:
        """An administrator published ``message`` to ``topic`` of ``app_id``: its
        subscribers receive it as the frame's ``data``, unwrapped (no ``client``, no
        ``id``: nobody sent it over a connection), with message type ``broadcast`` [E].
        Nobody is acknowledged."""
        app = self._apps.get(app_id)
        subscribers = app.topics.get(topic) if app is not None else None
        if not subscribers:
            return []
        frame = encode_gateway_frame(topic, DEFAULT_MESSAGE_TYPE, message)
        return [Send(tuple(subscribers), frame, compress)]

    def unsubscribe_subject(self, app_id: str, subject: str, patterns: Iterable[str]) -> int:
        """Remove the subscriptions matching any of ``patterns`` from every connection of
        ``subject`` in ``app_id``; returns how many were removed. The connections are not
        told (the real service's behaviour is unpublished), and a connection's own
        ``priv/`` topic is never removed."""
        patterns = tuple(patterns)
        removed = 0
        for member in self.members(app_id):
            if member.identity.subject != subject:
                continue
            for topic in [t for t in member.subscriptions if matches_any(patterns, t)]:
                self._unsubscribe(member, topic)
                removed += 1
        return removed

    def terminate(self, app_id: str, connection_id: str | None = None) -> list[Action]:
        """Close connection ``connection_id`` of ``app_id``, or with ``None`` every
        connection of the app, with :data:`TERMINATED` and :data:`TERMINATED_REASON`. One
        :class:`Close` per connection closed (none for an id the app does not have),
        followed by the presence events."""
        if connection_id is None:
            members = list(self.members(app_id))
        else:
            member = self._members.get(connection_id)
            members = [member] if member is not None and member.app_id == app_id else []
        actions: list[Action] = []
        for member in members:
            actions += self._refuse(member, TERMINATED, TERMINATED_REASON)
        return actions

    # ------------------------------------------------------------------ the rules

    def _refuse(self, member: Member, code: int, reason: str) -> list[Action]:
        return [Close(member.id, code, reason), *self.disconnect(member.id)]

    def _subscribe(self, member: Member, topic: str) -> list[Action]:
        if topic.startswith(PRIVATE_PREFIX):
            if topic == private_topic(member.id):
                return []  # subscribed implicitly from the start
            # [E] Another connection's priv/ topic carries the replies addressed to it:
            # refused like a secure topic without permission.
            return self._refuse(member, POLICY_VIOLATION, CLOSE_FORBIDDEN_SUBSCRIBE)
        if topic.startswith(SECURE_PREFIX) and not permits(
            member.identity.permissions, READ_PERMISSION_PREFIX, topic
        ):
            return self._refuse(member, POLICY_VIOLATION, CLOSE_FORBIDDEN_SUBSCRIBE)
        if topic not in member.subscriptions:
            member.subscriptions.add(topic)
            self._apps[member.app_id].topics.setdefault(topic, set()).add(member.id)
            self.generation += 1
        return []

    def _unsubscribe(self, member: Member, topic: str) -> list[Action]:
        if topic in member.subscriptions:
            member.subscriptions.discard(topic)
            topics = self._apps[member.app_id].topics
            subscribers = topics[topic]
            subscribers.discard(member.id)
            if not subscribers:
                del topics[topic]
            self.generation += 1
        return []

    def _publish(self, member: Member, frame: PublishFrame) -> list[Action]:
        topic = frame.topic
        allowed = member.may_write.get(topic)
        if allowed is None:
            # [E] priv/ topics (replies) need no write permission.
            allowed = topic.startswith(PRIVATE_PREFIX) or permits(
                member.identity.permissions, WRITE_PERMISSION_PREFIX, topic
            )
            if len(member.may_write) < _WRITE_CACHE_SIZE:
                member.may_write[topic] = allowed
        if not allowed:
            return self._refuse(member, POLICY_VIOLATION, CLOSE_FORBIDDEN_PUBLISH)
        return self._deliver(member, topic, frame)

    def _deliver(
        self, member: Member, topic: str, frame: PublishFrame | SendFrame
    ) -> list[Action]:
        actions: list[Action] = []
        subscribers = self._apps[member.app_id].topics.get(topic)
        if subscribers:
            encoded = encode_delivery(
                topic, frame.message_type, frame.payload, client=member.client_info, id=frame.id
            )
            actions.append(Send(tuple(subscribers), encoded, frame.compress))
        if frame.id is not None and self.acks:
            actions.append(Ack(member.id, encode_ack(frame.id)))
        return actions

    def _presence(self, member: Member, status: str) -> list[Action]:
        app = self._apps.get(member.app_id)
        subscribers = app.topics.get(INBOUND_TOPIC) if app else None
        if not subscribers:
            return []
        to = tuple(s for s in subscribers if s != member.id)
        if not to:
            return []
        return [Send(to, encode_presence(status, client=member.client_info))]
