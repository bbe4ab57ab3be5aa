"""The WebSocket I/O layer (realtime_pubsub._wsio) over a real loopback TCP connection, with
websockets' sans-IO protocol objects on both ends: already open, but for the tests of frames
that come in the handshake response's read. tests/test_wsio_fuzz.py checks the framing
against websockets' own parser."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from realtime_pubsub._wsio import DataMessage, WebSocketIO

from .support import socket_pair

pytestmark = pytest.mark.anyio

BIG = b"x" * 65536


def client_ws(stream: anyio.abc.SocketStream, **kwargs: float) -> WebSocketIO:
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)
    return WebSocketIO(protocol, stream, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def tasks(ws: WebSocketIO) -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group for tasks that use ``ws``; on the way out the stream is closed first,
    which is what ends a write stuck on a peer that does not read (it is shielded)."""
    async with anyio.create_task_group() as tg:
        try:
            yield tg
        finally:
            await ws.aclose()
            tg.cancel_scope.cancel()


def shrink_buffers(ours: anyio.abc.SocketStream, peer: anyio.abc.SocketStream) -> None:
    """Small kernel buffers, so that a peer that does not read blocks our writes soon."""
    ours.extra(SocketAttribute.raw_socket).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.extra(SocketAttribute.raw_socket).setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


async def read_frames(peer: anyio.abc.SocketStream, count: int) -> list[Frame]:
    """Read ``count`` frames as the server end would."""
    protocol = ServerProtocol(state=State.OPEN, max_size=None)
    frames: list[Frame] = []
    while len(frames) < count:
        protocol.receive_data(await peer.receive())
        frames += [e for e in protocol.events_received() if isinstance(e, Frame)]
    return frames


async def test_drain_returns_once_another_task_wrote_the_bytes() -> None:
    # The writer task is idle (nobody asked it to flush); the bytes go out through a flush
    # of somebody else's, as the reader's answer to a ping used to write them.
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        async with tasks(ws) as tg:
            tg.start_soon(ws.run_writer)
            await anyio.wait_all_tasks_blocked()
            ws.send_message(b'{"type":"subscribe"}')
            drained = anyio.Event()

            async def drain() -> None:
                await ws.drain()
                drained.set()

            tg.start_soon(drain)
            await anyio.wait_all_tasks_blocked()
            assert not drained.is_set()
            await ws.flush()
            with anyio.fail_after(5):
                await drained.wait()
            [frame] = await read_frames(peer, 1)
            assert frame.data == b'{"type":"subscribe"}'


async def test_drain_raises_at_once_when_the_stream_closes_first() -> None:
    async with socket_pair() as (ours, peer):
        shrink_buffers(ours, peer)
        ws = client_ws(ours)
        async with tasks(ws) as tg:
            tg.start_soon(ws.run_writer)
            for _ in range(64):
                ws.send_message(BIG)
            ws.flush_soon()
            await anyio.wait_all_tasks_blocked()  # the writer is stuck: the peer does not read
            failed = anyio.Event()

            async def drain() -> None:
                with pytest.raises(anyio.BrokenResourceError):
                    await ws.drain()
                failed.set()

            tg.start_soon(drain)
            await anyio.wait_all_tasks_blocked()
            assert not failed.is_set()
            await ws.aclose()
            with anyio.fail_after(5):
                await failed.wait()
            assert ws.broken


async def test_drain_without_a_writer_task_writes_itself() -> None:
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        ws.send_message(b"1")
        ws.send_message(b"2", binary=True)
        with anyio.fail_after(5):
            await ws.drain()
            frames = await read_frames(peer, 2)
    assert [(f.opcode, f.data) for f in frames] == [(Opcode.TEXT, b"1"), (Opcode.BINARY, b"2")]


async def test_aclose_interrupts_a_write_in_progress_in_another_task() -> None:
    async with socket_pair() as (ours, peer):
        shrink_buffers(ours, peer)
        ws = client_ws(ours)
        ended = anyio.Event()
        async with tasks(ws) as tg:

            async def writer() -> None:
                await ws.run_writer()
                ended.set()

            tg.start_soon(writer)
            for _ in range(64):
                ws.send_message(BIG)
            ws.flush_soon()
            await anyio.wait_all_tasks_blocked()
            assert ws.buffered == 64 * len(BIG)
            await ws.aclose()
            with anyio.fail_after(5):
                await ended.wait()


