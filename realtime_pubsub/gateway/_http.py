"""The gateway's HTTP admin API (PROTOCOL.md §8), on the port its WebSocket clients use:
requests whose path starts with ``/api/`` come here, every other request goes on to the
WebSocket handshake.

Three layers. :class:`RequestReader` parses HTTP/1.1 requests from bytes, with no I/O
(bounded head and body, keep-alive, pipelining). :class:`AdminApi` answers a parsed request,
with no I/O either: it verifies the admin token with the app's ``adminKey``, checks the
token's roles, and calls the broker, whose decisions it hands back for the server to carry
out. :func:`serve_http` is the I/O: it reads requests off one connection and writes the
answers, within deadlines, so that a slow, oversized, malformed or pipelining client costs
the gateway a bounded amount and never holds up its shutdown.

Every answer is JSON: ``{"error": "..."}`` for a failure (400 bad request or body, 401 bad
or missing token, 403 missing role or topic not allowed, 404 unknown endpoint, app or
connection, 405 wrong method, 408 too slow, 411 no length, 413 body too large, 431 head too
large), a small object for a success (200). These statuses and bodies are the emulator's
own ([E]): the real service's are unpublished.
"""

from __future__ import annotations

import contextlib
import http
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

import anyio
import anyio.abc
import attrs
import orjson

from .._admin_protocol import (
    PUBLISH,
    TERMINATE_ALL,
    TERMINATE_ONE,
    UNSUBSCRIBE,
    encode_error,
    parse_path,
    parse_publish,
    parse_unsubscribe,
)
from ._auth import Keyring, TokenRejected, UnknownApp
from ._broker import Action, Broker, Close, Send, matches_any
from ._config import Limits

__all__ = [
    "MAX_HEAD",
    "AdminApi",
    "HttpError",
    "Request",
    "RequestReader",
    "Response",
    "is_api_request",
    "read_request_line",
    "serve_http",
]

logger = logging.getLogger("realtime_pubsub.gateway")

#: The most bytes a request's line and headers may take (a WebSocket handshake's too).
MAX_HEAD: Final = 65536
#: Bytes asked of the stream per read.
_READ_SIZE: Final = 65536
#: What a closing connection reads and discards, at most, so that its last answer is not
#: lost to a reset (see _linger).
_LINGER_BYTES: Final = 1 << 20
_END_OF_HEAD: Final = b"\r\n\r\n"
_API_PREFIX: Final = b"/api/"
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


# --------------------------------------------------------------------------- requests


@attrs.frozen
class Request:
    """One complete request."""

    method: str
    #: The path, still percent-encoded (the query string is dropped).
    path: str
    #: Header names in lower case; a repeated header keeps its last value.
    headers: dict[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    #: Whether the client keeps the connection open for another request.
    keep_alive: bool = True


class HttpError(Exception):
    """A request that cannot be read: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen
class _Head:
    method: str
    path: str
    headers: dict[str, str]
    keep_alive: bool
    length: int
    expects_continue: bool


def _parse_head(raw: bytes) -> _Head:
    """The request line and headers of ``raw`` (the head without its final blank line)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "the request head is not ASCII") from None
    line, *header_lines = text.split("\r\n")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, "only HTTP/1.1 and HTTP/1.0 are served")
    headers: dict[str, str] = {}
    lengths: set[str] = set()
    for header in header_lines:
        name, colon, value = header.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        name, value = name.lower(), value.strip()
        if name == "content-length":
            lengths.add(value)
        headers[name] = value
    if "transfer-encoding" in headers:
        raise HttpError(411, "send the body with a Content-Length, not a Transfer-Encoding")
    if len(lengths) > 1 or not all(length.isdigit() for length in lengths):
        raise HttpError(400, "malformed Content-Length")
    tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    keep_alive = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
    return _Head(
        method=method,
        path=urllib.parse.urlsplit(target).path,
        headers=headers,
        keep_alive=keep_alive,
        length=int(lengths.pop()) if lengths else 0,
        expects_continue=headers.get("expect", "").lower() == "100-continue",
    )


