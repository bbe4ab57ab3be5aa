"""``realtime-pubsub demo``: a local gateway, a backend service and a client in one process,
walking through subscribe, publish with ack, RPC, presence and a forced reconnection."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio

from . import gateway as gateway_module
from ._backoff import ReconnectPolicy
from ._client import connect
from ._messages import IncomingMessage
from .tokens import can_publish, can_read

__all__ = ["DemoFailed", "run_demo"]

T = TypeVar("T")
_STEP_TIMEOUT = 5.0
_BACKEND_PERMISSIONS = (can_publish("*"), can_read("secure/inbound"))


class DemoFailed(RuntimeError):
    """A step of the demo did not happen in time."""


def _say(text: str) -> None:
    print(text, flush=True)


async def _step(title: str, action: Callable[[], Awaitable[T]]) -> T:
    started = time.perf_counter()
    try:
        with anyio.fail_after(_STEP_TIMEOUT):
            result = await action()
    except TimeoutError:
        raise DemoFailed(f"step failed: {title} (nothing within {_STEP_TIMEOUT:.0f} s)") from None
    _say(f"  ok  {title}  ({(time.perf_counter() - started) * 1000:.1f} ms)")
    return result


@asynccontextmanager
async def _backend(url: str, presence: list[str], changed: anyio.Event) -> AsyncIterator[None]:
    """A backend service: answers every request on secure/inbound and logs presence."""
    async with connect(url) as backend:
        await backend.subscribe("secure/inbound")

        async def answer(message: IncomingMessage, reply: Any) -> None:
            await reply({"answer": 42, "you_asked": message.payload})

        async def note(message: IncomingMessage, reply: Any) -> None:
            who = message.data_as_presence()
            presence.append(f"{who.subject} {who.status}")
            changed.set()
            _say(f"      backend saw presence: {who.subject} {who.status}")

        backend.on("secure/inbound.ask", answer)
        backend.on("secure/inbound.presence", note)
        yield


async def run_demo(backend: str) -> None:
    """Run every step on the event loop named ``backend`` (which runs it: the name is for
    the first line); raises :class:`DemoFailed` on the first step that does not happen."""
    _say(f"realtime-pubsub demo on {backend}: a local gateway, a backend service and a client")
    async with gateway_module.serve() as gateway:
        _say(f"  gateway on ws://127.0.0.1:{gateway.port}")
        backend_url = gateway.url(
            gateway.mint_token(subject="backend", permissions=_BACKEND_PERMISSIONS)
        )
        presence: list[str] = []
        seen = anyio.Event()
        async with _backend(backend_url, presence, seen):
            client_url = gateway.url(gateway.mint_token(subject="alice"))
            fast = ReconnectPolicy(initial_delay=0.05, max_delay=0.5)
            async with connect(client_url, reconnect=fast) as client:
                _say(f"  client connected as {client.connection.id}")
                await client.subscribe("chat")
                async with client.listen("chat.*") as messages:

                    async def publish_with_ack() -> None:
                        receipt = await client.publish("chat", "hello", message_type="text")
                        await receipt.wait_for_ack()

                    await _step("publish to 'chat' and get the gateway's ack", publish_with_ack)
                    message = await _step(
                        "receive it back on the subscription", messages.__anext__
                    )
                    _say(f"      {message.event}: {message.payload!r}")

                async def rpc() -> Any:
                    receipt = await client.send({"question": "?"}, message_type="ask")
                    return (await receipt.wait_for_reply()).data

                answer = await _step("send a request to the backend and get its reply", rpc)
                _say(f"      reply: {answer!r}")

                async def saw_presence() -> None:
                    await seen.wait()  # the backend records nothing but alice's presence

                await _step("the backend saw the client's presence", saw_presence)

                first = client.connection.id
                gateway.drop_connection(first)
                info = await _step(
                    "drop the connection; the client reconnects by itself",
                    lambda: client.wait_for("session.started"),
                )
                _say(f"      new connection {info.id} (was {first})")
                async with client.listen("chat.*") as messages:

                    async def after() -> IncomingMessage:
                        await client.publish("chat", "still subscribed")
                        return await messages.__anext__()

                    message = await _step("the restored subscription still receives", after)
                    _say(f"      {message.event}: {message.payload!r}")
    _say("demo complete")
