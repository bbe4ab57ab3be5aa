"""Scaffolding for driving the gateway in tests: a raw WebSocket client (websockets' own
client: its asyncio implementation under asyncio, its trio implementation under trio), so
the gateway is checked against an implementation that is not ours; a client on a plain
socket that reads only when told (a subscriber that stops reading); subprocesses."""

from __future__ import annotations

import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import orjson
import pytest
import sniffio
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from realtime_pubsub.gateway import Gateway
from realtime_pubsub.testing import ALL_PERMISSIONS


def url_for(gateway: Gateway, **token: Any) -> str:
    """A URL for ``gateway`` with a freshly minted token (``subject``, ``permissions``,
    ``ttl``); the permissions default to publishing anywhere and reading every secure topic."""
    token.setdefault("permissions", ALL_PERMISSIONS)
    return gateway.url(gateway.mint_token(**token))


async def settle(gateway: Gateway, connection_id: str, topic: str) -> None:
    """Wait until the gateway has processed a subscription (frames are handled in order,
    but across connections a test must not race the gateway)."""
    with anyio.fail_after(5):
        while not any(
            c.id == connection_id and topic in c.subscriptions for c in gateway.connections()
        ):
            await anyio.sleep(0.002)


async def subscribed(gateway: Gateway, client: RawClient, topic: str) -> None:
    """Subscribe ``client`` to ``topic`` and wait until the gateway has processed it."""
    await client.subscribe(topic)
    await settle(gateway, client.id, topic)


class RawClient:
    """A thin JSON layer over a websockets connection."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}

    @property
    def id(self) -> str:
        return str(self.welcome["data"]["connection"]["id"])

    async def send_json(self, frame: object) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def send(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def subscribe(self, topic: str) -> None:
        await self.send_json({"type": "subscribe", "data": {"topic": topic}})

    async def publish(self, topic: str, payload: object, **fields: object) -> None:
        await self.send_json(
            {"type": "publish", "data": {"topic": topic, "payload": payload, **fields}}
        )

    async def recv_frame(self, timeout: float = 5.0) -> tuple[dict[str, Any], bool]:
        """The next frame, decoded, and whether it was binary."""
        with anyio.fail_after(timeout):
            data = await self.ws.recv()
        frame = orjson.loads(data)
        assert isinstance(frame, dict)
        return frame, isinstance(data, bytes)

    async def recv_json(self, timeout: float = 5.0) -> dict[str, Any]:
        return (await self.recv_frame(timeout))[0]

    async def expect_silence(self, duration: float = 0.2) -> None:
        """Assert that nothing arrives for ``duration`` seconds."""
        with anyio.move_on_after(duration):
            data = await self.ws.recv()
            raise AssertionError(f"unexpected frame: {data!r}")

    async def expect_close(self, timeout: float = 5.0) -> tuple[int, str]:
        """Wait for the connection to close; return (code, reason): the gateway's close
        frame, or the one this client failed the connection with, or 1006 for neither."""
        with anyio.fail_after(timeout):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed as exc:
                # What the gateway sent, or else what our side failed the connection with.
                close = exc.rcvd or exc.sent
                if close is None:
                    return 1006, ""
                return close.code, close.reason
        raise AssertionError("unreachable")

    async def ping_answered(self, timeout: float) -> bool:
        """Whether a ping gets its pong within ``timeout`` seconds."""
        waiter = await self.ws.ping()
        with anyio.move_on_after(timeout):
            await waiter if sniffio.current_async_library() == "asyncio" else await waiter.wait()
            return True
        return False


@asynccontextmanager
async def connect(url: str, *, welcome: bool = True, **kwargs: Any) -> AsyncIterator[RawClient]:
    """Connect with websockets' client for the running backend; wait for the welcome."""
    if sniffio.current_async_library() == "trio":
        try:
            from websockets.trio.client import connect as ws_connect
        except ImportError:  # websockets < 17, as on Python 3.10
            pytest.skip("websockets' trio client needs websockets >= 17")
    else:
        from websockets.asyncio.client import connect as ws_connect  # type: ignore[assignment]
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 2)
    async with ws_connect(url, **kwargs) as ws:
        client = RawClient(ws)
        if welcome:
            client.welcome = await client.recv_json()
            assert client.welcome["topic"] == "main"
            assert client.welcome["messageType"] == "welcome"
        yield client


