"""The async and the sync admin client behind one async interface, so that each test of
tests/test_admin.py is written once and run against both, on trio and on asyncio: the sync
client is called from a worker thread, as plain code would call it, while the test's
event loop runs the gateway. And a TCP relay in front of the gateway that fails the first
connections, for the retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from realtime_pubsub.admin import AdminClient, AsyncAdminClient

from .clients import in_thread

ADMIN_KINDS = ("async", "sync")


class Admin(Protocol):
    """What a test may do with an admin client, whichever kind it is."""

    async def publish(
        self, topic: str, message: Any, *, compress: bool = ..., retry: bool = ...
    ) -> None: ...

    async def unsubscribe(self, subject: str, topic_patterns: Any) -> None: ...

    async def terminate_connection(self, connection_id: str) -> None: ...

    async def terminate_connections(self) -> None: ...


class SyncAdmin:
    """The sync client, each call made from a worker thread."""

    def __init__(self, client: AdminClient) -> None:
        self.client = client

    async def publish(
        self, topic: str, message: Any, *, compress: bool = False, retry: bool = False
    ) -> None:
        await in_thread(self.client.publish, topic, message, compress=compress, retry=retry)

    async def unsubscribe(self, subject: str, topic_patterns: Any) -> None:
        await in_thread(self.client.unsubscribe, subject, topic_patterns)

    async def terminate_connection(self, connection_id: str) -> None:
        await in_thread(self.client.terminate_connection, connection_id)

    async def terminate_connections(self) -> None:
        await in_thread(self.client.terminate_connections)


@asynccontextmanager
async def admin_client(
    kind: str, app_id: str, token: str | Callable[[], Any], **options: Any
) -> AsyncIterator[Admin]:
    """An admin client of ``kind`` (``"async"`` or ``"sync"``) for the block."""
    if kind == "async":
        async with AsyncAdminClient(app_id, token, **options) as client:
            yield client
    else:
        sync = AdminClient(app_id, token, **options)
        try:
            yield SyncAdmin(sync)
        finally:
            await in_thread(sync.close)


class Relay:
    """A TCP relay to ``port``: connections after the first ``fail`` are passed on, the
    first ones are read from and then dropped without an answer (the request was sent and
    its fate is unknown, as when a network fails mid-request)."""

    def __init__(self, port: int, *, fail: int) -> None:
        self.target = port
        self.fail = fail
        #: Connections accepted so far.
        self.accepted = 0
        self.port = 0

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        async with client:
            if self.accepted <= self.fail:
                await client.receive()
                return
            async with await anyio.connect_tcp("127.0.0.1", self.target) as upstream:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pipe, client, upstream, tg.cancel_scope)
                    await _pipe(upstream, client, tg.cancel_scope)


async def _pipe(
    source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    scope.cancel()


@asynccontextmanager
async def relay(port: int, *, fail: int) -> AsyncIterator[Relay]:
    """A :class:`Relay` to ``port`` on 127.0.0.1 for the block."""
    relay = Relay(port, fail=fail)
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        relay.port = listener.extra(SocketAttribute.local_port)
        tg.start_soon(listener.serve, relay._handle)
        yield relay
        tg.cancel_scope.cancel()


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A port whose connections are accepted and never answered."""
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):

        async def hold(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await anyio.sleep_forever()

        tg.start_soon(listener.serve, hold)
        yield listener.extra(SocketAttribute.local_port)
        tg.cancel_scope.cancel()