class RequestReader:
    """Parses requests from the bytes of one connection, in order (pipelined requests
    queue behind each other). Heads over ``max_head`` bytes are refused with 431, bodies
    over ``max_body`` with 413, before they are read."""

    def __init__(self, *, max_head: int = MAX_HEAD, max_body: int) -> None:
        self._max_head = max_head
        self._max_body = max_body
        self._buffer = bytearray()
        #: How much of the buffer is known not to hold the end of a head.
        self._scanned = 0
        self._head: _Head | None = None
        #: Whether the current request asked to be told to go on (``100-continue``) and has
        #: not been told yet: the I/O tells it before waiting for the body.
        self.wants_continue = False

    @property
    def started(self) -> bool:
        """Whether some of a request has arrived that is not complete yet."""
        return bool(self._buffer) or self._head is not None

    def feed(self, data: bytes | bytearray) -> None:
        """Add bytes read from the connection."""
        self._buffer += data

    def continued(self) -> None:
        """The I/O sent ``100 Continue``."""
        self.wants_continue = False

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes arrive. Raises
        :class:`HttpError` for a request that cannot be served (the connection must then
        be closed: where the next request would start is unknown)."""
        head = self._head
        if head is None:
            end = self._buffer.find(_END_OF_HEAD, self._scanned)
            if end < 0 and len(self._buffer) <= self._max_head:
                self._scanned = max(0, len(self._buffer) - len(_END_OF_HEAD) + 1)
                return None
            if end < 0 or end > self._max_head:
                raise HttpError(431, f"the request head is over {self._max_head} bytes")
            head = _parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + len(_END_OF_HEAD)]
            self._scanned = 0
            if head.length > self._max_body:
                raise HttpError(413, f"the body is over {self._max_body} bytes")
            self._head = head
            self.wants_continue = head.expects_continue and len(self._buffer) < head.length
        if len(self._buffer) < head.length:
            return None
        body = bytes(self._buffer[: head.length])
        del self._buffer[: head.length]
        self._head = None
        self.wants_continue = False
        return Request(head.method, head.path, head.headers, body, head.keep_alive)


# --------------------------------------------------------------------------- answers


@attrs.frozen
class Response:
    """An answer: ``status`` and a JSON ``body``."""

    status: int
    body: dict[str, Any]
    #: Extra headers (``Allow`` of a 405, ``WWW-Authenticate`` of a 401).
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def error(cls, status: int, message: str, *headers: tuple[str, str]) -> Response:
        """A failure: ``{"error": message}``."""
        return cls(status, encode_error(message), headers)

    def encode(self, *, keep_alive: bool) -> bytes:
        """The bytes of the answer, with ``Connection: keep-alive`` or ``close``."""
        body = orjson.dumps(self.body)
        phrase = http.HTTPStatus(self.status).phrase
        lines = [
            f"HTTP/1.1 {self.status} {phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --------------------------------------------------------------------------- the API


class AdminApi:
    """The admin API's rules over HTTP: route, authenticate, authorize, parse the body,
    call the broker. :meth:`handle` never raises for anything a client sends."""

    def __init__(self, keyring: Keyring, broker: Broker) -> None:
        self._keyring = keyring
        self._broker = broker

    def handle(self, request: Request) -> tuple[Response, list[Action]]:
        """The answer to ``request``, and the broker's decisions to carry out."""
        target = parse_path(request.path)
        if target is None:
            return Response.error(404, "no such endpoint"), []
        endpoint = target.endpoint
        if request.method != endpoint.method:
            allow = ("Allow", endpoint.method)
            return Response.error(405, f"use {endpoint.method} here", allow), []
        try:
            identity = self._keyring.authenticate_admin(
                target.app_id, _bearer(request.headers.get("authorization"))
            )
        except UnknownApp:
            return Response.error(404, "unknown app"), []
        except TokenRejected as exc:
            return Response.error(401, str(exc), ("WWW-Authenticate", "Bearer")), []
        if endpoint.role not in identity.roles:
            return Response.error(403, f"the token lacks the {endpoint.role} role"), []
        app_id = target.app_id
        if endpoint is PUBLISH:
            try:
                publish = parse_publish(request.body)
            except ValueError as exc:
                return Response.error(400, str(exc)), []
            if not matches_any(identity.allowed_topics, publish.topic):
                return Response.error(
                    403, f"the token's allowedTopics do not include {publish.topic!r}"
                ), []
            actions = self._broker.publish_message(
                app_id, publish.topic, publish.message, compress=publish.compress
            )
            delivered = sum(len(a.to) for a in actions if isinstance(a, Send))
            return Response(200, {"topic": publish.topic, "delivered": delivered}), actions
        if endpoint is UNSUBSCRIBE:
            try:
                unsubscribe = parse_unsubscribe(request.body)
            except ValueError as exc:
                return Response.error(400, str(exc)), []
            removed = self._broker.unsubscribe_subject(
                app_id, unsubscribe.subject, unsubscribe.topic_patterns
            )
            return Response(200, {"subject": unsubscribe.subject, "removed": removed}), []
        assert endpoint is TERMINATE_ONE or endpoint is TERMINATE_ALL
        actions = self._broker.terminate(app_id, target.connection_id)
        terminated = sum(isinstance(a, Close) for a in actions)
        if endpoint is TERMINATE_ONE and not terminated:
            return Response.error(404, "unknown connection"), []
        return Response(200, {"terminated": terminated}), actions


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


