"""A Flask backend that holds no WebSocket: it hands browsers short-lived tokens for theirs
(``GET /token``), and its views publish over the HTTP admin API (``POST
/orders/<id>/ship``).

    pip install realtime-pubsub flask
    export REALTIME_PUBSUB_APP_ID=demo
    export REALTIME_PUBSUB_AUTH_KEY=...    # the app's authKey secret: signs browsers' tokens
    export REALTIME_PUBSUB_ADMIN_KEY=...   # the app's adminKey secret: signs admin tokens
    export REALTIME_PUBSUB_API_URL=http://127.0.0.1:8765   # the local gateway; default:
                                                           # the public cluster
    flask --app examples/token_service.py run              # or: python examples/token_service.py

    curl -H 'X-User: alice' http://127.0.0.1:5000/token
    curl -X POST http://127.0.0.1:5000/orders/42/ship

Against the local gateway, ``realtime-pubsub gateway --secret S`` verifies both kinds of
token with S: give both keys that value.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import urllib.parse
from typing import Any

from flask import Flask, abort, request

import realtime_pubsub
from realtime_pubsub import tokens
from realtime_pubsub.admin import DEFAULT_BASE_URL, AdminClient

logger = logging.getLogger(__name__)


def setting(name: str) -> str:
    """A setting from the environment: read when it is needed, not at import."""
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"set {name}")
    return value


def websocket_url(api_url: str, app_id: str, token: str) -> str:
    """The WebSocket URL a browser connects with: the same host as the HTTP API."""
    parts = urllib.parse.urlsplit(api_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urllib.parse.urlencode({"access_token": token})
    return f"{scheme}://{parts.netloc}/apps/{urllib.parse.quote(app_id, safe='')}?{query}"


def create_app(
    *,
    app_id: str | None = None,
    auth_key: str | None = None,
    admin_key: str | None = None,
    api_url: str | None = None,
) -> Flask:
    """The application; each setting defaults to its environment variable."""
    app = Flask(__name__)
    app_id = app_id or os.environ.get("REALTIME_PUBSUB_APP_ID", "demo")
    api_url = api_url or os.environ.get("REALTIME_PUBSUB_API_URL", DEFAULT_BASE_URL)

    def admin_token() -> str:
        # A fresh token for every request, that may publish to orders/* only and expires
        # in half a minute: nothing worth stealing is ever kept.
        return tokens.admin_token(
            admin_key or setting("REALTIME_PUBSUB_ADMIN_KEY"),
            subject="orders-service",
            roles=["Publisher"],
            allowed_topics=["orders/*"],
            ttl=30,
        )

    # One client for the process, shared by the request threads; it keeps its HTTP
    # connections open for the next requests.
    admin = AdminClient(app_id, admin_token, base_url=api_url, timeout=5)
    app.extensions["admin"] = admin
    atexit.register(admin.close)

    @app.get("/token")
    def token() -> dict[str, Any]:
        # Stands for your own authentication: who is asking, from their session.
        user = request.headers.get("X-User")
        if not user:
            abort(401)
        # What this user may do on the WebSocket, for five minutes: read their own secure
        # topics (public topics need no permission) and publish nowhere. The browser's URL
        # provider asks again before every reconnection.
        value = tokens.client_token(
            auth_key or setting("REALTIME_PUBSUB_AUTH_KEY"),
            subject=user,
            permissions=[tokens.can_read(f"secure/users/{user}/*")],
            ttl=300,
        )
        return {"token": value, "url": websocket_url(api_url, app_id, value)}

    @app.post("/orders/<order_id>/ship")
    def ship(order_id: str) -> tuple[dict[str, Any], int]:
        # ... mark the order shipped in the database, then tell whoever follows it. Not
        # retried: a publish whose answer was lost may have been delivered.
        try:
            admin.publish(f"orders/{order_id}", {"order": order_id, "status": "shipped"})
        except realtime_pubsub.RealtimePubSubError as exc:
            logger.warning("order %s shipped, but not announced: %s", order_id, exc)
            return {"order": order_id, "announced": False}, 202
        return {"order": order_id, "announced": True}, 200

    return app


app = create_app()


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--port", type=int, default=5000)
    options = args.parse_args()
    create_app().run(port=options.port)


if __name__ == "__main__":
    main()
