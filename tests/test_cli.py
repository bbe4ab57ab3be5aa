"""The ``realtime-pubsub`` command, run for real in a subprocess against a gateway."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import anyio
import jwt
import pytest

import realtime_pubsub
from realtime_pubsub.gateway import Gateway, serve
from realtime_pubsub.testing import ALL_PERMISSIONS
from realtime_pubsub.tokens import can_publish

from .raw import Lines, connect, running, stopped_by_ctrl_c

COMMAND = [sys.executable, "-m", "realtime_pubsub"]


def test_token_prints_a_jwt_with_subject_and_permissions() -> None:
    out = subprocess.run(
        [
            *COMMAND,
            "token",
            "--secret",
            "a-secret-of-at-least-thirty-two-bytes",
            "--subject",
            "alice",
            "--permission",
            "realtime:subscriber:read:topic:secure/*",
            "--ttl",
            "60",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    claims = jwt.decode(out, "a-secret-of-at-least-thirty-two-bytes", algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["permissions"] == ["realtime:subscriber:read:topic:secure/*"]


@pytest.mark.parametrize("admin", [(), ("--admin", "--role", "Publisher")], ids=["", "admin"])
def test_a_short_secret_gets_one_line_of_warning(admin: tuple[str, ...]) -> None:
    result = subprocess.run(
        [*COMMAND, "token", "--secret", "short", *admin], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert jwt.get_unverified_header(result.stdout.strip())["alg"] == "HS256"
    assert result.stderr == (
        "realtime-pubsub: warning: --secret is 5 bytes long; HS256 wants at least 32, or "
        "tokens signed with it can be forged by guessing it\n"
    )


def test_bad_usage_exits_2() -> None:
    result = subprocess.run([*COMMAND, "gateway", "--port", "x"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.anyio
async def test_gateway_serves_a_raw_client_and_stops_cleanly_on_ctrl_c() -> None:
    async with running([*COMMAND, "gateway", "--port", "0"]) as process:
        assert process.stdout is not None and process.stderr is not None
        output = b""
        with anyio.fail_after(20):
            while b"connect to:" not in output:
                output += await process.stdout.receive()
        match = re.search(rb"connect to: (ws://\S+)", output)
        assert match is not None
        template = match.group(1).decode()
        token = subprocess.run(
            [*COMMAND, "token", "--permission", "realtime:publisher:write:topic:*"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        url = template.replace("<app-id>", "demo").replace("<token>", token)
        async with connect(url) as client:
            assert client.welcome["data"]["connection"]["appId"] == "demo"
            await client.subscribe("chat")
            await client.publish("chat", "hello", id="m1")
            frames = [await client.recv_json(), await client.recv_json()]
            assert {f["messageType"] for f in frames} == {"broadcast", "ack"}
        await stopped_by_ctrl_c(process)


# --------------------------------------------------------------------------- client commands


async def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = await anyio.run_process(
        [*COMMAND, *args], check=False, env={**os.environ, **(env or {})}
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def full_url(gateway: Gateway) -> str:
    return gateway.url(gateway.mint_token(permissions=ALL_PERMISSIONS))


@pytest.mark.anyio
async def test_publish_with_ack(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with realtime_pubsub.connect(full_url(gw)) as watcher:
        await watcher.subscribe("chat")
        async with watcher.listen("chat.*") as messages:
            result = await run(
                "publish", "chat", '{"a": 1}', "--type", "text", "--ack", "--url", full_url(gw)
            )
            assert result.returncode == 0, result.stderr
            assert "acknowledged" in result.stderr
            with anyio.fail_after(5):
                message = await messages.__anext__()
    assert (message.message_type, message.payload) == ("text", {"a": 1})


@pytest.mark.anyio
async def test_publish_says_it_was_acknowledged(realtime_pubsub_gateway: Gateway) -> None:
    result = await run("publish", "chat", "hi", "--url", full_url(realtime_pubsub_gateway))
    assert result.returncode == 0, result.stderr
    last = result.stderr.splitlines()[-1]
    assert re.fullmatch(r"published to 'chat' \(id [0-9a-f]{32}\): acknowledged", last)


@pytest.mark.anyio
async def test_quiet_says_nothing_of_success(realtime_pubsub_gateway: Gateway) -> None:
    url = full_url(realtime_pubsub_gateway)
    result = await run("send", "hi", "--quiet", "--url", url)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.anyio
async def test_a_publish_the_token_does_not_allow_fails(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    url = gw.url(gw.mint_token(permissions=[can_publish("news/*")]))
    result = await run("publish", "chat", "hi", "--quiet", "--url", url)
    assert result.returncode == 1
    assert result.stderr == (
        "realtime-pubsub: error: publish to 'chat' refused: the gateway closed the "
        "connection (1008: Publishing to topic is forbidden!)\n"
    )


@pytest.mark.anyio
async def test_without_acks_a_publish_says_no_ack_came() -> None:
    async with serve(acks=False) as gw:
        url = full_url(gw)
        result = await run("publish", "chat", "hi", "--ack-timeout", "0.2", "--url", url)
        required = await run(
            "publish", "chat", "hi", "--ack-timeout", "0.2", "--ack", "--url", url
        )
    assert result.returncode == 0, result.stderr
    no_ack = r"\(id [0-9a-f]{32}\)[;,].* no ack within 0.2 s \(the app may have acks off\)"
    assert re.fullmatch(f"sent to 'chat' {no_ack}", result.stderr.splitlines()[-1])
    assert required.returncode == 1
    line = required.stderr.splitlines()[-1]
    assert re.fullmatch(f"realtime-pubsub: error: sent to 'chat' {no_ack}", line)


@pytest.mark.anyio
async def test_debug_before_the_command_logs(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    result = await run("--debug", "publish", "chat", "hi", "--url", full_url(gw))
    assert result.returncode == 0, result.stderr
    assert " DEBUG realtime_pubsub: " in result.stderr


@pytest.mark.anyio
async def test_payload_that_is_not_json_is_sent_as_a_string(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    async with realtime_pubsub.connect(full_url(gw)) as watcher:
        await watcher.subscribe("chat")
        async with watcher.listen("chat.*") as messages:
            result = await run(
                "publish", "chat", "hello there", "--compress", "--url", full_url(gw)
            )
            assert result.returncode == 0, result.stderr
            with anyio.fail_after(5):
                message = await messages.__anext__()
    assert message.payload == "hello there"
    assert message.compression is True


@pytest.mark.anyio
async def test_send_prints_the_reply(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    async with realtime_pubsub.connect(full_url(gw)) as backend:
        await backend.subscribe("secure/inbound")
        backend.on("secure/inbound.add", lambda m, reply: reply(sum(m.payload)))
        result = await run(
            "send", "[1, 2, 3]", "--type", "add", "--reply-timeout", "5",
            env={"REALTIME_PUBSUB_URL": full_url(gw)},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "ok", "data": 6}
    assert re.fullmatch(
        r"sent to the backend services \(id [0-9a-f]{32}\): replied",
        result.stderr.splitlines()[-1],
    )


@pytest.mark.anyio
async def test_listen_prints_json_lines_and_stops_on_ctrl_c(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    command = [
        *COMMAND,
        "listen",
        "news.*",
        "--subscribe",
        "news",
        "--json",
        "--url",
        full_url(gw),
    ]
    async with (
        running(command) as process,
        realtime_pubsub.connect(full_url(gw)) as publisher,
    ):
        assert process.stdout is not None
        with anyio.fail_after(20):
            await gw.wait_for_subscribers("news")
        await publisher.publish("news", {"headline": "x"}, message_type="flash")
        line = b""
        with anyio.fail_after(10):
            while b"\n" not in line:
                line += await process.stdout.receive()
        await stopped_by_ctrl_c(process)
    record = json.loads(line.splitlines()[0])
    assert record["topic"] == "news" and record["messageType"] == "flash"
    assert record["data"]["payload"] == {"headline": "x"}


@pytest.mark.anyio
async def test_listen_ends_quietly_when_its_reader_goes_away(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    listen = [*COMMAND, "listen", "chat.*", "--subscribe", "chat", "--url", full_url(gw)]
    pipeline = ["bash", "-o", "pipefail", "-c", f"{shlex.join(listen)} | head -1"]
    async with running(pipeline) as process, realtime_pubsub.connect(full_url(gw)) as publisher:
        assert process.stderr is not None
        with anyio.fail_after(20):
            await gw.wait_for_subscribers("chat")
        await publisher.publish("chat", "first")
        assert '"first"' in await Lines(process.stdout).until("chat")  # head is done
        await publisher.publish("chat", "second")  # written to a pipe nobody reads
        with anyio.fail_after(10):
            code = await process.wait()
        errors = b"".join([chunk async for chunk in process.stderr]).decode()
    assert code == 0, errors
    assert "error" not in errors and "Exception" not in errors


@pytest.mark.anyio
async def test_failures_exit_1_with_one_line(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    refused = await run("publish", "t", "1", "--url", gw.url(gw.mint_token(ttl=-5)))
    timeout = await run("send", "1", "--reply-timeout", "0.2", "--url", full_url(gw))
    for result in (refused, timeout):
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        # Status lines first ("connecting to ..."), then the one line of the error.
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert errors == [result.stderr.splitlines()[-1]]
    assert "401" in refused.stderr
    assert "access_token" not in refused.stderr or "***" in refused.stderr


@pytest.mark.anyio
async def test_missing_url_is_bad_usage() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REALTIME_PUBSUB_URL"}
    result = await anyio.run_process([*COMMAND, "publish", "t", "1"], check=False, env=env)
    assert result.returncode == 2
    assert b"REALTIME_PUBSUB_URL" in result.stderr


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_walks_through_the_protocol(backend: str) -> None:
    result = subprocess.run(
        [*COMMAND, "demo", "--backend", backend], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "demo complete" in result.stdout
    assert result.stdout.count("  ok  ") == 6


# --------------------------------------------------------------------------- progress


@pytest.mark.anyio
async def test_publish_says_where_it_connects(realtime_pubsub_gateway: Gateway) -> None:
    gw = realtime_pubsub_gateway
    result = await run("publish", "chat", "hi", "--url", full_url(gw))
    assert result.returncode == 0, result.stderr
    masked = f"ws://127.0.0.1:{gw.port}/apps/default?access_token=***"
    assert result.stderr.splitlines()[0] == f"connecting to {masked}"


@pytest.mark.anyio
async def test_each_failed_attempt_says_why_and_when_the_next_comes() -> None:
    async with serve() as gw:
        url = full_url(gw)
        await gw.stop_accepting()
        result = await run("publish", "chat", "hi", "--attempts", "3", "--url", url)
    masked = f"ws://127.0.0.1:{gw.port}/apps/default?access_token=***"
    retry = r"cannot connect: connection refused; connecting again in \d+\.\d s, attempt"
    first, second, third, error = result.stderr.splitlines()
    assert first == f"connecting to {masked}"  # once: the URL does not change
    assert re.fullmatch(f"{retry} 2 of 3", second)
    assert re.fullmatch(f"{retry} 3 of 3", third)
    assert error.startswith(f"realtime-pubsub: error: cannot connect to {masked}: ")
    assert result.returncode == 1


@pytest.mark.anyio
async def test_listen_says_when_it_loses_the_connection_and_gets_it_back(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    command = [*COMMAND, "listen", "chat.*", "--url", full_url(gw)]
    async with running(command) as process:
        status = Lines(process.stderr)
        await status.until("^listening on ")
        [connection] = gw.connections()
        gw.drop_connection(connection.id)
        lost = await status.until("^connection lost")
        assert re.fullmatch(
            r"connection lost \(1006\); reconnecting in \d+\.\d s, attempt 1", lost
        )
        assert await status.until(".") == "reconnected"
        await stopped_by_ctrl_c(process)


@pytest.mark.anyio
async def test_quiet_listen_says_nothing_but_what_it_receives(
    realtime_pubsub_gateway: Gateway,
) -> None:
    gw = realtime_pubsub_gateway
    command = [*COMMAND, "listen", "chat.*", "--subscribe", "chat", "--quiet", "--url"]
    async with running([*command, full_url(gw)]) as process:
        with anyio.fail_after(20):
            await gw.wait_for_subscribers("chat")
        async with realtime_pubsub.connect(full_url(gw)) as publisher:
            await publisher.publish("chat", "hi")
            assert "chat.broadcast" in await Lines(process.stdout).until("chat")
        assert await stopped_by_ctrl_c(process) == "stopped\n"
