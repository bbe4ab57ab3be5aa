"""A websockets sans-IO protocol object driven over an anyio byte stream: the one piece of
I/O glue under both the client transport and the local gateway.

The protocol object is only ever touched synchronously between awaits, so any task may
queue frames on it (``protocol.send_text(...)``); :meth:`WebSocketIO.flush` then writes
everything queued, in order, under one lock. Queued chunks are joined into a single write,
which keeps small-message throughput close to the socket's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import anyio
import anyio.abc
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.protocol import SEND_EOF, Protocol, Side, State
from websockets.protocol import Event as WebSocketEvent

__all__ = ["WebSocketIO", "server_frame"]

#: Bytes asked of the stream per read. The client reads less than the gateway: every
#: message of one read is alive until its consumer runs, and handing consumers a few dozen
#: messages at a time lets them die young, before the garbage collector has to promote (and
#: later traverse) them; with 64 KiB reads the collector costs more than everything else.
SERVER_READ_SIZE = 65536
CLIENT_READ_SIZE = 8192
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG

#: A complete data message: its content (bytes, or str from transports that decode text
#: frames) and whether it came as a binary frame.
DataMessage = tuple["bytes | bytearray | memoryview | str", bool]


def server_frame(data: bytes, *, binary: bool = False) -> bytes:
    """The bytes of one uncompressed, unmasked (server-side) data frame."""
    return Frame(_BINARY if binary else _TEXT, data).serialize(mask=False)


class WebSocketIO:
    """Feeds bytes from ``stream`` into ``protocol``, reassembles data messages, and writes
    the protocol's output back."""

    __slots__ = (
        "_drained",
        "_flushes_started",
        "_flushes_written",
        "_fragment_binary",
        "_fragments",
        "_queued",
        "_read_size",
        "_resumed",
        "_send_lock",
        "_wake",
        "broken",
        "on_pong",
        "protocol",
        "stream",
    )

    def __init__(
        self,
        protocol: Protocol,
        stream: anyio.abc.ByteStream,
        *,
        read_size: int = SERVER_READ_SIZE,
    ) -> None:
        # websockets logs every frame, and the handshake's URL with its access token, at
        # DEBUG: never let it, whatever the application's logging configuration.
        protocol.debug = False
        self.protocol = protocol
        self.stream = stream
        self._read_size = read_size
        self.on_pong: Callable[[bytes | bytearray | memoryview], None] | None = None
        self._send_lock = anyio.Lock()
        self._fragments: list[bytes | bytearray | memoryview] | None = None
        self._fragment_binary = False
        self._resumed: anyio.Event | None = None
        self._wake = anyio.Event()
        self._drained = anyio.Event()
        self._queued = 0
        self._flushes_started = 0
        self._flushes_written = 0
        #: True once :meth:`run_writer` met a broken stream.
        self.broken = False

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._resumed is not None

    def pause(self) -> None:
        """Stop feeding received bytes to the protocol and stop writing, so nothing is
        answered (not even pings) and nothing is sent: a half-open connection. What arrives
        or is queued meanwhile is processed after :meth:`resume`."""
        if self._resumed is None:
            self._resumed = anyio.Event()

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            resumed.set()

    async def _wait_resumed(self) -> None:
        while self._resumed is not None:
            await self._resumed.wait()

    def send_message(self, data: bytes, *, binary: bool = False, deflate: bool = False) -> None:
        """Queue one data message (:meth:`flush` writes it).

        permessage-deflate, when negotiated, applies per message (RFC 7692 lets either side
        send any message uncompressed): ``deflate=False`` sends it as it is, which spares
        zlib a round trip for every small frame; ``deflate=True`` compresses it. Raises
        websockets' ``InvalidState`` when the connection is not open.
        """
        protocol = self.protocol
        if deflate or not protocol.extensions:
            if binary:
                protocol.send_binary(data)
            else:
                protocol.send_text(data)
            return
        if protocol.state is not State.OPEN:
            raise InvalidState(f"connection is {protocol.state.name.lower()}")
        frame = Frame(_BINARY if binary else _TEXT, data)
        protocol.writes.append(frame.serialize(mask=protocol.side is Side.CLIENT))

    def send_server_frame(self, frame: bytes) -> None:
        """Queue a frame made by :func:`server_frame`. A server's frames are not masked, so
        one message fanned out to many connections is serialized once, not once each."""
        protocol = self.protocol
        if protocol.state is not State.OPEN:
            raise InvalidState(f"connection is {protocol.state.name.lower()}")
        protocol.writes.append(frame)

    # Writing: senders queue frames synchronously and call flush_soon(); one writer task
    # (run_writer) writes everything queued in one go. Concurrent senders' frames are
    # coalesced into few writes, a sender never waits for the socket unless the queue is
    # over its high-water mark, and no write is ever cut in half by a sender's cancellation.

    @property
    def writer_idle(self) -> bool:
        """Whether nothing is being written or waiting to be: a sender may then write its
        frame itself, sparing the hand-over to the writer task (latency)."""
        return not self._send_lock.locked() and not self._wake.is_set()

    @property
    def queued(self) -> int:
        """Bytes of data messages queued since the last flush."""
        return self._queued

    def flush_soon(self, size: int = 0) -> None:
        """Ask :meth:`run_writer` to flush; ``size`` bytes were just queued. Never blocks."""
        self._queued += size
        self._wake.set()

    async def wait_drained(self) -> None:
        """Wait until the writer's next flush is done (or the stream broke)."""
        if not self.broken:
            await self._drained.wait()

    async def drain(self) -> None:
        """Wait until everything queued so far is written (or the stream broke)."""
        # A flush that has not started yet will take what is queued; one in progress may
        # already hold it. Wait for whichever it is to finish writing.
        needed = self._flushes_started + (1 if self.protocol.writes else 0)
        while self._flushes_written < needed and not self.broken:
            await self.wait_drained()

    async def run_writer(self) -> None:
        """Flush whenever :meth:`flush_soon` asks, until cancelled or the stream breaks
        (then :attr:`broken` is set and whoever waits in :meth:`wait_drained` wakes)."""
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                self._queued = 0
                await self.flush()
                drained, self._drained = self._drained, anyio.Event()
                drained.set()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self.broken = True
            self._drained.set()

    @property
    def closed(self) -> bool:
        """True once the WebSocket connection has fully closed."""
        return self.protocol.state is State.CLOSED

    async def flush(self) -> None:
        """Write everything the protocol has queued.

        Raises :class:`anyio.BrokenResourceError` or :class:`anyio.ClosedResourceError`
        when the stream is gone.
        """
        # The lock is free nearly always (one writer task): take it without the scheduling
        # round that an awaited acquire costs.
        try:
            self._send_lock.acquire_nowait()
        except anyio.WouldBlock:
            await self._send_lock.acquire()
        try:
            if self._resumed is not None:
                await self._wait_resumed()
            chunks = self.protocol.data_to_send()
            if not chunks:
                return
            self._flushes_started += 1
            flush = self._flushes_started
            data = b"".join(chunks)
            # A write cancelled halfway would leave half a frame on the wire and corrupt the
            # stream for everybody; it finishes, or fails when the stream is closed under it.
            with anyio.CancelScope(shield=True):
                if data:
                    await self.stream.send(data)
                if chunks[-1] == SEND_EOF:
                    # A best-effort half-close: TLS cannot half-close at all (and anyio's
                    # TLSStream raises TypeError once its TLS object is gone); whoever owns
                    # the stream closes it anyway.
                    with contextlib.suppress(
                        NotImplementedError,
                        anyio.ClosedResourceError,
                        anyio.BrokenResourceError,
                        OSError,
                        TypeError,
                    ):
                        await self.stream.send_eof()
            self._flushes_written = flush
        finally:
            self._send_lock.release()

    async def receive_events(self) -> list[WebSocketEvent]:
        """Read once from the stream, feed the protocol, answer what must be answered (pings,
        close frames, a refused handshake) and return the protocol's events.

        End of stream, or a stream broken under us, is fed to the protocol as EOF; check
        :attr:`closed` afterwards.
        """
        try:
            data = await self.stream.receive(self._read_size)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            self.protocol.receive_eof()
        else:
            if self._resumed is not None:
                await self._wait_resumed()
            self.protocol.receive_data(data)
        events = self.protocol.events_received()
        if self.protocol.writes:
            await self.flush()
        return events

    async def receive_messages(self) -> list[DataMessage]:
        """Like :meth:`receive_events`, for an open connection: the complete data messages
        received, fragments joined; pongs go to :attr:`on_pong`."""
        return self.data_messages(await self.receive_events())

    def data_messages(self, events: list[WebSocketEvent]) -> list[DataMessage]:
        """The complete data messages among ``events``, fragments joined; pongs go to
        :attr:`on_pong`; handshake events are skipped."""
        messages: list[DataMessage] = []
        for frame in events:
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY:
                if frame.fin:
                    messages.append((frame.data, opcode is _BINARY))
                else:
                    self._fragments = [frame.data]
                    self._fragment_binary = opcode is _BINARY
            elif opcode is _CONT and self._fragments is not None:
                self._fragments.append(frame.data)
                if frame.fin:
                    messages.append((b"".join(self._fragments), self._fragment_binary))
                    self._fragments = None
            elif opcode is _PONG and self.on_pong is not None:
                self.on_pong(frame.data)
        return messages

    async def aclose(self) -> None:
        """Close the underlying stream at once (no closing handshake)."""
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()
