"""WebSocket transports for :func:`realtime_pubsub.connect` (``transport=``), and what it
takes to write one.

:class:`WebSocketsTransport` is the default: websockets' sans-IO protocol over anyio
streams, on trio and asyncio. :class:`TrioWebsocketTransport` drives trio-websocket
instead, for trio applications that already use and configure it (install the
``trio-websocket`` extra); it runs on trio only and does not negotiate permessage-deflate.
This module is the one place where the library speaks trio directly.

A transport of your own implements :class:`Transport`: ``open()`` is an async context
manager yielding a :class:`TransportConnection`, whose ``receive()`` returns
:class:`DataMessage` values and whose ``send()`` raises :class:`ClosedBeforeSending` when
nothing was written.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from websockets.uri import parse_uri

from ._tasks import unwrapped
from ._transport import (
    CLOSE_TIMEOUT,
    ClosedBeforeSending,
    DataMessage,
    Transport,
    TransportConnection,
    WebSocketsTransport,
    closed_error,
    closing,
    refusal,
    translate_errors,
)
from ._urls import validate_url

if TYPE_CHECKING:
    import trio
    import trio_websocket

__all__ = [
    "ClosedBeforeSending",
    "DataMessage",
    "Transport",
    "TransportConnection",
    "TrioWebsocketTransport",
    "WebSocketsTransport",
]


class _TrioWebsocketConnection:
    __slots__ = ("_nursery", "_stream", "_ws")

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        nursery: trio.Nursery,
    ) -> None:
        self._ws = ws
        self._stream = stream
        # The connection's own nursery: what runs in it (pings) ends with the connection.
        self._nursery = nursery

    @property
    def close_code(self) -> int | None:
        closed = self._ws.closed
        return int(closed.code) if closed is not None else None

    @property
    def close_reason(self) -> str:
        closed = self._ws.closed
        return (closed.reason or "") if closed is not None else ""

    async def send(self, data: bytes, *, binary: bool = False) -> None:
        import trio_websocket

        if self._ws.closed is not None:
            raise closed_error(self, ClosedBeforeSending)
        try:
            await self._ws.send_message(data if binary else data.decode())
        except (trio_websocket.ConnectionClosed, anyio.BrokenResourceError) as exc:
            raise closed_error(self) from exc

    async def drain(self) -> None:
        pass  # send_message() returns once written

    async def receive(self) -> list[DataMessage]:
        import trio_websocket

        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed:
            raise closed_error(self) from None
        return [DataMessage(message, isinstance(message, bytes))]

    async def ping(self) -> anyio.Event:
        import trio
        import trio_websocket

        if self._ws.closed is not None:
            raise closed_error(self)
        pong = anyio.Event()

        async def ping() -> None:
            with contextlib.suppress(trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                await self._ws.ping()
                pong.set()

        self._nursery.start_soon(ping)
        return pong

    async def close(self) -> None:
        with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await self._ws.aclose(1000)
        await self.abort()

    async def abort(self) -> None:
        # trio-websocket leaves the stream open when the peer vanished first: we own it,
        # so we close it.
        with anyio.CancelScope(shield=True):
            await _close_quietly(self._stream)


class TrioWebsocketTransport:
    """trio-websocket behind the transport interface (trio only). ``message_queue_size``
    is trio-websocket's own buffer of received messages."""

    def __init__(self, *, message_queue_size: int = 1000) -> None:
        self.message_queue_size = message_queue_size

    def __repr__(self) -> str:
        return f"realtime_pubsub.transports.TrioWebsocketTransport({self.message_queue_size})"

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
        import trio
        import trio_websocket

        uri = parse_uri(validate_url(url))
        with translate_errors(url), anyio.fail_after(open_timeout):
            stream = await self._connect(uri.host, uri.port, uri.secure, ssl_context)
        try:
            # trio-websocket reports a refusal from its reader task: through the nursery.
            with translate_errors(url), unwrapped():
                async with trio.open_nursery() as nursery:
                    with anyio.fail_after(open_timeout):
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            stream,
                            uri.host,
                            uri.resource_name,
                            message_queue_size=self.message_queue_size,
                            max_message_size=max_message_size,
                        )
                    connection = _TrioWebsocketConnection(ws, stream, nursery)
                    try:
                        async with closing(connection):
                            yield connection
                    finally:
                        nursery.cancel_scope.cancel()
        except trio_websocket.ConnectionRejected as rejected:
            raise refusal(rejected.status_code, rejected.body, url) from None
        finally:
            with anyio.CancelScope(shield=True):
                await _close_quietly(stream)

    @staticmethod
    async def _connect(
        host: str, port: int, secure: bool, ssl_context: ssl.SSLContext | None
    ) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
        import trio

        if not secure:
            return await trio.open_tcp_stream(host, port)
        stream = await trio.open_ssl_over_tcp_stream(
            host, port, ssl_context=ssl_context or ssl.create_default_context()
        )
        # The TLS handshake now, so that a certificate that is not valid fails here as
        # itself, not inside trio-websocket's handshake as a connection that never opens.
        try:
            await stream.do_handshake()
        except BaseException:
            await _close_quietly(stream)
            raise
        return stream


async def _close_quietly(stream: trio.abc.Stream) -> None:
    import trio

    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await stream.aclose()
