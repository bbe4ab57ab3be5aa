"""The same client for code that is not async: scripts, notebooks, Django or Flask views,
worker processes.

.. code-block:: python

    import realtime_pubsub

    with realtime_pubsub.blocking.connect(url) as client:
        client.subscribe("chat")
        with client.listen("chat.*") as messages:
            receipt = client.publish("chat", "hello")
            receipt.wait_for_ack(timeout=5)
            for message in messages:
                print(message.payload)
                message.reply("got it")
                break

How it works. :func:`connect` starts an event loop on a thread of its own and runs the async
client (:func:`realtime_pubsub.connect`) on it; every method here hands its call to that
loop and waits for the result. The loop keeps receiving, answering pings and reconnecting
whatever your threads do, and any number of threads may call any method at once.

Handlers never run on the loop's thread. Each :meth:`~BlockingClient.on` or
:meth:`~BlockingClient.once` registration gets a worker thread of its own, which calls the
handler for one message at a time, in the order they arrived; registrations do not wait
for each other. So a handler may block (a database call, ``time.sleep``) and may call any
method of the client, including ``publish(...).wait_for_ack()`` and
``send(...).wait_for_reply()``: nothing else waits for it. Messages that arrive while a
handler is busy wait in its registration's buffer, which is bounded as the async client's
handlers' are: when a handler falls that far behind, the oldest waiting messages are dropped
and a warning is logged. A handler that raises is logged and reported as an ``error``
event, and its thread carries on with the next message.

Leaving the ``with`` block stops taking new messages for the handlers, waits up to
``handler_timeout`` seconds for the handlers still running to return, then closes the
client, stops the loop and joins its thread. A handler still running after that keeps its
(daemon) thread until it returns; every call it makes to the client then raises
:class:`~realtime_pubsub.ClientClosed`, and a warning names it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import inspect
import logging
import queue
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, Literal, ParamSpec, TypedDict, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from . import (
    Ack,
    Client,
    ClientClosed,
    ClientInfo,
    ConnectionInfo,
    ConnectionState,
    IncomingMessage,
    MessageStream,
    PresenceMessage,
    Receipt,
    ReconnectPolicy,
    ResponseMessage,
    Transport,
    UrlProvider,
)
from . import connect as async_connect

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

__all__ = [
    "BlockingClient",
    "BlockingMessage",
    "BlockingMessages",
    "BlockingReceipt",
    "ConnectOptions",
    "Handler",
    "connect",
]

#: What :meth:`BlockingClient.on` takes, a plain function, called as
#: ``handler(message, reply)`` for messages (``reply`` is ``message.reply``) and as
#: ``handler(value)`` for the lifecycle events.
Handler = Callable[..., object]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B", bound="_Bridge[Any]")


class ConnectOptions(TypedDict, total=False):
    """The options :func:`connect` passes on to :func:`realtime_pubsub.connect`, which
    documents them and gives their defaults."""

    logger: logging.Logger | None
    reconnect: ReconnectPolicy | None
    heartbeat_interval: float
    heartbeat_timeout: float
    connect_timeout: float
    max_message_size: int
    ssl_context: ssl.SSLContext | None
    transport: Transport | None


class _Loop:
    """The event loop thread behind one blocking client, and how a thread calls into it."""

    __slots__ = ("closed", "portal")

    def __init__(self, portal: BlockingPortal) -> None:
        self.portal = portal
        #: Set once the async client has closed and the loop is stopping.
        self.closed = False

    def call(self, func: Callable[..., Awaitable[T]], *args: object) -> T:
        """Await ``func(*args)`` on the loop and return its result; :class:`ClientClosed`
        once the loop is gone."""
        return self._enter(func, *args)  # type: ignore[no-any-return]

    def run(self, func: Callable[..., T], *args: object) -> T:
        """Call the plain function ``func(*args)`` on the loop and return its result."""
        return self._enter(func, *args)  # type: ignore[no-any-return]

    def _enter(self, func: Callable[..., Any], *args: object) -> Any:
        if self.closed:
            raise ClientClosed("the client is closed")
        try:
            return self.portal.call(func, *args)
        except concurrent.futures.CancelledError:
            # The loop stopped while the call was waiting.
            raise ClientClosed("the client closed during the call") from None
        except RuntimeError:
            if self.closed:  # the portal stopped between the check and the call
                raise ClientClosed("the client is closed") from None
            raise

    def notify(self, func: Callable[[], object]) -> None:
        """Run ``func`` on the loop soon, without waiting, if the loop still runs."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            self.portal.start_task_soon(func)


