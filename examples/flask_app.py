"""A Flask application that publishes from its views, and asks a backend worker
(``examples/sync_worker.py``) for quotes, through one blocking client per process.

    pip install realtime-pubsub flask
    export REALTIME_PUBSUB_URL="ws://127.0.0.1:8765/apps/demo?access_token=$TOKEN"
    flask --app examples/flask_app.py run        # or: python examples/flask_app.py

    curl -d '{"headline": "hello"}' -H 'Content-Type: application/json' \\
        http://127.0.0.1:5000/topics/news
    curl http://127.0.0.1:5000/quotes/ACME
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Collection
from typing import Any

from _common import parser
from flask import Flask, abort, request

import realtime_pubsub.blocking
from realtime_pubsub import ConnectionState
from realtime_pubsub.blocking import BlockingClient

logger = logging.getLogger(__name__)

#: The topics the views may publish to: never let a request pick any topic.
TOPICS = ("news", "alerts")


class PubSub:
    """One blocking client for the whole process, shared by every request thread.

    It is opened on first use, not at import: a pre-forking server (gunicorn, uWSGI) imports
    the application before it forks, and a client's thread does not survive a fork. It is
    opened again if it ended (the reconnect policy gave up, say), and closed at exit.
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._url = url
        self._options = options
        self._lock = threading.Lock()
        self._stack = contextlib.ExitStack()
        self._client: BlockingClient | None = None
        atexit.register(self.close)

    def client(self) -> BlockingClient:
        with self._lock:
            if self._client is not None and self._client.state is ConnectionState.CLOSED:
                self._close()
            if self._client is None:
                url = self._url or os.environ["REALTIME_PUBSUB_URL"]
                self._client = self._stack.enter_context(
                    realtime_pubsub.blocking.connect(url, **self._options)
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        self._client = None
        try:
            self._stack.close()
        except realtime_pubsub.RealtimePubSubError as exc:
            logger.warning("the client had ended: %s", exc)


def create_app(
    url: str | None = None,
    *,
    topics: Collection[str] = TOPICS,
    reply_timeout: float = 5.0,
    **options: Any,
) -> Flask:
    """The application; ``url`` defaults to ``$REALTIME_PUBSUB_URL``, read on first use;
    ``options`` go to :func:`realtime_pubsub.blocking.connect`."""
    app = Flask(__name__)
    pubsub = PubSub(url, **options)
    app.extensions["pubsub"] = pubsub

    @app.post("/topics/<topic>")
    def publish(topic: str) -> tuple[dict[str, Any], int]:
        if topic not in topics:
            abort(404)
        payload = request.get_json()
        receipt = pubsub.client().publish(topic, payload, message_type="headline")
        try:
            receipt.wait_for_ack(timeout=5)
        except (realtime_pubsub.AckTimeout, realtime_pubsub.ConnectionClosed):
            # Sent, but unconfirmed: the caller may retry, and subscribers may get it twice.
            return {"id": receipt.id, "acknowledged": False}, 202
        return {"id": receipt.id, "acknowledged": True}, 201

    @app.get("/quotes/<symbol>")
    def quote(symbol: str) -> tuple[dict[str, Any], int]:
        receipt = pubsub.client().send({"symbol": symbol}, message_type="quote")
        try:
            reply = receipt.wait_for_reply(timeout=reply_timeout)
        except (realtime_pubsub.ReplyTimeout, realtime_pubsub.ConnectionClosed):
            return {"error": "no quote service answered"}, 504
        if reply.status != "ok":
            return {"error": reply.data}, 404
        return reply.data, 200

    return app


app = create_app()


def main() -> None:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--port", type=int, default=5000)
    args.set_defaults(backend="asyncio")
    options = args.parse_args()
    create_app(options.url, backend=options.backend).run(port=options.port)


if __name__ == "__main__":
    main()
