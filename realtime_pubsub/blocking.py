"""The same client for code that is not async: scripts, notebooks, Django or Flask views.

.. code-block:: python

    import realtime_pubsub.blocking

    with realtime_pubsub.blocking.connect(url) as client:
        client.subscribe("chat")
        receipt = client.publish("chat", "hello")
        receipt.wait_for_ack(timeout=5)
        with client.listen("chat.*") as messages:
            for message in messages:
                print(message.payload)
                break

The async client runs on an event loop in a background thread (anyio's blocking portal);
every call here hands work to that loop and waits for it. Closing the ``with`` block closes
the client, stops the loop and joins the thread. Callbacks registered with :meth:`on` run
on the loop's thread: keep them short, and don't call back into this facade from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._callbacks import Handler
from ._client import Client, ConnectionState, UrlProvider
from ._client import connect as async_connect
from ._messages import Ack, ConnectionInfo, IncomingMessage, ResponseMessage
from ._pending import Receipt as AsyncReceipt
from ._streams import MessageStream, Overflow

__all__ = ["BlockingClient", "BlockingMessages", "BlockingReceipt", "connect"]


class BlockingReceipt:
    """A :class:`~realtime_pubsub.Receipt` whose waits block the calling thread."""

    __slots__ = ("_portal", "_receipt")

    def __init__(self, receipt: AsyncReceipt, portal: BlockingPortal) -> None:
        self._receipt = receipt
        self._portal = portal

    def __repr__(self) -> str:
        return repr(self._receipt).replace("Receipt", "blocking.BlockingReceipt", 1)

    @property
    def id(self) -> str:
        """The message id."""
        return self._receipt.id

    def wait_for_ack(self, timeout: float | None = 5.0) -> Ack:
        """Block until the ack arrives; see :meth:`Receipt.wait_for_ack
        <realtime_pubsub.Receipt.wait_for_ack>`."""
        return self._portal.call(self._receipt.wait_for_ack, timeout)

    def wait_for_reply(self, timeout: float | None = 5.0) -> ResponseMessage:
        """Block until the reply arrives; see :meth:`Receipt.wait_for_reply
        <realtime_pubsub.Receipt.wait_for_reply>`."""
        return self._portal.call(self._receipt.wait_for_reply, timeout)


class BlockingMessages:
    """Iterate over a listener's messages from a plain thread."""

    __slots__ = ("_portal", "_stream")

    def __init__(self, stream: MessageStream[IncomingMessage], portal: BlockingPortal) -> None:
        self._stream = stream
        self._portal = portal

    @property
    def dropped(self) -> int:
        """How many messages the overflow policy discarded."""
        return self._stream.dropped

    def __iter__(self) -> Iterator[IncomingMessage]:
        return self

    def __next__(self) -> IncomingMessage:
        try:
            return self._portal.call(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    def get(self, timeout: float | None = None) -> IncomingMessage | None:
        """The next message, or ``None`` after ``timeout`` seconds (or when the listener
        ended)."""

        async def receive() -> IncomingMessage | None:
            with anyio.move_on_after(timeout):
                try:
                    return await self._stream.__anext__()
                except StopAsyncIteration:
                    return None
            return None

        return self._portal.call(receive)


class BlockingClient:
    """The blocking face of a :class:`~realtime_pubsub.Client`; get one from
    :func:`connect`. Methods take the same arguments as the async client's."""

    __slots__ = ("_client", "_portal")

    def __init__(self, client: Client, portal: BlockingPortal) -> None:
        self._client = client
        self._portal = portal

    def __repr__(self) -> str:
        return repr(self._client).replace("Client", "blocking.BlockingClient", 1)

    @property
    def client(self) -> Client:
        """The async client underneath (use it only from the portal's event loop)."""
        return self._client

    @property
    def state(self) -> ConnectionState:
        return self._client.state

    @property
    def connection(self) -> ConnectionInfo:
        return self._client.connection

    @property
    def subscriptions(self) -> frozenset[str]:
        return self._client.subscriptions

    def subscribe(self, topic: str) -> None:
        self._portal.call(self._client.subscribe, topic)

    def unsubscribe(self, topic: str) -> None:
        self._portal.call(self._client.unsubscribe, topic)

    def publish(
        self,
        topic: str,
        payload: Any,
        *,
        message_type: str = "broadcast",
        compress: bool = False,
        id: str | None = None,
    ) -> BlockingReceipt:
        async def publish() -> AsyncReceipt:
            return await self._client.publish(
                topic, payload, message_type=message_type, compress=compress, id=id
            )

        return BlockingReceipt(self._portal.call(publish), self._portal)

    def send(
        self,
        payload: Any,
        *,
        message_type: str | None = None,
        compress: bool = False,
        id: str | None = None,
    ) -> BlockingReceipt:
        async def send() -> AsyncReceipt:
            return await self._client.send(
                payload, message_type=message_type, compress=compress, id=id
            )

        return BlockingReceipt(self._portal.call(send), self._portal)

    def listen(
        self, pattern: str, *, max_buffer: int = 1000, overflow: Overflow = "drop-oldest"
    ) -> AbstractContextManager[BlockingMessages]:
        """``with client.listen("chat.*") as messages: for message in messages: ...``"""
        listening = self._client.listen(pattern, max_buffer=max_buffer, overflow=overflow)

        @contextmanager
        def listen() -> Iterator[BlockingMessages]:
            with self._portal.wrap_async_context_manager(listening) as stream:
                yield BlockingMessages(stream, self._portal)

        return listen()

    def on(self, pattern: str, handler: Handler) -> int:
        """Register a callback; it runs on the event loop's thread."""
        return self._portal.call(self._client.on, pattern, handler)

    def once(self, pattern: str, handler: Handler) -> int:
        return self._portal.call(self._client.once, pattern, handler)

    def off(self, listener_id: int) -> bool:
        return self._portal.call(self._client.off, listener_id)

    def wait_for(self, event: str, timeout: float | None = None) -> Any:
        return self._portal.call(self._client.wait_for, event, timeout)


@contextmanager
def connect(
    url_provider: UrlProvider,
    *,
    backend: Literal["asyncio", "trio"] = "asyncio",
    **options: Any,
) -> Iterator[BlockingClient]:
    """Connect from a plain thread: the same options as :func:`realtime_pubsub.connect`,
    plus ``backend``, the event loop to run in the background thread."""
    with (
        start_blocking_portal(backend) as portal,
        portal.wrap_async_context_manager(async_connect(url_provider, **options)) as client,
    ):
        yield BlockingClient(client, portal)
