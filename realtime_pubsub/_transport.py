"""The WebSocket transport: the interface the client drives, and the default
implementation, websockets' sans-IO ``ClientProtocol`` over anyio streams (TCP, and TLS
verified by default), offering permessage-deflate and enforcing ``max_message_size``."""

from __future__ import annotations

import logging
import os
import re
import ssl
import urllib.parse
from typing import Any, Protocol

import anyio
import anyio.abc
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from ._errors import AuthenticationError, ConnectionClosed, HandshakeError, RealtimePubSubError
from ._wsio import CLIENT_READ_SIZE, DataMessage, WebSocketIO

__all__ = [
    "ClosedBeforeSending",
    "closed_error",
    "HandshakeError",
    "refused",
    "Transport",
    "TransportConnection",
    "WebSocketsTransport",
    "mask_url",
    "validate_url",
]

_CLOSE_TIMEOUT = 2.0
_REFUSED = (401, 403, 404)
_SECRET_QUERY = re.compile(
    r"((?:^|[?&;])[^=&;#]*(?:token|secret|key|password)[^=&;#]*=)[^&;#]*", re.I
)


def mask_url(url: str) -> str:
    """``url`` with the access token (and any other secret-looking query value or
    password) replaced by ``***``: safe for logs, reprs and exception messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def validate_url(url: object) -> str:
    """Return ``url`` if it is a ``ws://`` or ``wss://`` URL, else raise :class:`ValueError`
    (whose message never contains the token)."""
    if not isinstance(url, str):
        raise ValueError(f"the URL provider returned {type(url).__name__}, not a str")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ValueError("the URL provider returned an unparseable URL") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {mask_url(url)!r}")
    return url


class ClosedBeforeSending(ConnectionClosed):
    """What :meth:`TransportConnection.send` raises when the connection was already closed:
    nothing was written, so the client may send the frame again on the next connection."""


class TransportConnection(Protocol):
    """One open WebSocket connection, as the client drives it."""

    @property
    def close_code(self) -> int | None:
        """The close code once closed (1006: closed without a closing handshake)."""

    @property
    def close_reason(self) -> str:
        """The close reason once closed."""

    async def send(self, data: bytes, *, binary: bool = False) -> None:
        """Send one message. Raises :class:`ClosedBeforeSending` if the connection was
        already closed (nothing written), :class:`~realtime_pubsub.ConnectionClosed` if it
        broke during the write (the message may or may not have gone out)."""

    async def drain(self) -> None:
        """Wait until everything sent so far has been written to the network;
        :class:`~realtime_pubsub.ConnectionClosed` if the connection broke first."""

    async def receive(self) -> list[DataMessage]:
        """The next data messages (at least one); :class:`ConnectionClosed` once closed."""

    async def ping(self) -> anyio.Event:
        """Send a ping; the event is set when its pong arrives."""

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with a closing handshake (bounded in time), then drop the connection.
        Must not run while :meth:`receive` is running in another task."""

    async def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""


class Transport(Protocol):
    """Opens connections; pass one to :func:`realtime_pubsub.connect` as ``transport=``."""

    async def connect(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
        task_group: anyio.abc.TaskGroup,
    ) -> TransportConnection:
        """Open a connection to ``url`` (TCP, TLS for ``wss://``, the WebSocket
        handshake). Raises :class:`~realtime_pubsub.AuthenticationError` when the handshake
        is refused with 401, 403 or 404, :class:`OSError` when the network fails, and
        :class:`HandshakeError` for anything else. ``task_group`` is the client's, for a
        transport that needs background tasks of its own; they must end when the
        connection is closed or aborted."""


#: Bytes a connection may have queued for its writer before ``send`` waits for them to be
#: written: enough to coalesce bursts, small enough to push back on a stalled socket.
_HIGH_WATER = 256 * 1024


def closed_error(
    connection: TransportConnection, error: type[ConnectionClosed] = ConnectionClosed
) -> ConnectionClosed:
    """The exception for an operation on ``connection`` once it has closed."""
    code = connection.close_code or 1006
    reason = connection.close_reason
    return error(
        f"connection closed ({code}{': ' + reason if reason else ''})", code=code, reason=reason
    )


