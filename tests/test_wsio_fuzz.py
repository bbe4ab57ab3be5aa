"""Differential fuzzing of WebSocketIO's own framing (realtime_pubsub._wsio), over real loopback
sockets.

Once a connection is open, WebSocketIO cuts whole data frames itself and hands every other
frame to websockets' protocol object. Whatever the bytes and however they are split into reads,
the outcome must be what websockets' own protocol object makes of the same bytes parsed by
itself (the oracle): the same data messages, in the same order; the same frames written back
(pongs, the echo of a close frame, a failure's close frame) and the same end of stream; the
same ``on_pong`` calls; the same state, close frames and parser exception; the same behaviour
at the end of the stream. The comparison is made after every write of the peer (once
WebSocketIO has read and processed all of it), not only at the end, so a reaction that comes
late (a protocol error answered only once more bytes come) is caught too.

Each example writes its stream in chunks over a real TCP connection; a wrapper of our end of
it cuts the reads where the example says (and never later than ``read_size``), so the splits
are deterministic whatever TCP does. Set ``WSIO_FUZZ_EXAMPLES`` to run more examples.

Two bugs the fuzzer found are kept as explicit examples: errors websockets raises on a
frame's header alone (:data:`HEADER_ERRORS`), which must come as soon as the header is in,
not once the payload is; and the gateway's handshake (the last test), where a frame's
payload must never be mistaken for the end of the HTTP head.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import anyio
import anyio.abc
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF, Protocol, State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from websockets.utils import apply_mask

from realtime_pubsub._protocol import encode_publish
from realtime_pubsub._wsio import WebSocketIO
from realtime_pubsub.gateway import serve
from realtime_pubsub.gateway._auth import Identity
from realtime_pubsub.gateway._broker import Broker
from realtime_pubsub.gateway._broker import Close as BrokerClose
from realtime_pubsub.testing import ALL_PERMISSIONS

from .support import socket_pair

BACKENDS = ["asyncio", "trio"]
EXAMPLES = int(os.environ.get("WSIO_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
URI = parse_uri("ws://127.0.0.1/")
#: How long one example may take before it counts as a hang.
HANG = 20
#: A stream longer than this is never read in pieces smaller than it.
SMALL_READS_UP_TO = 8192
#: The payload bytes of big frames (64 KiB and more) one example may hold.
BIG_BUDGET = 140_000
MASK = b"\x37\xfa\x21\x3d"

MaxSize: TypeAlias = "int | tuple[int | None, int | None] | None"


# ------------------------------------------------------------------ frames, as bytes


@dataclass(frozen=True)
class RawFrame:
    """A frame as bytes on the wire, any of its bits set as the example says."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0  # RSV1..3, as the three bits 4..6 of the first byte
    flip_mask: bool = False  # masked when the receiver expects unmasked frames, or the reverse
    wide: int = 0  # 1: a 16-bit length however short; 2: a 64-bit one
    claim: int | None = None  # the length the header gives, when not the payload's

    def serialize(self, *, to_server: bool) -> bytes:
        head1 = (0x80 if self.fin else 0) | (self.rsv << 4) | self.opcode
        masked = to_server != self.flip_mask
        mask_bit = 0x80 if masked else 0
        length = len(self.payload) if self.claim is None else self.claim
        if length < 126 and self.wide == 0:
            head = bytes([head1, mask_bit | length])
        elif length < 65536 and self.wide <= 1:
            head = struct.pack("!BBH", head1, mask_bit | 126, length)
        else:
            head = struct.pack("!BBQ", head1, mask_bit | 127, length)
        if masked:
            return head + MASK + apply_mask(self.payload, MASK)
        return head + self.payload

    def header_size(self, *, to_server: bool) -> int:
        return len(self.serialize(to_server=to_server)) - len(self.payload)


@dataclass(frozen=True)
class Compressed:
    """A data message the handshake's server sends through its own protocol object, which
    compresses it when permessage-deflate was negotiated: ``parts`` are its fragments, and
    ``between[i]`` the raw frames sent after part ``i`` (control frames, mostly)."""

    opcode: int
    parts: tuple[bytes, ...]
    between: tuple[tuple[RawFrame, ...], ...]


Item: TypeAlias = "RawFrame | Compressed"


