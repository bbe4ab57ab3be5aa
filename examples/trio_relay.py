"""A plain trio program that relays topics to browsers over WebSocket: the relay of
``examples/starlette_app.py``, with trio-websocket's server in place of a web framework.

    pip install 'realtime-pubsub[trio-websocket]'
    python examples/trio_relay.py --url "$REALTIME_PUBSUB_URL" --port 8001

In a browser::

    const socket = new WebSocket("ws://127.0.0.1:8001/news");
    socket.onmessage = (event) => console.log(JSON.parse(event.data));

Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Collection
from functools import partial

import trio
import trio_websocket

import realtime_pubsub

#: The topics browsers may follow: never let a browser pick any topic.
TOPICS = ("news", "alerts")


class Relay:
    """Relays the topics of one client to every browser that asks for one."""

    def __init__(self, client: realtime_pubsub.Client, topics: Collection[str]) -> None:
        self.client = client
        self.topics = frozenset(topics)

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        """One browser: ``ws://host:port/<topic>``, until it goes or the client closes."""
        topic = request.path.strip("/")
        if topic not in self.topics:
            await request.reject(404, body=b"unknown topic")
            return
        socket = await request.accept()
        try:
            # A slow browser loses the oldest messages rather than holding memory or the
            # client.
            async with (
                self.client.listen(f"{topic}.*", max_buffer=100) as messages,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(self._until_closed, socket, nursery.cancel_scope)
                # The browser may go mid-send.
                with contextlib.suppress(trio_websocket.ConnectionClosed):
                    # The browser knows it is live.
                    following = {"type": "following", "topic": topic}
                    await socket.send_message(json.dumps(following))
                    async for message in messages:
                        event = {"type": message.message_type, "payload": message.payload}
                        await socket.send_message(json.dumps(event))
                nursery.cancel_scope.cancel()  # the client closed: we are shutting down
        finally:
            print(f"a browser stopped following {topic}", flush=True)

    @staticmethod
    async def _until_closed(
        socket: trio_websocket.WebSocketConnection, scope: trio.CancelScope
    ) -> None:
        # Browsers send nothing here; reading is how a close is noticed while the topic is
        # quiet.
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            while True:
                await socket.get_message()
        scope.cancel()


async def serve(
    url: str,
    host: str,
    port: int,
    topics: Collection[str] = TOPICS,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Relay ``topics`` on ``ws://host:port/<topic>``; ``task_status`` gets the port."""
    async with realtime_pubsub.connect(url) as client:
        for topic in topics:
            await client.subscribe(topic)
        relay = Relay(client, topics)
        async with trio.open_nursery() as nursery:
            # ssl_context=None: plain ws://.
            serve_websocket = partial(trio_websocket.serve_websocket, ssl_context=None)
            server = await nursery.start(serve_websocket, relay.handle, host, port)
            where = f"ws://{host}:{server.port}/<topic>"
            print(f"relaying {', '.join(topics)} on {where}", flush=True)
            task_status.started(server.port)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--url", default=os.environ.get("REALTIME_PUBSUB_URL"))
    args.add_argument("--host", default="127.0.0.1")
    args.add_argument("--port", type=int, default=8001)
    options = args.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, options.url, options.host, options.port)


if __name__ == "__main__":
    main()
