"""Secrets stay secret, TLS is verified, bad input is refused before it is written."""

from __future__ import annotations

import datetime
import logging
import ssl
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import trustme
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

import realtime_pubsub
from realtime_pubsub.gateway import Gateway, serve
from realtime_pubsub.testing import ALL_PERMISSIONS

from .support import FAST, raw_server

pytestmark = pytest.mark.anyio

SECRET = "s" * 40


def leaks(token: str, *texts: str) -> list[str]:
    signature = token.rsplit(".", 1)[1]
    return [text for text in texts if token in text or signature in text]


async def test_no_exception_the_client_raises_shows_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    raised: list[BaseException] = []

    async def capture(action: Callable[[], Any]) -> None:
        try:
            await action()
        except Exception as exc:
            raised.append(exc)
        else:
            raise AssertionError(f"{action} raised nothing")

    async with serve(secret=SECRET) as gw:
        token = gw.mint_token(subject="secret-holder", permissions=ALL_PERMISSIONS)
        url = gw.url(token)

        async def refused() -> None:
            async with realtime_pubsub.connect(gw.url(token + "tampered"), reconnect=FAST):
                pass

        async def forbidden() -> None:
            limited = gw.url(gw.mint_token(permissions=[]))
            async with realtime_pubsub.connect(limited, reconnect=FAST) as client:
                await client.subscribe("secure/x")
                await anyio.sleep(10)

        async def unreachable() -> None:
            policy = realtime_pubsub.ReconnectPolicy(initial_delay=0.01, max_attempts=2)
            dead = url.replace(f":{gw.port}/", ":1/")
            async with realtime_pubsub.connect(dead, reconnect=policy):
                pass

        async def bad_scheme() -> None:
            policy = realtime_pubsub.ReconnectPolicy(max_attempts=1)
            async with realtime_pubsub.connect(url.replace("ws://", "http://"), reconnect=policy):
                pass

        await capture(refused)
        await capture(forbidden)
        await capture(unreachable)
        await capture(bad_scheme)

        async with realtime_pubsub.connect(url, reconnect=FAST, max_message_size=4096) as client:
            gw.acks = False
            receipt = await client.publish("t", 1)
            await capture(lambda: receipt.wait_for_ack(timeout=0.01))
            request = await client.send(1)
            await capture(lambda: request.wait_for_reply(timeout=0.01))
            await capture(lambda: client.wait_for("nothing.*", timeout=0.01))
            await capture(lambda: client.publish("t", "x" * 10_000))
            await capture(lambda: client.publish("", 1))
            await capture(lambda: client.publish("t", object()))
            pending = await client.publish("t", 2)
            gw.drop_connection(client.connection.id)
            await capture(lambda: pending.wait_for_ack(timeout=5))
            errors: list[BaseException] = []
            client.on("error", errors.append)
            await client.wait_for("session.started", timeout=5)
            gw.send_raw(client.connection.id, "garbage")
            await anyio.sleep(0.1)
            raised.extend(errors)
        await capture(lambda: client.publish("t", 1))

    kinds = {type(exc).__name__ for exc in raised}
    assert {
        "AuthenticationError",
        "Forbidden",
        "ConnectError",
        "AckTimeout",
        "ReplyTimeout",
        "WaitTimeout",
        "MessageTooLarge",
        "ValueError",
        "TypeError",
        "ConnectionClosed",
        "ProtocolError",
        "ClientClosed",
    } <= kinds, kinds
    texts = [text for exc in raised for text in (str(exc), repr(exc), str(exc.__cause__))]
    assert leaks(token, *texts, caplog.text, repr(client)) == []
    assert "access_token=***" in caplog.text


def _tls(
    ca: trustme.CA,
) -> ssl.SSLContext:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    return server


async def test_wss_with_an_untrusted_certificate_is_refused_clearly() -> None:
    ca = trustme.CA()
    async with serve(ssl_context=_tls(ca)) as gw:
        url = gw.url(gw.mint_token())
        assert url.startswith("wss://")
        with pytest.raises(realtime_pubsub.CertificateError) as info:
            async with realtime_pubsub.connect(url, reconnect=FAST):
                pass
        assert "certificate" in str(info.value)
        assert isinstance(info.value, realtime_pubsub.ConnectError)


async def test_wss_with_a_context_that_trusts_it_connects() -> None:
    ca = trustme.CA()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with serve(ssl_context=_tls(ca)) as gw:
        url = gw.url(gw.mint_token(permissions=ALL_PERMISSIONS))
        async with realtime_pubsub.connect(url, ssl_context=client_context) as client:
            await client.subscribe("tls")
            async with client.listen("tls.*") as messages:
                await client.publish("tls", "secret stuff", compress=True)
                with anyio.fail_after(5):
                    message = await messages.__anext__()
            assert message.payload == "secret stuff"
            gw.drop_connection(client.connection.id)
            await client.wait_for("session.started", timeout=5)


