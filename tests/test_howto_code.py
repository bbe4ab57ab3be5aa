"""The how-to guides' code fragments that name no example file, run against a local
gateway with the names they take from the text around them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import realtime_pubsub
from realtime_pubsub.gateway import Gateway
from realtime_pubsub.testing import ALL_PERMISSIONS

from .rst import code_blocks, section

pytestmark = pytest.mark.anyio

HOWTO = Path(__file__).parent.parent / "docs" / "howto"


async def test_the_backend_callback_answers_requests_and_logs_nothing_on_presence(
    realtime_pubsub_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    (fragment,) = code_blocks(
        section((HOWTO / "backend.rst").read_text(encoding="utf-8"), "The callback style"),
        "python",
    )

    async def compute(payload: Any) -> Any:
        return sum(payload)

    url = realtime_pubsub_gateway.url(
        realtime_pubsub_gateway.mint_token(permissions=ALL_PERMISSIONS)
    )
    async with realtime_pubsub.connect(url) as backend:
        await backend.subscribe("secure/inbound")
        exec(fragment, {"backend": backend, "compute": compute})
        # The caller's connection is announced to the backend (a presence event) before its
        # request, and a registration handles its events in order: once the reply is
        # here, a handler that failed on the presence event has been logged.
        async with realtime_pubsub.connect(url) as caller:
            receipt = await caller.send([1, 2, 3.5], message_type="compute")
            reply = await receipt.wait_for_reply(timeout=10)
    assert (reply.status, reply.data) == ("ok", 6.5)
    assert [r for r in caplog.records if r.name.startswith("realtime_pubsub")] == []


async def test_the_blocking_client_example_gets_its_reply(
    realtime_pubsub_gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    fragment = code_blocks((HOWTO / "plain-code.rst").read_text(encoding="utf-8"), "python")[0]
    url = realtime_pubsub_gateway.url(
        realtime_pubsub_gateway.mint_token(subject="reader", permissions=ALL_PERMISSIONS)
    )
    async with (
        realtime_pubsub.connect(url) as backend,
        backend.listen("secure/inbound.add") as requests,
        anyio.create_task_group() as tg,
    ):
        await backend.subscribe("secure/inbound")

        async def answer() -> None:
            # What examples/rpc_backend.py answers, which the fragment's comment names.
            async for request in requests:
                await request.reply(sum(request.payload))

        tg.start_soon(answer)
        # Blocking calls, on a thread of their own as in a plain program.
        with anyio.fail_after(60):
            await anyio.to_thread.run_sync(exec, fragment, {"url": url})
        tg.cancel_scope.cancel()
    assert capsys.readouterr().out == "reader said hello\n3\n"
