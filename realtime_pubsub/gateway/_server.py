"""The local gateway: a Realtime Pub/Sub server for development and tests, speaking the
protocol of PROTOCOL.md through the same codec as the client, with public fault injection.

This module is the gateway's public face (:func:`serve`, :class:`Gateway`) and the glue
between its parts: connections come in through ``_accept`` (listener, TLS, handshake and
keys from ``_auth``), each is driven by a ``_connection.Connection`` (its read and write
loops and limits), and every frame goes through the sans-IO ``_broker.Broker``, whose
decisions (send these bytes to these connections, close that one) are carried out here.
Requests for the HTTP admin API (paths under ``/api/``) are served by ``_http`` on the
same port, and end in the same broker.
"""

from __future__ import annotations

import collections
import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import attrs

from .._admin_protocol import ROLES
from .._wsio import server_frame
from ..tokens import can_publish
from ._accept import Listener, handshake, open_stream, websocket
from ._auth import Keyring, TokenRejected
from ._broker import Ack, Action, Broker, Close, Member, Send
from ._config import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_WRITE_TIMEOUT,
    AppConfig,
    Limits,
)
from ._connection import Connection
from ._http import AdminApi, Request, Response, is_api_request, read_request_line, serve_http

__all__ = ["ConnectionSnapshot", "Gateway", "serve"]

logger = logging.getLogger("realtime_pubsub.gateway")


@attrs.frozen
class ConnectionSnapshot:
    """One live connection, as :meth:`Gateway.connections` reports it."""

    id: str
    app_id: str
    subject: str | None
    permissions: tuple[str, ...]
    #: Topics subscribed explicitly (the implicit ``priv/<id>`` is not listed).
    subscriptions: frozenset[str]
    remote_address: str
    #: True while :meth:`Gateway.pause_connection` holds it half-open.
    paused: bool
    #: How many bytes are queued for it and not yet written, or how far behind it is.
    #: Over the gateway's ``max_send_buffer`` it is closed with 1013.
    buffered: int = 0


