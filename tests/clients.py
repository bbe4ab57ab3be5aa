"""The async client and the blocking client behind one async interface, so that each
scenario of tests/test_scenarios.py is written once and run against both.

The blocking kind calls every method of :mod:`realtime_pubsub.blocking` from a worker
thread (``anyio.to_thread.run_sync``), as plain code would call it, while the test's event
loop stays free to run the gateway. Handlers are plain functions of ``(message, reply)``
that return ``reply(...)``'s result: the async client awaits it, the blocking client gets a
receipt, so the same handler serves both.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio
import anyio.to_thread

import realtime_pubsub
import realtime_pubsub.blocking
from realtime_pubsub import ClientInfo, ConnectionInfo, ConnectionState
from realtime_pubsub.blocking import BlockingClient, BlockingMessages, BlockingReceipt

KINDS = ("async", "blocking")


class ReceiptApi(Protocol):
    @property
    def id(self) -> str: ...

    async def wait_for_ack(self, timeout: float | None = ...) -> realtime_pubsub.Ack: ...

    async def wait_for_reply(
        self, timeout: float | None = ...
    ) -> realtime_pubsub.ResponseMessage: ...


class MessageApi(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def message_type(self) -> str: ...

    @property
    def payload(self) -> Any: ...

    @property
    def client(self) -> ClientInfo | None: ...

    async def reply(self, data: Any, status: str = ...) -> Any: ...


class StreamApi(Protocol):
    def __aiter__(self) -> AsyncIterator[MessageApi]: ...

    async def __anext__(self) -> MessageApi: ...


class Api(Protocol):
    """What a scenario may do with a client, whichever kind it is."""

    async def state(self) -> ConnectionState: ...

    async def connection(self) -> ConnectionInfo: ...

    async def subscriptions(self) -> frozenset[str]: ...

    async def subscribe(self, topic: str) -> None: ...

    async def unsubscribe(self, topic: str) -> None: ...

    async def publish(self, topic: str, payload: Any, **options: Any) -> ReceiptApi: ...

    async def send(self, payload: Any, **options: Any) -> ReceiptApi: ...

    def listen(self, pattern: str, **options: Any) -> AbstractAsyncContextManager[StreamApi]: ...

    async def on(self, pattern: str, handler: Callable[..., Any]) -> int: ...

    async def once(self, pattern: str, handler: Callable[..., Any]) -> int: ...

    async def off(self, listener_id: int) -> bool: ...

    async def wait_for(self, event: str, timeout: float | None = None) -> Any: ...


class Kind(Protocol):
    name: str

    def connect(self, url: str, **options: Any) -> AbstractAsyncContextManager[Api]: ...


# --------------------------------------------------------------------------- the async kind


class AsyncApi:
    """The async client as it is; only its plain methods are made awaitable."""

    def __init__(self, client: realtime_pubsub.Client) -> None:
        self.client = client
        self.subscribe = client.subscribe
        self.unsubscribe = client.unsubscribe
        self.wait_for = client.wait_for

    async def state(self) -> ConnectionState:
        return self.client.state

    async def connection(self) -> ConnectionInfo:
        return self.client.connection

    async def subscriptions(self) -> frozenset[str]:
        return self.client.subscriptions

    async def publish(self, topic: str, payload: Any, **options: Any) -> ReceiptApi:
        return await self.client.publish(topic, payload, **options)

    async def send(self, payload: Any, **options: Any) -> ReceiptApi:
        return await self.client.send(payload, **options)

    def listen(self, pattern: str, **options: Any) -> AbstractAsyncContextManager[StreamApi]:
        return self.client.listen(pattern, **options)

    async def on(self, pattern: str, handler: Callable[..., Any]) -> int:
        return self.client.on(pattern, handler)

    async def once(self, pattern: str, handler: Callable[..., Any]) -> int:
        return self.client.once(pattern, handler)

    async def off(self, listener_id: int) -> bool:
        return self.client.off(listener_id)


class AsyncKind:
    name = "async"

    @asynccontextmanager
    async def connect(self, url: str, **options: Any) -> AsyncIterator[Api]:
        async with realtime_pubsub.connect(url, **options) as client:
            yield AsyncApi(client)


# --------------------------------------------------------------------------- the blocking kind


async def in_thread(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call ``function`` in a worker thread, as plain code would."""
    return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs))


class BlockingReceiptApi:
    def __init__(self, receipt: BlockingReceipt) -> None:
        self.receipt = receipt
        self.id = receipt.id

    async def wait_for_ack(self, timeout: float | None = 5.0) -> realtime_pubsub.Ack:
        ack: realtime_pubsub.Ack = await in_thread(self.receipt.wait_for_ack, timeout)
        return ack

    async def wait_for_reply(self, timeout: float | None = 5.0) -> realtime_pubsub.ResponseMessage:
        reply: realtime_pubsub.ResponseMessage = await in_thread(
            self.receipt.wait_for_reply, timeout
        )
        return reply


