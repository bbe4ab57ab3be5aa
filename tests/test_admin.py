"""The admin clients against the local gateway's HTTP admin API, over loopback: each test is
written once and runs with the async client and with the sync one (tests/admin_clients.py),
on trio and on asyncio."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trustme

import realtime_pubsub
from realtime_pubsub import ConnectionInfo, ReconnectPolicy
from realtime_pubsub.admin import AdminClient, AsyncAdminClient
from realtime_pubsub.gateway import AppConfig, Gateway, KeyConfig, serve
from realtime_pubsub.testing import ALL_PERMISSIONS

from .admin_clients import ADMIN_KINDS, admin_client, relay, silent_server
from .keys import OTHER_SECRET, SECRET
from .raw import connect as raw_connect
from .support import client_for, next_message

pytestmark = pytest.mark.anyio

FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)


@pytest.fixture(params=ADMIN_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    """A gateway whose admin tokens are verified with its secret."""
    async with serve(secret=SECRET) as gateway:
        yield gateway


def admin(kind: str, gw: Gateway, token: Any = None, **options: Any) -> Any:
    """An admin client of ``kind`` for ``gw``'s default app, with every role by default."""
    token = token if token is not None else gw.mint_admin_token()
    options.setdefault("base_url", gw.http_url)
    return admin_client(kind, "default", token, **options)


def nowhere() -> str:
    """A base URL nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class CountingToken:
    """A token function that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return "token"


# --------------------------------------------------------------------------- publish


@pytest.mark.parametrize("message", ["hello", {"headline": "hi", "n": [1, 2]}, 42])
async def test_publish_reaches_a_websocket_subscriber_as_the_raw_message(
    kind: str, gw: Gateway, message: Any
) -> None:
    async with client_for(gw) as reader, admin(kind, gw) as api:
        await reader.subscribe("news")
        async with reader.listen("news.*") as messages:
            await gw.wait_for_subscribers("news")
            await api.publish("news", message)
            received = await next_message(messages)
    assert (received.topic, received.message_type) == ("news", "broadcast")
    assert received.data == message
    assert received.payload == message
    assert received.client is None
    assert received.compression is False


async def test_publish_with_compress_arrives_compressed(kind: str, gw: Gateway) -> None:
    async with raw_connect(gw.url(gw.mint_token())) as reader, admin(kind, gw) as api:
        await reader.subscribe("news")
        await gw.wait_for_subscribers("news")
        await api.publish("news", {"big": "x" * 1000}, compress=True)
        await api.publish("news", "plain")
        compressed, binary = await reader.recv_frame()
        plain, text_binary = await reader.recv_frame()
    assert (binary, text_binary) == (True, False)
    assert compressed == {"topic": "news", "messageType": "broadcast", "data": {"big": "x" * 1000}}
    assert plain["data"] == "plain"


async def test_publish_reaches_only_the_apps_own_subscribers(kind: str, gw: Gateway) -> None:
    other = gw.url(gw.mint_token(permissions=ALL_PERMISSIONS), app_id="other")
    async with (
        realtime_pubsub.connect(other) as outsider,
        client_for(gw) as insider,
        admin(kind, gw) as api,
    ):
        await outsider.subscribe("news")
        await insider.subscribe("news")
        async with outsider.listen("news.*") as theirs, insider.listen("news.*") as ours:
            await gw.wait_for_subscribers("news", 2)
            await api.publish("news", 1)
            assert (await next_message(ours)).data == 1
            # What the outsider gets next is what its own app publishes.
            await outsider.publish("news", 2)
            assert (await next_message(theirs)).payload == 2


# --------------------------------------------------------------------------- unsubscribe


