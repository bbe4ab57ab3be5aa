"""The benchmarks' message source: a minimal Realtime Pub/Sub server, run as its own process so
that it has a core of its own, and built to be faster than any client it serves.

    python -m benchmarks.server [--port 0]      (prints "port N" when ready)

The path chooses what it does after the welcome frame:

- ``/apps/blast?count=N&compress=0|1``: waits for one frame (the subscribe), then sends N
  copies of one ~150-byte message (binary, and permessage-deflate without context takeover
  when ``compress=1``), precomputed so that sending costs next to nothing.
- ``/apps/ack``: acknowledges every publish or send that carries an id.
- ``/apps/rpc``: answers every send with a reply from a pretend backend (the gateway and the
  backend service in one hop), like a backend that replies at once.
- ``/apps/echo``: sends every frame back as it came (the raw round-trip floor).
- ``/apps/idle``: the welcome, then nothing.
"""

from __future__ import annotations

import argparse
import urllib.parse

import anyio
import anyio.abc
import orjson
from anyio.abc import SocketAttribute
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from realtime_pubsub._wsio import WebSocketIO

WELCOME = orjson.dumps(
    {
        "topic": "main",
        "messageType": "welcome",
        "data": {"connection": {"id": "bench", "appId": "bench", "remoteAddress": "127.0.0.1"}},
    }
)
#: A typical small message: ~150 bytes on the wire.
MESSAGE = orjson.dumps(
    {
        "topic": "bench",
        "messageType": "tick",
        "data": {
            "client": {"connectionId": "c0ffee", "subject": "source", "permissions": []},
            "payload": {"seq": 123456, "price": 101.25, "sym": "ABC"},
            "id": "0123456789abcdef",
        },
    }
)
_CHUNK = 256 * 1024
_SENDER = {"connectionId": "backend", "subject": "backend", "permissions": []}


def _frame_bytes(protocol: ServerProtocol, data: bytes, *, compressed: bool) -> bytes:
    """The exact bytes of one server frame (unmasked, so every copy is identical): a binary
    frame through the negotiated extensions (deflate without context takeover, so every
    copy decompresses alone), or a plain text frame, which permessage-deflate allows even
    when negotiated."""
    if compressed:
        protocol.send_binary(data)
        return b"".join(protocol.data_to_send())
    return Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


async def _blast(ws: WebSocketIO, count: int, compressed: bool) -> None:
    await ws.receive_messages()  # the subscribe
    protocol = ws.protocol
    assert isinstance(protocol, ServerProtocol)
    one = _frame_bytes(protocol, MESSAGE, compressed=compressed)
    per_chunk = max(1, _CHUNK // len(one))
    chunk = one * per_chunk
    full, rest = divmod(count, per_chunk)
    for _ in range(full):
        await ws.stream.send(chunk)
    if rest:
        await ws.stream.send(one * rest)


def _ack(data: bytes | bytearray | memoryview | str) -> bytes | None:
    frame = orjson.loads(data)
    message_id = frame.get("data", {}).get("id")
    if message_id is None:
        return None
    return orjson.dumps({"topic": "priv/acks", "messageType": "ack", "data": {"data": message_id}})


def _reply(data: bytes | bytearray | memoryview | str) -> bytes | None:
    frame = orjson.loads(data)
    body = frame.get("data", {})
    if frame.get("type") != "message" or "id" not in body:
        return None
    return orjson.dumps(
        {
            "topic": "priv/bench",
            "messageType": "response",
            "data": {
                "client": _SENDER,
                "payload": {"data": body.get("payload"), "status": "ok", "id": body["id"]},
                "id": "r" + body["id"],
            },
        }
    )


async def _answer(ws: WebSocketIO, mode: str) -> None:
    protocol = ws.protocol
    answer = _ack if mode == "ack" else _reply
    # Like the service, frames go out uncompressed even when permessage-deflate was
    # negotiated; only "compress: true" deliveries (the blast with compress=1) are deflated.
    while not ws.closed:
        for data, binary in await ws.receive_messages():
            if mode == "echo":
                ws.send_message(bytes(data), binary=binary)  # type: ignore[arg-type]
                continue
            response = answer(data)
            if response is not None:
                ws.send_message(response)
        if protocol.writes:
            await ws.flush()


async def handle(stream: anyio.abc.SocketStream) -> None:
    stream.extra(SocketAttribute.raw_socket).setsockopt(6, 1, 1)  # TCP_NODELAY
    protocol = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory(server_no_context_takeover=True)],
        max_size=None,
    )
    ws = WebSocketIO(protocol, stream)
    try:
        request: Request | None = None
        while request is None:
            for event in await ws.receive_events():
                if isinstance(event, Request):
                    request = event
            if ws.closed:
                return
        url = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(url.query)
        mode = url.path.rsplit("/", 1)[-1]
        protocol.send_response(protocol.accept(request))
        ws.send_message(WELCOME)
        await ws.flush()
        if mode == "blast":
            count = int(query.get("count", ["100000"])[0])
            await _blast(ws, count, query.get("compress", ["0"])[0] == "1")
        if mode in ("ack", "rpc", "echo"):
            await _answer(ws, mode)
        while not ws.closed:
            await ws.receive_events()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        await ws.aclose()


async def main(port: int) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    print(f"port {listener.extra(SocketAttribute.local_port)}", flush=True)
    await listener.serve(handle)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the benchmarks' message source")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backend", default="asyncio")
    args = parser.parse_args()
    anyio.run(main, args.port, backend=args.backend)
