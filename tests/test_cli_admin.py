"""``realtime-pubsub admin ...`` and ``realtime-pubsub token --admin``, run for real as
subprocesses against a gateway: one line on success, one line and exit status 1 on
failure, 2 for bad usage, and never the token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import jwt
import pytest

from realtime_pubsub.gateway import Gateway, serve
from realtime_pubsub.tokens import admin_token

from .keys import SECRET, rsa_pair
from .raw import connect, gateway_command, subscribed
from .support import client_for, next_message

pytestmark = pytest.mark.anyio

COMMAND = [sys.executable, "-m", "realtime_pubsub"]
VARIABLES = ("REALTIME_PUBSUB_APP_ID", "REALTIME_PUBSUB_ADMIN_TOKEN", "REALTIME_PUBSUB_API_URL")


async def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    result = await anyio.run_process([*COMMAND, *args], check=False, env={**clean, **(env or {})})
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def settings(gw: Gateway, token: str | None = None) -> dict[str, str]:
    """The environment that points ``admin`` commands at ``gw``."""
    return {
        "REALTIME_PUBSUB_APP_ID": "default",
        "REALTIME_PUBSUB_ADMIN_TOKEN": token or gw.mint_admin_token(),
        "REALTIME_PUBSUB_API_URL": gw.http_url,
    }


def one_line(result: subprocess.CompletedProcess[str], token: str) -> str:
    """The one line the command printed (on stdout for success, stderr for failure),
    checking that it printed nothing else and no part of the token."""
    output = result.stdout + result.stderr
    for part in (token, *token.split(".")):
        assert part not in output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with serve(secret=SECRET) as gateway:
        yield gateway


# --------------------------------------------------------------------------- the commands


async def test_admin_publish_reaches_subscribers(gw: Gateway) -> None:
    env = settings(gw)
    async with client_for(gw) as reader:
        await reader.subscribe("news")
        async with reader.listen("news.*") as messages:
            await gw.wait_for_subscribers("news")
            result = await run("admin", "publish", "news", '{"headline": "hi"}', env=env)
            assert result.returncode == 0, result.stderr
            assert one_line(result, env["REALTIME_PUBSUB_ADMIN_TOKEN"]) == "published to 'news'"
            first = await next_message(messages)
            result = await run(
                "admin", "publish", "news", "not json", "--compress", "--backend", "trio", env=env
            )
            assert result.returncode == 0, result.stderr
            second = await next_message(messages)
    assert (first.data, first.message_type, first.compression) == (
        {"headline": "hi"},
        "broadcast",
        False,
    )
    assert (second.data, second.compression) == ("not json", True)


async def test_admin_unsubscribe_removes_the_subjects_subscriptions(gw: Gateway) -> None:
    async with connect(gw.url(gw.mint_token(subject="alice"))) as alice:
        await subscribed(gw, alice, "news/sport")
        await subscribed(gw, alice, "chat")
        result = await run(
            "admin", "unsubscribe", "--subject", "alice", "--pattern", "news/*",
            "--pattern", "other", env=settings(gw),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "unsubscribed 'alice' from news/*, other"
        assert [c.subscriptions for c in gw.connections()] == [{"chat"}]


async def test_admin_terminate_closes_one_connection_or_all(gw: Gateway) -> None:
    env = settings(gw)
    async with (
        connect(gw.url(gw.mint_token())) as one,
        connect(gw.url(gw.mint_token())) as two,
        connect(gw.url(gw.mint_token())) as three,
    ):
        result = await run("admin", "terminate", one.id, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"terminated connection {one.id!r}"
        assert (await one.expect_close())[0] == 1001
        assert {c.id for c in gw.connections()} == {two.id, three.id}
        result = await run(
            "admin", "terminate", "--all", "--app-id", "default", "--api-url", gw.http_url,
            "--token", gw.mint_admin_token(),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "terminated every connection of 'default'"
        for client in (two, three):
            assert (await client.expect_close())[0] == 1001


# --------------------------------------------------------------------------- failures


async def test_refusals_fail_in_one_line_with_status_1(gw: Gateway) -> None:
    publisher = gw.mint_admin_token(roles=["Publisher"], allowed_topics=["chat/*"])
    async with serve(secret="another secret, of at least thirty-two bytes") as other:
        foreign = other.mint_admin_token()
    cases = [
        (publisher, ("publish", "news", "1"), "HTTP 403: the token's allowedTopics"),
        (publisher, ("terminate", "--all"), "HTTP 403: the token lacks the ConnectionsAdmin"),
        (foreign, ("terminate", "--all"), "HTTP 401: invalid admin token"),
        (gw.mint_admin_token(), ("terminate", "gone"), "HTTP 404: unknown connection"),
    ]
    for token, args, error in cases:
        result = await run("admin", *args, env=settings(gw, token))
        assert result.returncode == 1, result
        line = one_line(result, token)
        assert line.startswith("realtime-pubsub: error: ")
        assert error in line


async def test_an_unreachable_api_fails_in_one_line() -> None:
    token = admin_token(SECRET, subject="ops", roles=["Publisher"])
    env = {
        "REALTIME_PUBSUB_APP_ID": "app",
        "REALTIME_PUBSUB_ADMIN_TOKEN": token,
        "REALTIME_PUBSUB_API_URL": "http://127.0.0.1:1",
    }
    result = await run("admin", "publish", "news", "1", "--timeout", "5", env=env)
    assert result.returncode == 1
    line = one_line(result, token)
    assert "http://127.0.0.1:1: connection refused" in line
    # The local gateway serves the admin API: it may just not be running.
    assert line.endswith(
        "(is the local gateway running? Start it with: realtime-pubsub gateway --port 1)"
    )


@pytest.mark.parametrize(
    ("args", "missing", "error"),
    [
        (("terminate", "--all"), "REALTIME_PUBSUB_APP_ID", "no app id: pass --app-id"),
        (("terminate", "--all"), "REALTIME_PUBSUB_ADMIN_TOKEN", "no token: pass --token"),
        (("terminate",), None, "a CONNECTION_ID or --all"),
        (("terminate", "abc", "--all"), None, "a CONNECTION_ID or --all"),
        (("unsubscribe", "--subject", "s"), None, "--pattern"),
        (("publish", "news"), None, "MESSAGE"),
        (("publish", "", "1"), None, "topic must be a non-empty string"),
        (("publish", "t", "1", "--api-url", "ws://h"), None, "--api-url: the admin API's URL"),
        (("publish", "news", "1", "--timeout", "0"), None, "argument --timeout"),
    ],
)
async def test_bad_usage_exits_2(
    gw: Gateway, args: tuple[str, ...], missing: str | None, error: str
) -> None:
    env = {k: v for k, v in settings(gw).items() if k != missing}
    result = await run("admin", *args, env=env)
    assert result.returncode == 2
    assert error in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- tokens


def token_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, "token", *args], capture_output=True, text=True)


def test_token_admin_prints_an_admin_token() -> None:
    result = token_command(
        "--admin", "--secret", SECRET, "--subject", "ops", "--role", "Publisher",
        "--role", "ConnectionsAdmin", "--allowed-topic", "news/*", "--allowed-topic", "chat",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "ops"
    assert claims["roles"] == ["Publisher", "ConnectionsAdmin"]
    assert claims["allowedTopics"] == ["news/*", "chat"]
    assert claims["exp"] - claims["iat"] == 300
    assert "permissions" not in claims


def test_token_admin_signs_with_a_private_key(tmp_path: Path) -> None:
    pair = rsa_pair()
    key_file = tmp_path / "admin.pem"
    key_file.write_text(pair.private_pem)
    result = token_command(
        "--admin", "--role", "SubscribersAdmin", "--private-key", str(key_file), "--ttl", "60",
        "--issuer", "https://idp.example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(
        result.stdout.strip(),
        pair.public_pem,
        algorithms=["RS256"],
        issuer="https://idp.example.com",
    )
    assert claims["roles"] == ["SubscribersAdmin"]
    assert "allowedTopics" not in claims
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--role", "Publisher"), "--role and --allowed-topic need --admin"),
        (("--allowed-topic", "*"), "--role and --allowed-topic need --admin"),
        (("--admin",), "--admin needs at least one --role"),
        (("--admin", "--role", "Publisher", "--permission", "p"), "--permission is for client"),
    ],
)
def test_token_admin_bad_usage_exits_2(args: tuple[str, ...], error: str) -> None:
    result = token_command(*args)
    assert result.returncode == 2
    assert error in result.stderr


async def test_the_gateway_command_prints_the_admin_api_url_and_serves_it() -> None:
    async with gateway_command("--secret", SECRET) as (_, port, output):
        match = re.search(r"admin API \(HTTP\): (http://\S+)", output)
        assert match is not None
        assert match.group(1) == f"http://127.0.0.1:{port}"
        token = token_command("--admin", "--secret", SECRET, "--role", "ConnectionsAdmin")
        env = {
            "REALTIME_PUBSUB_APP_ID": "demo",
            "REALTIME_PUBSUB_ADMIN_TOKEN": token.stdout.strip(),
            "REALTIME_PUBSUB_API_URL": match.group(1),
        }
        result = await run("admin", "terminate", "--all", env=env)
        assert result.returncode == 0, result.stderr