def parse_frames(data: bytes) -> list[tuple[bool, int, int, bytes]]:
    """(fin, rsv, opcode, unmasked payload) of each frame of ``data``, written by the
    protocol objects, so well formed: what two ends wrote is compared this way, whatever
    the masks each chose."""
    frames = []
    at = 0
    while at < len(data):
        head1, head2 = data[at], data[at + 1]
        length = head2 & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, at)
            at += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, at)
            at += 8
        mask = data[at : at + 4] if head2 & 0x80 else b""
        at += len(mask)
        payload = data[at : at + length]
        if mask:
            payload = apply_mask(payload, mask)
        at += length
        assert len(payload) == length, "a frame written in part"
        frames.append((bool(head1 & 0x80), (head1 >> 4) & 7, head1 & 0x0F, payload))
    return frames


# ------------------------------------------------------------------ strategies

SMALL_SIZES = [0, 1, 2, 3, 7, 124, 125, 126, 127, 128, 200, 1000, 1001]
BIG_SIZES = [65535, 65536, 65537, 70000]
HUGE_LENGTHS = [2**20 + 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
RESERVED_OPCODES = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]
MAX_SIZES: list[MaxSize] = [
    None,
    None,
    2**20,
    2**20,
    0,
    1,
    125,
    126,
    1000,
    65535,
    65536,
    (2**20, 125),
    (None, 1000),
    (1000, None),
]


class Mood:
    """An example's shared draws: whether it is hostile (frames with errors, limits that
    frames exceed) or well behaved (every frame valid, so that what follows the first
    frames is exercised too), and what is left of its budget of big frames."""

    def __init__(self, hostile: bool) -> None:
        self.hostile = hostile
        self.left = BIG_BUDGET


