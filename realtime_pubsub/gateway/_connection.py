"""The I/O of one connection to the gateway, from its first byte to its last: the read loop
(frames to the broker), the write loop (the connection's own writer task), what it may
cost (an outgoing buffer over ``max_send_buffer`` closes it with 1013; a write slower than
``write_timeout`` aborts it), and how it ends (a closing handshake with a deadline, or an
abort).

Whatever the peer does (stops reading, stops answering, vanishes), a connection ends
promptly when asked: it is run by a guard task that never waits on the socket itself and,
when the session is over, aborted or past its deadline, closes the stream under whatever
read or write is in progress.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import anyio.abc
from websockets.protocol import State

from .._wsio import WebSocketIO
from ._config import Limits

__all__ = ["Connection"]

logger = logging.getLogger("realtime_pubsub.gateway")

#: RFC 6455 §5.5: a close frame's body is at most 125 bytes, 2 of them the code.
_MAX_REASON_BYTES: Final = 123
#: The close code for a client that reads too slowly (RFC 6455: "Try Again Later").
TRY_AGAIN_LATER: Final = 1013
_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


class Connection:
    """One accepted connection. :meth:`run` drives it; the gateway queues frames with
    :meth:`send` and :meth:`send_plain` and ends it with :meth:`close` or :meth:`abort`."""

    def __init__(self, stream: anyio.abc.SocketStream, *, limits: Limits) -> None:
        self.limits = limits
        #: The connection id, once the broker admitted it.
        self.id: str | None = None
        #: The WebSocket, once the TLS handshake (if any) is done.
        self.ws: WebSocketIO | None = None
        #: The accepted TCP stream (when serving TLS, ``ws.stream`` is the TLS layer on it).
        self.stream = stream
        self._scope = anyio.CancelScope()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._over = anyio.Event()
        self._finished = anyio.Event()
        self._on_leave: Callable[[Connection], None] | None = None

    # ------------------------------------------------------------------ state

    @property
    def open(self) -> bool:
        """Whether it is admitted and neither closing nor gone: what the broker lists."""
        return self._on_leave is not None

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` holds it half-open."""
        return self.ws is not None and self.ws.paused

    @property
    def buffered(self) -> int:
        """Bytes queued for it and not yet written."""
        return self.ws.buffered if self.ws is not None else 0

    def admit(self, connection_id: str, on_leave: Callable[[Connection], None]) -> None:
        """The broker admitted it as ``connection_id``: start writing. ``on_leave`` is
        called once, synchronously, when it stops being open (closing, aborted or gone)."""
        assert self.ws is not None
        assert self._task_group is not None
        self.id = connection_id
        self._on_leave = on_leave
        self._scope.deadline = float("inf")  # the handshake's deadline no longer applies
        self._task_group.start_soon(self._write_loop, name=f"gateway[{connection_id}].writer")

    def _leave(self) -> None:
        on_leave, self._on_leave = self._on_leave, None
        if on_leave is not None:
            on_leave(self)

    # ------------------------------------------------------------------ sending

    def send(self, frame: bytes, *, binary: bool = False) -> None:
        """Queue one frame; never blocks (the writer task writes it). Frames for a
        connection that is not open (any more) are dropped.

        Binary frames are the ``compress: true`` deliveries: deflated when the client
        negotiated permessage-deflate. Everything else goes out as it is.
        """
        ws = self._writable()
        if ws is not None:
            ws.send_message(frame, binary=binary, deflate=binary)
            self._queued(ws)

    def send_plain(self, frame: bytes) -> None:
        """Queue an uncompressed frame already serialized by ``server_frame`` (fan-out
        serializes a message once for all its receivers)."""
        ws = self._writable()
        if ws is not None:
            ws.send_server_frame(frame)
            self._queued(ws)

    def _writable(self) -> WebSocketIO | None:
        ws = self.ws
        if self.open and ws is not None and ws.protocol.state is State.OPEN and not ws.broken:
            return ws
        return None

    def _queued(self, ws: WebSocketIO) -> None:
        limit = self.limits.max_send_buffer
        if ws.buffered > limit:
            logger.info("closing %s: more than %d bytes queued for it", self.id, limit)
            self.close(TRY_AGAIN_LATER, f"Send buffer over max_send_buffer ({limit} bytes)")
        else:
            ws.flush_soon()

    # ------------------------------------------------------------------ ending

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code`` and ``reason``; the connection is
        aborted if the handshake is not over within the close timeout."""
        self._leave()
        ws = self.ws
        if ws is not None and ws.protocol.state is State.OPEN:
            ws.protocol.send_close(
                code, reason.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")
            )
            ws.flush_soon()
        self._close_within(self.limits.close_timeout)

    def abort(self) -> None:
        """Close the TCP connection now, with no close frame (a crash, as the peer sees
        it), whatever is being read or written."""
        self._leave()
        self._over.set()

    def arm(self, seconds: float) -> None:
        """End it ``seconds`` from now, whatever is in progress, unless armed again before
        (the HTTP API's backstop for each request)."""
        self._scope.deadline = anyio.current_time() + seconds

    def _close_within(self, seconds: float) -> None:
        self._scope.deadline = min(self._scope.deadline, anyio.current_time() + seconds)

    def pause(self) -> None:
        """Hold it half-open: nothing read is processed, nothing queued is written."""
        if self.ws is not None:
            self.ws.pause()

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self.ws is not None:
            self.ws.resume()

    async def wait_finished(self) -> None:
        """Wait until :meth:`run` has closed the stream and returned."""
        await self._finished.wait()

    # ------------------------------------------------------------------ running

    async def run(self, session: Callable[[Connection], Awaitable[None]]) -> None:
        """Run ``session`` (handshakes, then :meth:`read_loop`) in a task of its own, until
        it returns, the writer finds the stream broken, :meth:`abort` is called or the
        deadline passes (the handshake timeout at first, the close timeout once closing).
        Then the stream is closed under any read or write in progress, and this returns."""
        try:
            with self._scope:
                self._scope.deadline = anyio.current_time() + self.limits.handshake_timeout
                async with anyio.create_task_group() as tg:
                    self._task_group = tg
                    tg.start_soon(self._session, session, name="gateway.connection")
                    try:
                        await self._over.wait()
                    finally:
                        await self._close_stream()
                        tg.cancel_scope.cancel()
        finally:
            self._leave()
            self._finished.set()

    async def _session(self, session: Callable[[Connection], Awaitable[None]]) -> None:
        try:
            await session(self)
        except _GONE:
            pass  # the peer went away, or the stream was closed under us
        except Exception:
            # One connection's surprise must never take the gateway down with it.
            logger.exception("connection %s failed", self.id)
        finally:
            self._over.set()

    async def _close_stream(self) -> None:
        with anyio.CancelScope(shield=True):
            if self.ws is not None:
                await self.ws.aclose()
            else:
                await self.stream.aclose()

    async def _write_loop(self) -> None:
        assert self.ws is not None
        await self.ws.run_writer()
        # The stream broke, or a write overran write_timeout: the connection is gone.
        self._leave()
        self._over.set()

    async def read_loop(
        self, on_message: Callable[[bytes | bytearray | memoryview | str], None]
    ) -> None:
        """Hand each data message to ``on_message`` while the connection is open, then
        see the closing handshake through."""
        ws = self.ws
        assert ws is not None
        while not ws.closed:
            messages = await ws.receive_messages()
            for data, _binary in messages:
                if not self.open:
                    break
                on_message(data)
            if self.open and ws.protocol.state is not State.OPEN:
                # The peer started the closing handshake (or vanished): see it through,
                # but not for longer than the close timeout.
                self._leave()
                self._close_within(self.limits.close_timeout)
