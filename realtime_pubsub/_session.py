"""One connection's life: the session.

A session reads the connection (the reader task) and watches it (the heartbeat task) until
either says it is over, and :meth:`Session.run` returns how it ended, a
:class:`~realtime_pubsub.CloseInfo`. The reader decides each frame's kind once: the
welcome starts the session, acks and replies go to the pending table, messages to the
router. It never blocks on anybody: whatever it hands over, it hands over with
``*_nowait`` calls.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
from anyio.lowlevel import checkpoint

from ._errors import ConnectError, ConnectionClosed, ConnectTimeout, ProtocolError
from ._messages import Ack, CloseInfo, ConnectionInfo, IncomingMessage, Replier, ResponseMessage
from ._pending import PendingTable
from ._protocol import parse_gateway_frame
from ._router import Router
from ._tasks import task_group
from ._transport import TransportConnection

__all__ = ["HEARTBEAT_TIMEOUT_REASON", "Session"]

#: The reason of the close a dead connection (no pong in time) is reported with.
HEARTBEAT_TIMEOUT_REASON: Final = "no pong: heartbeat timeout"
_ABNORMAL: Final = 1006


class Session:
    """One connection, from its welcome to its end."""

    __slots__ = (
        "_heartbeat_interval",
        "_heartbeat_timeout",
        "_logger",
        "_name",
        "_pending",
        "_replier",
        "_report",
        "_router",
        "_welcomed",
        "connection",
        "info",
        "lost",
        "opened",
    )

    def __init__(
        self,
        connection: TransportConnection,
        *,
        router: Router,
        pending: PendingTable,
        replier: Replier,
        report: Callable[[BaseException], None],
        heartbeat_interval: float,
        heartbeat_timeout: float,
        logger: logging.Logger,
        name: str,
    ) -> None:
        self.connection = connection
        #: The welcome's connection identity; None until it arrives.
        self.info: ConnectionInfo | None = None
        #: True once ``on_open`` has run: the session started.
        self.opened = False
        #: Set once the session is over (its acks and replies can no longer arrive).
        self.lost = anyio.Event()
        self._welcomed = anyio.Event()
        self._router = router
        self._pending = pending
        self._replier = replier
        self._report = report
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._logger = logger
        self._name = name

    async def run(
        self, *, welcome_timeout: float, on_open: Callable[[Session], Awaitable[None]]
    ) -> CloseInfo:
        """Read until the welcome (within ``welcome_timeout`` seconds), await
        ``on_open(self)``, then go on reading, with the heartbeat watching, until the
        connection ends; returns how it ended.

        Raises :class:`~realtime_pubsub.ConnectTimeout` when no welcome came in time and
        :class:`~realtime_pubsub.ConnectError` when the connection closed before the
        session started.
        """
        ended: CloseInfo | None = None
        try:
            async with task_group() as tasks:

                async def until_over(part: Callable[[], Awaitable[CloseInfo]]) -> None:
                    nonlocal ended
                    outcome = await part()
                    if ended is None:
                        ended = outcome
                    tasks.cancel_scope.cancel()

                tasks.start_soon(until_over, self._read, name=f"{self._name}.reader")
                with anyio.move_on_after(welcome_timeout):
                    await self._welcomed.wait()
                if self.info is None:
                    tasks.cancel_scope.cancel()
                else:
                    await on_open(self)
                    self.opened = True
                    tasks.start_soon(until_over, self._heartbeat, name=f"{self._name}.heartbeat")
        finally:
            self.lost.set()
        if ended is None:  # the task group ends only when a part is over, or at the timeout
            raise ConnectTimeout(f"no welcome from the gateway within {welcome_timeout:.1f} s")
        if not self.opened:
            raise ConnectError(f"the connection closed before the session started ({ended})")
        return ended

    def _closed(self) -> CloseInfo:
        return CloseInfo(self.connection.close_code or _ABNORMAL, self.connection.close_reason)

    async def _read(self) -> CloseInfo:
        """Receive and hand over until the connection closes."""
        # The client's hot loop: locals for everything it touches per message.
        receive = self.connection.receive
        parse, replier, report = parse_gateway_frame, self._replier, self._report
        dispatch, ack, reply = self._router.dispatch, self._pending.ack, self._pending.reply
        welcomed = False
        try:
            while True:
                answered = False
                for data, binary in await receive():
                    try:
                        event = parse(data, binary, replier)
                    except ProtocolError as exc:
                        report(exc)
                        continue
                    kind = type(event)
                    if kind is IncomingMessage and welcomed:
                        dispatch(event)  # type: ignore[arg-type]
                    elif kind is Ack:
                        answered = ack(event) or answered  # type: ignore[arg-type]
                    elif kind is ResponseMessage:
                        answered = reply(event) or answered  # type: ignore[arg-type]
                    elif kind is ConnectionInfo and not welcomed:
                        welcomed = True
                        self.info = event  # type: ignore[assignment]
                        self._welcomed.set()
                    else:
                        self._logger.debug("frame ignored: %r", event)
                if answered:
                    # Give way, so that whoever waited for these answers writes its next
                    # request before this task reads again: that read would find nothing
                    # yet, and its system call and re-arming of the poller would stand
                    # between a reply and the next request. Two turns, because the woken
                    # task's write yields once more and a turn's tasks run in any order.
                    # (See "Reading" in docs/architecture.rst.)
                    await checkpoint()
                    await checkpoint()
        except ConnectionClosed:
            pass
        except Exception as exc:
            # Whatever broke the transport, this connection is done for: replace it rather
            # than end the client with an unrelated exception.
            self._logger.exception("the reader failed; dropping the connection")
            self._router.emit("error", exc)
            await self.connection.abort()
        return self._closed()

    async def _heartbeat(self) -> CloseInfo:
        """Ping every interval; a pong that does not come in time means the connection is
        dead (half-open): drop it and say so. A connection that closed is the reader's
        to report."""
        connection = self.connection
        while True:
            await anyio.sleep(self._heartbeat_interval)
            try:
                pong = await connection.ping()
            except ConnectionClosed:
                await anyio.sleep_forever()
            except Exception:
                self._logger.exception("the heartbeat failed; dropping the connection")
                await connection.abort()
                return CloseInfo(_ABNORMAL, "the heartbeat failed")
            with anyio.move_on_after(self._heartbeat_timeout):
                await pong.wait()
                continue
            self._logger.warning(
                "no pong within %s s: the connection is dead", self._heartbeat_timeout
            )
            await connection.abort()
            return CloseInfo(_ABNORMAL, HEARTBEAT_TIMEOUT_REASON)
