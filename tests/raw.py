"""A raw WebSocket client for driving the gateway in tests: websockets' own client (its
asyncio implementation under asyncio, its trio implementation under trio), so the gateway
is checked against an implementation that is not ours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest
import sniffio
from websockets.exceptions import ConnectionClosed

from realtime_pubsub.gateway import Gateway
from realtime_pubsub.testing import ALL_PERMISSIONS


def url_for(gateway: Gateway, **token: Any) -> str:
    """A URL for ``gateway`` with a freshly minted token (``subject``, ``permissions``,
    ``ttl``); the permissions default to publishing anywhere and reading every secure topic."""
    token.setdefault("permissions", ALL_PERMISSIONS)
    return gateway.url(gateway.mint_token(**token))


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
async def running(command: list[str]) -> AsyncIterator[anyio.abc.Process]:
    """A subprocess for the duration of the block, killed if it is still running at the end
    (a test that fails or skips must not wait forever for a server that never exits)."""
    async with await anyio.open_process(command) as process:
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()
