"""The examples, run as a user would: each as its own process, against the
``realtime-pubsub gateway`` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import pytest

from realtime_pubsub.gateway import serve
from realtime_pubsub.gateway._auth import mint_token

from .keys import SECRET
from .raw import Lines, connect, running, stopped_by_ctrl_c, subscribed

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parent.parent / "examples"
BACKEND = (
    "realtime:subscriber:read:topic:secure/inbound",
    "realtime:publisher:write:topic:*",
)


@pytest.fixture
async def gateway_port() -> AsyncIterator[int]:
    command = [sys.executable, "-m", "realtime_pubsub", "gateway", "--port", "0"]
    async with running(command) as process:
        line = await Lines(process.stdout).until("listening on")
        yield int(line.rsplit(":", 1)[1])
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            await process.wait()


def url(port: int, subject: str, permissions: tuple[str, ...] = BACKEND) -> str:
    token = mint_token(secret=None, subject=subject, permissions=permissions)
    return f"ws://127.0.0.1:{port}/apps/examples?access_token={token}"


def example(name: str, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / name), *args]


async def test_rpc_backend_caller_and_presence_monitor(gateway_port: int) -> None:
    monitor_command = example(
        "presence_monitor.py", "--backend", "asyncio", "--url", url(gateway_port, "monitor")
    )
    backend_command = example("rpc_backend.py", "--url", url(gateway_port, "backend"))
    async with (
        running(monitor_command) as monitor,
        running(backend_command) as backend,
    ):
        monitor_out = Lines(monitor.stdout)
        await monitor_out.until("monitoring as")
        await Lines(backend.stdout).until("backend ready")
        caller = url(gateway_port, "caller", ("realtime:publisher:write:topic:*",))
        added = await anyio.run_process(
            example("rpc_caller.py", "add", "1", "2", "3.5", "--url", caller)
        )
        assert added.stdout.decode().strip() == "ok: 6.5"
        unknown = await anyio.run_process(
            example("rpc_caller.py", "divide", "--url", caller), check=False
        )
        assert unknown.returncode == 1
        assert unknown.stdout.decode().startswith("error:")
        assert "caller" in await monitor_out.until("connected: caller")
        assert "caller" in await monitor_out.until("disconnected: caller")
        for process in (monitor, backend):
            await stopped_by_ctrl_c(process)


async def test_two_chat_clients_talk(gateway_port: int) -> None:
    alice_command = example("chat.py", "--name", "alice", "--url", url(gateway_port, "alice"))
    async with running(alice_command) as alice:
        alice_out = Lines(alice.stdout)
        await alice_out.until("joined lobby as alice")
        bob = await anyio.run_process(
            example("chat.py", "--name", "bob", "--url", url(gateway_port, "bob")),
            input=b"hello alice\nbye\n",
        )
        assert "joined lobby as bob" in bob.stdout.decode()
        assert await alice_out.until("bob: hello alice") == "bob: hello alice"
        assert await alice_out.until("bob: bye") == "bob: bye"
        assert alice.stdin is not None
        await alice.stdin.aclose()
        with anyio.fail_after(10):
            assert await alice.wait() == 0


async def test_ctrl_c_stops_a_chat_waiting_for_input(gateway_port: int) -> None:
    command = example("chat.py", "--name", "alice", "--url", url(gateway_port, "alice"))
    async with running(command) as alice:
        await Lines(alice.stdout).until("joined lobby as alice")
        await stopped_by_ctrl_c(alice)


async def test_an_admin_task_announces_mutes_and_disconnects() -> None:
    """examples/admin_task.py, on each backend, against a gateway that checks its tokens."""
    async with serve(secret=SECRET) as gw:
        env = {
            **os.environ,
            "REALTIME_PUBSUB_APP_ID": "default",
            "REALTIME_PUBSUB_ADMIN_KEY": SECRET,
            "REALTIME_PUBSUB_API_URL": gw.http_url,
        }

        async def task(*args: str) -> str:
            result = await anyio.run_process(example("admin_task.py", *args), env=env)
            return result.stdout.decode().strip()

        alice_url = gw.url(gw.mint_token(subject="alice"))
        async with connect(alice_url) as alice, connect(gw.url(gw.mint_token())) as bob:
            for client in (alice, bob):
                await subscribed(gw, client, "announcements")
                await subscribed(gw, client, "chat/lobby")
            assert await task("announce", "Maintenance at 22:00") == "announced"
            for client in (alice, bob):
                frame = await client.recv_json()
                assert frame["data"] == {"text": "Maintenance at 22:00"}
            assert await task("mute", "alice", "--backend", "trio") == "muted alice"
            subscriptions = {c.subject: c.subscriptions for c in gw.connections()}
            assert subscriptions == {
                "alice": {"announcements"},
                "user": {"announcements", "chat/lobby"},
            }
            assert await task("disconnect-all") == "disconnected every client"
            for client in (alice, bob):
                assert (await client.expect_close())[0] == 1001
        refused = await anyio.run_process(
            example("admin_task.py", "announce", "hi"),
            env={**env, "REALTIME_PUBSUB_ADMIN_KEY": "not the adminKey " * 2},
            check=False,
        )
        assert refused.returncode == 1
        assert refused.stderr.decode().startswith("failed: admin API refused")


def test_examples_have_a_docstring_that_says_how_to_run_them() -> None:
    for path in EXAMPLES.glob("[!_]*.py"):
        result = subprocess.run([sys.executable, str(path), "--help"], capture_output=True)
        assert result.returncode == 0, path
