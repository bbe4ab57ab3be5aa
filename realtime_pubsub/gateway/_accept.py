"""How a connection gets in: the TCP listener (stopped and restarted on the same port by
the fault injection), the TLS handshake, and the WebSocket handshake with its HTTP answers
(404 for a path or app the gateway does not serve, 401 for a token it refuses). Requests
for the HTTP admin API take another way after the TLS handshake (``_http``)."""

from __future__ import annotations

import logging
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import anyio.abc
import attrs
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from .._wsio import WebSocketIO
from ._auth import Identity, Keyring, TokenRejected, UnknownApp
from ._config import Limits

__all__ = ["Admission", "Listener", "handshake", "open_stream"]

logger = logging.getLogger("realtime_pubsub.gateway")
_websocket_logger = logging.getLogger("realtime_pubsub.gateway.websocket")
_STREAM_ERRORS: Final = (
    TimeoutError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
)


class Listener:
    """The TCP listener, run as a task of the gateway's task group; :meth:`stop` closes it
    and :meth:`start` listens again on the same host and port."""

    def __init__(
        self, host: str, port: int, handler: Callable[[anyio.abc.SocketStream], Awaitable[None]]
    ) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()
        self.listening = False

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Listen (the port is known when this returns); connections are handled in
        ``task_group``."""
        if not self.listening:
            await task_group.start(self._serve, task_group)

    async def stop(self) -> None:
        """Stop listening: the port refuses connections when this returns."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
            with anyio.CancelScope(shield=True):
                await self._stopped.wait()

    async def _serve(
        self, task_group: anyio.abc.TaskGroup, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = listener.extra(SocketAttribute.local_port)
        self.listening = True
        self._stopped = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                task_status.started()
                await listener.serve(self._handler, task_group=task_group)
        finally:
            self.listening = False
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            self._stopped.set()


async def open_stream(
    stream: anyio.abc.SocketStream, ssl_context: ssl.SSLContext | None, limits: Limits
) -> anyio.abc.ByteStream | None:
    """The accepted stream, after the TLS handshake when serving TLS (None if it failed
    or took longer than the handshake timeout: the stream is then closed)."""
    if ssl_context is None:
        return stream
    try:
        with anyio.fail_after(limits.handshake_timeout):
            return await TLSStream.wrap(
                stream, server_side=True, ssl_context=ssl_context, standard_compatible=False
            )
    except _STREAM_ERRORS as exc:
        logger.info("TLS handshake failed: %s", type(exc).__name__)
        await stream.aclose()
        return None


def websocket(stream: anyio.abc.ByteStream, limits: Limits) -> WebSocketIO:
    """A server-side WebSocket over ``stream``, not yet handshaken."""
    protocol = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()],
        max_size=limits.max_message_size,
        logger=_websocket_logger,
    )
    return WebSocketIO(protocol, stream, write_timeout=limits.write_timeout)


@attrs.frozen
class Admission:
    """A client that passed the WebSocket handshake."""

    app_id: str
    identity: Identity
    remote_address: str


async def handshake(
    ws: WebSocketIO, keyring: Keyring, limits: Limits, received: bytes = b""
) -> Admission | None:
    """Read the client's upgrade request, whose first bytes (``received``) were read
    already, and answer it: 101 and an :class:`Admission`, or an HTTP error and None (also
    for a client that sends no request in time)."""
    protocol = ws.protocol
    assert isinstance(protocol, ServerProtocol)
    request: Request | None = None
    with anyio.move_on_after(limits.handshake_timeout):
        while request is None and protocol.state is State.CONNECTING:
            events = await ws.receive_events(received)
            received = b""
            for event in events:
                if isinstance(event, Request):
                    request = event
            if protocol.handshake_exc is not None or ws.closed:
                return None
    if request is None:
        return None
    answer = _authorize(request, keyring)
    if isinstance(answer, tuple):
        status, text = answer
        protocol.send_response(protocol.reject(status, text))
        await ws.flush()
        return None
    response = protocol.accept(request)
    protocol.send_response(response)
    await ws.flush()
    if response.status_code != 101:  # not a valid upgrade: websockets answered it
        return None
    address: Any = ws.stream.extra(SocketAttribute.remote_address, ("", 0))
    return attrs.evolve(answer, remote_address=str(address[0]))


def _authorize(request: Request, keyring: Keyring) -> Admission | tuple[int, str]:
    url = urllib.parse.urlsplit(request.path)
    parts = url.path.split("/")
    if len(parts) != 3 or parts[0] or parts[1] != "apps" or not parts[2]:
        return 404, "Not found: connect to /apps/<app-id>\n"
    app_id = urllib.parse.unquote(parts[2])
    tokens = urllib.parse.parse_qs(url.query).get("access_token")
    try:
        identity = keyring.authenticate(app_id, tokens[0] if tokens else None)
    except UnknownApp:
        return 404, "Not found: unknown app\n"
    except TokenRejected as exc:
        logger.info("handshake refused: %s", exc)
        return 401, f"Unauthorized: {exc}\n"
    return Admission(app_id, identity, "")