async def test_a_write_over_write_timeout_breaks_the_stream() -> None:
    async with socket_pair() as (ours, peer):
        shrink_buffers(ours, peer)
        ws = client_ws(ours, write_timeout=0.2)
        for _ in range(64):
            ws.send_message(BIG)
        with anyio.fail_after(5), pytest.raises(anyio.BrokenResourceError, match="longer than"):
            await ws.flush()
        assert ws.broken
        with pytest.raises(anyio.BrokenResourceError):
            await ws.flush()


async def test_buffered_counts_what_is_queued_and_being_written() -> None:
    async with socket_pair() as (ours, peer):
        shrink_buffers(ours, peer)
        ws = client_ws(ours)
        assert ws.buffered == 0
        ws.send_message(b"abc")
        assert ws.buffered == 3
        await ws.flush()
        assert ws.buffered == 0
        async with tasks(ws) as tg:
            for _ in range(64):
                ws.send_message(BIG)
            tg.start_soon(ws.run_writer)
            ws.flush_soon()
            await anyio.wait_all_tasks_blocked()
            ws.send_message(b"more")
            assert ws.buffered == 64 * len(BIG) + 4


async def test_a_paused_connection_notices_that_the_peer_closed() -> None:
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        ws.pause()
        async with tasks(ws) as tg:
            tg.start_soon(ws.run_writer)  # paused: it writes nothing
            await peer.send(Frame(Opcode.TEXT, b"held").serialize(mask=False))
            assert await ws.receive_messages() == []  # read, but held back
            await peer.aclose()
            with anyio.fail_after(5):
                while not ws.closed:
                    await ws.receive_events()


async def test_resume_processes_what_a_paused_connection_held() -> None:
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        ws.pause()
        received: list[DataMessage] = []
        done = anyio.Event()
        async with tasks(ws) as tg:

            async def read() -> None:
                while not received:
                    received.extend(await ws.receive_messages())
                done.set()

            tg.start_soon(read)
            await peer.send(Frame(Opcode.BINARY, b"held").serialize(mask=False))
            await anyio.wait_all_tasks_blocked()
            assert not received
            ws.resume()
            with anyio.fail_after(5):
                await done.wait()
    assert received == [DataMessage(b"held", True)]
    assert (received[0].data, received[0].binary) == (b"held", True)