@st.composite
def payloads(draw: st.DrawFn, mood: Mood, sizes: Sequence[int] | None = None) -> bytes:
    """A payload of one of the interesting lengths, of a short pattern repeated."""
    size = draw(st.sampled_from(sizes if sizes is not None else SMALL_SIZES + BIG_SIZES))
    if size > 4096:
        if size > mood.left:
            size = draw(st.sampled_from(SMALL_SIZES))
        else:
            mood.left -= size
    pattern = draw(st.binary(min_size=1, max_size=6))
    return (pattern * (size // len(pattern) + 1))[:size]


valid_close_payloads = st.one_of(
    st.just(b""),
    st.builds(
        lambda code, reason: struct.pack("!H", code) + reason,
        st.sampled_from(VALID_CLOSE_CODES) | st.integers(3000, 4999),
        st.sampled_from([b"", b"bye", "é".encode(), b"r" * 123]),
    ),
)
close_payloads = valid_close_payloads | st.one_of(
    st.binary(min_size=1, max_size=1),  # too short for a code
    st.builds(
        lambda code, reason: struct.pack("!H", code) + reason,
        st.sampled_from(VALID_CLOSE_CODES + INVALID_CLOSE_CODES),
        st.sampled_from([b"", b"\xff\xfe", b"\xc3", b"r" * 124]),  # bad UTF-8, too long
    ),
)


@st.composite
def control_frames(draw: st.DrawFn, mood: Mood) -> RawFrame:
    """A ping or a pong; a close frame too when hostile."""
    kinds = ["ping", "ping", "pong", "close"] if mood.hostile else ["ping", "pong"]
    kind = draw(st.sampled_from(kinds))
    if kind == "close":
        return RawFrame(Opcode.CLOSE, draw(close_payloads))
    sizes = [0, 1, 2, 5, 125, 126] if mood.hostile else [0, 1, 2, 5, 125]  # 126: too long
    opcode = Opcode.PING if kind == "ping" else Opcode.PONG
    return RawFrame(opcode, draw(payloads(mood, sizes)))


@st.composite
def mutated(draw: st.DrawFn, frame: RawFrame, mood: Mood) -> RawFrame:
    """``frame``, or now and then a copy with something unusual: a length longer than it
    needs (websockets takes it), or when hostile something wrong."""
    hows = ["none"] * 8 + ["rsv", "opcode", "fin", "mask", "wide", "lie"] if mood.hostile else []
    how = draw(st.sampled_from(hows or ["none"] * 5 + ["wide"]))
    if how == "rsv":
        return RawFrame(frame.opcode, frame.payload, frame.fin, draw(st.integers(1, 7)))
    if how == "opcode":
        return RawFrame(draw(st.sampled_from(RESERVED_OPCODES)), frame.payload, frame.fin)
    if how == "fin":
        return RawFrame(frame.opcode, frame.payload, not frame.fin)
    if how == "mask":
        return RawFrame(frame.opcode, frame.payload, frame.fin, flip_mask=True)
    if how == "wide":
        return RawFrame(frame.opcode, frame.payload, frame.fin, wide=draw(st.integers(1, 2)))
    if how == "lie":  # a header that says another length: what follows is read askew
        length = len(frame.payload)
        claims = st.integers(max(length - 10, 0), length + 10) | st.sampled_from(HUGE_LENGTHS)
        return RawFrame(frame.opcode, frame.payload, frame.fin, claim=draw(claims))
    return frame


@st.composite
def frame_groups(draw: st.DrawFn, mood: Mood) -> list[RawFrame]:
    """One frame, or the frames of a fragmented message with others between its parts."""
    kinds = ["data", "data", "data", "control", "fragmented"]
    kind = draw(st.sampled_from([*kinds, "stray"] if mood.hostile else kinds))
    if kind == "data":
        opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
        return [draw(mutated(RawFrame(opcode, draw(payloads(mood))), mood))]
    if kind == "control":
        return [draw(mutated(draw(control_frames(mood)), mood))]
    if kind == "stray":  # a continuation frame with no message to continue
        return [RawFrame(Opcode.CONT, draw(payloads(mood, [0, 3])), draw(st.booleans()))]
    opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
    count = draw(st.integers(1, 4))
    frames = []
    for index in range(count + 1):
        last = index == count
        part = RawFrame(Opcode.CONT if index else opcode, draw(payloads(mood)), fin=last)
        frames.append(draw(mutated(part, mood)))
        if not last:
            for _ in range(draw(st.integers(0, 2))):
                betweens = ["control", "control", "control", "data", "data-part"]
                between = draw(st.sampled_from(betweens if mood.hostile else ["control"]))
                if between == "control":
                    frames.append(draw(mutated(draw(control_frames(mood)), mood)))
                else:  # a data frame in the middle of a fragmented message: an error
                    fin = between == "data"
                    frames.append(RawFrame(Opcode.TEXT, draw(payloads(mood, [0, 4])), fin))
    return frames


@st.composite
def closings(draw: st.DrawFn, mood: Mood) -> list[RawFrame]:
    """A valid close frame, and maybe frames after it (which are not to be read), or none."""
    if not draw(st.booleans()):
        return []
    after = draw(frame_groups(mood)) if draw(st.booleans()) else []
    return [RawFrame(Opcode.CLOSE, draw(valid_close_payloads)), *after]


def max_sizes(mood: Mood) -> st.SearchStrategy[MaxSize]:
    return st.sampled_from(MAX_SIZES if mood.hostile else [None, 2**20, (None, 2**20)])


@dataclass(frozen=True)
class Cut:
    """A place in the stream: ``delta`` bytes after the ``anchor``-th interesting offset
    (frame starts, payload starts, the end of the HTTP head), or with no anchor ``delta``
    bytes in (modulo the stream's length)."""

    anchor: int | None
    delta: int

    def resolve(self, anchors: Sequence[int], total: int) -> int:
        if self.anchor is None:
            return self.delta % (total + 1)
        return min(max(anchors[self.anchor % len(anchors)] + self.delta, 0), total)


near_frames = st.builds(Cut, st.none() | st.integers(0, 1000), st.integers(-3, 12))
cuts = near_frames | st.builds(Cut, st.none(), st.integers(0, 2**20))

Ending = Literal["eof", "open", "truncate"]


@dataclass(frozen=True)
class Plan:
    """How the stream is written and read: the peer writes it in chunks (ending at the cuts
    marked True), WebSocketIO reads it in pieces (ending at every cut, and at most
    ``read_size`` bytes), and it ends as ``ending`` says: end of stream after it, none, or
    end of stream after the stream cut short at ``truncate_at``. Once ``switch_at`` bytes
    are read, the reader calls ``receive_events`` instead of ``receive_messages``, as the
    closing handshake does, which ends WebSocketIO's own framing."""

    read_cuts: tuple[tuple[Cut, bool], ...]
    read_size: int
    ending: Ending
    truncate_at: Cut
    switch_at: Cut | None = None
    bytewise_head: int = 0  # the first bytes read one at a time (past the HTTP head)


plans = st.builds(
    Plan,
    st.lists(st.tuples(cuts, st.booleans()), max_size=24).map(tuple),
    st.sampled_from([1, 2, 3, 7, 64, 8192, 65536, 1 << 20]),
    st.sampled_from(["eof", "eof", "open", "truncate"]),
    cuts,
    st.sampled_from([None, None, None]) | cuts,
)


@dataclass(frozen=True)
class OpenCase:
    frames: tuple[RawFrame, ...]
    max_size: MaxSize
    plan: Plan


@st.composite
def open_cases(draw: st.DrawFn) -> OpenCase:
    mood = Mood(hostile=draw(st.booleans()))
    frames: list[RawFrame] = []
    for _ in range(draw(st.integers(0, 10))):
        frames += draw(frame_groups(mood))
    frames += draw(closings(mood))
    return OpenCase(tuple(frames), draw(max_sizes(mood)), draw(plans))


@dataclass(frozen=True)
class HandshakeCase:
    items: tuple[Item, ...]
    max_size: MaxSize
    deflate: bool
    no_context_takeover: bool
    window_bits: int | None
    response: Literal["accept", "bad-accept", "reject"]
    plan: Plan


@st.composite
def compressed_messages(draw: st.DrawFn, mood: Mood) -> Compressed:
    opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
    parts = tuple(draw(payloads(mood)) for _ in range(draw(st.integers(1, 3))))
    between = tuple(
        tuple(draw(control_frames(mood)) for _ in range(draw(st.integers(0, 1))))
        for _ in parts[:-1]
    )
    return Compressed(opcode, parts, between)


@st.composite
def compressed_frames_gone_wrong(draw: st.DrawFn, mood: Mood) -> RawFrame:
    """RSV1 where it has no business, or on a payload that is not deflate data."""
    opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING]))
    return RawFrame(opcode, draw(payloads(mood, [0, 1, 5, 20])), rsv=4)