async def test_unsubscribe_by_subject_stops_delivery_to_that_subject_only(
    kind: str, gw: Gateway
) -> None:
    async with (
        client_for(gw, token=gw.mint_token(subject="alice")) as alice,
        client_for(gw, token=gw.mint_token(subject="bob")) as bob,
        admin(kind, gw) as api,
    ):
        for client in (alice, bob):
            await client.subscribe("news/sport")
            await client.subscribe("chat")
        async with alice.listen("**") as alice_gets, bob.listen("**") as bob_gets:
            await gw.wait_for_subscribers("news/sport", 2)
            await gw.wait_for_subscribers("chat", 2)
            await api.unsubscribe("alice", ["news/*"])
            assert {c.subject: c.subscriptions for c in gw.connections()} == {
                "alice": {"chat"},
                "bob": {"news/sport", "chat"},
            }
            await api.publish("news/sport", "goal")
            await api.publish("chat", "hi")
            assert [(await next_message(bob_gets)).data for _ in range(2)] == ["goal", "hi"]
            # Frames arrive in order: had news/sport reached alice, it would come first.
            assert (await next_message(alice_gets)).data == "hi"
        # The client was not told: it still believes it is subscribed.
        assert alice.subscriptions == {"news/sport", "chat"}


async def test_unsubscribing_a_subject_nobody_has_is_no_error(kind: str, gw: Gateway) -> None:
    async with admin(kind, gw) as api:
        await api.unsubscribe("nobody", ("*",))


# --------------------------------------------------------------------------- terminate


async def test_terminate_connection_closes_it_and_its_client_comes_back(
    kind: str, gw: Gateway
) -> None:
    async with (
        client_for(gw, reconnect=FAST) as target,
        client_for(gw, reconnect=FAST) as bystander,
        admin(kind, gw) as api,
    ):
        await target.subscribe("news")
        await gw.wait_for_subscribers("news")
        old, untouched = target.connection.id, bystander.connection.id
        closes: list[Any] = []
        target.on("close", closes.append)
        await api.terminate_connection(old)
        welcome: ConnectionInfo = await target.wait_for("session.started", timeout=10)
        assert welcome.id != old
        assert [(c.code, c.reason) for c in closes] == [
            (1001, "Connection terminated by an administrator")
        ]
        # Its subscriptions are restored on the new connection; the other one is untouched.
        await gw.wait_for_subscribers("news")
        assert {c.id for c in gw.connections()} == {welcome.id, untouched}
        async with target.listen("news.*") as messages:
            await api.publish("news", "back")
            assert (await next_message(messages)).data == "back"


async def test_terminate_connections_closes_every_connection_of_the_app_only(
    kind: str, gw: Gateway
) -> None:
    other = gw.url(gw.mint_token(), app_id="other")
    async with (
        raw_connect(gw.url(gw.mint_token())) as one,
        raw_connect(gw.url(gw.mint_token())) as two,
        raw_connect(other) as outsider,
        admin(kind, gw) as api,
    ):
        await api.terminate_connections()
        for client in (one, two):
            assert await client.expect_close() == (
                1001,
                "Connection terminated by an administrator",
            )
        assert [c.id for c in gw.connections()] == [outsider.id]


async def test_a_terminated_client_whose_next_token_is_refused_stops(
    kind: str, gw: Gateway
) -> None:
    """How to keep a user out: stop giving them tokens, then terminate their connection."""
    tokens = iter([gw.mint_token(subject="mallory"), gw.mint_token(ttl=-5)])

    def url() -> str:
        return gw.url(next(tokens))

    with pytest.raises(realtime_pubsub.AuthenticationError) as refused:  # noqa: PT012
        async with (
            admin(kind, gw) as api,
            realtime_pubsub.connect(url, reconnect=FAST) as client,
        ):
            await api.terminate_connection(client.connection.id)
            await anyio.sleep_forever()
    assert refused.value.status == 401


async def test_terminating_an_unknown_connection_is_404(kind: str, gw: Gateway) -> None:
    async with admin(kind, gw) as api:
        with pytest.raises(realtime_pubsub.AdminAPIError) as failed:
            await api.terminate_connection("no-such-connection")
    assert failed.value.status == 404
    assert "unknown connection" in str(failed.value)


# --------------------------------------------------------------------------- refusals