# --------------------------------------------------------------------------- the I/O


#: The first byte of a TLS record that opens a handshake (a client hello).
_TLS_HANDSHAKE: Final = b"\x16"


async def read_request_line(stream: anyio.abc.ByteStream) -> bytes | None:
    """Read until the end of a request's first line (or past :data:`MAX_HEAD`) and return
    everything read, which says where the request goes; None when the peer closes
    first."""
    received = bytearray()
    while b"\r\n" not in received and len(received) <= MAX_HEAD:
        try:
            received += await stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            return None
        if received.startswith(_TLS_HANDSHAKE):
            # No request line starts so: a wss:// client at a port that serves ws://. Close
            # at once, rather than wait for a line that never comes until the client's
            # connect timeout.
            logger.info("a TLS handshake on a plain port (wss:// for ws://?): closing")
            return None
    return bytes(received)


def is_api_request(received: bytes) -> bool:
    """Whether the request whose first bytes are ``received`` is for the admin API (or
    has a first line too long for anybody, which the API refuses)."""
    line, crlf, _ = received.partition(b"\r\n")
    parts = line.split(b" ")
    return not crlf or (len(parts) > 1 and parts[1].startswith(_API_PREFIX))


async def serve_http(
    stream: anyio.abc.ByteStream,
    received: bytes,
    *,
    limits: Limits,
    handle: Callable[[Request], Response],
    deadline: Callable[[float], None],
) -> None:
    """Serve the requests of one connection whose first bytes were ``received``: each is
    answered by ``handle``, in order, until the client closes or asks to close, sends
    something unreadable, takes longer than the handshake timeout over a request (408,
    or for an idle connection a silent close), or does not take its answer within the
    write timeout. ``deadline(seconds)`` arms the connection's guard, which closes it
    whatever is in progress, as a backstop for each request."""
    reader = RequestReader(max_body=limits.max_message_size)
    reader.feed(received)
    while True:
        deadline(limits.handshake_timeout + limits.write_timeout + limits.close_timeout)
        response: Response | None = None
        request: Request | None = None
        with anyio.move_on_after(limits.handshake_timeout):
            try:
                while (request := reader.next_request()) is None:
                    if reader.wants_continue:
                        reader.continued()
                        if not await _send(stream, _CONTINUE, limits):
                            return
                    try:
                        reader.feed(await stream.receive(_READ_SIZE))
                    except anyio.EndOfStream:
                        return
            except HttpError as exc:
                response = Response.error(exc.status, str(exc))
        if request is None and response is None:
            if reader.started:
                response = Response.error(408, "the request took too long to arrive")
            else:
                return  # an idle keep-alive connection
        keep_alive = request is not None and request.keep_alive
        if request is not None:
            try:
                response = handle(request)
            except Exception:
                # A bug of ours: the client gets an answer, the other connections nothing.
                logger.exception("admin API %s %s failed", request.method, request.path)
                response, keep_alive = Response.error(500, "internal error"), False
            logger.info("admin API %s %s: %d", request.method, request.path, response.status)
        assert response is not None
        if not await _send(stream, response.encode(keep_alive=keep_alive), limits):
            return
        if not keep_alive:
            await _linger(stream, limits)
            return


async def _send(stream: anyio.abc.ByteStream, data: bytes, limits: Limits) -> bool:
    """Write ``data`` within the write timeout; False if that was not possible (the
    connection is then unusable)."""
    with anyio.move_on_after(limits.write_timeout):
        await stream.send(data)
        return True
    return False


async def _linger(stream: anyio.abc.ByteStream, limits: Limits) -> None:
    """Before closing: say so (half-close) and discard what the client still sends (the
    rest of a refused body, pipelined requests) until it closes too, for a while. Closing
    with unread bytes would reset the connection, which can destroy the answer on its way
    to the client."""
    with anyio.move_on_after(limits.close_timeout):
        with contextlib.suppress(NotImplementedError, TypeError):
            await stream.send_eof()
        discarded = 0
        while discarded < _LINGER_BYTES:
            try:
                discarded += len(await stream.receive(_READ_SIZE))
            except anyio.EndOfStream:
                return
