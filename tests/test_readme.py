"""README.rst's code, run as a reader runs it, so that it stays true: each Python block as a
script of its own, and the local gateway's shell commands as processes.

Every Python block defines the URL for the reader to fill in, on one line
(:data:`PLACEHOLDER`). The tests replace that line, and nothing else, with the URL of a
local gateway and a token carrying the permissions the README says the block needs.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import anyio
import anyio.abc
import pytest

import realtime_pubsub
from realtime_pubsub.gateway import Gateway
from realtime_pubsub.tokens import can_publish, can_read

from .raw import running
from .rst import code_blocks, section

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.rst").read_text(encoding="utf-8")

#: The line that defines the URL in each Python block, as the README gives it.
PLACEHOLDER = 'URL = "wss://genesis.r7.21no.de/apps/<app-id>?access_token=<JWT>"'

#: What ``realtime-pubsub token`` grants by default: publishing anywhere.
CLIENT = (can_publish("*"),)
#: A backend service's token, as the README says: it also reads ``secure/inbound``.
BACKEND = (*CLIENT, can_read("secure/inbound"))

#: How each Python block starts its work, which tells the tests how to run it.
TRIO = "trio.run(main)"
ASYNCIO = "asyncio.run(main())"
ANYIO = "anyio.run(main)"
BLOCKING = "with realtime_pubsub.blocking.connect(URL) as client:"
ADMIN = "with AdminClient(APP_ID, ADMIN_TOKEN, base_url=API_URL) as admin:"
#: The admin block's lines for the reader to fill in.
ADMIN_PLACEHOLDERS = (
    'API_URL = "https://genesis.r7.21no.de"',
    'APP_ID = "<app-id>"',
    'ADMIN_TOKEN = "<JWT with the Publisher role>"',
)


PYTHON_BLOCKS = code_blocks(README, "python")


def python_block(start: str) -> str:
    """The one Python block of README.rst with a line that starts with ``start``."""
    found = [
        block
        for block in PYTHON_BLOCKS
        if any(line.startswith(start) for line in block.splitlines())
    ]
    assert len(found) == 1, f"{len(found)} Python blocks of README.rst start {start!r}"
    return found[0]


def with_url(block: str, url: str) -> str:
    """``block`` with its URL line (and nothing else) replaced by one defining ``url``."""
    lines = block.splitlines()
    assert lines.count(PLACEHOLDER) == 1, f"this block does not define URL as expected:\n{block}"
    return "\n".join(f"URL = {url!r}" if line == PLACEHOLDER else line for line in lines)


async def run_script(script: str) -> str:
    """Run ``script`` in a Python process of its own; its output, once it has succeeded
    without a word on stderr (where a traceback or a warning would go)."""
    with anyio.fail_after(60):
        result = await anyio.run_process([sys.executable, "-c", script], check=False)
    stderr = result.stderr.decode()
    assert result.returncode == 0, f"exit status {result.returncode}:\n{stderr}"
    assert stderr == ""
    return result.stdout.decode()


async def read_until(stream: anyio.abc.ByteReceiveStream | None, text: str) -> str:
    """What ``stream`` gives up to and including ``text`` (the test fails if it never
    comes)."""
    assert stream is not None
    output = b""
    with anyio.fail_after(30):
        while text.encode() not in output:
            try:
                output += await stream.receive()
            except anyio.EndOfStream:
                pytest.fail(f"the output ended before {text!r}:\n{output.decode()}")
    return output.decode()


def test_every_python_block_is_run_by_a_test() -> None:
    starts = (TRIO, ASYNCIO, ANYIO, BLOCKING, ADMIN)
    assert sorted(PYTHON_BLOCKS) == sorted(python_block(start) for start in starts)


async def test_the_trio_quickstart_runs(realtime_pubsub_gateway: Gateway) -> None:
    url = realtime_pubsub_gateway.url(
        realtime_pubsub_gateway.mint_token(subject="reader", permissions=CLIENT)
    )
    assert await run_script(with_url(python_block(TRIO), url)) == "reader said hello\n"


async def test_the_asyncio_quickstart_runs(realtime_pubsub_gateway: Gateway) -> None:
    url = realtime_pubsub_gateway.url(
        realtime_pubsub_gateway.mint_token(subject="reader", permissions=CLIENT)
    )
    assert await run_script(with_url(python_block(ASYNCIO), url)) == "reader said hello\n"


async def test_the_request_gets_its_reply_from_the_example_backend(
    realtime_pubsub_gateway: Gateway, anyio_backend: str
) -> None:
    backend_url = realtime_pubsub_gateway.url(
        realtime_pubsub_gateway.mint_token(subject="backend", permissions=BACKEND)
    )
    url = realtime_pubsub_gateway.url(realtime_pubsub_gateway.mint_token(permissions=CLIENT))
    script = with_url(python_block(ANYIO), url)
    if anyio_backend == "trio":
        # What the block's own comment says to write for trio.
        on_trio = 'anyio.run(main, backend="trio")'
        assert on_trio in script
        script = re.sub(r"^anyio\.run\(main\)", on_trio, script, flags=re.M)
    example = [sys.executable, str(ROOT / "examples" / "rpc_backend.py"), "--url", backend_url]
    async with running(example) as backend:
        await read_until(backend.stdout, "backend ready")
        assert await run_script(script) == "6.5\n"


async def test_the_blocking_client_runs(realtime_pubsub_gateway: Gateway) -> None:
    url = realtime_pubsub_gateway.url(realtime_pubsub_gateway.mint_token(permissions=BACKEND))
    assert await run_script(with_url(python_block(BLOCKING), url)) == ""


async def test_the_admin_client_publishes(realtime_pubsub_gateway: Gateway) -> None:
    gateway = realtime_pubsub_gateway
    filled = dict(
        zip(
            ADMIN_PLACEHOLDERS,
            (
                f"API_URL = {gateway.http_url!r}",
                'APP_ID = "default"',
                f"ADMIN_TOKEN = {gateway.mint_admin_token(roles=['Publisher']).strip()!r}",
            ),
            strict=True,
        )
    )
    block = python_block(ADMIN)
    assert all(block.splitlines().count(line) == 1 for line in ADMIN_PLACEHOLDERS)
    script = "\n".join(filled.get(line, line) for line in block.splitlines())
    url = gateway.url(gateway.mint_token(permissions=CLIENT))
    async with realtime_pubsub.connect(url) as subscriber:
        await subscriber.subscribe("chat")
        async with subscriber.listen("chat.*") as messages:
            assert await run_script(script) == ""
            with anyio.fail_after(5):
                message = await messages.__anext__()
    assert message.data == {"text": "hello from a view"}


async def test_the_local_gateway_commands_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's two console blocks: the gateway in a terminal of its own, and the
    # commands typed one after the other in another. Each runs in bash, with this
    # environment's ``realtime-pubsub`` first on the PATH; the gateway listens on a free
    # port instead of 8765 (which may be taken), and the URL names that port.
    gateway_block, commands = code_blocks(section(README, "The local gateway"), "console")
    assert gateway_block == "realtime-pubsub gateway --port 8765\n"
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    on_free_port = gateway_block.strip().replace("--port 8765", "--port 0")
    async with running(["bash", "-c", f"exec {on_free_port}"]) as gateway:
        banner = await read_until(gateway.stdout, "press Ctrl-C")
        port = re.search(r"listening on [\d.]+:(\d+)", banner)
        assert port is not None, banner
        assert commands.count(":8765/") == 1
        # The shell's state so far: the variables set and exported by earlier lines.
        state: list[str] = []
        listening: list[anyio.abc.Process] = []
        try:
            for line in commands.replace(":8765/", f":{port.group(1)}/").splitlines():
                if re.match(r"(export )?\w+=", line):
                    state.append(line)
                elif line.endswith("&"):
                    # Left running in the background; the reader goes on once it says it is
                    # listening, as the README tells them to.
                    command = "\n".join([*state, f"exec {line.removesuffix('&')}"])
                    listening.append(await anyio.open_process(["bash", "-c", command]))
                    await read_until(listening[-1].stderr, "listening on")
                else:
                    with anyio.fail_after(30):
                        result = await anyio.run_process(
                            ["bash", "-c", "\n".join([*state, line])], check=False
                        )
                    assert result.returncode == 0, f"{line}\n{result.stderr.decode()}"
            (listen,) = listening
            received = await read_until(listen.stdout, "\n")
            assert received.startswith("chat.") and '"hi"' in received, received
        finally:
            for process in listening:
                if process.returncode is None:
                    process.kill()
                await process.aclose()