@st.composite
def handshake_cases(draw: st.DrawFn) -> HandshakeCase:
    mood = Mood(hostile=draw(st.booleans()))
    items: list[Item] = []
    kinds = ["raw", "compressed", "compressed"]
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from([*kinds, "wrong"] if mood.hostile else kinds))
        if kind == "raw":
            items += draw(frame_groups(mood))
        elif kind == "compressed":
            items.append(draw(compressed_messages(mood)))
        else:
            items.append(draw(compressed_frames_gone_wrong(mood)))
    items += draw(closings(mood))
    responses = ["accept", "accept", "bad-accept", "reject"] if mood.hostile else ["accept"]
    return HandshakeCase(
        items=tuple(items),
        max_size=draw(max_sizes(mood)),
        deflate=draw(st.sampled_from([True, True, False])),
        no_context_takeover=draw(st.booleans()),
        window_bits=draw(st.sampled_from([None, 9, 15])),
        response=draw(st.sampled_from(responses)),
        plan=_with_bytewise(draw(plans), draw(st.sampled_from([0, 0, 1]))),
    )


def _with_bytewise(plan: Plan, bytewise: int) -> Plan:
    return dataclasses.replace(plan, bytewise_head=bytewise)


# ------------------------------------------------------------------ the stream, as read


def frame_anchors(data: bytes, start: int) -> list[int]:
    """Where the frames of ``data[start:]`` start, and where their payloads do (by their
    headers, whatever they say): the places around which reads are worth cutting."""
    anchors = [start]
    at = start
    while at + 2 <= len(data):
        length = data[at + 1] & 0x7F
        payload = at + 2
        if length == 126:
            payload += 2
            length = int.from_bytes(data[at + 2 : payload], "big")
        elif length == 127:
            payload += 8
            length = int.from_bytes(data[at + 2 : payload], "big")
        if data[at + 1] & 0x80:
            payload += 4
        at = payload + length
        anchors += [payload, at]
    return [anchor for anchor in anchors if anchor <= len(data)]