class _Bridge(Generic[A]):
    """A blocking view of one object of the async client. The blocking client makes them
    (``_of``); they have no public constructor."""

    __slots__ = ("_loop", "_target")
    _loop: _Loop
    _target: A

    @classmethod
    def _of(cls, target: A, loop: _Loop) -> Self:
        bridge = object.__new__(cls)
        bridge._target = target
        bridge._loop = loop
        return bridge


def _mirror(
    method: Callable[Concatenate[A, P], Awaitable[T]],
) -> Callable[[Callable[[B, T], R]], Callable[Concatenate[B, P], R]]:
    """The blocking method of an async one.

    The decorated function names the blocking method, documents it and turns the async
    method's result into the blocking one (a :class:`Receipt` into a
    :class:`BlockingReceipt`, say); the arguments, their defaults and their types stay the
    async method's own, for callers, type checkers, ``help()`` and the docs alike.
    """
    return functools.partial(_blocking_method, method)


def _mirror_sync(
    method: Callable[Concatenate[A, P], T],
) -> Callable[[Callable[[B, T], R]], Callable[Concatenate[B, P], R]]:
    """:func:`_mirror` for a method of the async client that is not a coroutine (it still
    runs on the loop's thread)."""
    return functools.partial(_blocking_method, method)


def _blocking_method(method: Callable[..., Any], convert: Callable[..., Any]) -> Any:
    def call(self: _Bridge[Any], /, *args: Any, **kwargs: Any) -> Any:
        result = self._loop.call(functools.partial(method, self._target, *args, **kwargs))
        return convert(self, result)

    functools.update_wrapper(call, convert)
    del call.__wrapped__  # type: ignore[attr-defined]
    returns = inspect.signature(convert).return_annotation
    call.__signature__ = inspect.signature(method).replace(  # type: ignore[attr-defined]
        return_annotation=returns
    )
    call.__annotations__ = {**method.__annotations__, "return": returns}
    return call