@asynccontextmanager
async def gateway_command(*options: str) -> AsyncIterator[tuple[anyio.abc.Process, int, str]]:
    """``realtime-pubsub gateway --port 0 OPTIONS`` for the duration of the block: the
    process, its port and what it printed up to "press Ctrl-C". Ctrl-C (SIGINT) stops it
    at the end, if it is still running."""
    command = [sys.executable, "-m", "realtime_pubsub", "gateway", "--port", "0", *options]
    async with running(command) as process:
        assert process.stdout is not None
        output = b""
        with anyio.fail_after(20):
            while b"press Ctrl-C" not in output:
                chunk = await process.stdout.receive()
                output += chunk
        text = output.decode()
        port = int(text.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        yield process, port, text
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                await process.wait()


@asynccontextmanager
async def running(command: list[str]) -> AsyncIterator[anyio.abc.Process]:
    """A subprocess for the duration of the block, killed if it is still running at the end
    (a test that fails or skips must not wait forever for a server that never exits)."""
    async with await anyio.open_process(command) as process:
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()


class Lines:
    """Read a process's output (``process.stdout`` or ``process.stderr``) line by line."""

    def __init__(self, stream: anyio.abc.ByteReceiveStream | None) -> None:
        assert stream is not None
        self.stream = stream
        self.buffer = b""

    async def until(self, pattern: str, timeout: float = 20) -> str:
        """The next line that matches the regular expression ``pattern`` (those before it
        are skipped); the test fails if none comes within ``timeout`` seconds."""
        with anyio.fail_after(timeout):
            while True:
                *lines, self.buffer = self.buffer.split(b"\n")
                for index, line in enumerate(lines):
                    if re.search(pattern, line.decode()):
                        self.buffer = b"\n".join([*lines[index + 1 :], self.buffer])
                        return line.decode()
                self.buffer += await self.stream.receive()


async def stopped_by_ctrl_c(process: anyio.abc.Process) -> str:
    """Ctrl-C (SIGINT) ``process``, which must end as the realtime-pubsub command does:
    "stopped" and status 0, no traceback. Returns the rest of its stderr."""
    assert process.stderr is not None
    process.send_signal(signal.SIGINT)
    with anyio.fail_after(10):
        code = await process.wait()
    errors = b"".join([chunk async for chunk in process.stderr]).decode()
    assert code == 0, errors
    assert errors.splitlines()[-1] == "stopped"
    assert "Traceback" not in errors
    return errors


class SocketClient:
    """A WebSocket client on a plain blocking socket with a small receive buffer, driven
    from worker threads, that reads only when told to: between :meth:`connect` and
    :meth:`read_until_close` it reads nothing, like a subscriber that stopped reading."""

    def __init__(self, url: str, *, receive_buffer: int = 4096) -> None:
        uri = parse_uri(url)
        self.protocol = ClientProtocol(uri)
        self.address = (uri.host, uri.port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connecting, so that the kernel does not grow the window beyond it.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.id = ""
        self._eof = False

    async def connect(self) -> None:
        """Open the connection and read up to the welcome."""
        await anyio.to_thread.run_sync(self.sock.connect, self.address)
        self.protocol.send_request(self.protocol.connect())
        await self._write()
        while not self.id:
            for frame in await self._read():
                if frame.opcode is Opcode.TEXT:
                    self.id = orjson.loads(frame.data)["data"]["connection"]["id"]

    async def send_json(self, frame: object) -> None:
        self.protocol.send_text(orjson.dumps(frame))
        await self._write()

    async def subscribe(self, topic: str) -> None:
        await self.send_json({"type": "subscribe", "data": {"topic": topic}})

    async def read_until_close(self) -> tuple[int, str]:
        """Read everything until the connection ends: the gateway's close code and reason,
        or 1006 when it ended without a close frame."""
        while True:
            for frame in await self._read():
                if frame.opcode is Opcode.CLOSE:
                    close = self.protocol.close_rcvd
                    assert close is not None
                    return close.code, close.reason
            if self.protocol.close_rcvd is None and self._eof:
                return 1006, ""

    def vanish(self) -> None:
        """Close the socket without a closing handshake."""
        self.sock.close()

    async def _write(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        await anyio.to_thread.run_sync(self.sock.sendall, data)

    async def _read(self) -> list[Frame]:
        try:
            data = await anyio.to_thread.run_sync(self.sock.recv, 65536)
        except ConnectionResetError:
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self._eof = True
            self.protocol.receive_eof()
        return [e for e in self.protocol.events_received() if isinstance(e, Frame)]


async def open_stuck_subscriber(gateway: Gateway, topic: str, **token: Any) -> SocketClient:
    """A :class:`SocketClient` subscribed to ``topic`` (the gateway has processed it) that
    reads nothing until told to; :meth:`SocketClient.vanish` it when done."""
    client = SocketClient(url_for(gateway, **token))
    try:
        await client.connect()
        await client.subscribe(topic)
        await settle(gateway, client.id, topic)
    except BaseException:
        client.vanish()
        raise
    return client


@asynccontextmanager
async def stuck_subscriber(
    gateway: Gateway, topic: str, **token: Any
) -> AsyncIterator[SocketClient]:
    """:func:`open_stuck_subscriber` for the duration of the block."""
    client = await open_stuck_subscriber(gateway, topic, **token)
    try:
        yield client
    finally:
        client.vanish()
