"""WebSocket transports: the interface the client drives, the one place where what the
network, TLS and the WebSocket handshake raise becomes this library's errors, and the
default transport, websockets' sans-IO ``ClientProtocol`` over anyio streams (TCP, and TLS
verified by default), offering permessage-deflate and enforcing ``max_message_size``.

A transport's :meth:`~Transport.open` is an async context manager: it opens the
connection, starts whatever tasks the connection needs (the writer), and on the way out
closes the connection and ends them all. Nothing of a connection outlives its block.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, Final, Protocol

import anyio
import anyio.abc
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from ._errors import (
    AuthenticationError,
    CertificateError,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    HandshakeError,
    RealtimePubSubError,
)
from ._tasks import Mutex, is_cancellation, task_group
from ._urls import mask_url, redact, secrets_of, validate_url
from ._wsio import CLIENT_READ_SIZE, DataMessage, WebSocketIO

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "ClosedBeforeSending",
    "DataMessage",
    "Transport",
    "TransportConnection",
    "WebSocketsTransport",
    "closed_error",
    "closing",
    "find_error",
    "os_reason",
    "refusal",
    "translate_errors",
]

#: How long a closing handshake may take before the connection is simply dropped.
CLOSE_TIMEOUT: Final = 2.0
_REFUSED: Final = (401, 403, 404)
#: Bytes a connection may have queued for its writer before ``send`` waits for them to be
#: written: enough to coalesce bursts, small enough to push back on a stalled socket.
_HIGH_WATER: Final = 256 * 1024
_STREAM_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class ClosedBeforeSending(ConnectionClosed):
    """What :meth:`TransportConnection.send` raises when the connection was already closed:
    nothing was written, so the client may send the frame again on the next connection."""


class TransportConnection(Protocol):
    """One open WebSocket connection, as the client drives it. Any task may call any
    method at any time."""

    @property
    def close_code(self) -> int | None:
        """The close code once closed (1006 when closed without a closing handshake)."""

    @property
    def close_reason(self) -> str:
        """The close reason once closed."""

    async def send(self, data: bytes, *, binary: bool = False) -> None:
        """Send one message. Raises :class:`ClosedBeforeSending` if the connection was
        already closed (nothing written), :class:`~realtime_pubsub.ConnectionClosed` if it
        broke during the write (the message may or may not have gone out)."""

    async def drain(self) -> None:
        """Wait until everything sent so far has been written to the network, by whoever
        wrote it; :class:`~realtime_pubsub.ConnectionClosed` at once if the connection
        ends first."""

    async def receive(self) -> list[DataMessage]:
        """The next data messages (at least one); :class:`ConnectionClosed` once closed."""

    async def ping(self) -> anyio.Event:
        """Send a ping; the event is set when its pong arrives. Raises
        :class:`~realtime_pubsub.ConnectionClosed` once closed."""

    async def abort(self) -> None:
        """Drop the connection at once, without a closing handshake: a ``receive`` or a
        write in progress elsewhere ends."""


class Transport(Protocol):
    """Opens connections; pass one to :func:`realtime_pubsub.connect` as ``transport=``."""

    def open(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
        open_timeout: float,
        name: str,
    ) -> AbstractAsyncContextManager[TransportConnection]:
        """Open a connection for the duration of the ``async with`` block.

        The block ends the connection: with a closing handshake (code 1000) when it ends
        normally or is cancelled while the connection is open, by dropping it when the
        block raises anything else. Tasks the transport needs run inside the block, named
        after ``name``, and end with it.

        Args:
            url: the ``ws://`` or ``wss://`` URL.
            ssl_context: the TLS context for ``wss://`` (None: a default, verifying one).
            max_message_size: the largest message to accept (larger: close with 1009).
            open_timeout: seconds for TCP, TLS and the WebSocket handshake together.
            name: the client's name, for the names of the transport's tasks.

        Returns:
            An async context manager yielding the :class:`TransportConnection`.

        Raises:
            ConnectError: the network or TLS failed.
            CertificateError: the server's certificate is not valid.
            ConnectTimeout: it took longer than ``open_timeout``.
            AuthenticationError: the handshake was refused with 401, 403 or 404.
            HandshakeError: the handshake failed otherwise.
        """


def closed_error(
    connection: TransportConnection, error: type[ConnectionClosed] = ConnectionClosed
) -> ConnectionClosed:
    """The exception for an operation on ``connection`` once it has closed."""
    code = connection.close_code or 1006
    reason = connection.close_reason
    return error(
        f"connection closed ({code}{': ' + reason if reason else ''})", code=code, reason=reason
    )


def refusal(status: int, body: bytes | bytearray | str | None, url: str) -> RealtimePubSubError:
    """The error for a handshake answered with HTTP ``status`` instead of 101. The body is
    quoted (shortened) with every secret of ``url``, and anything shaped like a token,
    taken out: servers do echo tokens."""
    text = body.decode(errors="replace") if isinstance(body, (bytes, bytearray)) else body
    text = redact(" ".join((text or "").split())[:200], secrets_of(url))
    if status in _REFUSED:
        return AuthenticationError(
            f"the gateway refused the connection: HTTP {status}{': ' + text if text else ''}",
            status=status,
        )
    return HandshakeError(f"the WebSocket handshake failed: HTTP {status}")


def _related(error: BaseException) -> Iterator[BaseException]:
    """``error``, then every exception among its causes and contexts and inside exception
    groups, depth first (each once)."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(reversed(current.exceptions))
        for linked in (current.__context__, current.__cause__):
            if linked is not None:
                stack.append(linked)


