"""The ``realtime-pubsub gateway`` and ``token`` commands, run for real in a subprocess."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import anyio
import jwt
import pytest

from .raw import connect

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


def test_bad_usage_exits_2() -> None:
    result = subprocess.run([*COMMAND, "gateway", "--port", "x"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.anyio
async def test_gateway_serves_a_raw_client_and_stops_cleanly_on_ctrl_c() -> None:
    async with await anyio.open_process([*COMMAND, "gateway", "--port", "0"]) as process:
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
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
        errors = b""
        async for chunk in process.stderr:
            errors += chunk
    assert code == 0
    assert b"Traceback" not in errors