class BlockingReceipt(_Bridge[Receipt]):
    """A :class:`~realtime_pubsub.Receipt` whose waits block the calling thread; what
    :meth:`BlockingClient.publish`, :meth:`BlockingClient.send` and
    :meth:`BlockingMessage.reply` return."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(self._target).replace("realtime_pubsub.Receipt", __name__ + ".BlockingReceipt")

    @property
    def id(self) -> str:
        """The message id, which the gateway's ack and a replier's answer refer to."""
        return self._target.id

    @_mirror(Receipt.wait_for_ack)
    def wait_for_ack(self, ack: Ack) -> Ack:
        """Block until the gateway acknowledges the message; returns the
        :class:`~realtime_pubsub.Ack`.

        Raises :class:`~realtime_pubsub.AckTimeout` after ``timeout`` seconds,
        :class:`~realtime_pubsub.ConnectionClosed` if the connection dies first and
        :class:`~realtime_pubsub.ClientClosed` if the client closes first; see
        :meth:`Receipt.wait_for_ack <realtime_pubsub.Receipt.wait_for_ack>`.
        """
        return ack

    @_mirror(Receipt.wait_for_reply)
    def wait_for_reply(self, reply: ResponseMessage) -> ResponseMessage:
        """Block until the reply arrives; returns the
        :class:`~realtime_pubsub.ResponseMessage`.

        Raises :class:`~realtime_pubsub.ReplyTimeout` after ``timeout`` seconds,
        :class:`~realtime_pubsub.ConnectionClosed` if the connection dies first and
        :class:`~realtime_pubsub.ClientClosed` if the client closes first; see
        :meth:`Receipt.wait_for_reply <realtime_pubsub.Receipt.wait_for_reply>`.
        """
        return reply


class BlockingMessage(_Bridge[IncomingMessage]):
    """An :class:`~realtime_pubsub.IncomingMessage` as the blocking client hands it out
    (from :meth:`BlockingClient.listen`, to handlers and from
    :meth:`BlockingClient.wait_for`): the same fields, and a :meth:`reply` that blocks
    instead of being awaited."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(self._target).replace("IncomingMessage", "blocking.BlockingMessage", 1)

    @property
    def message(self) -> IncomingMessage:
        """The async client's message (for code that takes an
        :class:`~realtime_pubsub.IncomingMessage`; its ``reply`` must be awaited)."""
        return self._target

    @property
    def topic(self) -> str:
        """The topic the message was published on."""
        return self._target.topic

    @property
    def message_type(self) -> str:
        """Its message type."""
        return self._target.message_type

    @property
    def data(self) -> Any:
        """The frame's ``data`` member as sent (see
        :class:`~realtime_pubsub.IncomingMessage`)."""
        return self._target.data

    @property
    def compression(self) -> bool:
        """Whether it arrived as a binary (compressed) frame."""
        return self._target.compression

    @property
    def raw(self) -> Mapping[str, Any]:
        """The decoded frame."""
        return self._target.raw

    @property
    def payload(self) -> Any:
        """What the sender published (``data`` itself for HTTP API messages)."""
        return self._target.payload

    @property
    def id(self) -> str | None:
        """The sender's message id, which a reply refers to."""
        return self._target.id

    @property
    def client(self) -> ClientInfo | None:
        """Who sent it, or ``None``."""
        return self._target.client

    @property
    def event(self) -> str:
        """The event name this message is routed under, ``<topic>.<message_type>``."""
        return self._target.event

    @property
    def can_reply(self) -> bool:
        """Whether :meth:`reply` can address the sender."""
        return self._target.can_reply

    def data_as_presence(self) -> PresenceMessage:
        """Read this message as a presence event; see
        :meth:`IncomingMessage.data_as_presence
        <realtime_pubsub.IncomingMessage.data_as_presence>`."""
        return self._target.data_as_presence()

    @_mirror(IncomingMessage.reply)
    def reply(self, receipt: Receipt) -> BlockingReceipt:
        """Answer the sender; returns a :class:`BlockingReceipt` once the reply is written.

        ``data`` is any JSON value, ``status`` its status string. Raises
        :class:`ValueError` when the message cannot be replied to (see :attr:`can_reply`)
        and :class:`~realtime_pubsub.ClientClosed` once the client is closed; see
        :meth:`IncomingMessage.reply <realtime_pubsub.IncomingMessage.reply>`.
        """
        return BlockingReceipt._of(receipt, self._loop)


