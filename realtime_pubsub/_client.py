"""``connect()`` and :class:`Client`: a task group holding the connection supervisor, the
reader and the heartbeat, and the public publish/subscribe API on top of them.

Only the supervisor changes the current connection and the state; the reader never
blocks (it parses, routes acks and replies to the pending table and hands messages to
listeners with ``*_nowait`` calls); handlers run on tasks of their own.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import itertools
import logging
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import anyio.abc
import attrs

from ._backoff import ReconnectPolicy
from ._errors import (
    AuthenticationError,
    CertificateError,
    ClientClosed,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    Forbidden,
    MessageTooLarge,
    ProtocolError,
    RealtimePubSubError,
    WaitTimeout,
)
from ._messages import Ack, ConnectionInfo, IncomingMessage, ResponseMessage
from ._patterns import validate_pattern
from ._pending import PendingTable, Receipt
from ._protocol import (
    DEFAULT_MESSAGE_TYPE,
    encode_publish,
    encode_reply,
    encode_send,
    encode_subscribe,
    encode_unsubscribe,
    new_message_id,
    parse_gateway_frame,
    validate_topic,
)
from ._router import MessageStream, Overflow, Router
from ._transport import (
    ClosedBeforeSending,
    Transport,
    TransportConnection,
    WebSocketsTransport,
    mask_url,
    validate_url,
)
from ._wsio import DataMessage

if sys.version_info < (3, 11):  # pragma: no cover - the backport anyio itself requires
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Client", "CloseInfo", "ConnectionState", "UrlProvider", "connect"]

#: A URL, or a function (sync or async) returning one, called before every attempt.
UrlProvider = str | Callable[[], str] | Callable[[], Awaitable[str]]
#: A callback: ``handler(message, reply)`` for messages, ``handler(value)`` for lifecycle
#: events; may be sync or async.
Handler = Callable[..., Any]

#: The lifecycle events of the callback API; they are not topics, and patterns never match
#: them.
LIFECYCLE_EVENTS: Final = frozenset({"session.started", "error", "close"})
_POLICY_VIOLATION: Final = 1008
_CALLBACK_BUFFER: Final = 1000
_ids = itertools.count(1)


class ConnectionState(enum.Enum):
    """Where the client is in its life."""

    #: Opening the first connection.
    CONNECTING = "connecting"
    #: Connected: the welcome arrived and subscriptions are restored.
    OPEN = "open"
    #: The connection was lost; a new one is being opened.
    RECONNECTING = "reconnecting"
    #: Closed for good: the ``async with`` block ended, or a fatal error ended it.
    CLOSED = "closed"


@attrs.frozen
class CloseInfo:
    """What the ``close`` event carries: how a connection ended."""

    code: int
    reason: str = ""


class _Callback:
    """A handler registered with on()/once(), fed through its own bounded stream and run on
    its own task, so that a slow or blocking handler stalls nobody else."""

    __slots__ = ("handler", "id", "lifecycle", "once", "pattern", "queue", "spent")

    def __init__(
        self, listener_id: int, pattern: str, handler: Handler, *, once: bool, logger: Any
    ) -> None:
        self.id = listener_id
        self.pattern = pattern
        self.handler = handler
        self.once = once
        self.spent = False
        self.lifecycle = pattern in LIFECYCLE_EVENTS
        self.queue: MessageStream[Any] = MessageStream(
            pattern, max_buffer=_CALLBACK_BUFFER, logger=logger
        )

    def deliver(self, value: object) -> bool:
        if self.spent:
            return False
        self.queue.deliver(value)
        if self.once:
            self.spent = True
            self.queue.close()
            return False
        return True

    def close(self) -> None:
        self.queue.close()


class _Waiter:
    """The one-shot listener behind wait_for()."""

    __slots__ = ("_event", "pattern", "value")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.value: object = _Waiter
        self._event = anyio.Event()

    def deliver(self, value: object) -> bool:
        if self.value is _Waiter:
            self.value = value
            self._event.set()
        return False

    def close(self) -> None:
        self._event.set()

    async def wait(self) -> object:
        await self._event.wait()
        if self.value is _Waiter:
            raise ClientClosed("the client closed while waiting for an event")
        return self.value


class Client:
    """A Realtime Pub/Sub client; get one from :func:`connect`.

    Every method may be called from any task of the ``async with`` block. ``publish``,
    ``send``, ``subscribe`` and ``reply`` wait for the connection while the client
    reconnects (bounded by the caller's own cancel scope) and raise
    :class:`~realtime_pubsub.ClientClosed` once the client is closed.
    """

    def __init__(
        self,
        url_provider: UrlProvider,
        *,
        logger: logging.Logger | None,
        reconnect: ReconnectPolicy,
        heartbeat_interval: float,
        heartbeat_timeout: float,
        connect_timeout: float,
        max_message_size: int,
        ssl_context: ssl.SSLContext | None,
        transport: Transport | None,
    ) -> None:
        if not (isinstance(url_provider, str) or callable(url_provider)):
            raise TypeError("url_provider must be a URL string or a function returning one")
        for name, value in (
            ("heartbeat_interval", heartbeat_interval),
            ("heartbeat_timeout", heartbeat_timeout),
            ("connect_timeout", connect_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        if not isinstance(max_message_size, int) or max_message_size <= 0:
            raise ValueError(f"max_message_size must be a positive int, not {max_message_size!r}")
        self._name = f"realtime_pubsub[{next(_ids)}]"
        self._url_provider = url_provider
        self._logger = logger or logging.getLogger("realtime_pubsub")
        self._policy = reconnect
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._connect_timeout = connect_timeout
        self._max_message_size = max_message_size
        self._ssl_context = ssl_context
        self._transport: Transport = transport or WebSocketsTransport()

        self._state = ConnectionState.CONNECTING
        self._connection: TransportConnection | None = None
        self._info: ConnectionInfo | None = None
        self._masked_url = mask_url(url_provider) if isinstance(url_provider, str) else "?"
        self._connected = anyio.Event()
        self._lost = anyio.Event()
        self._first_session = anyio.Event()
        self._topics: dict[str, None] = {}
        self._pending = PendingTable()
        self._router = Router()
        self._callbacks: dict[int, _Callback] = {}
        self._listener_ids = itertools.count(1)
        self._task_group: anyio.abc.TaskGroup | None = None
        self._fatal: BaseException | None = None
        self._heartbeat_failed = False

    def __repr__(self) -> str:
        cid = self._info.id if self._info else None
        return (
            f"<realtime_pubsub.Client state={self._state.value} connection={cid!r} "
            f"url={self._masked_url!r}>"
        )

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> ConnectionState:
        """The connection state (see :class:`ConnectionState`)."""
        return self._state

    @property
    def connection(self) -> ConnectionInfo:
        """The current connection's identity (the last one's while reconnecting)."""
        assert self._info is not None, "connect() yields the client after the welcome"
        return self._info

    @property
    def subscriptions(self) -> frozenset[str]:
        """The remote topics this client subscribes to, restored on every new connection."""
        return frozenset(self._topics)

    @property
    def in_flight(self) -> int:
        """How many receipts still hold a slot for an ack or a reply."""
        return len(self._pending)

    # ------------------------------------------------------------------ topics

    async def subscribe(self, topic: str) -> None:
        """Subscribe to a remote topic. Idempotent; remembered, and replayed on every new
        connection before ``session.started`` fires. Subscribing to a ``secure/`` topic
        without the read permission makes the gateway close the connection with 1008, which
        ends the ``async with`` block with :class:`~realtime_pubsub.Forbidden`."""
        validate_topic(topic)
        self._check_open()
        if topic in self._topics:
            return
        self._topics[topic] = None
        connection, _ = await self._wait_connection()
        if topic in self._topics:
            # If this connection dies first, the topic is remembered: the next one replays it.
            # Returning once the frame is written (not merely queued) keeps the promise
            # people rely on: what is published after subscribe() returns finds it in place.
            with contextlib.suppress(ConnectionClosed):
                await connection.send(encode_subscribe(topic))
                await connection.drain()

    async def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from a remote topic (and forget it). Idempotent."""
        validate_topic(topic)
        self._check_open()
        if self._topics.pop(topic, False) is False:
            return
        connection = self._connection
        if connection is not None and self._state is ConnectionState.OPEN:
            # If this connection dies first, the topic is forgotten: no new one subscribes.
            with contextlib.suppress(ConnectionClosed):
                await connection.send(encode_unsubscribe(topic))
                await connection.drain()

    subscribe_remote_topic = subscribe
    unsubscribe_remote_topic = unsubscribe

    # ------------------------------------------------------------------ sending

    async def publish(
        self,
        topic: str,
        payload: Any,
        *,
        message_type: str = DEFAULT_MESSAGE_TYPE,
        compress: bool = False,
        id: str | None = None,
    ) -> Receipt:
        """Publish ``payload`` (any JSON-serializable value) to ``topic``.

        Returns a :class:`Receipt` for the gateway's ack and any reply. ``compress=True``
        asks the gateway to deliver it compressed (as a binary frame). ``id`` overrides
        the random message id. Raises :class:`TypeError` for a payload that is not
        JSON-serializable and :class:`ValueError` for a bad topic, both before anything is
        written; :class:`~realtime_pubsub.MessageTooLarge` for a frame over
        ``max_message_size``; :class:`~realtime_pubsub.ConnectionClosed` if the connection
        breaks while writing (the message may or may not have gone out).
        """
        message_id = _message_id(id)
        frame = encode_publish(
            topic, payload, message_type=message_type, compress=compress, id=message_id
        )
        return await self._send_tracked(frame, message_id)

    async def send(
        self,
        payload: Any,
        *,
        message_type: str | None = None,
        compress: bool = False,
        id: str | None = None,
    ) -> Receipt:
        """Send ``payload`` to the backend services (the subscribers of ``secure/inbound``);
        wait for their answer with ``await receipt.wait_for_reply()``. Errors as for
        :meth:`publish`."""
        message_id = _message_id(id)
        frame = encode_send(payload, message_type=message_type, compress=compress, id=message_id)
        return await self._send_tracked(frame, message_id)

    async def _reply(
        self, message: IncomingMessage, data: Any, status: str, compress: bool
    ) -> Receipt:
        # IncomingMessage.reply() checked can_reply before calling us.
        assert message.client is not None
        assert message.client.connection_id
        assert message.id
        message_id = new_message_id()
        frame = encode_reply(
            message.client.connection_id,
            message.id,
            data,
            status=status,
            compress=compress,
            id=message_id,
        )
        return await self._send_tracked(frame, message_id)

    async def _send_tracked(self, frame: bytes, message_id: str) -> Receipt:
        if len(frame) > self._max_message_size:
            raise MessageTooLarge(
                f"the frame is {len(frame)} bytes, over max_message_size "
                f"({self._max_message_size}); nothing was sent"
            )
        self._check_open()
        while True:
            connection, lost = await self._wait_connection()
            # The slot exists before the first byte is written: an ack or reply racing back
            # before the caller awaits it is kept.
            receipt = self._pending.register(message_id)
            try:
                await connection.send(frame)
                return receipt
            except ClosedBeforeSending:
                # Nothing was written: wait for the supervisor to replace this connection
                # and send it on the next one.
                self._pending.discard(receipt._slot)
                await lost.wait()
            except BaseException:
                self._pending.discard(receipt._slot)
                raise

    def _check_open(self) -> None:
        if self._state is ConnectionState.CLOSED:
            raise ClientClosed("the client is closed")

    async def _wait_connection(self) -> tuple[TransportConnection, anyio.Event]:
        """The open connection, and the event set when it is lost; waits while the client
        reconnects."""
        while True:
            if self._state is ConnectionState.CLOSED:
                raise ClientClosed("the client is closed")
            connection = self._connection
            if connection is not None and self._state is ConnectionState.OPEN:
                return connection, self._lost
            await self._connected.wait()

    # ------------------------------------------------------------------ listening

    def listen(
        self, pattern: str, *, max_buffer: int = 1000, overflow: Overflow = "drop-oldest"
    ) -> _Listening:
        """Listen to the messages whose event name ``<topic>.<messageType>`` matches
        ``pattern`` (``*``: one segment, ``**``: any number), through a bounded buffer::

            async with client.listen("chat.*") as messages:
                async for message in messages:
                    ...

        Listening does not subscribe: call :meth:`subscribe` for the remote topic too.
        ``max_buffer`` bounds what may pile up when the consumer is slower than the
        messages; ``overflow`` says what happens then (see
        :class:`~realtime_pubsub.MessageStream`); a slow listener never slows the client or
        the other listeners. The iteration ends when the client closes.
        """
        validate_pattern(pattern)
        stream: MessageStream[IncomingMessage] = MessageStream(
            pattern, max_buffer=max_buffer, overflow=overflow, logger=self._logger
        )
        return _Listening(self, stream)

    # ------------------------------------------------------------------ callbacks

    def on(self, pattern: str, handler: Handler) -> int:
        """Call ``handler`` for every matching message, or lifecycle event, until
        :meth:`off`; returns the listener id.

        ``pattern`` is a message pattern as for :meth:`listen` (the handler gets
        ``(message, reply)``, where ``reply`` is ``message.reply``), or one of the
        lifecycle events ``"session.started"`` (gets the :class:`ConnectionInfo`),
        ``"error"`` (gets the exception) and ``"close"`` (gets a :class:`CloseInfo`).
        Handlers may be sync or async; each registration runs on its own task, in order,
        so one that awaits (even a reply) blocks nothing else. A handler that raises is
        logged and reported as an ``error`` event; the client carries on.
        """
        return self._add_callback(pattern, handler, once=False)

    def once(self, pattern: str, handler: Handler) -> int:
        """Like :meth:`on`, for the first matching event only."""
        return self._add_callback(pattern, handler, once=True)

    def off(self, listener_id: int) -> bool:
        """Remove a handler added with :meth:`on` or :meth:`once`; False if there was none."""
        callback = self._callbacks.pop(listener_id, None)
        if callback is None:
            return False
        self._unregister(callback.pattern, callback)
        callback.close()
        return True

    async def wait_for(self, event: str, timeout: float | None = None) -> Any:
        """Wait for the next matching message (returns the :class:`IncomingMessage`) or
        lifecycle event (returns its value). Raises :class:`~realtime_pubsub.WaitTimeout`
        after ``timeout`` seconds."""
        self._check_open()
        waiter = _Waiter(event)
        self._register(event, waiter)
        try:
            with anyio.move_on_after(timeout):
                return await waiter.wait()
            raise WaitTimeout(f"no {event!r} event within {timeout} s")
        finally:
            self._unregister(event, waiter)

    def _add_callback(self, pattern: str, handler: Handler, *, once: bool) -> int:
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        self._check_open()
        assert self._task_group is not None
        callback = _Callback(
            next(self._listener_ids), pattern, handler, once=once, logger=self._logger
        )
        self._register(pattern, callback)
        self._callbacks[callback.id] = callback
        self._task_group.start_soon(
            self._run_callback, callback, name=f"{self._name}.handler[{pattern}]"
        )
        return callback.id

    def _register(self, pattern: str, sink: _Callback | _Waiter) -> None:
        if pattern in LIFECYCLE_EVENTS:
            self._router.add_lifecycle(pattern, sink)
        else:
            self._router.add(validate_pattern(pattern), sink)

    def _unregister(self, pattern: str, sink: _Callback | _Waiter) -> None:
        if pattern in LIFECYCLE_EVENTS:
            self._router.remove_lifecycle(pattern, sink)
        else:
            self._router.remove(pattern, sink)

    async def _run_callback(self, callback: _Callback) -> None:
        try:
            async for value in callback.queue:
                try:
                    if callback.lifecycle:
                        result = callback.handler(value)
                    else:
                        result = callback.handler(value, value.reply)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    self._logger.exception("handler for %r raised", callback.pattern)
                    if callback.pattern != "error":
                        self._router.emit("error", exc)
        finally:
            callback.queue.discard()
            if self._callbacks.get(callback.id) is callback:
                del self._callbacks[callback.id]

    def _report(self, error: BaseException) -> None:
        self._logger.warning("%s", error)
        self._router.emit("error", error)

    # ------------------------------------------------------------------ the connection

    async def _resolve_url(self) -> str:
        provider = self._url_provider
        try:
            if isinstance(provider, str):
                url: object = provider
            else:
                url = provider()
                if inspect.isawaitable(url):
                    url = await url
            return validate_url(url)
        except Exception as exc:
            raise ConnectError(f"the URL provider failed: {type(exc).__name__}: {exc}") from exc

    async def _open(self) -> tuple[TransportConnection, ConnectionInfo, list[DataMessage]]:
        url = await self._resolve_url()
        self._masked_url = mask_url(url)
        self._logger.debug("connecting to %s", self._masked_url)
        try:
            with anyio.fail_after(self._connect_timeout):
                try:
                    assert self._task_group is not None
                    connection = await self._transport.connect(
                        url,
                        ssl_context=self._ssl_context,
                        max_message_size=self._max_message_size,
                        task_group=self._task_group,
                    )
                except ssl.SSLCertVerificationError as exc:
                    raise CertificateError(
                        f"TLS certificate of {self._masked_url} not trusted: {exc.verify_message}"
                    ) from exc
                except OSError as exc:
                    raise ConnectError(
                        f"cannot connect to {self._masked_url}: {type(exc).__name__}: {exc}"
                    ) from exc
                try:
                    info, leftover = await self._await_welcome(connection)
                    for topic in list(self._topics):
                        await connection.send(encode_subscribe(topic))
                    await connection.drain()
                except BaseException:
                    await connection.abort()
                    raise
        except TimeoutError:
            raise ConnectTimeout(
                f"no session with {self._masked_url} within {self._connect_timeout} s"
            ) from None
        return connection, info, leftover

    async def _await_welcome(
        self, connection: TransportConnection
    ) -> tuple[ConnectionInfo, list[DataMessage]]:
        while True:
            messages = await connection.receive()
            for index, (data, binary) in enumerate(messages):
                try:
                    event = parse_gateway_frame(data, compression=binary)
                except ProtocolError as exc:
                    self._report(exc)
                    continue
                if isinstance(event, ConnectionInfo):
                    return event, messages[index + 1 :]
                self._logger.debug("frame before the welcome ignored: %r", event)

    async def _supervise(self) -> None:
        try:
            await self._reconnect_forever()
        except Exception as exc:
            # A bug of ours must still end the block with its own exception, not hang it
            # or leak an exception group.
            self._logger.exception("the connection supervisor failed")
            self._fail(exc)

    async def _reconnect_forever(self) -> None:
        failures = 0
        while True:
            try:
                connection, info, leftover = await self._open()
            except (RealtimePubSubError, ValueError) as exc:
                failures += 1
                self._report(exc)
                refused = isinstance(exc, (AuthenticationError, CertificateError))
                if (refused and not self._policy.retry_refused) or self._policy.gives_up_after(
                    failures
                ):
                    self._fail(exc)
                    return
                await anyio.sleep(self._policy.delay(failures - 1))
                continue
            failures = 0
            code, reason = await self._serve(connection, info, leftover)
            self._router.emit("close", CloseInfo(code, reason))
            if code == _POLICY_VIOLATION and not self._policy.retry_refused:
                self._fail(
                    Forbidden(
                        f"the gateway closed the connection: {reason}", code=code, reason=reason
                    )
                )
                return
            if not self._policy.enabled:
                self._fail(ConnectionClosed(f"connection lost ({code})", code=code, reason=reason))
                return
            await anyio.sleep(self._policy.delay(0))

    async def _serve(
        self, connection: TransportConnection, info: ConnectionInfo, leftover: list[DataMessage]
    ) -> tuple[int, str]:
        self._connection, self._info = connection, info
        self._lost = anyio.Event()
        self._state = ConnectionState.OPEN
        self._connected.set()
        self._first_session.set()
        self._logger.info("session %s started (%s)", info.id, self._masked_url)
        self._router.emit("session.started", info)
        self._heartbeat_failed = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    self._heartbeat, connection, tg.cancel_scope, name=f"{self._name}.heartbeat"
                )
                tg.start_soon(
                    self._read, connection, leftover, tg.cancel_scope, name=f"{self._name}.reader"
                )
        finally:
            dead = self._heartbeat_failed
            # Everything waiting on this connection fails now: its acks and replies were
            # addressed to it and can never arrive.
            self._connection = None
            if self._state is ConnectionState.OPEN:
                self._state = ConnectionState.RECONNECTING
            self._connected = anyio.Event()
            self._lost.set()
            code = 1006 if dead else (connection.close_code or 1006)
            reason = "no pong: heartbeat timeout" if dead else connection.close_reason
            closing = self._state is ConnectionState.CLOSED
            if not closing:
                self._pending.fail_all(
                    lambda: ConnectionClosed(
                        f"connection {info.id} closed ({code}{': ' + reason if reason else ''})",
                        code=code,
                        reason=reason,
                    )
                )
                with anyio.CancelScope(shield=True):
                    await connection.abort()
        self._logger.warning(
            "session %s ended (%d%s)", info.id, code, f": {reason}" if reason else ""
        )
        return code, reason

    async def _read(
        self,
        connection: TransportConnection,
        leftover: list[DataMessage],
        scope: anyio.CancelScope,
    ) -> None:
        """Receive and dispatch until the connection closes, then end the connection's
        task group (the heartbeat with it)."""
        try:
            self._dispatch(leftover)
            while True:
                self._dispatch(await connection.receive())
        except ConnectionClosed:
            pass
        except Exception as exc:
            # Whatever broke the transport, this connection is done for: replace it rather
            # than end the client with an unrelated exception.
            self._logger.exception("the reader failed; dropping the connection")
            self._router.emit("error", exc)
        scope.cancel()

    def _dispatch(self, messages: list[DataMessage]) -> None:
        # The reader's loop: locals for everything it touches per message.
        dispatch, pending, replier, parse = (
            self._router.dispatch,
            self._pending,
            self._reply,
            parse_gateway_frame,
        )
        for data, binary in messages:
            try:
                event = parse(data, compression=binary, replier=replier)
            except ProtocolError as exc:
                self._report(exc)
                continue
            kind = type(event)
            if kind is IncomingMessage:
                dispatch(event)  # type: ignore[arg-type]
            elif kind is Ack:
                pending.ack(event)  # type: ignore[arg-type]
            elif kind is ResponseMessage:
                pending.reply(event)  # type: ignore[arg-type]
            else:
                self._logger.debug("unexpected frame ignored: %r", event)

    async def _heartbeat(self, connection: TransportConnection, scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(self._heartbeat_interval)
            with anyio.move_on_after(self._heartbeat_timeout) as timer:
                try:
                    pong = await connection.ping()
                except ConnectionClosed:
                    return
                except Exception:
                    self._logger.exception("the heartbeat failed; dropping the connection")
                    scope.cancel()
                    return
                await pong.wait()
            if timer.cancelled_caught:
                self._logger.warning(
                    "no pong within %s s: the connection is dead", self._heartbeat_timeout
                )
                self._heartbeat_failed = True
                scope.cancel()
                return

    def _fail(self, error: BaseException) -> None:
        """End the client with ``error`` (raised from the ``async with`` block)."""
        self._fatal = error
        self._shutdown()

    def _shutdown(self) -> None:
        if self._state is ConnectionState.CLOSED:
            return
        self._state = ConnectionState.CLOSED
        self._pending.fail_all(lambda: ClientClosed("the client closed"))
        self._router.close_all()
        self._connected.set()  # wake the tasks waiting for a connection: they see CLOSED
        self._lost.set()
        self._first_session.set()
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()


class _Listening:
    """``async with client.listen(...) as messages``: registers the stream on entry and
    removes it on exit."""

    __slots__ = ("_client", "_stream")

    def __init__(self, client: Client, stream: MessageStream[IncomingMessage]) -> None:
        self._client = client
        self._stream = stream

    async def __aenter__(self) -> MessageStream[IncomingMessage]:
        self._client._check_open()
        self._client._router.add(self._stream.pattern, self._stream)
        return self._stream

    async def __aexit__(self, *exc_info: object) -> None:
        self._client._router.remove(self._stream.pattern, self._stream)
        self._stream.discard()


def _message_id(value: str | None) -> str:
    if value is None:
        return new_message_id()
    if not isinstance(value, str) or not value:
        raise ValueError(f"id must be a non-empty string, not {value!r}")
    return value


@asynccontextmanager
async def connect(
    url_provider: UrlProvider,
    *,
    logger: logging.Logger | None = None,
    reconnect: ReconnectPolicy | None = None,
    heartbeat_interval: float = 15.0,
    heartbeat_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    max_message_size: int = 1048576,
    ssl_context: ssl.SSLContext | None = None,
    transport: Transport | None = None,
) -> AsyncIterator[Client]:
    """Connect to Realtime Pub/Sub; yields a :class:`Client` once the welcome has arrived.

    ``url_provider`` is the ``wss://.../apps/<app-id>?access_token=<JWT>`` URL, or a
    function (sync or async) returning it, called before every connection attempt so that
    tokens can be refreshed. Inside the block the client reconnects by itself under
    ``reconnect`` (a :class:`ReconnectPolicy`), restoring its subscriptions, and pings
    every ``heartbeat_interval`` seconds, declaring the connection dead when a pong takes
    longer than ``heartbeat_timeout``. ``connect_timeout`` bounds each attempt (TCP, TLS,
    handshake, welcome). Frames larger than ``max_message_size`` are refused before
    sending, and close the connection (1009) when received. ``ssl_context`` replaces the
    default verified TLS context for ``wss://``; ``transport`` replaces the default
    WebSocket transport.

    Leaving the block closes the connection with 1000 and leaves no task behind. The block
    ends early with :class:`~realtime_pubsub.AuthenticationError` when the handshake is
    refused (401/403/404), :class:`~realtime_pubsub.Forbidden` when the gateway closes
    with 1008, or the last error when the reconnect policy gives up; these are raised
    as themselves, never wrapped in an exception group.
    """
    client = Client(
        url_provider,
        logger=logger,
        reconnect=reconnect or ReconnectPolicy(),
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        connect_timeout=connect_timeout,
        max_message_size=max_message_size,
        ssl_context=ssl_context,
        transport=transport,
    )
    connection: TransportConnection | None = None
    try:
        async with anyio.create_task_group() as tg:
            client._task_group = tg
            tg.start_soon(client._supervise, name=f"{client._name}.supervisor")
            try:
                await client._first_session.wait()
                if client._fatal is None:
                    yield client
            finally:
                connection = client._connection
                client._shutdown()
    except BaseExceptionGroup as group:
        # Our own tasks never raise, so the group holds what the block itself raised:
        # hand that back as it was, not wrapped (one level only: an exception group the
        # block raised stays the caller's exception group).
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        if connection is not None:
            with anyio.CancelScope(shield=True):
                await connection.aclose(1000)
    if client._fatal is not None:
        raise client._fatal
