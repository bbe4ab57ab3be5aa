"""Print every connection that comes and goes in the app (presence on ``secure/inbound``).

The token needs ``realtime:subscriber:read:topic:secure/inbound``. This one uses the callback
API of the official clients, on asyncio::

    python examples/presence_monitor.py --backend asyncio --url "$BACKEND_URL"
"""

from __future__ import annotations

from typing import Any

import anyio
from _common import parser, run

import realtime_pubsub


async def monitor(url: str) -> None:
    async with realtime_pubsub.connect(url) as client:

        def on_presence(message: realtime_pubsub.IncomingMessage, reply: Any) -> None:
            presence = message.data_as_presence()
            print(f"{presence.status}: {presence.subject} ({presence.connection_id})", flush=True)

        def on_session(info: realtime_pubsub.ConnectionInfo) -> None:
            print(f"monitoring as {info.id}", flush=True)

        client.on("secure/inbound.presence", on_presence)
        client.on("session.started", on_session)
        await client.subscribe("secure/inbound")
        print(f"monitoring as {client.connection.id}", flush=True)
        await anyio.sleep_forever()


def main() -> None:
    options = parser(__doc__.splitlines()[0]).parse_args()
    run(monitor, options.url, backend=options.backend)


if __name__ == "__main__":
    main()