async def test_client_frames_of_every_length_class_are_read_back_by_websockets() -> None:
    # Our client frames (masked, serialized without Frame.serialize) as websockets' server
    # side reads them: both opcodes, the three length encodings, and more frames than one
    # fill of the mask pool, so it is refilled on the way.
    sizes = [0, 1, 125, 126, 65535, 65536, 70000] + [10] * 300
    payloads = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        for i, payload in enumerate(payloads):
            ws.send_message(payload, binary=i % 2 == 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(ws.flush)
            with anyio.fail_after(10):
                frames = await read_frames(peer, len(payloads))
    assert [f.data for f in frames] == payloads
    assert [f.opcode for f in frames] == [
        Opcode.BINARY if i % 2 else Opcode.TEXT for i in range(len(payloads))
    ]
    assert all(f.fin and not f.rsv1 for f in frames)


async def test_client_frame_masks_vary_from_frame_to_frame() -> None:
    async with socket_pair() as (ours, _):
        ws = client_ws(ours)
        for _ in range(600):  # over two fills of the pool
            ws.send_message(b"x")
        # A short masked frame: two header bytes, then the mask.
        masks = [frame[2:6] for frame in ws.protocol.data_to_send()]
    assert len(masks) == 600
    assert len(set(masks)) > 550  # random 32-bit masks: a few repeats at most


async def test_fragments_are_joined_into_one_message() -> None:
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        await peer.send(
            Frame(Opcode.TEXT, b"ab", fin=False).serialize(mask=False)
            + Frame(Opcode.CONT, b"cd", fin=False).serialize(mask=False)
            + Frame(Opcode.CONT, b"ef").serialize(mask=False)
        )
        with anyio.fail_after(5):
            messages: list[DataMessage] = []
            while not messages:
                messages = await ws.receive_messages()
    assert messages == [(b"abcdef", False)]


async def test_a_cancellation_due_before_a_flush_leaves_the_data_queued() -> None:
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        ws.send_message(b"kept")
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ws.flush()
        assert scope.cancelled_caught
        assert not ws.broken
        await ws.flush()
        [frame] = await read_frames(peer, 1)
    assert frame.data == b"kept"


async def test_a_write_cancelled_on_a_full_socket_ends_at_once_and_closes_the_stream() -> None:
    # Half a frame may be on the wire: nothing can follow it, so the stream goes; and the
    # caller's cancellation takes effect now, not when the peer reads again.
    async with socket_pair() as (ours, peer):
        shrink_buffers(ours, peer)
        ws = client_ws(ours)
        for _ in range(64):
            ws.send_message(BIG)
        with anyio.fail_after(5):
            with anyio.move_on_after(0.2) as scope:
                await ws.flush()
        assert scope.cancelled_caught
        assert ws.broken
        with pytest.raises(anyio.BrokenResourceError):
            await ws.flush()


# ------------------------------------------------------------------ framing
#
# Once open, WebSocketIO cuts whole data frames itself and hands every other frame to the
# protocol. Whatever the frames and however the bytes are split into reads, what comes out
# must be what websockets' own parser makes of the same bytes.


def server_frames() -> list[Frame]:
    """Frames as a server sends them: every length encoding, both opcodes, empty ones,
    control frames between and inside a fragmented message."""
    return [
        Frame(Opcode.TEXT, b'{"a": 1}'),
        Frame(Opcode.BINARY, b""),
        Frame(Opcode.TEXT, b"t" * 125),
        Frame(Opcode.BINARY, b"b" * 126),
        Frame(Opcode.PING, b"p1"),
        Frame(Opcode.TEXT, b"u" * 65535),
        Frame(Opcode.TEXT, b"frag", fin=False),
        Frame(Opcode.PING, b"p2"),
        Frame(Opcode.CONT, b"ment", fin=False),
        Frame(Opcode.PONG, b"unsolicited"),
        Frame(Opcode.CONT, b"ed"),
        Frame(Opcode.BINARY, bytes(range(256)) * 300),  # a 64-bit length
        Frame(Opcode.TEXT, b"last"),
    ]


def expected_messages(frames: list[Frame]) -> list[DataMessage]:
    """What websockets' own client parser makes of ``frames``."""
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)
    protocol.receive_data(b"".join(f.serialize(mask=False) for f in frames))
    ws = WebSocketIO(protocol, None)  # type: ignore[arg-type]  # only parses, never reads
    return ws._data_messages(protocol.events_received())


async def receive_all(ws: WebSocketIO, count: int) -> list[DataMessage]:
    messages: list[DataMessage] = []
    with anyio.fail_after(10):
        while len(messages) < count:
            messages += await ws.receive_messages()
    return messages


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 130, 8192, 1 << 20])
async def test_frames_cut_here_are_what_websockets_parses_whatever_the_reads(
    read_size: int,
) -> None:
    frames = server_frames()
    expected = expected_messages(frames)
    assert len(expected) == 8  # the fragments joined, the control frames not messages
    pongs: list[bytes] = []
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours, read_size=read_size)
        ws.on_pong = lambda data: pongs.append(bytes(data))
        await peer.send(b"".join(f.serialize(mask=False) for f in frames))
        assert await receive_all(ws, len(expected)) == expected
        answers = await read_frames(peer, 2)  # both pings answered, in order
    assert [(f.opcode, f.data) for f in answers] == [(Opcode.PONG, b"p1"), (Opcode.PONG, b"p2")]
    assert pongs == [b"unsolicited"]


@pytest.mark.parametrize("read_size", [1, 5, 8192])
async def test_a_server_cuts_masked_client_frames(read_size: int) -> None:
    payloads = [b"x", b"y" * 200, b"z" * 70000, b""]
    async with socket_pair() as (ours, peer):
        server = ServerProtocol(state=State.OPEN, max_size=None)
        ws = WebSocketIO(server, ours, read_size=read_size)
        protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN)
        for payload in payloads:
            protocol.send_binary(payload)
        await peer.send(b"".join(protocol.data_to_send()))
        assert await receive_all(ws, len(payloads)) == [(p, True) for p in payloads]