class SplitStream(anyio.abc.ByteStream):
    """Our end of the socket, read in planned pieces: a read ends at the next cut, and is
    ``read_size`` bytes at most (or what the caller asks, if less), whatever pieces TCP
    delivers. Once everything the peer wrote so far has been read and processed (the reader
    asks for more), ``idle`` is set."""

    def __init__(self, inner: anyio.abc.SocketStream) -> None:
        self.inner = inner
        self.plan(Stream(b"", [], [], eof=False, read_size=1 << 20))
        self.buffer = bytearray()
        self.delivered = 0
        self.written = 0
        self.idle = anyio.Event()
        self.eof_sent = False
        self.eofs_read = 0

    def plan(self, stream: Stream) -> None:
        """Read ``stream`` as it says (from the first byte the peer writes)."""
        total = len(stream.data)
        self.cuts = sorted({cut for cut in stream.read_cuts if 0 < cut < total} | {total})
        self.total = total
        self.eof = stream.eof
        self.read_size = stream.read_size

    def expect(self, count: int) -> None:
        """The peer is about to write ``count`` bytes more."""
        self.idle = anyio.Event()
        self.written += count

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.delivered == self.written:
            self.idle.set()
        if self.delivered == self.total:
            if not self.eof:
                await anyio.sleep_forever()
            self.eofs_read += 1
            assert self.eofs_read <= 2, "read on and on after the end of the stream"
            more = await self.inner.receive()  # raises EndOfStream
            raise AssertionError(f"the peer wrote more than planned: {more!r}")
        cut = self.cuts[bisect.bisect_right(self.cuts, self.delivered)]
        count = min(max_bytes, self.read_size, cut - self.delivered)
        while len(self.buffer) < count:
            self.buffer += await self.inner.receive()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        self.delivered += count
        return data

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        self.eof_sent = True
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Any:
        return self.inner.extra_attributes