class BlockingMessages(_Bridge[AbstractAsyncContextManager[MessageStream[IncomingMessage]]]):
    """A listener's messages, for a plain thread: what ``with client.listen(...) as
    messages`` gives.

    Iterate over it (``for message in messages``: each a :class:`BlockingMessage`; the
    iteration ends when the client closes), or take one at a time with :meth:`get`. Several
    threads may read from it at once; each message goes to one of them.
    """

    __slots__ = ("_context", "_stream")
    _context: Any
    _stream: MessageStream[IncomingMessage] | None

    @classmethod
    def _of(
        cls, target: AbstractAsyncContextManager[MessageStream[IncomingMessage]], loop: _Loop
    ) -> Self:
        messages = super()._of(target, loop)
        messages._context = None
        messages._stream = None
        return messages

    def __repr__(self) -> str:
        return f"<{__name__}.BlockingMessages {self._stream!r}>"

    def __enter__(self) -> BlockingMessages:
        if self._loop.closed:
            raise ClientClosed("the client is closed")
        # The async listener is entered and left by one task of the loop's, whichever thread
        # enters and leaves this block.
        self._context = self._loop.portal.wrap_async_context_manager(self._target)
        try:
            self._stream = self._context.__enter__()
        except RuntimeError:
            if self._loop.closed:
                raise ClientClosed("the client is closed") from None
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Once the client has closed, the loop has ended the listener itself.
        if not self._loop.closed:
            try:
                self._context.__exit__(exc_type, exc, traceback)
            except (RuntimeError, concurrent.futures.CancelledError):
                if not self._loop.closed:
                    raise

    @property
    def dropped(self) -> int:
        """How many messages the overflow policy discarded."""
        return self._entered().dropped

    def __iter__(self) -> Iterator[BlockingMessage]:
        return self

    def __next__(self) -> BlockingMessage:
        stream = self._entered()
        try:
            message = self._loop.call(stream.__anext__)
        except (StopAsyncIteration, ClientClosed):
            raise StopIteration from None
        return BlockingMessage._of(message, self._loop)

    def get(self, timeout: float | None = None) -> BlockingMessage | None:
        """The next message, waiting up to ``timeout`` seconds for it (``None``: as long as
        it takes; ``0``: only what is already buffered).

        Returns ``None`` when the time is up or the listening has ended (the client closed).
        Raises :class:`~realtime_pubsub.SlowConsumer` where the iteration would.
        """
        stream = self._entered()

        async def receive() -> IncomingMessage | None:
            try:
                return stream.receive_nowait()
            except anyio.WouldBlock:
                pass
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                pass  # __anext__ ends the listening the way it should (or raises SlowConsumer)
            with anyio.move_on_after(timeout):
                try:
                    return await stream.__anext__()
                except StopAsyncIteration:
                    return None
            return None

        try:
            message = self._loop.call(receive)
        except ClientClosed:
            return None
        return None if message is None else BlockingMessage._of(message, self._loop)

    def _entered(self) -> MessageStream[IncomingMessage]:
        if self._stream is None:
            raise RuntimeError("use the listener in a `with client.listen(...)` block")
        return self._stream