class _SansIOConnection:
    __slots__ = ("_backlog", "_pings", "_writer", "_ws")

    def __init__(self, ws: WebSocketIO, backlog: list[DataMessage]) -> None:
        self._ws = ws
        self._backlog = backlog
        self._pings: dict[bytes, anyio.Event] = {}
        self._writer = anyio.CancelScope()
        ws.on_pong = self._on_pong

    async def run_writer(self) -> None:
        """The connection's writer task (see WebSocketIO.run_writer); ends with the
        connection."""
        with self._writer:
            await self._ws.run_writer()

    @property
    def close_code(self) -> int | None:
        # The peer's close frame; else the one we failed the connection with (1009 for a
        # frame over max_message_size, 1007 for invalid UTF-8...); else 1006.
        protocol = self._ws.protocol
        close = protocol.close_rcvd or protocol.close_sent
        if close is not None:
            return close.code
        if protocol.state is State.CLOSED:
            return 1006
        return None

    @property
    def close_reason(self) -> str:
        protocol = self._ws.protocol
        close = protocol.close_rcvd or protocol.close_sent
        return close.reason if close is not None else ""

    def _closed(self, error: type[ConnectionClosed] = ConnectionClosed) -> ConnectionClosed:
        return closed_error(self, error)

    def _on_pong(self, data: bytes | bytearray | memoryview) -> None:
        event = self._pings.pop(bytes(data), None)
        if event is not None:
            event.set()

    async def send(self, data: bytes, *, binary: bool = False) -> None:
        protocol = self._ws.protocol
        if protocol.state is not State.OPEN or protocol.close_rcvd is not None:
            raise self._closed(ClosedBeforeSending)
        ws = self._ws
        if ws.broken:
            raise self._closed(ClosedBeforeSending)
        # Outgoing frames are never deflated: "compress" in our frames asks the gateway to
        # deliver compressed, and small JSON frames only cost zlib time to squeeze.
        ws.send_message(data, binary=binary)
        if ws.writer_idle:
            # Nothing else in flight: write it now rather than wake the writer (a round trip
            # through the scheduler on the latency path).
            try:
                await ws.flush()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                raise self._closed() from exc
            return
        ws.flush_soon()
        if ws.buffered > _HIGH_WATER:
            try:
                await ws.drain()
            except anyio.BrokenResourceError as exc:
                raise self._closed() from exc

    async def drain(self) -> None:
        try:
            await self._ws.drain()
        except anyio.BrokenResourceError as exc:
            raise self._closed() from exc

    async def receive(self) -> list[DataMessage]:
        if self._backlog:
            messages, self._backlog = self._backlog, []
            return messages
        protocol = self._ws.protocol
        while True:
            if protocol.close_rcvd is not None or protocol.state is State.CLOSED:
                raise self._closed()
            try:
                messages = await self._ws.receive_messages()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                protocol.receive_eof()
                continue
            if messages:
                return messages

    async def ping(self) -> anyio.Event:
        payload = os.urandom(4)
        event = anyio.Event()
        self._pings[payload] = event
        protocol = self._ws.protocol
        if protocol.state is not State.OPEN:
            raise self._closed()
        protocol.send_ping(payload)
        self._ws.flush_soon()
        return event

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        self._writer.cancel()
        protocol = self._ws.protocol
        try:
            with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                if protocol.state is State.OPEN:
                    protocol.send_close(code, reason)
                    await self._ws.flush()
                while protocol.state is not State.CLOSED:
                    await self._ws.receive_events()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            await self._ws.aclose()

    async def abort(self) -> None:
        self._writer.cancel()
        await self._ws.aclose()


class WebSocketsTransport:
    """The default transport: websockets' sans-IO client protocol over anyio streams, on
    trio and asyncio alike. ``compression=False`` stops offering permessage-deflate."""

    def __init__(self, *, compression: bool = True) -> None:
        self.compression = compression

    def __repr__(self) -> str:
        return f"realtime_pubsub.WebSocketsTransport(compression={self.compression})"

    async def connect(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
        task_group: anyio.abc.TaskGroup,
    ) -> TransportConnection:
        try:
            uri = parse_uri(validate_url(url))
        except InvalidURI:
            raise ValueError(f"invalid WebSocket URL: {mask_url(url)!r}") from None
        tls: dict[str, Any] = {}
        if uri.secure:
            tls = {
                "ssl_context": ssl_context or ssl.create_default_context(),
                "tls_hostname": uri.host,
                "tls_standard_compatible": False,
            }
        stream: anyio.abc.ByteStream = await anyio.connect_tcp(uri.host, uri.port, **tls)
        protocol = ClientProtocol(
            uri,
            extensions=[ClientPerMessageDeflateFactory()] if self.compression else None,
            max_size=max_message_size,
            logger=logging.getLogger("realtime_pubsub.websocket"),
        )
        ws = WebSocketIO(protocol, stream, read_size=CLIENT_READ_SIZE)
        try:
            protocol.send_request(protocol.connect())
            await ws.flush()
            backlog: list[DataMessage] = []
            response: Response | None = None
            while response is None:
                events = await ws.receive_events()
                for event in events:
                    if isinstance(event, Response):
                        response = event
                if protocol.handshake_exc is not None:
                    raise _handshake_error(protocol.handshake_exc)
                if response is None and protocol.state is State.CLOSED:
                    raise HandshakeError("the server closed the connection during the handshake")
                backlog.extend(ws.data_messages(events))
            connection = _SansIOConnection(ws, backlog)
            task_group.start_soon(connection.run_writer, name="realtime_pubsub writer")
            return connection
        except BaseException:
            await ws.aclose()
            raise


def refused(status: int, body: bytes | bytearray | None) -> RealtimePubSubError:
    """The error for a handshake answered with HTTP ``status`` instead of 101."""
    text = body.decode(errors="replace").strip()[:200] if body else ""
    if status in _REFUSED:
        return AuthenticationError(
            f"the gateway refused the connection: HTTP {status}{': ' + text if text else ''}",
            status=status,
        )
    return HandshakeError(f"the WebSocket handshake failed: HTTP {status}")


def _handshake_error(exc: Exception) -> RealtimePubSubError:
    if isinstance(exc, InvalidStatus):
        return refused(exc.response.status_code, exc.response.body)
    if isinstance(exc, InvalidHandshake):
        return HandshakeError(f"the WebSocket handshake failed: {exc}")
    return HandshakeError(f"the WebSocket handshake failed: {type(exc).__name__}")
