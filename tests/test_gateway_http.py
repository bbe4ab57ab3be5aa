"""The gateway's HTTP admin API over raw sockets: the answer to every kind of refusal, and
what a client that sends malformed, oversized, slow or pipelined requests, or never reads
its answers, costs: its own connection at most, never another's, never the shutdown.

(tests/test_admin.py drives the same API through the admin clients.)
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import attrs
import orjson
import pytest

from realtime_pubsub.gateway import AppConfig, Gateway, KeyConfig, serve
from realtime_pubsub.gateway._http import MAX_HEAD, HttpError, RequestReader

from .keys import OTHER_SECRET, SECRET
from .raw import RawClient, connect, subscribed, url_for

pytestmark = pytest.mark.anyio

#: "Within one second", with room for a loaded machine.
PROMPTLY = 3.0


@attrs.frozen
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def parse_answers(data: bytes) -> list[Answer]:
    """Every complete answer in ``data``, in order (``100 Continue`` included)."""
    answers = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for header in lines:
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body, data = data[:length], data[length:]
        answers.append(Answer(int(line.split()[1]), headers, orjson.loads(body) if body else None))
    return answers


def request(
    method: str,
    path: str,
    body: object = None,
    *,
    token: str | None = None,
    close: bool = True,
    headers: tuple[str, ...] = (),
) -> bytes:
    content = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", *headers]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if content:
        lines += ["Content-Type: application/json", f"Content-Length: {len(content)}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + content


async def read_all(stream: anyio.abc.ByteStream, timeout: float = 10) -> bytes:
    """Everything until the gateway closes its end."""
    received = b""
    with anyio.fail_after(timeout):
        while True:
            try:
                received += await stream.receive()
            except anyio.EndOfStream:
                return received


async def exchange(gw: Gateway, data: bytes) -> list[Answer]:
    """Send ``data`` on a new connection; the answers, once the gateway closes it."""
    async with await anyio.connect_tcp(gw.host, gw.port) as stream:
        await stream.send(data)
        return parse_answers(await read_all(stream))


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with serve(secret=SECRET, max_message_size=4096) as gateway:
        yield gateway


@asynccontextmanager
async def bystander(gw: Gateway) -> AsyncIterator[RawClient]:
    """A WebSocket subscriber of ``news``, to show it is unaffected."""
    async with connect(url_for(gw, subject="bystander")) as client:
        await subscribed(gw, client, "news")
        yield client


async def still_served(gw: Gateway, client: RawClient) -> None:
    """``client`` is still connected and still receives what is published."""
    token = gw.mint_admin_token()
    [answer] = await exchange(
        gw,
        request(
            "POST", "/api/topics/default/publish", {"topic": "news", "message": 1}, token=token
        ),
    )
    assert answer.status == 200
    assert (await client.recv_json())["data"] == 1


# --------------------------------------------------------------------------- answers


async def test_a_publish_is_answered_200_with_how_many_it_reached(gw: Gateway) -> None:
    async with bystander(gw) as client:
        body = {"topic": "news", "message": {"headline": "hi"}}
        [answer] = await exchange(
            gw, request("POST", "/api/topics/default/publish", body, token=gw.mint_admin_token())
        )
        assert (answer.status, answer.body) == (200, {"topic": "news", "delivered": 1})
        assert answer.headers["content-type"] == "application/json"
        frame = await client.recv_json()
    assert frame == {"topic": "news", "messageType": "broadcast", "data": {"headline": "hi"}}


@pytest.mark.parametrize(
    ("method", "path", "body", "auth", "status", "error"),
    [
        ("POST", "/api/nothing/here", None, True, 404, "no such endpoint"),
        ("POST", "/api/topics/default/publish/", None, True, 404, "no such endpoint"),
        ("GET", "/api/topics/default/publish", None, True, 405, "use POST here"),
        ("POST", "/api/connections/default", None, True, 405, "use DELETE here"),
        ("POST", "/api/topics/default/publish", {"topic": "t", "message": 1}, False, 401,
         "missing admin token"),
        ("POST", "/api/topics/default/publish", b"{not json", True, 400, "not valid UTF-8 JSON"),
        ("POST", "/api/topics/default/publish", [1], True, 400, "not a JSON object"),
        ("POST", "/api/topics/default/publish", {"topic": "", "message": 1}, True, 400,
         "topic must be a non-empty string"),
        ("POST", "/api/topics/default/publish", {"topic": "t"}, True, 400, "message is required"),
        ("POST", "/api/topics/default/publish", {"topic": "t", "message": 1, "compress": "yes"},
         True, 400, "compress must be true or false"),
        ("POST", "/api/topics/default/unsubscribe", {"subject": "s"}, True, 400,
         "topicPatterns must be a list"),
        ("POST", "/api/topics/default/unsubscribe", {"subject": "s", "topicPatterns": []}, True,
         400, "give 1 to 50 topic patterns, not 0"),
        ("POST", "/api/topics/default/unsubscribe",
         {"subject": "s", "topicPatterns": ["p"] * 51}, True, 400, "not 51"),
        ("DELETE", "/api/connections/default/nobody", None, True, 404, "unknown connection"),
    ],
)  # fmt: skip
async def test_refusals_are_answered_with_their_status_and_reason(
    gw: Gateway, method: str, path: str, body: object, auth: bool, status: int, error: str
) -> None:
    token = gw.mint_admin_token() if auth else None
    [answer] = await exchange(gw, request(method, path, body, token=token))
    assert answer.status == status
    assert error in answer.body["error"]
    if status == 405:
        assert answer.headers["allow"] in ("POST", "DELETE")
    if status == 401:
        assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("not-a-jwt", "invalid admin token"),
        ("expired", "admin token expired"),
        ("client", "invalid admin token"),  # a client token, signed with another key
    ],
)
async def test_a_bad_admin_token_is_401(token: str, error: str) -> None:
    apps = {"app": AppConfig(auth_key=KeyConfig(OTHER_SECRET), admin_key=KeyConfig(SECRET))}
    async with serve(apps=apps) as gw:
        value = {
            "not-a-jwt": "not-a-jwt",
            "expired": gw.mint_admin_token(ttl=-5),
            "client": gw.mint_token(),
        }[token]
        [answer] = await exchange(gw, request("DELETE", "/api/connections/app", token=value))
    assert answer.status == 401
    assert error in answer.body["error"]
    assert value not in answer.body["error"]


async def test_an_unknown_app_is_404_before_the_token_is_looked_at() -> None:
    async with serve(secret=SECRET, app_id="only") as gw:
        [answer] = await exchange(gw, request("DELETE", "/api/connections/other", token="x"))
        assert (answer.status, answer.body) == (404, {"error": "unknown app"})
        [answer] = await exchange(
            gw, request("DELETE", "/api/connections/only", token=gw.mint_admin_token())
        )
        assert (answer.status, answer.body) == (200, {"terminated": 0})


async def test_an_app_without_an_admin_key_refuses_admin_tokens() -> None:
    async with serve(apps={"app": AppConfig(auth_key=KeyConfig(SECRET))}) as gw:
        with pytest.raises(ValueError, match="adminKey"):
            gw.mint_admin_token()
        [answer] = await exchange(gw, request("DELETE", "/api/connections/app", token="x.y.z"))
    assert answer.status == 401
    assert "no adminKey" in answer.body["error"]


@pytest.mark.parametrize(
    ("roles", "allowed", "path", "body", "error"),
    [
        (["SubscribersAdmin", "ConnectionsAdmin"], ["*"], "/api/topics/default/publish",
         {"topic": "t", "message": 1}, "lacks the Publisher role"),
        (["Publisher"], ["chat/*"], "/api/topics/default/publish",
         {"topic": "news", "message": 1}, "allowedTopics do not include 'news'"),
        (["Publisher"], None, "/api/topics/default/publish",
         {"topic": "news", "message": 1}, "allowedTopics do not include 'news'"),
        (["Publisher", "ConnectionsAdmin"], ["*"], "/api/topics/default/unsubscribe",
         {"subject": "s", "topicPatterns": ["*"]}, "lacks the SubscribersAdmin role"),
        (["Publisher", "SubscribersAdmin"], ["*"], "/api/connections/default", None,
         "lacks the ConnectionsAdmin role"),
    ],
)  # fmt: skip
async def test_a_missing_role_or_topic_is_403(
    gw: Gateway, roles: list[str], allowed: list[str] | None, path: str, body: object, error: str
) -> None:
    token = gw.mint_admin_token(roles=roles, allowed_topics=allowed)
    method = "DELETE" if body is None else "POST"
    [answer] = await exchange(gw, request(method, path, body, token=token))
    assert answer.status == 403
    assert error in answer.body["error"]


# --------------------------------------------------------------------------- connections


async def test_requests_on_one_connection_are_answered_in_order_pipelined_or_not(
    gw: Gateway,
) -> None:
    token = gw.mint_admin_token()
    async with bystander(gw) as client:
        async with await anyio.connect_tcp(gw.host, gw.port) as stream:
            # Kept alive: the next request on the same connection.
            publish = request(
                "POST", "/api/topics/default/publish", {"topic": "news", "message": 0},
                token=token, close=False,
            )  # fmt: skip
            await stream.send(publish)
            received = b""
            while b"\r\n\r\n" not in received:
                received += await stream.receive()
            assert parse_answers(received)[0].status == 200
            # Three at once: answered in order, the last one closes.
            pipelined = [
                request(
                    "POST", "/api/topics/default/publish", {"topic": "news", "message": n},
                    token=token, close=False,
                )
                for n in (1, 2)
            ] + [request("DELETE", "/api/connections/default/nobody", token=token)]  # fmt: skip
            await stream.send(b"".join(pipelined))
            answers = parse_answers(await read_all(stream))
        assert [a.status for a in answers] == [200, 200, 404]
        assert [a.headers["connection"] for a in answers] == ["keep-alive", "keep-alive", "close"]
        assert [(await client.recv_json())["data"] for _ in range(3)] == [0, 1, 2]


async def test_http_1_0_closes_after_one_answer_unless_kept_alive(gw: Gateway) -> None:
    old = b"DELETE /api/connections/default HTTP/1.0\r\nAuthorization: Bearer x\r\n\r\n"
    [answer] = await exchange(gw, old)
    assert (answer.status, answer.headers["connection"]) == (401, "close")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"HELLO /api/topics/default/publish\r\n\r\n", 400),
        (b"POST /api/topics/default/publish HTTP/2.0\r\n\r\n", 400),
        (b"POST /api/topics/default/publish HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"POST /api/topics/default/publish HTTP/1.1\r\n folded: header\r\n\r\n", 400),
        (b"POST /api/topics/default/publish HTTP/1.1\r\nX: \xff\r\n\r\n", 400),
        (b"POST /api/topics/default/publish HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /api/topics/default/publish HTTP/1.1\r\n"
         b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST /api/topics/default/publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"1\r\n{\r\n0\r\n\r\n", 411),
        (b"POST /api/topics/default/publish HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413),
        (b"POST /api/topics/default/publish HTTP/1.1\r\nX: " + b"x" * MAX_HEAD, 431),
    ],
)  # fmt: skip
async def test_a_malformed_or_oversized_request_is_refused_and_harms_no_one_else(
    gw: Gateway, data: bytes, status: int
) -> None:
    async with bystander(gw) as client:
        answers = await exchange(gw, data)
        assert [a.status for a in answers] == [status]
        assert answers[0].headers["connection"] == "close"
        await still_served(gw, client)


async def test_a_body_at_the_limit_is_taken_and_one_byte_more_is_413(gw: Gateway) -> None:
    token = gw.mint_admin_token()
    prefix, suffix = b'{"topic": "t", "message": "', b'"}'
    fill = b"x" * (4096 - len(prefix) - len(suffix))
    path = "/api/topics/default/publish"
    [taken] = await exchange(gw, request("POST", path, prefix + fill + suffix, token=token))
    [refused] = await exchange(
        gw, request("POST", path, prefix + fill + b"x" + suffix, token=token)
    )
    assert (taken.status, refused.status) == (200, 413)


async def test_the_body_is_asked_for_when_the_client_expects_100_continue(gw: Gateway) -> None:
    body = orjson.dumps({"topic": "t", "message": 1})
    head = request("POST", "/api/topics/default/publish", body, token=gw.mint_admin_token(),
                   headers=("Expect: 100-continue",))[: -len(body)]  # fmt: skip
    async with await anyio.connect_tcp(gw.host, gw.port) as stream:
        await stream.send(head)
        received = b""
        with anyio.fail_after(10):
            while b"\r\n\r\n" not in received:
                received += await stream.receive()
        assert received == b"HTTP/1.1 100 Continue\r\n\r\n"
        await stream.send(body)
        [answer] = parse_answers(await read_all(stream))
    assert answer.status == 200


@pytest.fixture
async def impatient() -> AsyncIterator[Gateway]:
    """A gateway that gives each request half a second to arrive."""
    async with serve(secret=SECRET, write_timeout=0.5) as gateway:
        gateway.limits = attrs.evolve(gateway.limits, handshake_timeout=0.5)
        yield gateway


async def test_a_request_that_arrives_too_slowly_is_408_and_an_idle_connection_closed(
    impatient: Gateway,
) -> None:
    gw = impatient
    publish = request("POST", "/api/topics/default/publish", {"topic": "t", "message": 1})
    async with bystander(gw) as client:
        in_head = publish[: publish.index(b"\r\n") + 10]
        for partial in (in_head, publish[:-5]):
            async with await anyio.connect_tcp(gw.host, gw.port) as stream:
                await stream.send(partial)
                [answer] = parse_answers(await read_all(stream))
                assert answer.status == 408
        # A request line that does not even end is not known to be for the API: closed.
        async with await anyio.connect_tcp(gw.host, gw.port) as stream:
            await stream.send(publish[:20])
            assert await read_all(stream) == b""
        # Kept alive after one answer, then idle: closed without a word.
        async with await anyio.connect_tcp(gw.host, gw.port) as stream:
            await stream.send(request("DELETE", "/api/connections/default/x", close=False))
            [answer] = parse_answers(await read_all(stream))
            assert (answer.status, answer.headers["connection"]) == (401, "keep-alive")
        await still_served(gw, client)


def stuck_socket(gw: Gateway) -> socket.socket:
    """A connected plain socket with a small receive buffer, never read by the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((gw.host, gw.port))
    return sock