class BlockingMessageApi:
    def __init__(self, message: realtime_pubsub.blocking.BlockingMessage) -> None:
        self.message = message
        self.topic = message.topic
        self.message_type = message.message_type
        self.payload = message.payload
        self.client = message.client

    async def reply(self, data: Any, status: str = "ok") -> Any:
        return BlockingReceiptApi(await in_thread(self.message.reply, data, status))


class BlockingStreamApi:
    def __init__(self, messages: BlockingMessages) -> None:
        self.messages = messages

    def __aiter__(self) -> BlockingStreamApi:
        return self

    async def __anext__(self) -> MessageApi:
        message = await in_thread(next, self.messages, None)
        if message is None:
            raise StopAsyncIteration
        return BlockingMessageApi(message)


class BlockingApi:
    def __init__(self, client: BlockingClient) -> None:
        self.client = client

    async def state(self) -> ConnectionState:
        return await in_thread(lambda: self.client.state)  # type: ignore[no-any-return]

    async def connection(self) -> ConnectionInfo:
        return await in_thread(lambda: self.client.connection)  # type: ignore[no-any-return]

    async def subscriptions(self) -> frozenset[str]:
        return await in_thread(lambda: self.client.subscriptions)  # type: ignore[no-any-return]

    async def subscribe(self, topic: str) -> None:
        await in_thread(self.client.subscribe, topic)

    async def unsubscribe(self, topic: str) -> None:
        await in_thread(self.client.unsubscribe, topic)

    async def publish(self, topic: str, payload: Any, **options: Any) -> ReceiptApi:
        return BlockingReceiptApi(await in_thread(self.client.publish, topic, payload, **options))

    async def send(self, payload: Any, **options: Any) -> ReceiptApi:
        return BlockingReceiptApi(await in_thread(self.client.send, payload, **options))

    @asynccontextmanager
    async def listen(self, pattern: str, **options: Any) -> AsyncIterator[StreamApi]:
        messages = await in_thread(self.client.listen, pattern, **options)
        await in_thread(messages.__enter__)
        try:
            yield BlockingStreamApi(messages)
        finally:
            await in_thread(messages.__exit__, None, None, None)

    async def on(self, pattern: str, handler: Callable[..., Any]) -> int:
        return await in_thread(self.client.on, pattern, handler)  # type: ignore[no-any-return]

    async def once(self, pattern: str, handler: Callable[..., Any]) -> int:
        return await in_thread(self.client.once, pattern, handler)  # type: ignore[no-any-return]

    async def off(self, listener_id: int) -> bool:
        return await in_thread(self.client.off, listener_id)  # type: ignore[no-any-return]

    async def wait_for(self, event: str, timeout: float | None = None) -> Any:
        value = await in_thread(self.client.wait_for, event, timeout)
        if isinstance(value, realtime_pubsub.blocking.BlockingMessage):
            return BlockingMessageApi(value)
        return value


class BlockingKind:
    name = "blocking"

    def __init__(self, backend: str) -> None:
        #: The event loop the blocking client runs on, in its own thread.
        self.backend = backend

    @asynccontextmanager
    async def connect(self, url: str, **options: Any) -> AsyncIterator[Api]:
        context = realtime_pubsub.blocking.connect(url, backend=self.backend, **options)  # type: ignore[arg-type]
        client = await in_thread(context.__enter__)
        try:
            yield BlockingApi(client)
        except BaseException as exc:
            if not await in_thread(context.__exit__, type(exc), exc, exc.__traceback__):
                raise
        else:
            await in_thread(context.__exit__, None, None, None)


def kind_named(name: str, backend: str) -> Kind:
    """The kind of client called ``name``; the blocking one runs its loop on ``backend``."""
    return AsyncKind() if name == "async" else BlockingKind(backend)


# --------------------------------------------------------------------------- handlers


class Calls:
    """A handler that records what it is called with, from whichever thread calls it, and
    lets a test wait for a number of calls without blocking the event loop."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._changed = threading.Condition()

    def __call__(self, value: Any, *reply: Any) -> None:
        with self._changed:
            self.values.append(value)
            self._changed.notify_all()

    async def wait(self, count: int, timeout: float = 10.0) -> list[Any]:
        """The first ``count`` values, once they are there; AssertionError after
        ``timeout`` seconds."""

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: len(self.values) >= count, timeout)

        assert await anyio.to_thread.run_sync(wait), f"{len(self.values)} calls, not {count}"
        return self.values[:count]