OPERATIONS = {
    "publish": lambda api: api.publish("news", 1),
    "unsubscribe": lambda api: api.unsubscribe("alice", ["*"]),
    "terminate_connection": lambda api: api.terminate_connection("x"),
    "terminate_connections": lambda api: api.terminate_connections(),
}
ROLE_OF = {
    "publish": "Publisher",
    "unsubscribe": "SubscribersAdmin",
    "terminate_connection": "ConnectionsAdmin",
    "terminate_connections": "ConnectionsAdmin",
}


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_a_token_without_the_role_is_forbidden(
    kind: str, gw: Gateway, operation: str
) -> None:
    roles = [role for role in ("Publisher", "SubscribersAdmin", "ConnectionsAdmin")]
    roles.remove(ROLE_OF[operation])
    async with admin(kind, gw, gw.mint_admin_token(roles=roles)) as api:
        with pytest.raises(realtime_pubsub.Forbidden) as forbidden:
            await OPERATIONS[operation](api)
    assert forbidden.value.code == 403
    assert forbidden.value.reason == f"the token lacks the {ROLE_OF[operation]} role"
    assert "403" in str(forbidden.value)


async def test_a_topic_outside_allowed_topics_is_forbidden(kind: str, gw: Gateway) -> None:
    token = gw.mint_admin_token(roles=["Publisher"], allowed_topics=["chat/*"])
    async with client_for(gw) as reader, admin(kind, gw, token) as api:
        await reader.subscribe("chat/1")
        async with reader.listen("chat/1.*") as messages:
            await gw.wait_for_subscribers("chat/1")
            with pytest.raises(realtime_pubsub.Forbidden, match="allowedTopics"):
                await api.publish("news", 1)
            await api.publish("chat/1", 2)
            assert (await next_message(messages)).data == 2


@pytest.mark.parametrize("token", ["garbage", "other-key", "expired", "client"])
async def test_a_bad_token_is_refused_with_401(kind: str, gw: Gateway, token: str) -> None:
    async with serve(secret=OTHER_SECRET) as other:
        value = {
            "garbage": "not.a.jwt",
            "other-key": other.mint_admin_token(),
            "expired": gw.mint_admin_token(ttl=-5),
            "client": gw.mint_token(ttl=None, claims={"roles": ["ConnectionsAdmin"]}),
        }[token]
    if token == "client":
        # A client token is signed with the authKey: refused where the two keys differ.
        apps = {"default": AppConfig(KeyConfig(SECRET), admin_key=KeyConfig(OTHER_SECRET))}
        async with serve(apps=apps) as keyed:
            value = keyed.mint_token(claims={"roles": ["ConnectionsAdmin"]})
            async with admin(kind, keyed, value) as api:
                with pytest.raises(realtime_pubsub.AuthenticationError) as refused:
                    await api.terminate_connections()
    else:
        async with admin(kind, gw, value) as api:
            with pytest.raises(realtime_pubsub.AuthenticationError) as refused:
                await api.terminate_connections()
    assert refused.value.status == 401
    assert value not in str(refused.value)


async def test_an_unknown_app_is_404(kind: str, gw: Gateway) -> None:
    async with serve(secret=SECRET, app_id="mine") as only:
        api_context = admin_client(
            kind, "someone-else", only.mint_admin_token(), base_url=only.http_url
        )
        async with api_context as api:
            with pytest.raises(realtime_pubsub.AdminAPIError) as failed:
                await api.publish("news", 1)
    assert failed.value.status == 404


# --------------------------------------------------------------------------- arguments


BAD_CALLS = {
    "empty topic": lambda api: api.publish("", 1),
    "topic not a string": lambda api: api.publish(5, 1),
    "no message": lambda api: api.publish("t", None),
    "compress not a bool": lambda api: api.publish("t", 1, compress="yes"),
    "empty subject": lambda api: api.unsubscribe("", ["*"]),
    "no pattern": lambda api: api.unsubscribe("s", []),
    "51 patterns": lambda api: api.unsubscribe("s", [f"p{n}" for n in range(51)]),
    "one string for the patterns": lambda api: api.unsubscribe("s", "chat/*"),
    "an empty pattern": lambda api: api.unsubscribe("s", ["ok", ""]),
    "empty connection id": lambda api: api.terminate_connection(""),
}