async def test_a_client_that_fails_the_tls_handshake_does_not_hurt_the_gateway() -> None:
    ca = trustme.CA()
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with serve(ssl_context=_tls(ca)) as gw:
        async with await anyio.connect_tcp("127.0.0.1", gw.port) as tcp:
            await tcp.send(b"GET / HTTP/1.1\r\n\r\n")  # plain text to a TLS port
        url = gw.url(gw.mint_token())
        async with realtime_pubsub.connect(url, ssl_context=trusting) as client:
            assert client.connection.id


async def test_frames_over_the_limit_are_refused_before_sending(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with realtime_pubsub.connect(gw.url(gw.mint_token()), max_message_size=1000) as client:
        with pytest.raises(realtime_pubsub.MessageTooLarge, match="max_message_size"):
            await client.send("x" * 2000)
        assert client.in_flight == 0
        assert len(gw.connections()) == 1


SPELLINGS = ["access_token", "access_tok%65n", "access_%74oken", "%61ccess_token"]


@pytest.mark.parametrize("name", [*SPELLINGS, "another secret"])
async def test_the_token_is_masked_whatever_the_spelling_of_its_name(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The gateway (like the service) decodes the parameter's name, so each spelling works,
    # and none may show the token.
    caplog.set_level(logging.DEBUG)
    async with serve(secret=SECRET) as gw:
        token = gw.mint_token(permissions=ALL_PERMISSIONS)
        if name in SPELLINGS:
            url = gw.url(token).replace("access_token=", f"{name}=")
        else:
            url = gw.url(token) + f"&api_k%65y={token}"
        async with realtime_pubsub.connect(url, reconnect=FAST) as client:
            texts = [repr(client)]
            gw.drop_connection(client.connection.id)
            await client.wait_for("session.started", timeout=5)
            texts.append(repr(client))
    assert "session" in caplog.text and "connecting to" in caplog.text
    assert leaks(token, *texts, caplog.text) == []


async def test_a_token_the_server_echoes_in_its_refusal_is_not_quoted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    echoed: list[str] = []

    def refuse(protocol: ServerProtocol, request: Request) -> Response:
        echoed.append(request.path)
        query = request.path.partition("?")[2]
        token = query.partition("=")[2]
        return protocol.reject(401, f"Unauthorized: bad token {token!r} (in {request.path})")

    async with raw_server(on_request=refuse) as url:
        token = url.rpartition("=")[2]
        with pytest.raises(realtime_pubsub.AuthenticationError) as info:
            async with realtime_pubsub.connect(url, reconnect=FAST):
                pass
    assert echoed, "the server saw the handshake"
    assert "Unauthorized: bad token" in str(info.value)
    assert token not in str(info.value) and token not in repr(info.value)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("realtime_pubsub")]
    assert ours and not [line for line in ours if token in line]
    assert "***" in str(info.value)


async def test_the_command_line_never_prints_the_token(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    token = gw.mint_token(permissions=ALL_PERMISSIONS)
    for name in SPELLINGS[:3]:
        url = gw.url(token).replace("access_token=", f"{name}=")
        for logs in ("--debug", "--ack"):  # the full log, or the status lines
            command = ["publish", "chat", "hi", logs, "--url", url]
            result = await anyio.run_process(
                [sys.executable, "-m", "realtime_pubsub", *command], check=False
            )
            output = result.stdout.decode() + result.stderr.decode()
            assert result.returncode == 0, output
            assert "connecting to" in output
            assert leaks(token, output) == []


def _server_context(problem: str, ca: trustme.CA) -> ssl.SSLContext:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    now = datetime.datetime.now(datetime.timezone.utc)
    if problem == "wrong host":
        cert = ca.issue_cert("example.org")
    elif problem == "expired":
        day = datetime.timedelta(days=1)
        cert = ca.issue_cert("127.0.0.1", not_before=now - 10 * day, not_after=now - day)
    else:
        cert = ca.issue_cert("127.0.0.1")
    cert.configure_cert(server)
    return server


@pytest.mark.parametrize("transport", ["websockets", "trio-websocket"])
@pytest.mark.parametrize("problem", ["untrusted", "wrong host", "expired"])
async def test_a_certificate_that_is_not_valid_ends_the_block_after_one_attempt(
    transport: str, problem: str, anyio_backend: str
) -> None:
    if transport == "trio-websocket" and anyio_backend != "trio":
        pytest.skip("trio-websocket runs on trio only")
    ca = trustme.CA()
    client_context = ssl.create_default_context()
    if problem != "untrusted":
        ca.configure_trust(client_context)
    options: dict[str, Any] = {"ssl_context": client_context, "reconnect": FAST}
    if transport == "trio-websocket":
        from realtime_pubsub.transports import TrioWebsocketTransport

        options["transport"] = TrioWebsocketTransport()
    async with serve(ssl_context=_server_context(problem, ca)) as gw:
        attempts = 0

        def provider() -> str:
            nonlocal attempts
            attempts += 1
            return gw.url(gw.mint_token())

        with anyio.fail_after(10), pytest.raises(realtime_pubsub.CertificateError) as info:
            async with realtime_pubsub.connect(provider, **options):
                pass
    assert attempts == 1
    assert "certificate" in str(info.value)