async def test_a_client_that_never_reads_its_answers_is_cut_off(impatient: Gateway) -> None:
    gw = impatient
    one = request("DELETE", "/api/connections/default/nobody", token="x", close=False)
    async with bystander(gw) as client:
        sock = await anyio.to_thread.run_sync(stuck_socket, gw)
        try:
            # Answers pile up in the kernel's buffers until a write overruns write_timeout
            # and the gateway closes the connection: then sending fails.
            with anyio.fail_after(30), pytest.raises(OSError):  # noqa: PT012
                for _ in range(100_000):
                    await anyio.to_thread.run_sync(sock.sendall, one * 100)
            await still_served(gw, client)
        finally:
            sock.close()


async def test_leaving_serve_is_prompt_with_http_clients_mid_request() -> None:
    sockets: list[socket.socket] = []
    try:
        with anyio.fail_after(60) as deadline:
            async with serve(secret=SECRET) as gw:
                for partial in (b"POST /api/topics/default/pub", b"POST / HTTP/1.1\r\n"):
                    sock = await anyio.to_thread.run_sync(stuck_socket, gw)
                    sockets.append(sock)
                    await anyio.to_thread.run_sync(sock.sendall, partial)
                body = request("POST", "/api/topics/default/publish", b"{}" * 100)
                sock = await anyio.to_thread.run_sync(stuck_socket, gw)
                sockets.append(sock)
                await anyio.to_thread.run_sync(sock.sendall, body[:-50])
                deadline.deadline = anyio.current_time() + PROMPTLY
    finally:
        for sock in sockets:
            sock.close()