class Gateway:
    """A running local gateway. Get one from :func:`serve`.

    The attributes :attr:`acks` and :attr:`ack_delay` may be changed at any time, which is
    how tests withhold or delay acknowledgements.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        keyring: Keyring,
        acks: bool,
        limits: Limits,
        ssl_context: ssl.SSLContext | None = None,
        secret: str | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        #: The HS256 secret of ``serve(secret=...)``, if that is how keys were given.
        self.secret = secret
        #: Seconds to wait before sending each acknowledgement (0 for at once).
        self.ack_delay = 0.0
        self.limits = limits
        self._keyring = keyring
        self._broker = Broker(acks=acks)
        self._admin_api = AdminApi(keyring, self._broker)
        self._listener = Listener(host, port, self._handle)
        self._task_group: anyio.abc.TaskGroup | None = None
        #: Every accepted connection, handshaking, open or closing.
        self._accepted: set[Connection] = set()
        #: The open ones, by id: what the broker's decisions are carried out on.
        self._open: dict[str, Connection] = {}
        self._actions: collections.deque[Action] = collections.deque()
        self._applying = False
        self._generation = -1
        self._changed = anyio.Event()

    def __repr__(self) -> str:
        state = "accepting" if self.accepting else "stopped"
        return f"<realtime_pubsub.gateway.Gateway {self.host}:{self.port} {state}>"

    # ------------------------------------------------------------------ settings

    @property
    def port(self) -> int:
        """The TCP port served (the real one when ``serve()`` was given ``port=0``)."""
        return self._listener.port

    @property
    def accepting(self) -> bool:
        """Whether new connections are accepted (false between :meth:`stop_accepting` and
        :meth:`start_accepting`)."""
        return self._listener.listening

    @property
    def app_id(self) -> str | None:
        """The one app served, when ``serve()`` was given ``app_id``."""
        return self._keyring.app_id

    @property
    def acks(self) -> bool:
        """Whether publishes and sends that carry an ``id`` are acknowledged."""
        return self._broker.acks

    @acks.setter
    def acks(self, value: bool) -> None:
        self._broker.acks = value

    @property
    def max_message_size(self) -> int:
        """Frames above this many bytes close the sender's connection with 1009."""
        return self.limits.max_message_size

    @property
    def max_send_buffer(self) -> int:
        """Bytes queued for one connection above which it is closed with 1013."""
        return self.limits.max_send_buffer

    @property
    def write_timeout(self) -> float:
        """Seconds one write may take before its connection is aborted."""
        return self.limits.write_timeout

    # ------------------------------------------------------------------ addresses and tokens

    def _origin(self, scheme: str) -> str:
        tls = "s" if self.ssl_context is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}{tls}://{host}:{self.port}"

    def url(self, token: str, *, app_id: str | None = None) -> str:
        """A ready URL: ``ws://host:port/apps/<app>?access_token=<token>`` (``wss://`` when
        serving TLS).

        ``app_id`` defaults to the gateway's own app id, or its only configured app, or
        ``"default"``; a gateway configured with several apps needs it.
        """
        app = urllib.parse.quote(self._keyring.app(app_id), safe="")
        query = urllib.parse.urlencode({"access_token": token})
        return f"{self._origin('ws')}/apps/{app}?{query}"

    @property
    def http_url(self) -> str:
        """The base URL of the HTTP admin API, served on the same port as WebSocket
        clients: ``http://host:port`` (``https://`` when serving TLS). Give it to
        :class:`~realtime_pubsub.admin.AdminClient` as ``base_url``."""
        return self._origin("http")

    def mint_token(
        self,
        *,
        subject: str = "user",
        permissions: Sequence[str] = (can_publish("*"),),
        ttl: float | None = 3600.0,
        app_id: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A token this gateway accepts for ``app_id`` (default as for :meth:`url`).

        It is signed with the app's ``authKey``: its secret for ``HS*`` (or the gateway's
        ``secret``), or the ``private_key`` given beside its public key for ``RS*``,
        ``PS256`` and ``ES*`` (:class:`ValueError` without one); with the first algorithm
        and the first issuer the key lists. The default permissions let the bearer publish
        anywhere but read no secure topic: add ``tokens.can_read("secure/*")`` (or
        narrower) for that. A negative ``ttl`` gives an already expired token, ``None`` one
        that never expires; ``claims`` adds or overrides claims.
        """
        return self._keyring.client_token(
            app_id, subject=subject, permissions=permissions, ttl=ttl, claims=claims
        )

    def mint_admin_token(
        self,
        *,
        subject: str = "admin",
        roles: Sequence[str] = ROLES,
        allowed_topics: Sequence[str] | None = ("*",),
        ttl: float | None = 300.0,
        app_id: str | None = None,
    ) -> str:
        """A token this gateway's HTTP admin API accepts for ``app_id`` (default as for
        :meth:`url`), signed like :meth:`mint_token` but with the app's ``adminKey``.

        By default it holds every role (``Publisher``, ``SubscribersAdmin``,
        ``ConnectionsAdmin``) and may publish to any topic (``allowed_topics=["*"]``);
        narrow ``roles`` and ``allowed_topics`` to test refusals (``None`` leaves the
        ``allowedTopics`` claim out: such a ``Publisher`` may publish nowhere). Raises
        :class:`ValueError` for an app configured without an ``adminKey``.
        """
        try:
            return self._keyring.admin_token(
                app_id, subject=subject, roles=roles, allowed_topics=allowed_topics, ttl=ttl
            )
        except TokenRejected as exc:
            raise ValueError(f"cannot mint an admin token: {exc}") from None

    # ------------------------------------------------------------------ introspection

    def connections(self) -> list[ConnectionSnapshot]:
        """Every open connection, in all apps, with subject, permissions and subscriptions.

        A connection leaves this list as soon as it starts closing (whichever side
        starts), is dropped or is found gone.
        """
        return [self._snapshot(member) for member in self._broker.members()]

    def _snapshot(self, member: Member) -> ConnectionSnapshot:
        conn = self._open.get(member.id)
        return ConnectionSnapshot(
            id=member.id,
            app_id=member.app_id,
            subject=member.identity.subject,
            permissions=member.identity.permissions,
            subscriptions=frozenset(member.subscriptions),
            remote_address=member.remote_address,
            paused=conn is not None and conn.paused,
            buffered=conn.buffered if conn is not None else 0,
        )

    async def wait_for_connections(self, count: int, *, app_id: str | None = None) -> None:
        """Wait until at least ``count`` connections are open (in ``app_id``, if given)."""
        await self._wait_until(lambda: self._broker.count_members(app_id) >= count)

    async def wait_for_subscribers(
        self, topic: str, count: int = 1, *, app_id: str | None = None
    ) -> None:
        """Wait until ``topic`` has at least ``count`` subscribers (in ``app_id``, if given):
        the way for a test to know a subscription was processed before it publishes."""
        await self._wait_until(lambda: self._broker.count_subscribers(topic, app_id) >= count)

    async def wait_for_disconnect(self, connection_id: str) -> None:
        """Wait until the gateway is done with connection ``connection_id``: it is no
        longer listed and its socket is closed (returns at once for an unknown id). The
        way for a test to know the gateway saw a client leave, or finished closing or
        dropping it."""
        for conn in list(self._accepted):
            if conn.id == connection_id:
                await conn.wait_finished()

    async def _wait_until(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()``; re-checked whenever connections or subscriptions change."""
        while not done():
            await self._changed.wait()

    def _notify(self) -> None:
        if self._broker.generation != self._generation:
            self._generation = self._broker.generation
            changed, self._changed = self._changed, anyio.Event()
            changed.set()

    # ------------------------------------------------------------------ fault injection

    def _connection(self, connection_id: str) -> Connection:
        conn = self._open.get(connection_id)
        if conn is None:
            raise KeyError(f"no open connection {connection_id!r}")
        return conn

    def close_connection(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        """Close one connection with a proper closing handshake, ``code`` and ``reason``.

        It leaves :meth:`connections` at once; a peer that does not complete the handshake
        within two seconds is dropped."""
        self._connection(connection_id).close(code, reason)

    def drop_connection(self, connection_id: str) -> None:
        """Drop one connection abruptly: the TCP connection closes with no close frame."""
        self._connection(connection_id).abort()

    def pause_connection(self, connection_id: str) -> None:
        """Make one connection half-open: the gateway stops reading from it and writing to
        it, so its pings go unanswered and nothing reaches it, but the TCP connection stays
        up. :meth:`resume_connection` undoes it (what was queued meanwhile is then sent).

        What is queued for a paused connection still counts against ``max_send_buffer``,
        and a paused connection whose client closes the socket is gone."""
        self._connection(connection_id).pause()

    def resume_connection(self, connection_id: str) -> None:
        """Undo :meth:`pause_connection`."""
        self._connection(connection_id).resume()

    def send_raw(self, connection_id: str, data: str | bytes, *, text: bool | None = None) -> None:
        """Send any frame to one connection, bypassing the codec: ``str`` as a text frame,
        ``bytes`` as a binary frame, or as a text frame with ``text=True`` (even if the
        bytes are not valid UTF-8). Bypasses :attr:`max_message_size` too."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        is_text = isinstance(data, str) if text is None else text
        self._connection(connection_id).send(payload, binary=not is_text)

    async def stop_accepting(self) -> None:
        """Stop listening and drop every connection abruptly, as a crashed gateway would;
        connection attempts are refused until :meth:`start_accepting`. When this returns,
        every connection is closed."""
        await self._listener.stop()
        accepted = list(self._accepted)
        for conn in accepted:
            conn.abort()
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.limits.close_timeout):
            for conn in accepted:
                await conn.wait_finished()

    async def start_accepting(self) -> None:
        """Listen again on the same host and port."""
        assert self._task_group is not None, "the gateway is not running"
        await self._listener.start(self._task_group)

    async def restart(self, downtime: float = 0.0) -> None:
        """:meth:`stop_accepting`, wait ``downtime`` seconds, :meth:`start_accepting`."""
        await self.stop_accepting()
        await anyio.sleep(downtime)
        await self.start_accepting()

    # ------------------------------------------------------------------ connections

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        conn = Connection(stream, limits=self.limits)
        self._accepted.add(conn)
        try:
            await conn.run(self._session)
        finally:
            self._accepted.discard(conn)

    async def _session(self, conn: Connection) -> None:
        stream = await open_stream(conn.stream, self.ssl_context, self.limits)
        if stream is None:
            return
        received = await read_request_line(stream)
        if received is None:
            return
        if is_api_request(received):
            await serve_http(
                stream, received, limits=self.limits, handle=self._answer, deadline=conn.arm
            )
            return
        conn.ws = websocket(stream, self.limits)
        admission = await handshake(conn.ws, self._keyring, self.limits, received)
        if admission is None:
            return
        member, actions = self._broker.connect(
            admission.app_id, admission.identity, admission.remote_address
        )
        connection_id = member.id
        self._open[connection_id] = conn
        conn.admit(connection_id, self._left)
        logger.info(
            "connection %s open (app %r, subject %r)",
            connection_id,
            member.app_id,
            member.identity.subject,
        )
        self._apply(actions)
        broker = self._broker
        await conn.read_loop(lambda data: self._apply(broker.receive(connection_id, data)))

    def _answer(self, request: Request) -> Response:
        """Answer one admin API request, carrying out what the broker decided."""
        response, actions = self._admin_api.handle(request)
        self._apply(actions)
        return response

    def _left(self, conn: Connection) -> None:
        assert conn.id is not None
        del self._open[conn.id]
        logger.info("connection %s closed", conn.id)
        self._apply(self._broker.disconnect(conn.id))

    # ------------------------------------------------------------------ the broker's decisions

    def _apply(self, actions: list[Action]) -> None:
        """Carry out the broker's decisions. Carrying one out may lead to more (a receiver
        closed for its full buffer makes presence events): those queue behind it, so this
        never recurses."""
        if self._applying:
            self._actions.extend(actions)
            return
        self._applying = True
        try:
            for action in actions:
                self._do(action)
            while self._actions:
                self._do(self._actions.popleft())
        finally:
            self._applying = False
        self._notify()

    def _do(self, action: Action) -> None:
        connections = self._open
        if isinstance(action, Send):
            if action.compress:
                # Deflated per connection: each has its own compression context.
                for connection_id in action.to:
                    conn = connections.get(connection_id)
                    if conn is not None:
                        conn.send(action.frame, binary=True)
            else:
                plain = server_frame(action.frame)
                for connection_id in action.to:
                    conn = connections.get(connection_id)
                    if conn is not None:
                        conn.send_plain(plain)
        elif isinstance(action, Ack):
            conn = connections.get(action.to)
            if conn is None:
                return
            if self.ack_delay > 0:
                assert self._task_group is not None
                self._task_group.start_soon(self._delayed, conn, action.frame, self.ack_delay)
            else:
                conn.send(action.frame)
        elif isinstance(action, Close):
            conn = connections.get(action.connection_id)
            if conn is not None:
                logger.info(
                    "closing %s with %d: %s", action.connection_id, action.code, action.reason
                )
                conn.close(action.code, action.reason)

    async def _delayed(self, conn: Connection, frame: bytes, delay: float) -> None:
        await anyio.sleep(delay)
        conn.send(frame)


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    secret: str | None = None,
    apps: Mapping[str, AppConfig] | None = None,
    app_id: str | None = None,
    acks: bool = True,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
    write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Gateway]:
    """Run a local Realtime Pub/Sub gateway for the duration of the block.

    Args:
        host, port: where to listen; ``port=0`` picks a free port (read it from
            :attr:`Gateway.port`).
        secret: the short form of the keys: one HS256 secret that verifies every app's
            tokens.
        apps: the service's form: each app id with its :class:`AppConfig` (an ``authKey``
            for client tokens, an ``adminKey`` for admin tokens, each a
            :class:`KeyConfig`); other app ids are refused with 404. Read a JSON file in
            the service's shape with :func:`load_app_config`.
        app_id: serve only this app (the others are 404).
        acks: ``False`` disables acknowledgements, as an application without "WebSocket
            Inbound ACK" would.
        max_message_size: frames above this many bytes close their connection with 1009.
        max_send_buffer: bytes queued for one connection and not yet written above which
            it is closed with 1013 ("try again later"): a client that stops reading costs
            the gateway at most this (plus one message). Raise it for tests that pause a
            connection while a lot is published.
        write_timeout: seconds one write to a connection may take before it is aborted.
        ssl_context: a server-side :class:`ssl.SSLContext` holding the certificate, to
            serve ``wss://``.

    Without ``secret`` or ``apps`` the gateway runs in development mode: tokens are decoded
    but their signatures not verified (``exp`` is still honoured), and any app id is
    served, each isolated from the others.

    Leaving the block stops the gateway within a second whatever its clients do: every
    connection is dropped, reads and writes in progress included.

    For development and tests only: production traffic goes to the hosted service.
    """
    limits = Limits(
        max_message_size=max_message_size,
        max_send_buffer=max_send_buffer,
        write_timeout=write_timeout,
    )
    keyring = Keyring(secret=secret, apps=apps, app_id=app_id)
    gateway = Gateway(
        host=host,
        port=port,
        keyring=keyring,
        acks=acks,
        limits=limits,
        ssl_context=ssl_context,
        secret=secret,
    )
    async with anyio.create_task_group() as tg:
        gateway._task_group = tg
        await gateway.start_accepting()
        logger.info("gateway listening on %s:%d", host, gateway.port)
        if not keyring.verifies:
            # Once it listens: a gateway that cannot start has nothing to warn about.
            logger.warning(
                "gateway running without a secret: tokens are decoded but their signatures "
                "are not verified (development mode)"
            )
        try:
            yield gateway
        finally:
            await gateway.stop_accepting()
            tg.cancel_scope.cancel()
