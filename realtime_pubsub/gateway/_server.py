"""The local gateway: a Realtime Pub/Sub server for development and tests, speaking the
protocol of PROTOCOL.md through the same codec as the client, with public fault injection.

Each connection has a reader task that parses frames and routes them synchronously (fan-out
only queues bytes on the receivers' protocol objects), and a writer task that flushes its
own connection; so a slow receiver never stalls a publisher or the other receivers.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import anyio.abc
import attrs
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from .._errors import ProtocolError
from .._messages import ConnectionInfo
from .._protocol import (
    CLOSE_FORBIDDEN_PUBLISH,
    CLOSE_FORBIDDEN_SUBSCRIBE,
    INBOUND_TOPIC,
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
    encode_presence,
    encode_welcome,
    parse_client_frame,
    private_topic,
)
from .._wsio import WebSocketIO, server_frame
from ._auth import (
    Identity,
    TokenRejected,
    decode_token,
    mint_token,
    permits,
)

__all__ = ["ConnectionSnapshot", "Gateway", "serve"]

logger = logging.getLogger("realtime_pubsub.gateway")
_websocket_logger = logging.getLogger("realtime_pubsub.gateway.websocket")

_DEFAULT_APP: Final = "default"
_HANDSHAKE_TIMEOUT: Final = 10.0
_CLOSE_TIMEOUT: Final = 2.0
_MAX_REASON_BYTES: Final = 123  # RFC 6455 §5.5: a close frame's body is at most 125 bytes


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


class _App:
    __slots__ = ("connections", "topics")

    def __init__(self) -> None:
        self.connections: dict[str, _Connection] = {}
        self.topics: dict[str, set[_Connection]] = {}


class _Connection:
    __slots__ = (
        "app",
        "app_id",
        "client_info",
        "id",
        "identity",
        "may_write",
        "remote_address",
        "scope",
        "subscriptions",
        "ws",
    )

    def __init__(
        self,
        ws: WebSocketIO,
        *,
        app: _App,
        app_id: str,
        identity: Identity,
        remote_address: str,
    ) -> None:
        self.id = secrets.token_hex(8)
        self.ws = ws
        self.app = app
        self.app_id = app_id
        self.identity = identity
        self.remote_address = remote_address
        self.client_info = encode_client_info(self.id, identity.subject, identity.permissions)
        self.subscriptions: set[str] = set()
        self.may_write: dict[str, bool] = {}
        self.scope = anyio.CancelScope()

    def deliver(self, frame: bytes, *, binary: bool = False) -> None:
        """Queue a frame for this connection; never blocks (the writer task flushes).

        Binary frames are the "compress: true" deliveries: deflated when the client
        negotiated permessage-deflate. Everything else goes out as it is.
        """
        if self.ws.protocol.state is not State.OPEN:
            return
        self.ws.send_message(frame, binary=binary, deflate=binary)
        self.ws.flush_soon()

    def deliver_plain(self, frame: bytes) -> None:
        """Queue an uncompressed frame already serialized by :func:`server_frame` (fan-out
        serializes a message once for all its receivers)."""
        if self.ws.protocol.state is not State.OPEN:
            return
        self.ws.send_server_frame(frame)
        self.ws.flush_soon()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the reader finishes it (or gives up after a delay)."""
        if self.ws.protocol.state is State.OPEN:
            reason = reason.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")
            self.ws.protocol.send_close(code, reason)
            self.ws.flush_soon()

    def snapshot(self) -> ConnectionSnapshot:
        return ConnectionSnapshot(
            id=self.id,
            app_id=self.app_id,
            subject=self.identity.subject,
            permissions=self.identity.permissions,
            subscriptions=frozenset(self.subscriptions),
            remote_address=self.remote_address,
            paused=self.ws.paused,
        )


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
        secret: str | None,
        app_id: str | None,
        acks: bool,
        max_message_size: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self._port = port
        self.secret = secret
        self.app_id = app_id
        #: Whether publishes and sends that carry an ``id`` are acknowledged.
        self.acks = acks
        #: Seconds to wait before sending each acknowledgement (0: at once).
        self.ack_delay = 0.0
        self.max_message_size = max_message_size
        self._apps: dict[str, _App] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._accept_scope: anyio.CancelScope | None = None
        self._listener: anyio.abc.Listener[Any] | None = None
        self._accept_stopped = anyio.Event()
        self._changed = anyio.Event()

    def __repr__(self) -> str:
        state = "accepting" if self.accepting else "stopped"
        return f"<realtime_pubsub.gateway.Gateway {self.host}:{self._port} {state}>"

    # ------------------------------------------------------------------ addresses and tokens

    @property
    def port(self) -> int:
        """The TCP port served (the real one when ``serve()`` was given ``port=0``)."""
        return self._port

    @property
    def accepting(self) -> bool:
        """Whether new connections are accepted (false between :meth:`stop_accepting` and
        :meth:`start_accepting`)."""
        return self._listener is not None

    def url(self, token: str, *, app_id: str | None = None) -> str:
        """A ready URL: ``ws://host:port/apps/<app>?access_token=<token>`` (``wss://`` when
        serving TLS).

        ``app_id`` defaults to the gateway's own app id, or ``"default"``.
        """
        app = app_id or self.app_id or _DEFAULT_APP
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = urllib.parse.urlencode({"access_token": token})
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{host}:{self._port}/apps/{urllib.parse.quote(app, safe='')}?{query}"

    def mint_token(
        self,
        *,
        subject: str = "user",
        permissions: Sequence[str] = ("realtime:publisher:write:topic:*",),
        ttl: float | None = 3600.0,
    ) -> str:
        """A token this gateway accepts (HS256, signed with its secret).

        The default permissions let the bearer publish anywhere but read no secure topic;
        grant ``realtime:subscriber:read:topic:secure/*`` (or narrower) for that. A
        negative ``ttl`` gives an already expired token, ``None`` one that never expires.
        """
        return mint_token(secret=self.secret, subject=subject, permissions=permissions, ttl=ttl)

    # ------------------------------------------------------------------ fault injection

    def connections(self) -> list[ConnectionSnapshot]:
        """Every open connection, in all apps, with subject, permissions and subscriptions."""
        return [
            conn.snapshot() for app in self._apps.values() for conn in app.connections.values()
        ]

    def _connection(self, connection_id: str) -> _Connection:
        for app in self._apps.values():
            conn = app.connections.get(connection_id)
            if conn is not None:
                return conn
        raise KeyError(f"no open connection {connection_id!r}")

    async def wait_for_connections(self, count: int, *, app_id: str | None = None) -> None:
        """Wait until at least ``count`` connections are open (in ``app_id``, if given)."""
        await self._wait_until(lambda app: len(app.connections), count, app_id)

    async def wait_for_subscribers(
        self, topic: str, count: int = 1, *, app_id: str | None = None
    ) -> None:
        """Wait until ``topic`` has at least ``count`` subscribers (in ``app_id``, if given):
        the way for a test to know a subscription was processed before it publishes."""
        await self._wait_until(lambda app: len(app.topics.get(topic, ())), count, app_id)

    async def _wait_until(
        self, measure: Callable[[_App], int], count: int, app_id: str | None
    ) -> None:
        """Wait until ``measure`` summed over the apps (or ``app_id`` alone) reaches
        ``count``; re-checked whenever connections or subscriptions change."""
        while True:
            apps = [self._apps.get(app_id)] if app_id else list(self._apps.values())
            if sum(measure(app) for app in apps if app) >= count:
                return
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def close_connection(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        """Close one connection with a proper closing handshake, ``code`` and ``reason``."""
        self._connection(connection_id).close(code, reason)

    def drop_connection(self, connection_id: str) -> None:
        """Drop one connection abruptly: the TCP connection closes with no close frame."""
        self._connection(connection_id).scope.cancel()

    def pause_connection(self, connection_id: str) -> None:
        """Make one connection half-open: the gateway stops reading from it and writing to
        it, so its pings go unanswered and nothing reaches it, but the TCP connection stays
        up. :meth:`resume_connection` undoes it (what was queued meanwhile is then sent)."""
        self._connection(connection_id).ws.pause()

    def resume_connection(self, connection_id: str) -> None:
        """Undo :meth:`pause_connection`."""
        self._connection(connection_id).ws.resume()

    def send_raw(self, connection_id: str, data: str | bytes, *, text: bool | None = None) -> None:
        """Send any frame to one connection, bypassing the codec: ``str`` as a text frame,
        ``bytes`` as a binary frame, or as a text frame with ``text=True`` (even if the
        bytes are not valid UTF-8). Bypasses :attr:`max_message_size` too."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        is_text = isinstance(data, str) if text is None else text
        self._connection(connection_id).deliver(payload, binary=not is_text)

    async def stop_accepting(self) -> None:
        """Stop listening and drop every connection abruptly, as a crashed gateway would;
        connection attempts are refused until :meth:`start_accepting`."""
        if self._accept_scope is not None:
            self._accept_scope.cancel()
            self._accept_scope = None
            with anyio.CancelScope(shield=True):
                await self._accept_stopped.wait()
        for app in self._apps.values():
            for conn in app.connections.values():
                conn.scope.cancel()

    async def start_accepting(self) -> None:
        """Listen again on the same host and port."""
        if self._listener is not None:
            return
        assert self._task_group is not None, "the gateway is not running"
        await self._task_group.start(self._accept_loop)

    async def restart(self, downtime: float = 0.0) -> None:
        """:meth:`stop_accepting`, wait ``downtime`` seconds, :meth:`start_accepting`."""
        await self.stop_accepting()
        await anyio.sleep(downtime)
        await self.start_accepting()

    # ------------------------------------------------------------------ serving

    async def _accept_loop(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        assert self._task_group is not None
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self._port)
        self._port = listener.extra(SocketAttribute.local_port)
        self._listener = listener
        self._accept_stopped = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._accept_scope = scope
                task_status.started()
                await listener.serve(self._handle, task_group=self._task_group)
        finally:
            self._listener = None
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            self._accept_stopped.set()

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        if self.ssl_context is not None:
            try:
                with anyio.fail_after(_HANDSHAKE_TIMEOUT):
                    stream = await TLSStream.wrap(  # type: ignore[assignment]
                        stream,
                        server_side=True,
                        ssl_context=self.ssl_context,
                        standard_compatible=False,
                    )
            except (TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
                logger.info("TLS handshake failed: %s", type(exc).__name__)
                await stream.aclose()
                return
        protocol = ServerProtocol(
            extensions=[ServerPerMessageDeflateFactory()],
            max_size=self.max_message_size,
            logger=_websocket_logger,
        )
        ws = WebSocketIO(protocol, stream)
        try:
            conn = await self._handshake(ws)
            if conn is not None:
                await self._run(conn)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the peer went away; the finally below is all the cleanup needed
        except Exception:
            # One connection's surprise must never take the gateway down with it.
            logger.exception("connection handler failed")
        finally:
            await ws.aclose()

    async def _handshake(self, ws: WebSocketIO) -> _Connection | None:
        request: Request | None = None
        with anyio.move_on_after(_HANDSHAKE_TIMEOUT):
            while request is None and ws.protocol.state is State.CONNECTING:
                for event in await ws.receive_events():
                    if isinstance(event, Request):
                        request = event
                if ws.protocol.handshake_exc is not None or ws.closed:
                    return None
        if request is None:
            return None
        protocol = ws.protocol
        assert isinstance(protocol, ServerProtocol)
        response, app_id, identity = self._authorize(protocol, request)
        protocol.send_response(response)
        await ws.flush()
        if response.status_code != 101 or app_id is None or identity is None:
            return None
        app = self._apps.setdefault(app_id, _App())
        return _Connection(
            ws,
            app=app,
            app_id=app_id,
            identity=identity,
            remote_address=str(ws.stream.extra(SocketAttribute.remote_address, ("", 0))[0]),
        )

    def _authorize(
        self, protocol: ServerProtocol, request: Request
    ) -> tuple[Response, str | None, Identity | None]:
        url = urllib.parse.urlsplit(request.path)
        parts = url.path.split("/")
        if len(parts) != 3 or parts[0] or parts[1] != "apps" or not parts[2]:
            return protocol.reject(404, "Not found: connect to /apps/<app-id>\n"), None, None
        app_id = urllib.parse.unquote(parts[2])
        if self.app_id is not None and app_id != self.app_id:
            return protocol.reject(404, "Not found: unknown app\n"), None, None
        tokens = urllib.parse.parse_qs(url.query).get("access_token")
        try:
            identity = decode_token(tokens[0] if tokens else None, secret=self.secret)
        except TokenRejected as exc:
            logger.info("handshake refused: %s", exc)
            return protocol.reject(401, f"Unauthorized: {exc}\n"), None, None
        return protocol.accept(request), app_id, identity

    async def _run(self, conn: _Connection) -> None:
        app = conn.app
        app.connections[conn.id] = conn
        app.topics.setdefault(private_topic(conn.id), set()).add(conn)
        self._notify()
        logger.info(
            "connection %s open (app %r, subject %r)", conn.id, conn.app_id, conn.identity.subject
        )
        try:
            with conn.scope:
                conn.deliver(
                    encode_welcome(
                        ConnectionInfo(
                            id=conn.id, app_id=conn.app_id, remote_address=conn.remote_address
                        )
                    )
                )
                self._presence(conn, "connected")
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._write_loop, conn)
                    await self._read_loop(conn)
                    tg.cancel_scope.cancel()
        finally:
            self._forget(conn)
            self._presence(conn, "disconnected")
            logger.info("connection %s closed", conn.id)

    def _forget(self, conn: _Connection) -> None:
        app = conn.app
        app.connections.pop(conn.id, None)
        for topic in (*conn.subscriptions, private_topic(conn.id)):
            subscribers = app.topics.get(topic)
            if subscribers is not None:
                subscribers.discard(conn)
                if not subscribers:
                    del app.topics[topic]
        self._notify()

    async def _write_loop(self, conn: _Connection) -> None:
        await conn.ws.run_writer()
        conn.scope.cancel()  # the stream broke: the connection is gone

    async def _read_loop(self, conn: _Connection) -> None:
        ws = conn.ws
        while not ws.closed:
            if ws.protocol.state is State.CLOSING:
                # We (or the peer) started the closing handshake; don't wait forever for
                # a peer that never finishes it.
                with anyio.move_on_after(_CLOSE_TIMEOUT) as scope:
                    await ws.flush()
                    while not ws.closed:
                        await ws.receive_events()
                if scope.cancelled_caught:
                    return
                continue
            for data, _binary in await ws.receive_messages():
                self._on_message(conn, data)
        await ws.flush()

    # ------------------------------------------------------------------ the protocol rules

    def _on_message(self, conn: _Connection, data: bytes | bytearray | memoryview | str) -> None:
        try:
            frame = parse_client_frame(data)
        except ProtocolError as exc:
            logger.info("closing %s with %d: %s", conn.id, exc.close_code, exc)
            conn.close(exc.close_code, str(exc))
            return
        if isinstance(frame, PublishFrame):
            self._publish(conn, frame)
        elif isinstance(frame, SendFrame):
            self._fan_out(conn, INBOUND_TOPIC, frame)
        elif isinstance(frame, SubscribeFrame):
            self._subscribe(conn, frame.topic)
        elif isinstance(frame, UnsubscribeFrame):
            self._unsubscribe(conn, frame.topic)

    def _subscribe(self, conn: _Connection, topic: str) -> None:
        if topic.startswith(SECURE_PREFIX) and not permits(
            conn.identity.permissions, READ_PERMISSION_PREFIX, topic
        ):
            logger.info("closing %s: no read permission for %r", conn.id, topic)
            conn.close(1008, CLOSE_FORBIDDEN_SUBSCRIBE)
            return
        conn.subscriptions.add(topic)
        conn.app.topics.setdefault(topic, set()).add(conn)
        self._notify()

    def _unsubscribe(self, conn: _Connection, topic: str) -> None:
        conn.subscriptions.discard(topic)
        subscribers = conn.app.topics.get(topic)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del conn.app.topics[topic]
        self._notify()

    def _publish(self, conn: _Connection, frame: PublishFrame) -> None:
        topic = frame.topic
        allowed = conn.may_write.get(topic)
        if allowed is None:
            # [E] priv/ topics (replies) need no write permission.
            allowed = topic.startswith(PRIVATE_PREFIX) or permits(
                conn.identity.permissions, WRITE_PERMISSION_PREFIX, topic
            )
            if len(conn.may_write) < 1024:
                conn.may_write[topic] = allowed
        if not allowed:
            logger.info("closing %s: no write permission for %r", conn.id, topic)
            conn.close(1008, CLOSE_FORBIDDEN_PUBLISH)
            return
        self._fan_out(conn, topic, frame)

    def _fan_out(self, conn: _Connection, topic: str, frame: PublishFrame | SendFrame) -> None:
        subscribers = conn.app.topics.get(topic)
        if subscribers:
            encoded = encode_delivery(
                topic, frame.message_type, frame.payload, client=conn.client_info, id=frame.id
            )
            if frame.compress:
                # Deflated per connection: each has its own compression context.
                for subscriber in subscribers:
                    subscriber.deliver(encoded, binary=True)
            else:
                plain = server_frame(encoded)
                for subscriber in subscribers:
                    subscriber.deliver_plain(plain)
        if frame.id is not None and self.acks:
            if self.ack_delay > 0:
                assert self._task_group is not None
                self._task_group.start_soon(self._delayed_ack, conn, frame.id, self.ack_delay)
            else:
                conn.deliver(encode_ack(frame.id))

    async def _delayed_ack(self, conn: _Connection, message_id: str, delay: float) -> None:
        await anyio.sleep(delay)
        conn.deliver(encode_ack(message_id))

    def _presence(self, conn: _Connection, status: str) -> None:
        subscribers = conn.app.topics.get(INBOUND_TOPIC)
        if subscribers:
            plain = server_frame(encode_presence(status, client=conn.client_info))
            for subscriber in subscribers:
                if subscriber is not conn:
                    subscriber.deliver_plain(plain)


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    secret: str | None = None,
    app_id: str | None = None,
    acks: bool = True,
    max_message_size: int = 65536,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Gateway]:
    """Run a local Realtime Pub/Sub gateway for the duration of the block.

    ``port=0`` picks a free port (read it from :attr:`Gateway.port`). With ``secret``,
    tokens must be HS256 JWTs signed with it; without, tokens are decoded but not verified
    (development mode; ``exp`` is still honoured). With ``app_id`` only that app is served;
    without, every app id is, each isolated from the others. ``acks=False`` disables
    acknowledgements, as an application without "WebSocket Inbound ACK" would.
    Frames above ``max_message_size`` bytes close the connection with 1009. With
    ``ssl_context`` (a server-side context holding the certificate) it serves ``wss://``.

    For development and tests only: production traffic goes to the hosted service.
    """
    if max_message_size <= 0:
        raise ValueError("max_message_size must be positive")
    if secret is None:
        logger.warning(
            "gateway running without a secret: tokens are decoded but their signatures are "
            "not verified (development mode)"
        )
    gateway = Gateway(
        host=host,
        port=port,
        secret=secret,
        app_id=app_id,
        acks=acks,
        max_message_size=max_message_size,
        ssl_context=ssl_context,
    )
    async with anyio.create_task_group() as tg:
        gateway._task_group = tg
        await tg.start(gateway._accept_loop)
        logger.info("gateway listening on %s:%d", host, gateway.port)
        try:
            yield gateway
        finally:
            await gateway.stop_accepting()
            tg.cancel_scope.cancel()