@pytest.mark.parametrize("call", BAD_CALLS)
async def test_bad_arguments_raise_value_error_before_any_request(kind: str, call: str) -> None:
    token = CountingToken()
    # Nothing listens there: a request would be a ConnectError.
    async with admin_client(kind, "app", token, base_url=nowhere(), retries=0) as api:
        with pytest.raises(ValueError):
            await BAD_CALLS[call](api)
    assert token.calls == 0


async def test_fifty_patterns_are_fine(kind: str, gw: Gateway) -> None:
    async with admin(kind, gw) as api:
        await api.unsubscribe("s", [f"p{n}" for n in range(50)])


async def test_a_message_that_is_not_json_is_a_type_error(kind: str, gw: Gateway) -> None:
    async with admin(kind, gw) as api:
        with pytest.raises(TypeError, match="JSON-serializable"):
            await api.publish("t", object())


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"app_id": ""}, ValueError),
        ({"token": ""}, ValueError),
        ({"token": 5}, TypeError),
        ({"base_url": "ws://127.0.0.1:1"}, ValueError),
        ({"base_url": "127.0.0.1:1"}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"retries": -1}, ValueError),
    ],
)
@pytest.mark.parametrize("cls", [AdminClient, AsyncAdminClient])
def test_bad_constructor_arguments(
    cls: type[AdminClient | AsyncAdminClient], arguments: dict[str, Any], error: type[Exception]
) -> None:
    options: dict[str, Any] = {"app_id": "app", "token": "t", **arguments}
    with pytest.raises(error):
        cls(options.pop("app_id"), options.pop("token"), **options)


# --------------------------------------------------------------------------- tokens


async def test_a_token_function_is_called_before_every_request(kind: str, gw: Gateway) -> None:
    minted: list[str] = []

    def token() -> str:
        minted.append(gw.mint_admin_token(ttl=5))
        return minted[-1]

    async with admin(kind, gw, token) as api:
        await api.publish("t", 1)
        await api.unsubscribe("s", ["*"])
        await api.terminate_connections()
    assert len(minted) == 3


async def test_the_async_client_takes_an_async_token_function(gw: Gateway) -> None:
    calls = 0

    async def token() -> str:
        nonlocal calls
        calls += 1
        await anyio.lowlevel.checkpoint()
        return gw.mint_admin_token(ttl=5)

    async with AsyncAdminClient("default", token, base_url=gw.http_url) as api:
        await api.publish("t", 1)
        await api.publish("t", 2)
    assert calls == 2


def test_the_sync_client_refuses_an_async_token_function() -> None:
    async def token() -> str:
        return "t"

    with AdminClient("app", token, base_url="http://127.0.0.1:1") as api:  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="AsyncAdminClient"):
            api.terminate_connections()


async def test_a_token_function_that_returns_no_string_is_a_type_error(
    kind: str, gw: Gateway
) -> None:
    async with admin(kind, gw, lambda: None) as api:
        with pytest.raises(TypeError, match="must be a string"):
            await api.terminate_connections()