async def test_websocket_clients_connect_as_before_beside_the_api(gw: Gateway) -> None:
    async with connect(url_for(gw, subject="alice")) as client:
        assert client.welcome["data"]["connection"]["appId"] == "default"
    # A WebSocket upgrade under /api/ is not one: the API answers it.
    [answer] = await exchange(gw, request("GET", "/api/topics/default/publish", headers=(
        "Upgrade: websocket", "Connection: Upgrade")))  # fmt: skip
    assert answer.status == 405


# --------------------------------------------------------------------------- the parser alone


def test_the_reader_takes_a_head_that_arrives_byte_by_byte() -> None:
    reader = RequestReader(max_body=100)
    data = request("POST", "/api/x?q=1", {"a": 1}, token="t", close=False)
    for byte in data[:-1]:
        reader.feed(bytes([byte]))
        assert reader.next_request() is None
        assert reader.started
    reader.feed(data[-1:])
    parsed = reader.next_request()
    assert parsed is not None
    assert (parsed.method, parsed.path, parsed.body, parsed.keep_alive) == (
        "POST", "/api/x", b'{"a":1}', True,
    )  # fmt: skip
    assert parsed.headers["authorization"] == "Bearer t"
    assert not reader.started


def test_the_reader_refuses_a_body_over_its_limit_before_reading_it() -> None:
    reader = RequestReader(max_body=10)
    reader.feed(b"POST /api/x HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(HttpError) as caught:
        reader.next_request()
    assert caught.value.status == 413


async def test_a_tls_client_at_the_plain_port_is_closed_at_once() -> None:
    # wss:// at a gateway that serves ws://: the TLS client hello is no request line, and
    # waiting for one would keep the client until its own timeout.
    async with serve(secret=SECRET) as gw:
        gw.limits = attrs.evolve(gw.limits, handshake_timeout=60)
        client_context = ssl.create_default_context()
        with anyio.fail_after(20), pytest.raises((ssl.SSLError, anyio.BrokenResourceError)):
            await anyio.connect_tcp(gw.host, gw.port, ssl_context=client_context)