async def read_to_end(stream: anyio.abc.ByteStream, data: bytes = b"") -> bytes:
    chunks = [data]
    while True:
        try:
            chunks.append(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return b"".join(chunks)


# ------------------------------------------------------------------ the oracle


class Oracle:
    """websockets' own protocol object, fed the same bytes, and what it made of them, as
    WebSocketIO hands it out: data messages (fragments joined), pongs, what it wrote."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.messages: list[tuple[bytes, bool]] = []
        self.pongs: list[bytes] = []
        self.writes: list[bytes] = []
        self._fragments: list[bytes] | None = None
        self._binary = False

    def feed(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._take()

    def eof(self) -> None:
        self.protocol.receive_eof()
        self._take()

    def _take(self) -> None:
        for frame in self.protocol.events_received():
            if not isinstance(frame, Frame):
                continue
            data = bytes(frame.data)
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                if frame.fin:
                    self.messages.append((data, frame.opcode is Opcode.BINARY))
                else:
                    self._fragments, self._binary = [data], frame.opcode is Opcode.BINARY
            elif frame.opcode is Opcode.CONT:
                assert self._fragments is not None
                self._fragments.append(data)
                if frame.fin:
                    self.messages.append((b"".join(self._fragments), self._binary))
                    self._fragments = None
            elif frame.opcode is Opcode.PONG:
                self.pongs.append(data)
        self.writes += self.protocol.data_to_send()


def snapshot(protocol: Protocol) -> dict[str, Any]:
    """What must be the same in both protocol objects."""

    def exception(exc: BaseException | None) -> tuple[str, str] | None:
        return None if exc is None else (type(exc).__name__, str(exc))

    return {
        "state": protocol.state,
        "close_sent": protocol.close_sent,
        "close_rcvd": protocol.close_rcvd,
        "close_rcvd_then_sent": protocol.close_rcvd_then_sent,
        "eof_sent": protocol.eof_sent,
        "parser_exc": exception(protocol.parser_exc),
        "handshake_exc": exception(protocol.handshake_exc),
    }


@dataclass
class Observed:
    """What WebSocketIO handed out."""

    messages: list[tuple[bytes, bool]] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    #: Events other than the response that receive_events returned before it (frames
    #: there would be lost: the client's handshake looks for the response only).
    handshake_extras: list[str] = field(default_factory=list)


def note(value: str) -> None:
    """A statistic for ``--hypothesis-show-statistics`` (none when run outside a test)."""
    if currently_in_test_context():
        event(value)


def compare(where: str, ws: WebSocketIO, observed: Observed, oracle: Oracle) -> None:
    """Assert that WebSocketIO and the oracle agree."""
    ours, theirs = snapshot(ws.protocol), snapshot(oracle.protocol)
    assert ours == theirs, f"{where}: protocol state\n ours:   {ours}\n oracle: {theirs}"
    assert observed.messages == oracle.messages, (
        f"{where}: messages\n ours:   {_short(observed.messages)}\n"
        f" oracle: {_short(oracle.messages)}"
    )
    assert observed.pongs == oracle.pongs, f"{where}: pongs {observed.pongs} != {oracle.pongs}"


def _short(messages: list[tuple[bytes, bool]]) -> list[tuple[str, bool]]:
    return [
        (repr(data) if len(data) < 40 else f"{data[:20]!r}...({len(data)} bytes)", binary)
        for data, binary in messages
    ]


def written_frames(writes: list[bytes]) -> tuple[list[tuple[bool, int, int, bytes]], bool]:
    """The frames of what a protocol object wrote, and whether it ended the stream."""
    eof = bool(writes) and writes[-1] == SEND_EOF
    assert SEND_EOF not in writes[:-1], "written after the end of stream"
    return parse_frames(b"".join(writes)), eof


# ------------------------------------------------------------------ the exchange


@dataclass(frozen=True)
class Stream:
    """The bytes the peer writes and how: in ``chunks``, read in pieces ending at
    ``read_cuts``, then the end of the stream or not."""

    data: bytes
    chunk_ends: list[int]
    read_cuts: list[int]
    eof: bool
    read_size: int
    switch_at: int | None = None


def lay_out(data: bytes, anchors: list[int], plan: Plan, head_end: int = 0) -> Stream:
    eof = plan.ending != "open"
    if plan.ending == "truncate":
        data = data[: plan.truncate_at.resolve(anchors, len(data))]
    total = len(data)
    positions = [(cut.resolve(anchors, total), chunk) for cut, chunk in plan.read_cuts]
    read_cuts = [at for at, _ in positions]
    if plan.bytewise_head:
        read_cuts += range(1, min(total, head_end + 16) + 1)
    chunk_ends = sorted({at for at, chunk in positions if chunk and 0 < at < total} | {total})
    read_size = plan.read_size if total <= SMALL_READS_UP_TO else max(plan.read_size, 8192)
    switch_at = None if plan.switch_at is None else plan.switch_at.resolve(anchors, total)
    return Stream(data, chunk_ends, read_cuts, eof, read_size, switch_at)


async def exchange(
    ws: WebSocketIO,
    split: SplitStream,
    peer: anyio.abc.SocketStream,
    oracle: Oracle,
    stream: Stream,
    *,
    handshake: bool = False,
    written_before: bytes = b"",
) -> None:
    """Have the peer write ``stream`` while WebSocketIO reads it, and compare it with the
    oracle after every chunk, at the end, and what both wrote."""
    observed = Observed()
    ws.on_pong = lambda data: observed.pongs.append(bytes(data))
    done = anyio.Event()

    async def read() -> None:
        try:
            while handshake and not ws.closed:
                events = await ws.receive_events()
                observed.handshake_extras += [
                    repr(event) for event in events if not isinstance(event, Response)
                ]
                if any(isinstance(event, Response) for event in events):
                    break
            while not ws.closed:
                if stream.switch_at is not None and split.delivered >= stream.switch_at:
                    messages = ws._data_messages(await ws.receive_events())
                else:
                    messages = await ws.receive_messages()
                observed.messages += [(bytes(m.data), m.binary) for m in messages]  # type: ignore[arg-type]
        finally:
            done.set()
            split.idle.set()

    with anyio.fail_after(HANG):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            sent = 0
            for end in stream.chunk_ends:
                chunk = stream.data[sent:end]
                split.expect(len(chunk))
                await peer.send(chunk)
                await split.idle.wait()
                oracle.feed(chunk)
                compare(f"after the peer wrote {end} bytes", ws, observed, oracle)
                sent = end
            if stream.eof:
                await peer.send_eof()
                await done.wait()
                oracle.eof()
            compare("at the end", ws, observed, oracle)
            exc = oracle.protocol.parser_exc
            note(f"end: {oracle.protocol.state.name}, {type(exc).__name__}: {exc}"[:60])
            note(f"messages: {min(len(oracle.messages), 3)}")
            note(f"deflate: {bool(oracle.protocol.extensions)}")
            assert observed.handshake_extras == [], "frames returned with the handshake"
            tg.cancel_scope.cancel()
        if not split.eof_sent:
            await split.inner.send_eof()
        ours = written_frames([await read_to_end(peer, written_before)])
    # read_to_end joined our writes into one: an end of stream shows as our half-close
    ours = (ours[0], split.eof_sent)
    theirs = written_frames(oracle.writes)
    assert ours == theirs, f"written\n ours:   {ours}\n oracle: {theirs}"


def make_protocol(server: bool, max_size: MaxSize) -> Protocol:
    if server:
        return ServerProtocol(state=State.OPEN, max_size=max_size)
    return ClientProtocol(URI, state=State.OPEN, max_size=max_size)


async def open_scenario(case: OpenCase, server: bool) -> None:
    data = b"".join(frame.serialize(to_server=server) for frame in case.frames)
    stream = lay_out(data, frame_anchors(data, 0), case.plan)
    async with socket_pair() as (ours, peer):
        split = SplitStream(ours)
        split.plan(stream)
        ws = WebSocketIO(make_protocol(server, case.max_size), split, read_size=1 << 20)
        await exchange(ws, split, peer, Oracle(make_protocol(server, case.max_size)), stream)


def render(items: Sequence[Item], server: ServerProtocol) -> bytes:
    """The bytes of ``items`` as ``server`` sends them: :class:`Compressed` messages through
    its protocol object (compressed when permessage-deflate was negotiated), raw frames as
    they are (so uncompressed, or with the bits they say)."""
    if server.state is not State.OPEN:  # a rejected handshake: send them anyway
        server = ServerProtocol(state=State.OPEN)
    out: list[bytes] = []
    for item in items:
        if isinstance(item, RawFrame):
            out.append(item.serialize(to_server=False))
            continue
        send: Callable[..., None] = (
            server.send_text if item.opcode is Opcode.TEXT else server.send_binary
        )
        for index, part in enumerate(item.parts):
            last = index == len(item.parts) - 1
            if index:
                server.send_continuation(part, fin=last)
            else:
                send(part, fin=last)
            out += server.data_to_send()
            if not last:
                out += [frame.serialize(to_server=False) for frame in item.between[index]]
    return b"".join(out)


async def handshake_scenario(case: HandshakeCase) -> None:
    def client() -> ClientProtocol:
        extensions = None
        if case.deflate:
            factory = ClientPerMessageDeflateFactory(
                server_no_context_takeover=case.no_context_takeover,
                server_max_window_bits=case.window_bits,
            )
            extensions = [factory]
        return ClientProtocol(URI, extensions=extensions, max_size=case.max_size)

    async with socket_pair() as (ours, peer):
        protocol = client()
        oracle = client()
        oracle.key = protocol.key  # so that the oracle takes the same response
        oracle.send_request(oracle.connect())
        oracle.data_to_send()
        # The handshake, until the request is written: the split stream starts after it.
        split = SplitStream(ours)
        ws = WebSocketIO(protocol, split, read_size=1 << 20)
        protocol.send_request(protocol.connect())
        await ws.flush()
        request_bytes = b""
        while b"\r\n\r\n" not in request_bytes:
            request_bytes += await peer.receive()
        head_size = request_bytes.index(b"\r\n\r\n") + 4
        server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
        server.receive_data(request_bytes[:head_size])
        [request] = server.events_received()
        assert isinstance(request, Request)
        if case.response == "reject":
            response = server.reject(403, "go away\r\n\r\nreally\n")
        else:
            response = server.accept(request)
        server.send_response(response)
        head = b"".join(server.data_to_send())
        if case.response == "bad-accept":
            accept = response.headers["Sec-WebSocket-Accept"].encode()
            head = head.replace(accept, accept[::-1])
        head_end = head.index(b"\r\n\r\n") + 4
        assert (response.status_code == 101) == (len(head) == head_end)
        data = head + render(case.items, server)
        anchors = [0, head_end, *frame_anchors(data, len(head))]
        stream = lay_out(data, anchors, case.plan, head_end)
        split.plan(stream)
        await exchange(
            ws,
            split,
            peer,
            Oracle(oracle),
            stream,
            handshake=True,
            written_before=request_bytes[head_size:],
        )


# ------------------------------------------------------------------ the properties


#: Found by the fuzzer: websockets fails the connection on a frame's header (an opcode it does
#: not know, the wrong mask bit, a length over its limit) as soon as the header is in; these
#: are cut right after that header (or its first two bytes), the rest coming in a later write.
HEADER_ERRORS = [
    # A masked frame to a client (an unmasked one to a server): "incorrect masking".
    OpenCase(
        (RawFrame(Opcode.TEXT, b"", flip_mask=True),),
        None,
        Plan(((Cut(None, 2), True),), 1 << 20, "open", Cut(None, 0)),
    ),
    # A reserved opcode, its 16-bit length still to come: "invalid opcode".
    OpenCase(
        (RawFrame(3, b"z" * 200),),
        None,
        Plan(((Cut(None, 2), True),), 1 << 20, "open", Cut(None, 0)),
    ),
    # A continuation frame over what is left of the limit: "frame with 1000 bytes after
    # reading 1 bytes exceeds limit of 1000 bytes".
    OpenCase(
        (RawFrame(Opcode.TEXT, b"x", fin=False), RawFrame(Opcode.CONT, b"y" * 1000)),
        1000,
        Plan(((Cut(3, 0), True),), 1 << 20, "open", Cut(None, 0)),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("server", [False, True], ids=["client", "server"])
@FUZZ
@given(case=open_cases())
@example(case=HEADER_ERRORS[0])
@example(case=HEADER_ERRORS[1])
@example(case=HEADER_ERRORS[2])
def test_open_connection_frames_are_what_websockets_makes_of_them(
    backend: str, server: bool, case: OpenCase
) -> None:
    anyio.run(open_scenario, case, server, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(case=handshake_cases())
def test_handshake_response_and_frames_split_anywhere(backend: str, case: HandshakeCase) -> None:
    anyio.run(handshake_scenario, case, backend=backend)


# ------------------------------------------------------------------ the gateway's handshake


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame with the all-zero mask, so its payload shows as it is on the wire."""
    frame = RawFrame(opcode, payload)
    return (
        frame.serialize(to_server=True)[: frame.header_size(to_server=True) - 4]
        + bytes(4)
        + payload
    )


@pytest.mark.anyio
@pytest.mark.parametrize("held_back", [0, 1, 2, 3])
async def test_gateway_reads_a_frame_sent_with_the_request_as_websockets_does(
    held_back: int,
) -> None:
    """The gateway reads a request's first line itself (``read_request_line``) and hands
    those bytes to the handshake. The frame the client sends right after its request, here
    in the same write as the end of the request, must be read as websockets reads it (one
    text message, invalid JSON, which closes the connection), however the end of the HTTP
    head ("\\r\\n\\r\\n") is split between the first read and the next: not dropped, and
    never cut at a "\\r\\n\\r\\n" inside it, which would deliver the frame hidden in its payload
    (a publish, acknowledged)."""
    inner = masked_frame(Opcode.TEXT, encode_publish("t", "smuggled", id="smuggled"))
    outer_payload = b"xx\r\n\r\n" + inner
    broker = Broker()
    member, _ = broker.connect("app", Identity("user", ALL_PERMISSIONS), "127.0.0.1")
    [close] = [a for a in broker.receive(member.id, outer_payload) if isinstance(a, BrokerClose)]
    async with serve() as gw:
        client = ClientProtocol(parse_uri(gw.url(gw.mint_token(permissions=ALL_PERMISSIONS))))
        client.send_request(client.connect())
        request = b"".join(client.data_to_send())
        cut = len(request) - held_back if held_back else 0
        async with await anyio.connect_tcp("127.0.0.1", gw.port) as stream:
            if cut:
                await stream.send(request[:cut])
                # For the gateway to read it alone. (Should both writes come in one read,
                # the test still holds, with the head's end in the sniffed bytes.)
                await anyio.sleep(0.2)
            await stream.send(request[cut:] + masked_frame(Opcode.TEXT, outer_payload))
            frames: list[Frame] = []
            with anyio.move_on_after(2):
                while client.close_rcvd is None:
                    try:
                        client.receive_data(await stream.receive())
                    except anyio.EndOfStream:
                        break
                    frames += [e for e in client.events_received() if isinstance(e, Frame)]
    assert not [f for f in frames if b"smuggled" in f.data], "a frame hidden in a payload"
    assert client.close_rcvd is not None, "the frame sent with the request was not read"
    assert client.close_rcvd.code == close.code