async def test_the_token_is_in_no_error_repr_or_log(
    kind: str, gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    token = gw.mint_admin_token(roles=["Publisher"], allowed_topics=["chat"])
    raised: list[BaseException] = []
    base_urls = [gw.http_url, nowhere()]
    for base_url in base_urls:
        async with admin_client(kind, "default", token, base_url=base_url, retries=1) as api:
            for call in (
                api.publish("news", 1),
                api.terminate_connections(),
                api.terminate_connection("someone"),
            ):
                with pytest.raises(realtime_pubsub.RealtimePubSubError) as caught:
                    await call
                raised.append(caught.value)
    assert {type(e).__name__ for e in raised} == {"Forbidden", "ConnectError"}
    texts = ["".join(traceback.format_exception(e)) for e in raised]
    texts += [repr(e) for e in raised]
    reprs = [repr(AdminClient("app", token)), repr(AsyncAdminClient("app", token))]
    for text in [*texts, *reprs, caplog.text]:
        assert token not in text
        for part in token.split("."):
            assert part not in text
    assert all("\n" not in str(e) for e in raised)


# --------------------------------------------------------------------------- network failures


async def test_the_deletes_and_unsubscribe_are_retried_after_a_network_failure(
    kind: str, gw: Gateway
) -> None:
    async with raw_connect(gw.url(gw.mint_token())) as client:
        for operation in ("terminate_connection", "unsubscribe", "terminate_connections"):
            async with (
                relay(gw.port, fail=1) as flaky,
                admin_client(
                    kind,
                    "default",
                    gw.mint_admin_token(),
                    base_url=f"http://127.0.0.1:{flaky.port}",
                ) as api,
            ):
                if operation == "terminate_connection":
                    with pytest.raises(realtime_pubsub.AdminAPIError):  # the answer came
                        await api.terminate_connection("x")
                elif operation == "unsubscribe":
                    await api.unsubscribe("s", ["*"])
                else:
                    await api.terminate_connections()
                assert flaky.accepted == 2
        assert (await client.expect_close())[0] == 1001


async def test_a_publish_is_not_retried_unless_asked(kind: str, gw: Gateway) -> None:
    async with client_for(gw) as reader:
        await reader.subscribe("news")
        async with reader.listen("news.*") as messages:
            await gw.wait_for_subscribers("news")
            async with relay(gw.port, fail=1) as flaky:
                url = f"http://127.0.0.1:{flaky.port}"
                async with admin(kind, gw, base_url=url) as api:
                    with pytest.raises(realtime_pubsub.ConnectError):
                        await api.publish("news", "lost")
                    assert flaky.accepted == 1
                    # The relay passes the next connections on.
                    await api.publish("news", "sent")
                    assert (await next_message(messages)).data == "sent"
            async with relay(gw.port, fail=1) as flaky:
                url = f"http://127.0.0.1:{flaky.port}"
                async with admin(kind, gw, base_url=url) as api:
                    await api.publish("news", "retried", retry=True)
                    assert flaky.accepted == 2
                    assert (await next_message(messages)).data == "retried"


async def test_an_unreachable_api_is_a_connect_error_after_the_retries(kind: str) -> None:
    token, base_url = CountingToken(), nowhere()
    async with admin_client(kind, "app", token, base_url=base_url, retries=2) as api:
        with pytest.raises(realtime_pubsub.ConnectError) as failed:
            await api.terminate_connections()
    assert token.calls == 3
    assert base_url in str(failed.value)
    # The network's own words, not the HTTP library's summary of them.
    assert str(failed.value).endswith(": connection refused")


async def test_an_api_that_does_not_answer_is_a_connect_timeout(kind: str) -> None:
    async with silent_server() as port:
        base_url = f"http://127.0.0.1:{port}"
        async with admin_client(kind, "app", "t", base_url=base_url, timeout=0.2) as api:
            with pytest.raises(realtime_pubsub.ConnectTimeout) as failed:
                await api.publish("t", 1)
    assert isinstance(failed.value, TimeoutError)


# --------------------------------------------------------------------------- the client itself


async def test_a_closed_client_refuses_requests(kind: str, gw: Gateway) -> None:
    async with admin(kind, gw) as api:
        pass
    with pytest.raises(realtime_pubsub.ClientClosed):
        await api.terminate_connections()


async def test_https_with_a_context_that_trusts_the_gateway(kind: str) -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with serve(secret=SECRET, ssl_context=server) as gw:
        assert gw.http_url.startswith("https://")
        async with admin(kind, gw, ssl_context=trusting) as api:
            await api.terminate_connections()
        async with admin(kind, gw, retries=5) as api:
            with pytest.raises(realtime_pubsub.CertificateError, match="certificate"):
                await api.terminate_connections()


async def test_an_asymmetric_admin_key(kind: str) -> None:
    from .keys import rsa_pair

    pair = rsa_pair()
    admin_key = KeyConfig(pair.public_pem, ["RS256"], private_key=pair.private_pem)
    async with serve(apps={"default": AppConfig(KeyConfig(SECRET), admin_key)}) as gw:
        async with admin(kind, gw) as api:
            await api.terminate_connections()


def test_import_realtime_pubsub_does_not_import_httpx() -> None:
    code = (
        "import sys, realtime_pubsub, realtime_pubsub.gateway, realtime_pubsub.blocking\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
        "realtime_pubsub.admin.AdminClient\n"
        "assert 'httpx' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
