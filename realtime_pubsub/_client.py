""":class:`Client`, an async context manager holding the connection supervisor and what
the sessions it opens run, and the public publish/subscribe API on top of them.

The client's life is one state (:class:`ConnectionState`) and the session it has while
open, changed in one place, :meth:`Client._set_state`, which logs every change and wakes
whoever waits for one. Only the supervisor opens sessions and moves the client between
connecting, open and reconnecting; closing comes from the owner leaving the block or from a
failure that ends it.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import itertools
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc

from ._backoff import ReconnectPolicy
from ._callbacks import Callbacks, Handler
from ._errors import (
    ClientClosed,
    ConnectError,
    ConnectionClosed,
    Forbidden,
    MessageTooLarge,
    RealtimePubSubError,
)
from ._messages import CloseInfo, ConnectionInfo, IncomingMessage
from ._patterns import validate_pattern
from ._pending import PendingTable, Receipt
from ._protocol import (
    DEFAULT_MESSAGE_TYPE,
    POLICY_VIOLATION,
    encode_publish,
    encode_reply,
    encode_send,
    encode_subscribe,
    encode_unsubscribe,
    new_message_id,
    validate_topic,
)
from ._router import Router, is_lifecycle_event
from ._session import Session
from ._streams import MessageStream, Overflow, StreamSender, check_options, open_stream
from ._tasks import task_group
from ._transport import ClosedBeforeSending, Transport, WebSocketsTransport
from ._urls import mask_url, validate_url

__all__ = ["Client", "ConnectionState", "Listener", "UrlProvider", "connect"]

#: A URL, or a function (sync or async) returning one, called before every attempt.
UrlProvider = str | Callable[[], str] | Callable[[], Awaitable[str]]

_ids = itertools.count(1)


class ConnectionState(enum.Enum):
    """Where the client is in its life.

    ``CONNECTING`` → ``OPEN`` once the first welcome arrived and the subscriptions are
    sent; ``OPEN`` → ``RECONNECTING`` when the connection is lost, and back to ``OPEN``
    with the next one; any of them → ``CLOSED`` when the block ends, for good.
    """

    #: Opening the first connection.
    CONNECTING = "connecting"
    #: Connected, once the welcome arrived and the subscriptions are restored.
    OPEN = "open"
    #: The connection was lost; a new one is being opened.
    RECONNECTING = "reconnecting"
    #: Closed for good, because the ``async with`` block ended or a fatal error ended it.
    CLOSED = "closed"


_TRANSITIONS: Final = {
    ConnectionState.CONNECTING: {ConnectionState.OPEN, ConnectionState.CLOSED},
    ConnectionState.OPEN: {ConnectionState.RECONNECTING, ConnectionState.CLOSED},
    ConnectionState.RECONNECTING: {ConnectionState.OPEN, ConnectionState.CLOSED},
}


class Client:
    """A Realtime Pub/Sub client. ``async with connect(url) as client:`` (``connect`` is
    another name for this class) enters the block once the gateway's welcome has
    arrived; leaving the block closes the connection with 1000 and leaves no task
    behind.

    Args:
        url_provider: the ``wss://.../apps/<app-id>?access_token=<JWT>`` URL, or a function
            (sync or async) returning it, called before every connection attempt so that
            tokens can be refreshed.
        logger: where the client logs (default: the ``realtime_pubsub`` logger).
        reconnect: how the client reconnects by itself, restoring its subscriptions (a
            :class:`~realtime_pubsub.ReconnectPolicy`; default: forever, with backoff).
        heartbeat_interval: seconds between pings.
        heartbeat_timeout: seconds a pong may take before the connection counts as dead.
        connect_timeout: seconds each attempt may take (TCP, TLS, handshake, welcome).
        max_message_size: frames larger than this are refused before sending, and close
            the connection (1009) when received.
        ssl_context: replaces the default verified TLS context for ``wss://``.
        transport: replaces the default WebSocket transport.

    Raises:
        ValueError: a URL string that is not a ``ws://`` or ``wss://`` URL, or a bad
            option (at once, before anything connects).
        AuthenticationError: from the block, when the handshake is refused (401/403/404).
        CertificateError: from the block, when the server's TLS certificate is not valid.
        Forbidden: from the block, when the gateway closes with 1008.
        RealtimePubSubError: from the block, the last error when the reconnect policy
            gives up.

    These are raised as themselves, never wrapped in an exception group; the reconnection
    table of the guarantees says what is retried.

    Every method may be called from any task of the ``async with`` block. ``publish``,
    ``send``, ``subscribe`` and ``reply`` wait for the connection while the client
    reconnects (bounded by the caller's own cancel scope) and raise
    :class:`~realtime_pubsub.ClientClosed` once the client is closed.
    """

    def __init__(
        self,
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
    ) -> None:
        if isinstance(url_provider, str):
            validate_url(url_provider)
        elif not callable(url_provider):
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
        self._policy = reconnect or ReconnectPolicy()
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._connect_timeout = connect_timeout
        self._max_message_size = max_message_size
        self._ssl_context = ssl_context
        self._transport: Transport = transport or WebSocketsTransport()
        self._masked_url = mask_url(url_provider) if isinstance(url_provider, str) else "?"

        # The state: changed by _set_state() alone.
        self._state = ConnectionState.CONNECTING
        self._session: Session | None = None
        self._state_changed = anyio.Event()
        self._info: ConnectionInfo | None = None  # the last session's, kept while reconnecting

        self._topics: dict[str, None] = {}  # ordered: replayed in subscription order
        self._pending = PendingTable()
        self._router = Router()
        self._callbacks = Callbacks(self._router, logger=self._logger, name=self._name)
        self._exits: AsyncExitStack | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._fatal: BaseException | None = None

    def __repr__(self) -> str:
        cid = self._info.id if self._info else None
        return (
            f"<realtime_pubsub.Client {self._name} state={self._state.value} "
            f"connection={cid!r} url={self._masked_url!r}>"
        )

    # ------------------------------------------------------------------ entering and leaving

    async def __aenter__(self) -> Client:
        if self._exits is not None:
            raise RuntimeError("a Client can be used in one async with block only")
        self._exits = AsyncExitStack()
        self._task_group = await self._exits.enter_async_context(task_group())
        self._task_group.start_soon(self._supervise, name=f"{self._name}.supervisor")
        self._task_group.start_soon(self._pending.clock.run, name=f"{self._name}.clock")
        try:
            while self._state is ConnectionState.CONNECTING:
                await self._state_changed.wait()
        except BaseException:
            if not await self.__aexit__(*sys.exc_info()):
                raise
        if self._fatal is not None:
            await self.__aexit__(None, None, None)  # raises the fatal error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self._shutdown()
        assert self._exits is not None
        suppressed = await self._exits.__aexit__(exc_type, exc, traceback)
        if self._fatal is not None:
            error = self._fatal
            if error.__cause__ is None:
                error.__suppress_context__ = True  # not "during handling of Cancelled"
            raise error
        return bool(suppressed)

    def _shutdown(self) -> None:
        """Close for good: every wait fails, every listener ends, every task stops (the
        supervisor's connection closes with 1000 on its way out)."""
        if self._state is ConnectionState.CLOSED:
            return
        self._set_state(ConnectionState.CLOSED)
        self._pending.fail_all(lambda: ClientClosed("the client closed"))
        self._router.close_all()
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    def _fail(self, error: BaseException) -> None:
        """End the client with ``error``, raised from the ``async with`` block."""
        self._fatal = error
        self._shutdown()

    # ------------------------------------------------------------------ state

    def _set_state(self, state: ConnectionState, session: Session | None = None) -> None:
        """The one way the state changes: ``session`` is the open one (OPEN only). CLOSED
        is for good: nothing moves the client out of it."""
        old = self._state
        if old is ConnectionState.CLOSED:
            return
        assert state in _TRANSITIONS[old], f"{old} -> {state}"
        self._state, self._session = state, session
        if session is not None:
            self._info = session.info
        self._logger.debug("%s: %s -> %s", self._name, old.value, state.value)
        changed, self._state_changed = self._state_changed, anyio.Event()
        changed.set()

    @property
    def state(self) -> ConnectionState:
        """The connection state (see :class:`ConnectionState`)."""
        return self._state

    @property
    def connection(self) -> ConnectionInfo:
        """The current connection's identity (the last one's while reconnecting)."""
        if self._info is None:
            raise RuntimeError("not connected yet: enter the client's async with block first")
        return self._info

    @property
    def subscriptions(self) -> frozenset[str]:
        """The remote topics this client subscribes to, restored on every new connection."""
        return frozenset(self._topics)

    @property
    def in_flight(self) -> int:
        """How many receipts still hold a slot for an ack or a reply."""
        return len(self._pending)

    def _check_open(self) -> None:
        if self._state is ConnectionState.CLOSED:
            raise ClientClosed("the client is closed")

    async def _open_session(self) -> Session:
        """The open session; waits while the client (re)connects."""
        while True:
            if self._state is ConnectionState.CLOSED:
                raise ClientClosed("the client is closed")
            if self._session is not None:
                return self._session
            await self._state_changed.wait()

    # ------------------------------------------------------------------ topics

    async def subscribe(self, topic: str) -> None:
        """Subscribe to a remote topic. Idempotent; remembered, and replayed on every new
        connection before ``session.started`` fires.

        Subscribing to a ``secure/`` topic needs the read permission: without it the
        gateway closes the connection with 1008, which ends the ``async with`` block with
        :class:`~realtime_pubsub.Forbidden`. Subscribing does not listen: see
        :meth:`listen` and :meth:`on`.

        Args:
            topic: the topic (a non-empty string).

        Returns:
            Once the subscribe frame is written, so that a message published after that
            finds the subscription in place; or at once if the connection is lost first
            (the next connection subscribes).

        Raises:
            ValueError: the topic is not a non-empty string.
            ClientClosed: the client is closed.
        """
        validate_topic(topic)
        self._check_open()
        if topic in self._topics:
            return
        self._topics[topic] = None
        session = await self._open_session()
        if topic in self._topics:
            with contextlib.suppress(ConnectionClosed):
                await session.connection.send(encode_subscribe(topic))
                await session.connection.drain()

    async def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from a remote topic and forget it (no new connection subscribes).
        Idempotent.

        Args:
            topic: the topic (a non-empty string).

        Returns:
            Once the unsubscribe frame is written, or at once when there is no connection.

        Raises:
            ValueError: the topic is not a non-empty string.
            ClientClosed: the client is closed.
        """
        validate_topic(topic)
        self._check_open()
        if self._topics.pop(topic, False) is False:
            return
        session = self._session
        if session is not None:
            with contextlib.suppress(ConnectionClosed):
                await session.connection.send(encode_unsubscribe(topic))
                await session.connection.drain()

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
        """Publish ``payload`` to ``topic``.

        Args:
            topic: the topic (a non-empty string).
            payload: any JSON-serializable value.
            message_type: the message type; subscribers see the message under the event
                name ``<topic>.<message_type>``.
            compress: ask the gateway to deliver it compressed (as a binary frame).
            id: the message id (default: 128 random bits); acks and replies refer to it.

        Returns:
            A :class:`~realtime_pubsub.Receipt`, to wait for the gateway's ack and for a
            reply.

        Raises:
            TypeError: the payload is not JSON-serializable (nothing was sent).
            ValueError: the topic or the id is not a non-empty string (nothing was sent).
            MessageTooLarge: the frame is over ``max_message_size`` (nothing was sent).
            ConnectionClosed: the connection broke during the write (the message may or
                may not have gone out).
            ClientClosed: the client is closed.
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
        """Send ``payload`` to the backend services (the subscribers of
        ``secure/inbound``); wait for their answer with ``await receipt.wait_for_reply()``.

        Args:
            payload: any JSON-serializable value.
            message_type: the message type; backends see the message under
                ``secure/inbound.<message_type>``. Left out of the frame when not given
                (backends then see ``broadcast``).
            compress: ask the gateway to deliver it compressed (as a binary frame).
            id: the message id (default: 128 random bits); acks and replies refer to it.

        Returns:
            A :class:`~realtime_pubsub.Receipt`, to wait for the gateway's ack and for the
            backend's reply.

        Raises:
            TypeError: the payload is not JSON-serializable (nothing was sent).
            ValueError: the id is not a non-empty string (nothing was sent).
            MessageTooLarge: the frame is over ``max_message_size`` (nothing was sent).
            ConnectionClosed: the connection broke during the write (the message may or
                may not have gone out).
            ClientClosed: the client is closed.
        """
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
            session = self._session or await self._open_session()
            # The slot exists before the first byte is written: an ack or reply racing back
            # before the caller awaits it is kept.
            receipt = self._pending.register(message_id)
            try:
                await session.connection.send(frame)
                return receipt
            except ClosedBeforeSending:
                # Nothing was written: send it on the next connection.
                self._pending.discard(receipt)
                await session.lost.wait()
            except BaseException:
                self._pending.discard(receipt)
                raise

    # ------------------------------------------------------------------ listening

    def listen(
        self, pattern: str, *, max_buffer: int = 1000, overflow: Overflow = "drop-oldest"
    ) -> Listener:
        """Listen to the messages whose event name ``<topic>.<messageType>`` matches
        ``pattern``, through a bounded buffer::

            async with client.listen("chat.*") as messages:
                async for message in messages:
                    ...

        Listening does not subscribe: call :meth:`subscribe` for the remote topic too. A
        slow listener never slows the client or the other listeners. The iteration ends
        when the client closes.

        Args:
            pattern: ``.`` separates segments; ``*`` matches one segment, ``**`` any
                number (``chat.*``, ``*.presence``, ``**``).
            max_buffer: how many messages may wait for the consumer.
            overflow: what happens when more would (see
                :class:`~realtime_pubsub.MessageStream`).

        Returns:
            A :class:`~realtime_pubsub.Listener`: ``async with`` it to get the
            :class:`~realtime_pubsub.MessageStream`.

        Raises:
            ValueError: a pattern with an empty segment, a lifecycle event name (use
                :meth:`on` or :meth:`wait_for` for those), a ``max_buffer`` below 1 or an
                unknown ``overflow``.
        """
        if is_lifecycle_event(validate_pattern(pattern)):
            raise ValueError(f"{pattern!r} is a lifecycle event: use on() or wait_for()")
        check_options(max_buffer, overflow)
        return Listener(
            self._router,
            self._check_open,
            pattern,
            max_buffer=max_buffer,
            overflow=overflow,
            logger=self._logger,
        )

    # ------------------------------------------------------------------ callbacks

    def on(self, pattern: str, handler: Handler) -> int:
        """Call ``handler`` for every matching message, or lifecycle event, until
        :meth:`off`.

        Each registration runs on its own task, in order, so an async handler that awaits
        (even a reply) blocks nothing else. A sync handler runs on the event loop, like
        any sync code in an async program: while it runs, nothing else of the client does
        (not the reader, the heartbeat, other handlers or listeners). Keep sync handlers
        short; one that holds the loop for more than 100 ms is reported once, in a warning
        naming it. A handler that raises is logged and reported as an ``error`` event; the
        client carries on.

        Args:
            pattern: a message pattern as for :meth:`listen` (the handler gets
                ``(message, reply)``, where ``reply`` is ``message.reply``), or a lifecycle
                event: ``"session.started"`` (the handler gets the
                :class:`~realtime_pubsub.ConnectionInfo`), ``"error"`` (the exception) or
                ``"close"`` (a :class:`~realtime_pubsub.CloseInfo`).
            handler: a function or a coroutine function.

        Returns:
            The listener id, for :meth:`off`.

        Raises:
            TypeError: ``handler`` is not callable.
            ValueError: the pattern is not usable.
            ClientClosed: the client is closed.
        """
        return self._add_callback(pattern, handler, once=False)

    def once(self, pattern: str, handler: Handler) -> int:
        """Like :meth:`on`, for the first matching event only."""
        return self._add_callback(pattern, handler, once=True)

    def off(self, listener_id: int) -> bool:
        """Remove a handler added with :meth:`on` or :meth:`once`: it is not called again
        (a call in progress finishes; events still queued for it are dropped). Returns
        False if there was no such handler."""
        return self._callbacks.remove(listener_id)

    async def wait_for(self, event: str, timeout: float | None = None) -> Any:
        """Wait for the next matching message or lifecycle event.

        Args:
            event: a message pattern as for :meth:`listen`, or a lifecycle event (see
                :meth:`on`).
            timeout: seconds to wait at most (``None``: no limit).

        Returns:
            The :class:`~realtime_pubsub.IncomingMessage`, or the lifecycle event's value.

        Raises:
            WaitTimeout: nothing came within ``timeout`` seconds.
            ClientClosed: the client is closed, or closes first.
        """
        self._check_open()
        return await self._callbacks.wait_for(event, timeout)

    def _add_callback(self, pattern: str, handler: Handler, *, once: bool) -> int:
        self._check_open()
        assert self._task_group is not None
        return self._callbacks.add(pattern, handler, once=once, task_group=self._task_group)

    def _report(self, error: BaseException) -> None:
        self._logger.warning("%s", error)
        self._router.emit("error", error)

    # ------------------------------------------------------------------ the connection

    async def _supervise(self) -> None:
        try:
            await self._connect_forever()
        except Exception as exc:
            # A bug of ours must still end the block with its own exception, not hang it.
            self._logger.exception("the connection supervisor failed")
            self._fail(exc)

    async def _connect_forever(self) -> None:
        """Open sessions, one after another, until the policy gives up."""
        failures = 0
        while True:
            error: RealtimePubSubError
            try:
                ended = await self._run_session()
            except RealtimePubSubError as exc:
                failures += 1
                self._report(exc)
                error = exc
            else:
                failures = 0
                self._router.emit("close", ended)
                error = _close_error(ended)
            if not self._policy.retries(error, failures):
                self._fail(error)
                return
            delay = self._policy.delay(max(failures - 1, 0))
            again = "reconnecting" if self._info is not None else "connecting again"
            self._logger.info("%s in %.1f s (attempt %d)", again, delay, failures + 1)
            await anyio.sleep(delay)

    async def _run_session(self) -> CloseInfo:
        """One attempt: open a connection and run a session on it until it ends."""
        url = await self._resolve_url()
        self._masked_url = mask_url(url)
        self._logger.info("connecting to %s", self._masked_url)
        deadline = anyio.current_time() + self._connect_timeout
        async with self._transport.open(
            url,
            ssl_context=self._ssl_context,
            max_message_size=self._max_message_size,
            open_timeout=self._connect_timeout,
            name=self._name,
        ) as connection:
            session = Session(
                connection,
                router=self._router,
                pending=self._pending,
                replier=self._reply,
                report=self._report,
                heartbeat_interval=self._heartbeat_interval,
                heartbeat_timeout=self._heartbeat_timeout,
                logger=self._logger,
                name=self._name,
            )
            ended = await session.run(
                welcome_timeout=deadline - anyio.current_time(), on_open=self._start
            )
            self._lose(session, ended)
        return ended

    async def _resolve_url(self) -> str:
        provider = self._url_provider
        if isinstance(provider, str):
            return provider
        try:
            url = provider()
            if inspect.isawaitable(url):
                url = await url
            return validate_url(url)
        except Exception as exc:
            raise ConnectError(f"the URL provider failed: {type(exc).__name__}: {exc}") from exc

    async def _start(self, session: Session) -> None:
        """A session's welcome arrived: subscribe again, then open for business."""
        assert session.info is not None
        connection = session.connection
        for topic in list(self._topics):
            await connection.send(encode_subscribe(topic))
        await connection.drain()
        self._set_state(ConnectionState.OPEN, session)
        self._logger.info("session %s started (%s)", session.info.id, self._masked_url)
        self._router.emit("session.started", session.info)

    def _lose(self, session: Session, ended: CloseInfo) -> None:
        """A session that was open ended: its acks and replies can never arrive."""
        assert session.info is not None
        self._set_state(ConnectionState.RECONNECTING)
        self._pending.fail_all(
            lambda: ConnectionClosed(
                f"connection {session.info.id if session.info else '?'} closed ({ended})",
                code=ended.code,
                reason=ended.reason,
            )
        )
        self._logger.warning("session %s ended (%s)", session.info.id, ended)


class Listener:
    """What :meth:`Client.listen` returns: ``async with`` it to get a
    :class:`~realtime_pubsub.MessageStream` registered for its pattern, which leaving the
    block removes again."""

    __slots__ = ("_check_open", "_ends", "_logger", "_router", "max_buffer", "overflow", "pattern")

    def __init__(
        self,
        router: Router,
        check_open: Callable[[], None],
        pattern: str,
        *,
        max_buffer: int,
        overflow: Overflow,
        logger: logging.Logger,
    ) -> None:
        self._router = router
        self._check_open = check_open
        self._logger = logger
        self._ends: tuple[StreamSender[IncomingMessage], MessageStream[IncomingMessage]] | None
        self._ends = None
        #: The pattern listened to.
        self.pattern = pattern
        #: How many messages may wait for the consumer.
        self.max_buffer = max_buffer
        #: What happens when more would.
        self.overflow: Overflow = overflow

    def __repr__(self) -> str:
        return f"<realtime_pubsub.Listener pattern={self.pattern!r}>"

    async def __aenter__(self) -> MessageStream[IncomingMessage]:
        if self._ends is not None:
            raise RuntimeError("a Listener can be used in one async with block only")
        self._check_open()
        sender: StreamSender[IncomingMessage]
        stream: MessageStream[IncomingMessage]
        sender, stream = open_stream(
            self.pattern, max_buffer=self.max_buffer, overflow=self.overflow, logger=self._logger
        )
        self._router.add(self.pattern, sender)
        self._ends = sender, stream
        return stream

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._ends is not None
        sender, stream = self._ends
        self._router.remove(self.pattern, sender)
        sender.close()
        stream.close()


def _message_id(value: str | None) -> str:
    if value is None:
        return new_message_id()
    if not isinstance(value, str) or not value:
        raise ValueError(f"id must be a non-empty string, not {value!r}")
    return value


def _close_error(ended: CloseInfo) -> RealtimePubSubError:
    """What a lost connection ends the block with, when the policy does not retry it."""
    if ended.code == POLICY_VIOLATION:
        return Forbidden(
            f"the gateway closed the connection: {ended.reason}",
            code=ended.code,
            reason=ended.reason,
        )
    return ConnectionClosed(f"connection lost ({ended})", code=ended.code, reason=ended.reason)


#: ``connect(url, ...)`` is ``Client(url, ...)``, named for what ``async with`` does with it.
connect = Client