def find_error(
    error: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> Any:
    """``error`` itself, or the first exception of type ``kind`` among its causes and
    contexts and inside exception groups; None if there is none."""
    return next((e for e in _related(error) if isinstance(e, kind)), None)


def _translate(error: BaseException, url: str) -> RealtimePubSubError | None:
    """This library's error for what opening a connection raised; None to let it pass."""
    if is_cancellation(error) or isinstance(error, (KeyboardInterrupt, SystemExit)):
        return None
    masked = mask_url(url)
    certificate = find_error(error, ssl.SSLCertVerificationError)
    if certificate is not None:
        return CertificateError(
            f"the TLS certificate of {masked} is not valid: {certificate.verify_message}"
        )
    ours = find_error(error, RealtimePubSubError)
    if ours is not None:
        return None if ours is error else ours
    if find_error(error, TimeoutError) is not None:
        return ConnectTimeout(f"no connection to {masked} within the connect timeout")
    status = find_error(error, InvalidStatus)
    if status is not None:
        return refusal(status.response.status_code, status.response.body, url)
    handshake = find_error(error, InvalidHandshake)
    if handshake is not None:
        return HandshakeError(f"the WebSocket handshake with {masked} failed: {handshake}")
    network = find_error(error, (OSError, anyio.BrokenResourceError, anyio.EndOfStream))
    if network is not None:
        return ConnectError(f"cannot connect to {masked}: {os_reason(network)}")
    return None


def os_reason(error: BaseException) -> str:
    """What the network said, in words ("connection refused", "name or service not
    known"): the text of every distinct error number among ``error``, its causes and the
    members of its exception groups, rather than a wrapper's own words (anyio's "All
    connection attempts failed" carries the real errors as its cause)."""
    reasons: dict[str, None] = {}  # ordered, without repeats
    for related in _related(error):
        if isinstance(related, ssl.SSLError):
            detail = (related.reason or str(related)).replace("_", " ").lower()
            reasons[f"the TLS handshake failed: {detail}"] = None
        elif isinstance(related, socket.gaierror) and related.strerror:
            reasons[related.strerror] = None
        elif isinstance(related, OSError) and related.errno:
            reasons[os.strerror(related.errno)] = None
    if not reasons:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return "; ".join(reason[:1].lower() + reason[1:] for reason in reasons)


class _Closable(Protocol):
    async def close(self) -> None: ...


@asynccontextmanager
async def closing(connection: _Closable) -> AsyncIterator[None]:
    """End a connection's block as :meth:`Transport.open` promises: with the closing
    handshake when the block ends normally or is cancelled (the client is closing);
    when it raises anything else, the caller drops the connection."""
    try:
        yield
    except BaseException as exc:
        if is_cancellation(exc):
            await connection.close()
        raise
    else:
        await connection.close()


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """The one place where what opening a connection to ``url`` raises becomes this
    library's errors (see :meth:`Transport.open`); anything else passes through as it
    is. Messages show the URL masked and never quote a secret."""
    try:
        yield
    except BaseException as error:
        ours = _translate(error, url)
        if ours is None:
            raise
        raise ours from error


class _SansIOConnection:
    __slots__ = ("_pings", "_receiving", "_ws")

    def __init__(self, ws: WebSocketIO) -> None:
        self._ws = ws
        self._pings: dict[bytes, anyio.Event] = {}
        # One reader at a time, the closing handshake included.
        self._receiving = Mutex()
        ws.on_pong = self._on_pong

    @property
    def close_code(self) -> int | None:
        # The peer's close frame; else the one we failed the connection with (1009 for a
        # frame over max_message_size, 1007 for invalid UTF-8...); else 1006.
        protocol = self._ws.protocol
        close = protocol.close_rcvd or protocol.close_sent
        if close is not None:
            return close.code
        if protocol.state is State.CLOSED or self._ws.broken:
            return 1006
        return None

    @property
    def close_reason(self) -> str:
        protocol = self._ws.protocol
        close = protocol.close_rcvd or protocol.close_sent
        return close.reason if close is not None else ""

    def _on_pong(self, data: bytes | bytearray | memoryview) -> None:
        event = self._pings.pop(bytes(data), None)
        if event is not None:
            event.set()

    async def send(self, data: bytes, *, binary: bool = False) -> None:
        ws = self._ws
        protocol = ws.protocol
        if protocol.state is not State.OPEN or protocol.close_rcvd is not None or ws.broken:
            raise closed_error(self, ClosedBeforeSending)
        # Outgoing frames are never deflated: "compress" in our frames asks the gateway to
        # deliver compressed, and small JSON frames only cost zlib time to squeeze.
        ws.send_message(data, binary=binary)
        try:
            if ws.writer_idle:
                # Nothing else in flight: write it now rather than wake the writer (a round
                # trip through the scheduler on the latency path).
                await ws.flush()
            else:
                ws.flush_soon()
                if ws.buffered > _HIGH_WATER:
                    await ws.drain()
        except anyio.BrokenResourceError as exc:
            raise closed_error(self) from exc

    async def drain(self) -> None:
        try:
            await self._ws.drain()
        except anyio.BrokenResourceError as exc:
            raise closed_error(self) from exc

    async def receive(self) -> list[DataMessage]:
        # The lock is free but for the closing handshake: take it without a scheduling
        # round.
        if not self._receiving.acquire_nowait():
            await self._receiving.acquire()
        try:
            protocol = self._ws.protocol
            while True:
                if protocol.close_rcvd is not None or protocol.state is State.CLOSED:
                    raise closed_error(self)
                messages = await self._ws.receive_messages()
                if messages:
                    return messages
        finally:
            self._receiving.release()

    async def ping(self) -> anyio.Event:
        protocol = self._ws.protocol
        if protocol.state is not State.OPEN or self._ws.broken:
            raise closed_error(self)
        payload = os.urandom(4)
        event = anyio.Event()
        self._pings[payload] = event
        protocol.send_ping(payload)
        self._ws.flush_soon()
        return event

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake, bounded by :data:`CLOSE_TIMEOUT`; then the connection is
        dropped whatever happened."""
        ws = self._ws
        protocol = ws.protocol
        try:
            with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                if protocol.state is State.OPEN and not ws.broken:
                    protocol.send_close(code, reason)
                    await ws.flush()
                await self._receiving.acquire()
                try:
                    while protocol.state is not State.CLOSED and not ws.broken:
                        await ws.receive_events()
                finally:
                    self._receiving.release()
        except _STREAM_GONE:
            pass
        finally:
            await ws.aclose()

    async def abort(self) -> None:
        await self._ws.aclose()


class WebSocketsTransport:
    """The default transport: websockets' sans-IO client protocol over anyio streams, on
    trio and asyncio alike. ``compression=False`` stops offering permessage-deflate."""

    def __init__(self, *, compression: bool = True) -> None:
        self.compression = compression

    def __repr__(self) -> str:
        return f"realtime_pubsub.WebSocketsTransport(compression={self.compression})"

    @asynccontextmanager
    async def open(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
        open_timeout: float,
        name: str,
    ) -> AsyncIterator[TransportConnection]:
        with translate_errors(url), anyio.fail_after(open_timeout):
            ws = await self._handshake(url, ssl_context, max_message_size)
        connection = _SansIOConnection(ws)
        try:
            async with task_group() as tasks:
                tasks.start_soon(ws.run_writer, name=f"{name}.writer")
                try:
                    async with closing(connection):
                        yield connection
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            await ws.aclose()

    async def _handshake(
        self, url: str, ssl_context: ssl.SSLContext | None, max_message_size: int
    ) -> WebSocketIO:
        uri = parse_uri(validate_url(url))
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
            # Frames that came in the response's read stay with ws, which hands them out
            # before it reads again.
            response: Response | None = None
            while response is None:
                for event in await ws.receive_events():
                    if isinstance(event, Response):
                        response = event
                if protocol.handshake_exc is not None:
                    raise protocol.handshake_exc
                if response is None and protocol.state is State.CLOSED:
                    raise HandshakeError("the server closed the connection during the handshake")
            return ws
        except BaseException:
            await ws.aclose()
            raise
