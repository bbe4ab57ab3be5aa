"""A backend service: answers requests sent with ``client.send(...)`` on ``secure/inbound``.

Its token needs ``realtime:subscriber:read:topic:secure/inbound``::

    TOKEN=$(realtime-pubsub token --subject backend \\
        --permission 'realtime:subscriber:read:topic:secure/inbound' \\
        --permission 'realtime:publisher:write:topic:*')
    python examples/rpc_backend.py --url "ws://127.0.0.1:8765/apps/demo?access_token=$TOKEN"

Requests of type ``add`` get the sum of their payload; ``time`` gets the server's clock;
anything else gets status ``error``.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from _common import parser, run

import realtime_pubsub


async def answer(message: realtime_pubsub.IncomingMessage) -> None:
    if message.message_type == "add":
        await message.reply(sum(message.payload))
    elif message.message_type == "time":
        await message.reply({"time": time.time()})
    elif message.message_type != "presence":
        await message.reply(f"unknown request {message.message_type!r}", status="error")


async def serve(url: str) -> None:
    async with realtime_pubsub.connect(url) as client:
        await client.subscribe("secure/inbound")
        print(f"backend ready as {client.connection.id}", flush=True)
        async with client.listen("secure/inbound.*") as requests, anyio.create_task_group() as tg:
            request: Any
            async for request in requests:
                if request.can_reply:
                    tg.start_soon(answer, request)  # one slow request never blocks the rest


def main() -> None:
    options = parser(__doc__.splitlines()[0]).parse_args()
    run(serve, options.url, backend=options.backend)


if __name__ == "__main__":
    main()
