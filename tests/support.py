"""Scaffolding shared by the client's tests: a client for the local gateway, and a raw
WebSocket server (websockets' sans-IO server protocol over anyio, nothing of ours) whose
every answer a test decides, for what the gateway would never do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import orjson
from anyio.abc import SocketAttribute
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

import realtime_pubsub
from realtime_pubsub import Client, MessageStream, ReconnectPolicy
from realtime_pubsub.gateway import Gateway
from realtime_pubsub.testing import ALL_PERMISSIONS

#: Reconnect at once: tests should not wait for backoff.
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)


@asynccontextmanager
async def client_for(gateway: Gateway, **kwargs: Any) -> AsyncIterator[Client]:
    """A client of ``gateway`` (reconnecting at once); ``token=`` replaces the default one,
    which may publish anywhere and read every secure topic."""
    kwargs.setdefault("reconnect", FAST)
    token = kwargs.pop("token", None) or gateway.mint_token(permissions=ALL_PERMISSIONS)
    async with realtime_pubsub.connect(gateway.url(token), **kwargs) as client:
        yield client


class Collector:
    """A callback that keeps what it is given (``handler(value)`` or
    ``handler(message, reply)``), and lets a test wait until it holds enough."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._added = anyio.Event()

    def __call__(self, value: Any, *more: Any) -> None:
        self.items.append(value)
        added, self._added = self._added, anyio.Event()
        added.set()

    async def wait_for(self, count: int, timeout: float = 5) -> list[Any]:
        """The items, once there are ``count`` of them (fail the test after
        ``timeout`` seconds)."""
        with anyio.fail_after(timeout):
            while len(self.items) < count:
                await self._added.wait()
        return self.items


async def next_message(messages: MessageStream[Any], timeout: float = 5) -> Any:
    """The next message of ``messages``, or fail the test after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        return await messages.__anext__()


class RawPeer:
    """One connection to :func:`raw_server`, as its handler drives it."""

    def __init__(self, protocol: ServerProtocol, stream: anyio.abc.ByteStream, cid: str) -> None:
        self.protocol = protocol
        self.stream = stream
        self.id = cid

    def send_json(self, frame: object) -> None:
        self.protocol.send_text(orjson.dumps(frame))

    def ping(self) -> None:
        self.protocol.send_ping(b"are you there")

    def close(self, code: int, reason: str = "") -> None:
        self.protocol.send_close(code, reason)

    async def flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if data:
            await self.stream.send(data)


#: Decides the answer to a handshake: a response (a refusal), or None to accept.
OnRequest = Callable[[ServerProtocol, Request], Response | None]
#: Called for every JSON frame a client sends.
OnFrame = Callable[[RawPeer, dict[str, Any]], Awaitable[None]]


@asynccontextmanager
async def raw_server(
    *,
    on_request: OnRequest | None = None,
    on_frame: OnFrame | None = None,
    with_welcome: Sequence[object] = (),
) -> AsyncIterator[str]:
    """A WebSocket server on a free loopback port for the duration of the block; yields
    its ``ws://`` URL (with a token-shaped access token). It accepts every handshake that
    ``on_request`` does not refuse, sends a welcome, and hands every frame to ``on_frame``;
    whatever the peer queued is written after each frame. With ``with_welcome`` (JSON
    frames), the handshake's response, the welcome and those frames go in one write."""
    connections = 0

    async def serve_one(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        protocol = ServerProtocol()
        peer = RawPeer(protocol, stream, f"raw{connections}")
        async with stream:
            try:
                request: Request | None = None
                while request is None:
                    protocol.receive_data(await stream.receive())
                    request = next(
                        (e for e in protocol.events_received() if isinstance(e, Request)), None
                    )
                refusal = on_request(protocol, request) if on_request else None
                protocol.send_response(refusal or protocol.accept(request))
                if refusal is not None:
                    await peer.flush()
                    return
                if not with_welcome:
                    await peer.flush()
                peer.send_json(
                    {
                        "topic": "main",
                        "messageType": "welcome",
                        "data": {"connection": {"id": peer.id, "appId": "raw"}},
                    }
                )
                for frame in with_welcome:
                    peer.send_json(frame)
                await peer.flush()
                while True:
                    protocol.receive_data(await stream.receive())
                    for event in protocol.events_received():
                        if not isinstance(event, Frame) or event.opcode is not Opcode.TEXT:
                            continue
                        if on_frame is not None:
                            await on_frame(peer, orjson.loads(event.data))
                    await peer.flush()
                    if protocol.close_expected():
                        return  # the closing handshake is done: close the TCP connection
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, serve_one)
        port = listener.extra(SocketAttribute.local_port)
        yield f"ws://127.0.0.1:{port}/apps/raw?access_token=aaaa.bbbb.cccc"
        tg.cancel_scope.cancel()


@asynccontextmanager
async def socket_pair() -> AsyncIterator[tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]]:
    """Both ends of one loopback TCP connection: (ours, the peer's)."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(SocketAttribute.local_port)
        ours = await anyio.connect_tcp("127.0.0.1", port)
        peer = await listener.listeners[0].accept()  # type: ignore[attr-defined]
        async with ours, peer:
            yield ours, peer