@pytest.mark.parametrize("read_size", [8192, 1])
async def test_frames_that_come_in_the_read_of_the_handshake_response_are_delivered(
    read_size: int,
) -> None:
    # The 101 response and two messages in one write, then nothing: the messages must come
    # out of what the handshake's read held back, without another read. With one byte per
    # read, the end of the HTTP head ("\r\n\r\n") spans reads.
    async with socket_pair() as (ours, peer):
        protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"))
        ws = WebSocketIO(protocol, ours, read_size=read_size)
        protocol.send_request(protocol.connect())
        await ws.flush()
        server = ServerProtocol()
        server.receive_data(await peer.receive())
        [request] = server.events_received()
        server.send_response(server.accept(request))  # type: ignore[arg-type]
        server.send_text(b"welcome")
        server.send_binary(b"first")
        await peer.send(b"".join(server.data_to_send()))
        with anyio.fail_after(5):
            while protocol.state is not State.OPEN:
                await ws.receive_events()
        assert await receive_all(ws, 2) == [(b"welcome", False), (b"first", True)]


def close_code(ws: WebSocketIO) -> int | None:
    close = ws.protocol.close_sent
    return None if close is None else close.code


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (Frame(Opcode.TEXT, b"masked").serialize(mask=True), 1002),
        (bytes([0xA1, 4]) + b"rsv2", 1002),  # FIN, RSV2, text
        (Frame(Opcode.CONT, b"no message to continue").serialize(mask=False), 1002),
        (bytes([0x83, 1]) + b"x", 1002),  # FIN, a reserved opcode
        (Frame(Opcode.TEXT, b"x" * 2000).serialize(mask=False)[:4], 1009),  # its header only
    ],
)
async def test_frames_websockets_refuses_fail_the_connection_as_it_would(
    frame: bytes, code: int
) -> None:
    # A good frame first, then the bad one and a good one in the same write: the first is
    # delivered, the connection fails with websockets' code, the last is dropped.
    async with socket_pair() as (ours, peer):
        protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=1000)
        ws = WebSocketIO(protocol, ours)
        good = Frame(Opcode.TEXT, b"good").serialize(mask=False)
        await peer.send(good + frame + good)
        assert await receive_all(ws, 1) == [(b"good", False)]
        with anyio.fail_after(5):
            while protocol.state is State.OPEN:
                assert await ws.receive_messages() == []
    assert close_code(ws) == code


async def test_nothing_after_a_close_frame_is_delivered() -> None:
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        frames = [Frame(Opcode.TEXT, b"before"), Frame(Opcode.CLOSE, b"\x03\xe8")]
        await peer.send(b"".join(f.serialize(mask=False) for f in [*frames, frames[0]]))
        assert await receive_all(ws, 1) == [(b"before", False)]
        assert ws.protocol.close_rcvd is not None
        [echo] = await read_frames(peer, 1)
        assert echo.opcode is Opcode.CLOSE
        await peer.aclose()
        with anyio.fail_after(5):
            while not ws.closed:
                assert await ws.receive_messages() == []


async def test_a_frame_cut_short_by_the_end_of_the_stream_is_an_abnormal_closure() -> None:
    # The protocol is given the half frame before the end of the stream, so it fails the
    # connection as it would have if it had parsed the stream itself.
    async with socket_pair() as (ours, peer):
        ws = client_ws(ours)
        whole = Frame(Opcode.TEXT, b"whole").serialize(mask=False)
        await peer.send(whole + Frame(Opcode.TEXT, b"cut short").serialize(mask=False)[:5])
        assert await receive_all(ws, 1) == [(b"whole", False)]
        await peer.aclose()
        with anyio.fail_after(5):
            while not ws.closed:
                assert await ws.receive_messages() == []
    assert str(ws.protocol.parser_exc) == "stream ends after 3 bytes, expected 9 bytes"