class _Worker:
    """The thread that runs one registration's handler: one call at a time, in order."""

    __slots__ = (
        "_jobs",
        "_lock",
        "_on_exit",
        "_once",
        "listener_id",
        "pattern",
        "stopped",
        "thread",
    )

    def __init__(self, pattern: str, *, once: bool, on_exit: Callable[[_Worker], None]) -> None:
        self.pattern = pattern
        self.listener_id = 0
        self.stopped = False
        self._once = once
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        # A daemon: a handler that never returns must not keep the process alive.
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self, listener_id: int) -> None:
        self.listener_id = listener_id
        self.thread.name = f"realtime_pubsub.blocking handler {listener_id} [{self.pattern}]"
        self.thread.start()

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``; False (and nothing queued) once the worker is stopped."""
        with self._lock:
            if self.stopped:
                return False
            self._jobs.put(job)
            return True

    def stop(self) -> None:
        """End the thread after the job it is running, if any; nothing else runs."""
        with self._lock:
            if not self.stopped:
                self.stopped = True
                self._jobs.put(None)

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                job()
                if self._once:
                    break
        finally:
            self.stop()
            self._on_exit(self)


class BlockingClient(_Bridge[Client]):
    """The blocking face of a :class:`~realtime_pubsub.Client`; get one from
    :func:`connect`.

    Every method and property of the async client is here, with the same arguments, and
    blocks the calling thread instead of being awaited. Any number of threads may use one
    client at once. After the ``with`` block every method raises
    :class:`~realtime_pubsub.ClientClosed`.
    """

    __slots__ = ("_closing", "_handler_timeout", "_live", "_lock", "_logger", "_workers")

    _handler_timeout: float
    _logger: logging.Logger
    _lock: threading.Lock
    _closing: bool
    _workers: dict[int, _Worker]  # by listener id, while registered
    _live: set[_Worker]  # every worker whose thread has not ended

    @classmethod
    def _open(
        cls, client: Client, loop: _Loop, *, handler_timeout: float, logger: logging.Logger
    ) -> BlockingClient:
        self = cls._of(client, loop)
        self._handler_timeout = handler_timeout
        self._logger = logger
        self._lock = threading.Lock()
        self._closing = False
        self._workers = {}
        self._live = set()
        return self

    def __repr__(self) -> str:
        return repr(self._target).replace("realtime_pubsub.Client", __name__ + ".BlockingClient")

    # ------------------------------------------------------------------ state

    @property
    def client(self) -> Client:
        """The async client underneath. Use it only from its event loop's thread."""
        return self._target

    def _read(self, read: Callable[[Client], T]) -> T:
        # Read on the loop's thread, which changes what is read; once the loop is gone,
        # nothing changes any more.
        if self._loop.closed:
            return read(self._target)
        return self._loop.run(read, self._target)

    @property
    def state(self) -> ConnectionState:
        """The connection state (see :class:`~realtime_pubsub.ConnectionState`)."""
        return self._read(lambda client: client.state)

    @property
    def connection(self) -> ConnectionInfo:
        """The current connection's identity (the last one's while reconnecting)."""
        return self._read(lambda client: client.connection)

    @property
    def subscriptions(self) -> frozenset[str]:
        """The remote topics this client subscribes to, restored on every new connection."""
        return self._read(lambda client: client.subscriptions)

    @property
    def in_flight(self) -> int:
        """How many receipts still hold a slot for an ack or a reply."""
        return self._read(lambda client: client.in_flight)

    # ------------------------------------------------------------------ topics

    @_mirror(Client.subscribe)
    def subscribe(self, result: None) -> None:
        """Subscribe to a remote topic; returns once the subscribe frame is written.

        Idempotent, and replayed on every new connection; see :meth:`Client.subscribe
        <realtime_pubsub.Client.subscribe>`.
        """

    @_mirror(Client.unsubscribe)
    def unsubscribe(self, result: None) -> None:
        """Unsubscribe from a remote topic (and forget it). Idempotent."""

    subscribe_remote_topic = subscribe
    unsubscribe_remote_topic = unsubscribe

    # ------------------------------------------------------------------ sending

    @_mirror(Client.publish)
    def publish(self, receipt: Receipt) -> BlockingReceipt:
        """Publish ``payload`` to ``topic``; returns a :class:`BlockingReceipt` for the ack
        and any reply once the frame is written.

        Arguments and errors as for :meth:`Client.publish <realtime_pubsub.Client.publish>`.
        """
        return BlockingReceipt._of(receipt, self._loop)

    @_mirror(Client.send)
    def send(self, receipt: Receipt) -> BlockingReceipt:
        """Send ``payload`` to the backend services; returns a :class:`BlockingReceipt`
        (``receipt.wait_for_reply()`` blocks until they answer).

        Arguments and errors as for :meth:`Client.send <realtime_pubsub.Client.send>`.
        """
        return BlockingReceipt._of(receipt, self._loop)

    # ------------------------------------------------------------------ listening

    @_mirror_sync(Client.listen)
    def listen(
        self, listening: AbstractAsyncContextManager[MessageStream[IncomingMessage]]
    ) -> BlockingMessages:
        """Listen to the messages whose event name matches ``pattern``::

            with client.listen("chat.*") as messages:
                for message in messages:
                    ...

        Returns a :class:`BlockingMessages`, to use as a context manager. Arguments as for
        :meth:`Client.listen <realtime_pubsub.Client.listen>`: listening does not
        subscribe, ``max_buffer`` bounds what may pile up, ``overflow`` says what happens
        then. Raises :class:`ValueError` for a bad pattern.
        """
        return BlockingMessages._of(listening, self._loop)

    # ------------------------------------------------------------------ callbacks

    def on(self, pattern: str, handler: Handler) -> int:
        """Call ``handler`` for every matching message or lifecycle event, on a worker
        thread of this registration's, until :meth:`off`; returns the listener id.

        ``pattern`` is a message pattern as for :meth:`listen` (``handler(message, reply)``,
        where ``message`` is a :class:`BlockingMessage` and ``reply`` its plain
        :meth:`~BlockingMessage.reply`), or a lifecycle event: ``"session.started"``
        (``handler(connection_info)``), ``"error"`` (``handler(exception)``), ``"close"``
        (``handler(close_info)``). Calls are made one at a time, in order; the handler may
        block and may call any method of this client. An exception it raises is logged and
        reported as an ``error`` event.

        Raises :class:`TypeError` for a handler that is not a plain function (pass
        coroutine functions to the async client), :class:`ValueError` for a bad pattern and
        :class:`~realtime_pubsub.ClientClosed` once the client is closing.
        """
        return self._add_handler(pattern, handler, once=False)

    def once(self, pattern: str, handler: Handler) -> int:
        """Like :meth:`on`, for the first matching event only."""
        return self._add_handler(pattern, handler, once=True)

    def off(self, listener_id: int) -> bool:
        """Remove a handler added with :meth:`on` or :meth:`once`; False if there was none.

        A call already running finishes; the messages waiting for the handler are dropped.
        A handler may remove itself.
        """
        removed = self._loop.run(self._target.off, listener_id)
        with self._lock:
            worker = self._workers.pop(listener_id, None)
        if worker is not None:
            worker.stop()
        return removed

    @_mirror(Client.wait_for)
    def wait_for(self, value: Any) -> Any:
        """Block until the next matching message (returns a :class:`BlockingMessage`) or
        lifecycle event (returns its value).

        Raises :class:`~realtime_pubsub.WaitTimeout` after ``timeout`` seconds; see
        :meth:`Client.wait_for <realtime_pubsub.Client.wait_for>`.
        """
        return (
            BlockingMessage._of(value, self._loop) if isinstance(value, IncomingMessage) else value
        )

    def _add_handler(self, pattern: str, handler: Handler, *, once: bool) -> int:
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        if inspect.iscoroutinefunction(handler):
            raise TypeError(
                f"handler {handler!r} is a coroutine function; the blocking client calls plain "
                "functions (give async handlers to the async client)"
            )
        worker = _Worker(pattern, once=once, on_exit=self._forget)
        register = self._target.once if once else self._target.on
        with self._lock:
            if self._closing:
                raise ClientClosed("the client is closing")
            listener_id = self._loop.run(register, pattern, self._relay(handler, worker))
            self._workers[listener_id] = worker
            self._live.add(worker)
            worker.start(listener_id)
        return listener_id

    def _relay(self, handler: Handler, worker: _Worker) -> Callable[..., Awaitable[None]]:
        """The async handler registered with the async client: it hands each call to the
        worker thread and waits for it there, so the async client keeps its order, its
        per-handler buffer and its error reporting, and its loop never waits."""
        loop = self._loop

        async def relay(value: object, *_: object) -> None:
            if isinstance(value, IncomingMessage):
                message = BlockingMessage._of(value, loop)
                call = functools.partial(handler, message, message.reply)
            else:
                call = functools.partial(handler, value)
            done = anyio.Event()
            failure: list[BaseException] = []

            def job() -> None:
                try:
                    call()
                except BaseException as exc:
                    failure.append(exc)
                loop.notify(done.set)

            if not worker.submit(job):
                return  # removed, or the client is closing: the call is dropped
            await done.wait()
            if failure:
                error = failure[0]
                if not isinstance(error, Exception):  # SystemExit and the like
                    raise RuntimeError(f"handler raised {error!r}") from error
                raise error

        return relay

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            if self._workers.get(worker.listener_id) is worker:
                del self._workers[worker.listener_id]
            self._live.discard(worker)

    def _stop_handlers(self) -> None:
        """Stop every worker and wait for them, ``handler_timeout`` seconds at most."""
        with self._lock:
            self._closing = True
            workers = list(self._live)
        for worker in workers:
            worker.stop()
        deadline = time.monotonic() + self._handler_timeout
        for worker in workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))

    def _warn_about_late_handlers(self) -> None:
        with self._lock:
            late = sorted(self._live, key=lambda worker: worker.listener_id)
        for worker in late:
            self._logger.warning(
                "handler %d for %r still running %s s after the client began closing; "
                "its thread is left to finish, and the client is closed",
                worker.listener_id,
                worker.pattern,
                self._handler_timeout,
            )


