"""A websockets sans-IO protocol object driven over an anyio byte stream: the one piece of
I/O glue under both the client transport and the local gateway.

The protocol object is only ever touched synchronously between awaits, so any task may
queue frames on it (:meth:`WebSocketIO.send_message`); whoever flushes then writes
everything queued, in order, under one lock, joined into a single write, which keeps
small-message throughput close to the socket's. Normally that is the writer task
(:meth:`WebSocketIO.run_writer`), woken by :meth:`WebSocketIO.flush_soon`; a sender may
write itself when the writer is idle. While a writer task runs, the reader never writes:
what the protocol answers by itself (pongs, the echo of a close frame) is handed to the
writer, so a peer that stops reading can never stall the reading side.

Once the connection is open, :class:`WebSocketIO` cuts the received bytes into frames
itself, the way it serializes the client's data frames itself: a whole, unfragmented,
uncompressed data frame within the size limit (nearly every frame a client receives) becomes
a message at once, for a few percent of what websockets' generator-based parser costs.
From the first frame that is not one, the rest of the read goes to the protocol as it came.
The protocol thus gets every byte of each frame it parses, from the frame's first byte on,
and each byte as soon as it is read, so it handles its frames exactly as if it had parsed
the whole stream itself (it refuses a bad header as soon as it has it). For that, the
opening handshake hands the protocol the HTTP head and holds back what comes after it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import struct
from collections.abc import Callable
from typing import Final, NamedTuple

import anyio
import anyio.abc
import anyio.lowlevel
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.protocol import SEND_EOF, Protocol, Side, State
from websockets.protocol import Event as WebSocketEvent

from ._tasks import Mutex

try:
    from websockets.speedups import apply_mask
except ImportError:  # a websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["CLIENT_READ_SIZE", "SERVER_READ_SIZE", "DataMessage", "WebSocketIO", "server_frame"]

#: Bytes asked of the stream per read. The client reads less than the gateway: every
#: message of one read is alive until its consumer runs, and handing consumers a few dozen
#: messages at a time lets them die young, before the garbage collector has to promote (and
#: later traverse) them; with 64 KiB reads the collector costs more than everything else.
SERVER_READ_SIZE: Final = 65536
CLIENT_READ_SIZE: Final = 8192
#: What a paused connection may hold back unprocessed before it stops reading.
_PAUSED_HOLD_LIMIT: Final = 1 << 20
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_STREAM_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
#: A client frame's header: FIN and opcode, the mask bit and length, the extended length
#: (16 or 64 bits, network order) when the short one does not fit, the mask.
_HEAD_SHORT = struct.Struct("!BB4s").pack
_HEAD_16 = struct.Struct("!BBH4s").pack
_HEAD_64 = struct.Struct("!BBQ4s").pack
#: Random bytes fetched at a time for client frames' masks (4 bytes each).
_MASK_POOL_BYTES: Final = 1024
#: The first byte of the frames this object reads itself: FIN, no reserved bit (so not
#: compressed), and the opcode, text or binary.
_WHOLE_BINARY: Final = 0x80 | Opcode.BINARY
_WHOLE_DATA: Final = frozenset({0x80 | Opcode.TEXT, _WHOLE_BINARY})
_HEAD_END: Final = b"\r\n\r\n"


class DataMessage(NamedTuple):
    """A complete data message, as a transport hands it to the client."""

    #: The message's content, as bytes (text frames too, since the JSON parser takes
    #: UTF-8 bytes as they are) or as str from transports that decode text frames.
    data: bytes | bytearray | memoryview | str
    #: Whether it came as a binary frame, as the gateway delivers compressed messages.
    binary: bool


# The reader builds one per message received: tuple.__new__ spares the NamedTuple's own
# __new__, a Python-level call.
_data_message: Callable[[tuple[bytes | bytearray | memoryview | str, bool]], DataMessage] = (
    functools.partial(tuple.__new__, DataMessage)
)


def _frame_limit(protocol: Protocol) -> float:
    """The largest data frame ``protocol`` takes when no fragmented message is in progress
    (websockets 14 names the limit ``max_size``; later versions ``max_message_size``, with
    an optional ``max_fragment_size``). Infinite when there is none."""
    names = ("max_size", "max_message_size", "max_fragment_size")
    limits = [limit for name in names if (limit := getattr(protocol, name, None)) is not None]
    return min(limits, default=math.inf)


def server_frame(data: bytes, *, binary: bool = False) -> bytes:
    """The bytes of one uncompressed, unmasked (server-side) data frame."""
    return Frame(_BINARY if binary else _TEXT, data).serialize(mask=False)


class WebSocketIO:
    """Feeds bytes from ``stream`` into ``protocol``, reassembles data messages, and writes
    the protocol's output back.

    ``write_timeout`` bounds every write: one that takes longer (a peer that stopped
    reading) closes the stream, as a write that fails does.
    """

    __slots__ = (
        "_fragment_binary",
        "_fragments",
        "_frame_limit",
        "_framing",
        "_head_tail",
        "_held",
        "_input",
        "_input_given",
        "_input_masked",
        "_input_needed",
        "_input_size",
        "_masks",
        "_progress",
        "_queued_total",
        "_read_size",
        "_resumed",
        "_send_lock",
        "_unpause",
        "_wake",
        "_write_timeout",
        "_writer_running",
        "_written_total",
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
        write_timeout: float | None = None,
    ) -> None:
        # websockets logs every frame, and the handshake's URL with its access token, at
        # DEBUG: never let it, whatever the application's logging configuration.
        protocol.debug = False
        self.protocol = protocol
        self.stream = stream
        self._read_size = read_size
        self._write_timeout = write_timeout
        self.on_pong: Callable[[bytes | bytearray | memoryview], None] | None = None
        self._fragments: list[bytes | bytearray | memoryview] | None = None
        self._fragment_binary = False
        # Framing (see _cut). A fresh protocol that is already open sits at a frame
        # boundary; one in its opening handshake gets there when _feed splits off its head.
        self._framing = protocol.state is State.OPEN
        self._head_tail: bytes | None = b"" if protocol.state is State.CONNECTING else None
        self._input_masked = 0x80 if protocol.side is Side.SERVER else 0
        self._frame_limit = _frame_limit(protocol)
        # Bytes received and not yet cut into frames; how many the next frame needs; how
        # many of them the protocol has already (the beginning of a frame that is its).
        self._input: list[bytes] = []
        self._input_size = 0
        self._input_needed = 0
        self._input_given = 0
        # Pausing (the gateway's half-open fault).
        self._resumed: anyio.Event | None = None
        self._unpause: anyio.CancelScope | None = None
        self._held: list[bytes] = []
        self._masks = bytearray()
        # Writing. Running totals of the bytes of data messages queued and written.
        self._send_lock = Mutex()
        self._wake = anyio.Event()
        # Made when somebody waits for a write to finish, set (and dropped) when one does.
        self._progress: anyio.Event | None = None
        self._queued_total = 0
        self._written_total = 0
        self._writer_running = False
        #: True once the stream can take no more writes: a write failed or timed out, or
        #: the stream was closed.
        self.broken = False

    # ------------------------------------------------------------------ pausing

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._resumed is not None

    def pause(self) -> None:
        """Stop processing received bytes and stop writing, so nothing is answered (not
        even pings) and nothing is sent: a half-open connection. What arrives or is queued
        meanwhile is processed after :meth:`resume`. The stream is still read, so a peer
        that closes its end is noticed."""
        if self._resumed is None:
            self._resumed = anyio.Event()

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            resumed.set()
        if self._unpause is not None:
            self._unpause.cancel()  # a read waiting while paused: go and process what it held

    # ------------------------------------------------------------------ writing

    def send_message(self, data: bytes, *, binary: bool = False, deflate: bool = False) -> None:
        """Queue one data message (a flush writes it).

        permessage-deflate, when negotiated, applies per message (RFC 7692 lets either side
        send any message uncompressed): ``deflate=False`` sends it as it is, which spares
        zlib a round trip for every small frame; ``deflate=True`` compresses it. Raises
        websockets' ``InvalidState`` when the connection is not open.
        """
        protocol = self.protocol
        if deflate and protocol.extensions:
            if binary:
                protocol.send_binary(data)
            else:
                protocol.send_text(data)
        else:
            if protocol.state is not State.OPEN:
                raise InvalidState(f"connection is {protocol.state.name.lower()}")
            if protocol.side is Side.CLIENT:
                protocol.writes.append(self._client_frame(data, _BINARY if binary else _TEXT))
            else:
                protocol.writes.append(server_frame(data, binary=binary))
        self._queued_total += len(data)

    def _client_frame(self, data: bytes, opcode: int) -> bytes:
        """One whole, uncompressed, masked data frame. What websockets' ``Frame.serialize``
        makes, for a third of its cost, on the path of every message a client sends: the
        masks come from a pool of random bytes, refilled from the operating system's CSPRNG
        256 masks at a time rather than a system call per frame."""
        masks = self._masks
        if not masks:
            masks.extend(os.urandom(_MASK_POOL_BYTES))
        mask = bytes(masks[-4:])
        del masks[-4:]
        length = len(data)
        if length < 126:
            head = _HEAD_SHORT(0x80 | opcode, 0x80 | length, mask)
        elif length < 65536:
            head = _HEAD_16(0x80 | opcode, 0x80 | 126, length, mask)
        else:
            head = _HEAD_64(0x80 | opcode, 0x80 | 127, length, mask)
        return head + apply_mask(data, mask)

    def send_server_frame(self, frame: bytes) -> None:
        """Queue a frame made by :func:`server_frame`. A server's frames are not masked, so
        one message fanned out to many connections is serialized once, not once each."""
        protocol = self.protocol
        if protocol.state is not State.OPEN:
            raise InvalidState(f"connection is {protocol.state.name.lower()}")
        protocol.writes.append(frame)
        self._queued_total += len(frame)

    @property
    def buffered(self) -> int:
        """Bytes of data messages queued and not yet written to the stream, a write in
        progress included."""
        return self._queued_total - self._written_total

    @property
    def writer_idle(self) -> bool:
        """Whether nothing is being written or waiting to be: a sender may then write its
        frame itself, sparing the hand-over to the writer task (latency)."""
        return not self._send_lock.locked and not self._wake.is_set()

    def flush_soon(self) -> None:
        """Ask :meth:`run_writer` to write what is queued. Never blocks."""
        self._wake.set()

    async def run_writer(self) -> None:
        """Write whenever :meth:`flush_soon` asks, until cancelled or the stream can take no
        more writes. Whoever waits in :meth:`drain` is woken either way."""
        self._writer_running = True
        try:
            while not self.broken:
                await self._wake.wait()
                self._wake = anyio.Event()
                await self.flush()
        except _STREAM_GONE:
            pass
        finally:
            self._writer_running = False
            self._progressed()  # drain() waiters: nobody else will write now

    async def drain(self) -> None:
        """Wait until everything queued before the call has been written, by whoever
        flushed it (when no writer task runs, by this call); :class:`anyio.BrokenResourceError`
        if the stream can take no more writes first."""
        target = self._queued_total
        while self._written_total < target:
            if self.broken:
                raise anyio.BrokenResourceError("the stream closed before the data was written")
            if self._writer_running:
                if self._progress is None:
                    self._progress = anyio.Event()
                await self._progress.wait()
            else:
                await self.flush()

    async def flush(self) -> None:
        """Write everything the protocol has queued.

        A cancellation that is due when the call starts raises before anything is taken
        from the protocol (the data stays queued). One that comes in the middle of the
        write, which can only happen while the socket is full (the peer does not read),
        leaves an unknown part of the data on the wire: the stream is closed, since no
        frame can follow a half one, and the cancellation goes on.

        Raises :class:`anyio.BrokenResourceError` when the stream is gone, the write fails
        or it takes longer than ``write_timeout`` (the stream is then closed).
        """
        # The lock is free nearly always (one writer task): take it without the scheduling
        # round that an awaited acquire costs.
        if not self._send_lock.acquire_nowait():
            await self._send_lock.acquire()
        try:
            while self._resumed is not None:
                await self._resumed.wait()
            if self.broken:
                raise anyio.BrokenResourceError("the stream can take no more writes")
            # Nothing yields between this check and the write's own, so the write cannot be
            # cancelled before its first byte: from here on, the only cancellation point is
            # a full socket. (A cancel scope shielding the write would cost more than the
            # rest of a request/reply round trip's bookkeeping, and make a cancellation of
            # the caller wait for a peer that does not read.)
            await anyio.lowlevel.checkpoint_if_cancelled()
            chunks = self.protocol.data_to_send()
            if not chunks:
                return
            taken = self._queued_total
            try:
                if self._write_timeout is None:
                    await self._write(chunks)
                else:
                    with anyio.fail_after(self._write_timeout):
                        await self._write(chunks)
            except BaseException as exc:
                await self.aclose()
                if isinstance(exc, TimeoutError):
                    raise anyio.BrokenResourceError(
                        f"a write took longer than {self._write_timeout} s"
                    ) from None
                if isinstance(exc, _STREAM_GONE):
                    raise anyio.BrokenResourceError("the write failed") from exc
                raise
            self._written_total = taken
            self._progressed()
        finally:
            self._send_lock.release()

    async def _write(self, chunks: list[bytes]) -> None:
        data = b"".join(chunks)
        if data:
            await self.stream.send(data)
        if chunks[-1] == SEND_EOF:
            await self._send_eof()

    async def _send_eof(self) -> None:
        # A best-effort half-close: TLS cannot half-close at all (and anyio's TLSStream
        # raises TypeError once its TLS object is gone); whoever owns the stream closes it
        # anyway.
        with contextlib.suppress(NotImplementedError, TypeError, *_STREAM_GONE):
            await self.stream.send_eof()

    def _progressed(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.set()

    def _stop_writing(self) -> None:
        if not self.broken:
            self.broken = True
            self._progressed()
            self._wake.set()

    # ------------------------------------------------------------------ reading

    @property
    def closed(self) -> bool:
        """True once the WebSocket connection has fully closed."""
        return self.protocol.state is State.CLOSED

    async def receive_events(self, received: bytes = b"") -> list[WebSocketEvent]:
        """Read once from the stream, feed the protocol and return its events (the
        handshake's request or response, frames). What the protocol answers by itself
        (pongs, the echo of a close frame) goes to the writer task, or is written here when
        none runs. ``received``: bytes the stream's owner read before handing the stream
        over (the start of a request it sniffed), taken instead of a read.

        After the opening handshake, a call ends :meth:`receive_messages`' own framing for
        good (the closing handshake reads this way): the protocol then parses everything,
        starting with the bytes held back for that framing, which this call hands it
        instead of reading. End of stream, or a stream broken under us, is fed to the
        protocol as EOF; check :attr:`closed` afterwards.
        """
        handed = self._end_framing()
        if received:
            self._feed(received)
        elif not handed:
            data = await self._receive()
            if data is None:
                self.protocol.receive_eof()
            elif data:
                self._feed(data)
        return await self._events()

    async def receive_messages(self) -> list[DataMessage]:
        """Like :meth:`receive_events`, for an open connection: the complete data messages
        received, fragments joined; pongs go to :attr:`on_pong`."""
        if not self._framing or self.protocol.state is not State.OPEN:
            return self._data_messages(await self.receive_events())
        if self._input_size < self._input_needed or not self._input_size:
            data = await self._receive()
            if data is None:  # the protocol judges the end, and what is held before it
                self._end_framing()
                self.protocol.receive_eof()
                return self._data_messages(await self._events())
            if not data:
                return []  # paused: the read was held back
            self._input.append(data)
            self._input_size += len(data)
            if self._input_size < self._input_needed:
                return []  # a frame still incomplete: nothing to cut yet
        messages = self._cut(*self._take_input())
        await self._answer()
        return messages

    async def _receive(self) -> bytes | None:
        """One read of the stream (held back while paused); None at its end."""
        try:
            if self._resumed is None and not self._held:
                return await self.stream.receive(self._read_size)
            return await self._receive_paused()
        except (anyio.EndOfStream, *_STREAM_GONE):
            return None

    async def _receive_paused(self) -> bytes:
        """The read of a paused connection (or one with held bytes): keep reading, so that a
        peer closing its end is noticed, but hold the bytes back until resumed."""
        if self._resumed is None:
            held, self._held = b"".join(self._held), []
            return held
        if sum(map(len, self._held)) >= _PAUSED_HOLD_LIMIT:
            await self._resumed.wait()
            return b""
        with anyio.CancelScope() as self._unpause:
            self._held.append(await self.stream.receive(self._read_size))
        self._unpause = None
        return b""

    async def _events(self) -> list[WebSocketEvent]:
        """The protocol's events, once what it answered by itself is on its way."""
        events = self.protocol.events_received()
        await self._answer()
        return events

    async def _answer(self) -> None:
        """Have what the protocol answered by itself written: by the writer task when one
        runs, else here."""
        if self.protocol.writes:
            if self._writer_running:
                self.flush_soon()
            else:
                await self.flush()

    def _feed(self, data: bytes) -> None:
        """Give ``data`` to the protocol. In the opening handshake, a read that completes
        the HTTP head of the request or the response gives it that head only, and the bytes
        after it are held back: the protocol is then left at the first frame's boundary,
        and :meth:`receive_messages` can cut the frames itself."""
        protocol = self.protocol
        tail = self._head_tail
        if tail is not None and protocol.state is State.CONNECTING:
            seen = tail + data
            end = seen.find(_HEAD_END)
            if end < 0:
                self._head_tail = seen[-len(_HEAD_END) + 1 :]
            else:
                self._head_tail = None
                cut = end + len(_HEAD_END) - len(tail)
                protocol.receive_data(data[:cut])
                data = data[cut:]
                # A head with no body to read (a 101 response, a request) completes its
                # message: the protocol has its event. Otherwise it reads on: give it all.
                if protocol.events:
                    self._framing = True
                    if data:
                        self._input.append(data)
                        self._input_size = len(data)
                    return
        if data:
            protocol.receive_data(data)

    def _take_input(self) -> tuple[bytes, int]:
        """The bytes held, and how many of them the protocol has already."""
        input_, given = self._input, self._input_given
        data = input_[0] if len(input_) == 1 else b"".join(input_)
        self._input = []
        self._input_size = self._input_needed = self._input_given = 0
        return data, given

    def _end_framing(self) -> bool:
        """From here on the protocol parses every frame. Returns whether it was given
        bytes held back (to be processed before anything new is read)."""
        self._framing = False
        if not self._input:
            return False
        data, given = self._take_input()
        self.protocol.receive_data(data[given:])
        return True

    def _cut(self, data: bytes, given: int) -> list[DataMessage]:
        """The data messages in ``data``, of which the protocol has the first ``given``
        bytes already, in order.

        Whole, unfragmented, uncompressed data frames within the size limit are read here,
        up to the first frame that is not one. From that frame on, all of ``data`` goes to
        the protocol in one piece, an unfinished last frame included: a compressed stream
        costs one call to it per read, and websockets refuses a bad header (an unknown
        opcode, the wrong mask bit, a length over what is left of the limit) as soon as it
        has it. The unfinished last frame is held back, so the next read knows where the
        frame after it starts.
        """
        protocol = self.protocol
        if not self._framing or protocol.state is not State.OPEN:
            self._framing = False
            if len(data) > given:
                protocol.receive_data(data[given:])
            return self._data_messages(protocol.events_received())
        messages: list[DataMessage] = []
        append, message = messages.append, _data_message
        masked, limit, whole_data = self._input_masked, self._frame_limit, _WHOLE_DATA
        fragments = self._fragments
        size = len(data)
        at = 0
        protocols = 0 if given else -1  # where the protocol's frames start, once one was met
        while True:
            # The header: two bytes, an extended length of 2 or 8, a mask of 4 when masked.
            start = at + 2
            if start > size:
                break
            head1 = data[at]
            head2 = data[at + 1]
            if protocols < 0 and (
                head1 not in whole_data or head2 & 0x80 != masked or fragments is not None
            ):
                protocols = at
            length = head2 & 0x7F
            if length == 126:
                start += 2
                if start > size:
                    break
                length = (data[at + 2] << 8) | data[at + 3]
            elif length == 127:
                start += 8
                if start > size:
                    break
                length = int.from_bytes(data[at + 2 : start], "big")
            if head2 & 0x80:
                start += 4
            stop = start + length
            if protocols < 0 and length > limit:
                protocols = at
            if stop > size:
                start = stop
                break
            if protocols < 0:
                payload = data[start:stop]
                if masked:
                    payload = apply_mask(payload, data[start - 4 : start])
                append(message((payload, head1 == _WHOLE_BINARY)))
            at = stop
        if protocols >= 0:
            protocol.receive_data(data[max(protocols, given) :])
            messages += self._data_messages(protocol.events_received())
            if protocol.state is not State.OPEN:  # a close frame, a protocol error
                self._framing = False
                return messages
        if at < size:
            self._input.append(data[at:])
            self._input_size = size - at
            self._input_needed = start - at
            if protocols >= 0:
                self._input_given = size - at
        return messages

    def _data_messages(self, events: list[WebSocketEvent]) -> list[DataMessage]:
        """The complete data messages among the protocol's ``events``, fragments joined;
        pongs go to :attr:`on_pong`; handshake events are skipped."""
        messages: list[DataMessage] = []
        append, message = messages.append, _data_message
        for frame in events:
            if type(frame) is not Frame:
                continue
            opcode = frame.opcode
            if opcode is _TEXT:
                if frame.fin:
                    append(message((frame.data, False)))
                    continue
            elif opcode is _BINARY:
                if frame.fin:
                    append(message((frame.data, True)))
                    continue
            elif opcode is _CONT:
                if self._fragments is not None:
                    self._fragments.append(frame.data)
                    if frame.fin:
                        append(message((b"".join(self._fragments), self._fragment_binary)))
                        self._fragments = None
                continue
            else:
                if opcode is _PONG and self.on_pong is not None:
                    self.on_pong(frame.data)
                continue
            # The first frame of a fragmented message.
            self._fragments = [frame.data]
            self._fragment_binary = opcode is _BINARY
        return messages

    async def aclose(self) -> None:
        """Close the underlying stream at once (no closing handshake). Any task may call it:
        a read or a write in progress elsewhere ends, and :meth:`drain` waiters wake."""
        self._stop_writing()
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(*_STREAM_GONE):
                await self.stream.aclose()
