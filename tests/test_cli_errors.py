"""Every way ``realtime-pubsub`` can fail, as a newcomer meets it, run for real in
subprocesses: one line on stderr that says what is wrong and what to do, no traceback,
status 1 for a failure at run time and 2 for bad usage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from realtime_pubsub.gateway import serve

COMMAND = [sys.executable, "-m", "realtime_pubsub"]


async def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "REALTIME_PUBSUB_URL"}
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [*COMMAND, *args], check=False, env={**clean, **(env or {})}
        )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def error_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The one line of the error, the last the command printed (after its status lines,
    if it got as far as connecting), after checking its exit status."""
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr
    *_, line = result.stderr.strip().splitlines()
    assert [e for e in result.stderr.splitlines() if "error" in e] == [line]
    assert line.startswith("realtime-pubsub: error: ")
    return line.removeprefix("realtime-pubsub: error: ")


# --------------------------------------------------------------------------- the gateway


@pytest.mark.anyio
async def test_a_port_in_use() -> None:
    async with serve() as taken:
        result = await run("gateway", "--port", str(taken.port))
    assert error_line(result, 1) == (
        f"cannot listen on 127.0.0.1:{taken.port}: address already in use (is a gateway "
        "running there already? Stop it, or pick another --port; --port 0 takes any free one)"
    )


@pytest.mark.anyio
async def test_a_host_address_of_another_machine() -> None:
    result = await run("gateway", "--host", "192.0.2.1", "--port", "0")  # TEST-NET-1
    line = error_line(result, 1)
    assert line.startswith("cannot listen on 192.0.2.1:0: cannot assign requested address")
    assert "--host must be an address of this machine" in line


@pytest.mark.anyio
async def test_a_host_name_that_is_not_known() -> None:
    result = await run("gateway", "--host", "no-such-host.invalid", "--port", "0")
    line = error_line(result, 1)
    assert line.startswith("cannot listen on no-such-host.invalid:0: ")
    assert line.endswith("(--host must be an address of this machine, or its name)")


@pytest.mark.anyio
async def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    missing = str(tmp_path / "missing")
    cases = [
        (("gateway", "--app-config", missing), f"--app-config {missing}: no such file"),
        (("gateway", "--certfile", missing), f"--certfile {missing}: no such file"),
        (("gateway", "--certfile", str(junk)), f"--certfile {junk}: not a PEM certificate"),
        (("token", "--private-key", missing), f"--private-key {missing}: no such file"),
        (("token", "--private-key", str(tmp_path)), f"--private-key {tmp_path}: is a dir"),
    ]
    for args, error in cases:
        assert error_line(await run(*args), 1).startswith(error)


# --------------------------------------------------------------------------- the backend


@pytest.mark.anyio
async def test_a_backend_that_is_not_installed() -> None:
    # A Python in which importing trio fails, as in an environment without the extra.
    without_trio = (
        "import sys; sys.modules['trio'] = None; from realtime_pubsub._cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    result = await anyio.run_process(
        [sys.executable, "-c", without_trio, "--backend", "trio", "demo"], check=False
    )
    line = error_line(
        subprocess.CompletedProcess([], result.returncode, "", result.stderr.decode()), 1
    )
    assert line == (
        "trio is not installed: pip install 'realtime-pubsub[trio]', or use --backend asyncio"
    )
    assert result.stdout == b""  # the demo did not start


# --------------------------------------------------------------------------- the URL


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://127.0.0.1:8765/apps/a", "the URL must start with ws:// or wss://, not http://"),
        ("ws://127.0.0.1:notaport/apps/a", "the port of the URL is not a number"),
        ("ws:///apps/a?access_token=x", "the URL has no host"),
    ],
)
async def test_a_malformed_url_is_bad_usage_that_says_what_is_wrong(url: str, error: str) -> None:
    given = await run("publish", "chat", "hi", "--url", url)
    assert error_line(given, 2).startswith(f"--url: {error}")
    from_environment = await run("listen", "chat.*", env={"REALTIME_PUBSUB_URL": url})
    assert error_line(from_environment, 2).startswith(f"REALTIME_PUBSUB_URL: {error}")


@pytest.mark.anyio
async def test_a_local_gateway_that_is_not_running() -> None:
    async with serve() as gw:
        url = gw.url(gw.mint_token())
        await gw.stop_accepting()
        result = await run("publish", "chat", "hi", "--url", url)
    assert error_line(result, 1) == (
        f"cannot connect to ws://127.0.0.1:{gw.port}/apps/default?access_token=***: "
        "connection refused (is the local gateway running? Start it with: "
        f"realtime-pubsub gateway --port {gw.port})"
    )


@pytest.mark.anyio
async def test_a_token_the_local_gateway_refuses() -> None:
    async with serve(secret="a-secret-of-at-least-thirty-two-bytes") as gw:
        token = (await run("token")).stdout.strip()  # signed with the development secret
        result = await run("publish", "chat", "hi", "--url", gw.url(token))
    line = error_line(result, 1)
    assert line.startswith("the gateway refused the connection: HTTP 401: ")
    assert line.endswith(
        "(get a token for the local gateway with: realtime-pubsub token, adding --secret S "
        "if the gateway was started with --secret S)"
    )


@pytest.mark.anyio
async def test_an_app_the_local_gateway_does_not_serve() -> None:
    async with serve(app_id="chat-app") as gw:
        url = gw.url(gw.mint_token(), app_id="another-app")
        result = await run("publish", "chat", "hi", "--url", url)
    assert error_line(result, 1) == (
        "the gateway refused the connection: HTTP 404: Not found: unknown app (the local "
        "gateway serves only its --app-id, or the apps of its --app-config)"
    )


@pytest.mark.anyio
async def test_an_app_id_that_is_not_in_the_app_config(tmp_path: Path) -> None:
    config = tmp_path / "apps.json"
    config.write_text(
        json.dumps({"appId": "a", "authKey": {"key": "k" * 32, "algorithms": ["HS256"]}})
    )
    result = await run("gateway", "--app-config", str(config), "--app-id", "b")
    assert error_line(result, 2) == f"--app-id b is not an app of --app-config {config} (a)"


@pytest.mark.anyio
async def test_wss_at_a_local_gateway_that_serves_ws() -> None:
    async with serve() as gw:
        url = gw.url(gw.mint_token()).replace("ws://", "wss://")
        result = await run("publish", "chat", "hi", "--attempts", "1", "--url", url)
    line = error_line(result, 1)
    assert line.startswith(f"cannot connect to wss://127.0.0.1:{gw.port}/apps/default?")
    assert "the TLS handshake failed" in line
    assert line.endswith(
        "(the local gateway speaks TLS only when started with --certfile: use ws://, or "
        "start it with: realtime-pubsub gateway --certfile FILE)"
    )