@contextmanager
def connect(
    url_provider: UrlProvider,
    *,
    backend: Literal["asyncio", "trio"] = "asyncio",
    handler_timeout: float = 5.0,
    **options: Unpack[ConnectOptions],
) -> Iterator[BlockingClient]:
    """Connect from plain code; a context manager that gives a :class:`BlockingClient`
    once the session has started::

        with realtime_pubsub.blocking.connect(url) as client:
            ...

    ``url_provider`` and every other option are those of :func:`realtime_pubsub.connect`
    (a URL provider may be a plain function; an async one runs on the client's loop).
    ``backend`` is the event loop the client runs on, in a thread of its own: ``"asyncio"``
    or ``"trio"`` (which needs trio installed). ``handler_timeout`` is how long, in seconds,
    leaving the block waits for handlers that are still running (see the module's
    description); pick it longer than your slowest handler.

    Raises what :func:`realtime_pubsub.connect` raises, as itself: for instance
    :class:`~realtime_pubsub.AuthenticationError` when the token is refused, and
    :class:`~realtime_pubsub.Forbidden` from the end of the block when the gateway closed
    the connection for a policy violation.
    """
    if not handler_timeout >= 0:
        raise ValueError(f"handler_timeout must be >= 0, not {handler_timeout!r}")
    logger = options.get("logger") or logging.getLogger("realtime_pubsub")
    client: BlockingClient | None = None
    try:
        with start_blocking_portal(backend) as portal:
            portal.call(_name_thread)
            loop = _Loop(portal)
            try:
                with portal.wrap_async_context_manager(
                    async_connect(url_provider, **options)
                ) as async_client:
                    client = BlockingClient._open(
                        async_client, loop, handler_timeout=handler_timeout, logger=logger
                    )
                    try:
                        yield client
                    finally:
                        client._stop_handlers()
            finally:
                loop.closed = True
                # End what other threads still run on the loop (a listener they have not
                # left, a call in progress): they see the client closed.
                with contextlib.suppress(RuntimeError):  # unless the loop ended by itself
                    portal.call(portal.stop, True)
    finally:
        if client is not None:
            client._warn_about_late_handlers()


def _name_thread() -> None:
    threading.current_thread().name = "realtime_pubsub.blocking event loop"


# help(), Sphinx and IDEs show the async client's options, with their defaults, in place of
# ``**options``.
connect.__signature__ = inspect.signature(connect).replace(  # type: ignore[attr-defined]
    parameters=[
        *(
            parameter
            for name, parameter in inspect.signature(connect).parameters.items()
            if name != "options"
        ),
        *(
            parameter
            for name, parameter in inspect.signature(async_connect).parameters.items()
            if name != "url_provider"
        ),
    ]
)
