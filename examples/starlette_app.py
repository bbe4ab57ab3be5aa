"""A Starlette application (FastAPI works the same way): one client shared by all requests, an
endpoint that publishes, and a Server-Sent Events endpoint that relays a topic to browsers.

    pip install realtime-pubsub starlette hypercorn     # add [trio] to serve on trio
    python examples/starlette_app.py --url "$REALTIME_PUBSUB_URL" --port 8000

    curl -N http://127.0.0.1:8000/topics/news/events            # follow the topic
    curl -d '{"headline": "hello"}' http://127.0.0.1:8000/topics/news   # publish to it

In a browser: ``new EventSource("/topics/news/events").addEventListener("headline", ...)``.
Or serve it with any ASGI server: ``REALTIME_PUBSUB_URL=... uvicorn --app-dir examples
starlette_app:app``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import anyio
from _common import parser
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import realtime_pubsub

logger = logging.getLogger(__name__)

#: The topics browsers may follow and publish to: never let a browser pick any topic.
TOPICS = ("news", "alerts")


class State(TypedDict):
    client: realtime_pubsub.Client


class EventStream(Response):
    """Relays a topic as Server-Sent Events until the browser goes or the client closes.

    It is an ASGI response of its own rather than a ``StreamingResponse`` over an async
    generator: the listener is left the moment the browser goes, instead of whenever the
    suspended generator is garbage-collected.
    """

    media_type = "text/event-stream"

    def __init__(
        self, client: realtime_pubsub.Client, topic: str, *, keepalive: float = 15.0
    ) -> None:
        # As StreamingResponse does: no body, hence no Content-Length.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.client = client
        self.topic = topic
        #: Seconds between comments sent while the topic is quiet: proxies keep the
        #: connection open, and a browser that went is noticed.
        self.keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            # A slow browser loses the oldest messages rather than holding memory or the
            # client.
            async with self.client.listen(f"{self.topic}.*", max_buffer=100) as messages:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": self.raw_headers,
                    }
                )
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._until_disconnect, receive, tg.cancel_scope)
                    try:
                        await self._relay(messages, send)
                    except OSError:
                        pass  # the browser went (ASGI 2.4 servers say so when sending)
                    else:
                        await send({"type": "http.response.body", "body": b""})
                    tg.cancel_scope.cancel()
        finally:
            logger.info("a browser stopped following %r", self.topic)

    async def _relay(
        self,
        messages: realtime_pubsub.MessageStream[Any],
        send: Send,
    ) -> None:
        await self._send(send, b": following\n\n")  # the browser knows it is live
        while True:
            message: realtime_pubsub.IncomingMessage | None = None
            with anyio.move_on_after(self.keepalive) as quiet:
                message = await anext(messages, None)
            if quiet.cancelled_caught:
                await self._send(send, b": keep-alive\n\n")
            elif message is None:
                return  # the client closed: the application is shutting down
            else:
                data = json.dumps(message.payload)
                event = f"event: {message.message_type}\ndata: {data}\n\n"
                await self._send(send, event.encode())

    @staticmethod
    async def _send(send: Send, chunk: bytes) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

    @staticmethod
    async def _until_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()


async def publish(request: Request) -> Response:
    topic = request.path_params["topic"]
    if topic not in request.app.state.topics:
        return JSONResponse({"error": f"unknown topic {topic!r}"}, status_code=404)
    try:
        payload = await request.json()
    except ValueError:
        return JSONResponse({"error": "the body must be JSON"}, status_code=400)
    client: realtime_pubsub.Client = request.state.client
    receipt = await client.publish(topic, payload, message_type="headline")
    try:
        await receipt.wait_for_ack(timeout=5)
    except (realtime_pubsub.AckTimeout, realtime_pubsub.ConnectionClosed):
        # Sent, but unconfirmed: the caller may retry, and subscribers may get it twice.
        return JSONResponse({"id": receipt.id, "acknowledged": False}, status_code=202)
    return JSONResponse({"id": receipt.id, "acknowledged": True}, status_code=201)


async def events(request: Request) -> Response:
    topic = request.path_params["topic"]
    if topic not in request.app.state.topics:
        return JSONResponse({"error": f"unknown topic {topic!r}"}, status_code=404)
    return EventStream(request.state.client, topic)


def create_app(url: str | None = None, *, topics: Collection[str] = TOPICS) -> Starlette:
    """The application; ``url`` defaults to ``$REALTIME_PUBSUB_URL``, read at startup."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # One client for the whole process, opened before the first request is served and
        # closed after the last: every request borrows it, none opens its own.
        app_url = url or os.environ["REALTIME_PUBSUB_URL"]
        async with realtime_pubsub.connect(app_url) as client:
            for topic in topics:
                await client.subscribe(topic)
            yield {"client": client}

    app = Starlette(
        routes=[
            Route("/topics/{topic}", publish, methods=["POST"]),
            Route("/topics/{topic}/events", events),
        ],
        lifespan=lifespan,
    )
    app.state.topics = frozenset(topics)
    return app


app = create_app()


def main() -> None:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--host", default="127.0.0.1")
    args.add_argument("--port", type=int, default=8000)
    options = args.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    application = create_app(options.url)
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the server is up
        anyio.run(
            serve,
            application,
            options.host,
            options.port,
            options.backend,
            backend=options.backend,
        )


async def serve(application: Starlette, host: str, port: int, backend: str) -> None:
    """Serve with hypercorn, on asyncio or on trio, until SIGINT or SIGTERM."""
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    if backend == "trio":
        from hypercorn.trio import serve as serve_on_trio

        await serve_on_trio(application, config, shutdown_trigger=until_signal)  # type: ignore[arg-type]
    else:
        from hypercorn.asyncio import serve as serve_on_asyncio

        await serve_on_asyncio(application, config, shutdown_trigger=until_signal)  # type: ignore[arg-type]


async def until_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


if __name__ == "__main__":
    main()
