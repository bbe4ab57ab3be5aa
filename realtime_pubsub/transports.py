"""WebSocket transports for :func:`realtime_pubsub.connect` (``transport=``).

:class:`WebSocketsTransport` is the default: websockets' sans-IO protocol over anyio
streams, on trio and asyncio. :class:`TrioWebsocketTransport` drives trio-websocket
instead, for trio applications that already use and configure it (install the
``trio-websocket`` extra); it runs on trio only and does not negotiate permessage-deflate.
This module is the one place where the library speaks trio directly.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.abc
from websockets.uri import parse_uri

from ._errors import ConnectionClosed
from ._transport import (
    ClosedBeforeSending,
    HandshakeError,
    Transport,
    TransportConnection,
    WebSocketsTransport,
    closed_error,
    mask_url,
    refused,
    validate_url,
)
from ._wsio import DataMessage

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    import trio
    import trio_websocket

__all__ = ["Transport", "TransportConnection", "TrioWebsocketTransport", "WebSocketsTransport"]


class _TrioWebsocketConnection:
    __slots__ = ("_done", "_nursery", "_stream", "_ws")

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        nursery: trio.Nursery,
    ) -> None:
        import trio

        self._ws = ws
        self._stream = stream
        self._nursery = nursery
        self._done = trio.Event()

    @property
    def close_code(self) -> int | None:
        closed = self._ws.closed
        return int(closed.code) if closed is not None else None

    @property
    def close_reason(self) -> str:
        closed = self._ws.closed
        return (closed.reason or "") if closed is not None else ""

    def _closed(self, error: type[ConnectionClosed] = ConnectionClosed) -> ConnectionClosed:
        return closed_error(self, error)

    async def send(self, data: bytes, *, binary: bool = False) -> None:
        import trio_websocket

        if self._ws.closed is not None:
            raise self._closed(ClosedBeforeSending)
        try:
            await self._ws.send_message(data if binary else data.decode())
        except (trio_websocket.ConnectionClosed, anyio.BrokenResourceError) as exc:
            raise self._closed() from exc

    async def drain(self) -> None:
        pass  # send_message() returns once written

    async def receive(self) -> list[DataMessage]:
        import trio_websocket

        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed:
            raise self._closed() from None
        return [DataMessage(message, isinstance(message, bytes))]

    async def ping(self) -> anyio.Event:
        import trio_websocket

        if self._ws.closed is not None:
            raise self._closed()
        pong = anyio.Event()

        async def ping() -> None:
            try:
                await self._ws.ping()
            except (trio_websocket.ConnectionClosed, anyio.BrokenResourceError):
                return
            pong.set()

        self._nursery.start_soon(ping)
        return pong

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        try:
            with anyio.move_on_after(2.0, shield=True):
                await self._ws.aclose(code, reason or None)
        finally:
            await self.abort()

    async def abort(self) -> None:
        # trio-websocket leaves the stream open when the peer vanished first: we own it,
        # so we close it.
        with anyio.CancelScope(shield=True):
            await _close_quietly(self._stream)
        self._done.set()


class TrioWebsocketTransport:
    """trio-websocket behind the transport interface (trio only)."""

    def __init__(self, *, message_queue_size: int = 1000) -> None:
        self.message_queue_size = message_queue_size

    def __repr__(self) -> str:
        return f"realtime_pubsub.transports.TrioWebsocketTransport({self.message_queue_size})"

    async def connect(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
        task_group: anyio.abc.TaskGroup,
    ) -> TransportConnection:
        validate_url(url)
        connection: _TrioWebsocketConnection = await task_group.start(
            self._host, url, ssl_context, max_message_size, name="trio-websocket host"
        )
        return connection

    async def _host(
        self,
        url: str,
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
        *,
        task_status: anyio.abc.TaskStatus[_TrioWebsocketConnection],
    ) -> None:
        # trio-websocket needs a nursery that outlives connect(): this task holds it for as
        # long as the connection lives.
        import trio
        import trio_websocket

        uri = parse_uri(url)
        stream: trio.abc.Stream
        if uri.secure:
            stream = await trio.open_ssl_over_tcp_stream(
                uri.host, uri.port, ssl_context=ssl_context or ssl.create_default_context()
            )
        else:
            stream = await trio.open_tcp_stream(uri.host, uri.port)
        try:
            async with trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery,
                    stream,
                    uri.host,
                    uri.resource_name,
                    message_queue_size=self.message_queue_size,
                    max_message_size=max_message_size,
                )
                connection = _TrioWebsocketConnection(ws, stream, nursery)
                task_status.started(connection)
                await connection._done.wait()
                nursery.cancel_scope.cancel()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await _close_quietly(stream)
            # trio-websocket reports a refusal from its reader task, so it may come wrapped.
            rejected = _find(exc, trio_websocket.ConnectionRejected)
            if rejected is not None:
                raise refused(rejected.status_code, rejected.body) from None
            if _find(exc, trio_websocket.HandshakeError) is not None:
                raise HandshakeError(
                    f"the WebSocket handshake with {mask_url(url)} failed"
                ) from None
            raise


E = TypeVar("E", bound=BaseException)


async def _close_quietly(stream: trio.abc.Stream) -> None:
    import trio

    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await stream.aclose()


def _find(exc: BaseException, kind: type[E]) -> E | None:
    """``exc`` itself or the first exception of type ``kind`` inside exception groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None
