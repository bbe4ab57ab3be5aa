"""The framework integrations of examples/, run the way their how-to guides show them: the
Starlette application in-process through Starlette's test client and as a process under
hypercorn, the Flask application through Flask's test client with the plain-Python worker
as a process, and the trio relay in-process on trio."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trio_websocket
from starlette.testclient import TestClient

import realtime_pubsub
import realtime_pubsub.blocking
from realtime_pubsub.gateway import AppConfig, Gateway, KeyConfig

from .raw import url_for
from .threaded import BACKENDS, Backend, Gate, running, threaded_gateway

EXAMPLES = Path(__file__).parent.parent / "examples"
UPGRADE_TO_SECRET = (
    b"GET /secret HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
WORKER = ("realtime:subscriber:read:topic:secure/inbound", "realtime:publisher:write:topic:*")


def example(name: str) -> ModuleType:
    """``examples/<name>.py``, imported (the examples import their neighbour ``_common``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


@pytest.fixture(params=BACKENDS)
def gate(request: pytest.FixtureRequest) -> Iterator[Gate]:
    with threaded_gateway(request.param) as gate:
        yield gate


# --------------------------------------------------------------------------- Starlette


def test_starlette_app_publishes_and_relays_to_browsers(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="starlette_app")
    app = example("starlette_app").create_app(gate.url(subject="web"))
    with TestClient(app, backend=gate.backend) as http:
        assert http.post("/topics/secret", json={}).status_code == 404
        assert http.get("/topics/secret/events").status_code == 404
        assert http.post("/topics/news", content=b"not json").status_code == 400
        with http.stream("GET", "/topics/news/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(lines) == ": following"
            published = http.post("/topics/news", json={"headline": "hello"})
            assert published.status_code == 201
            assert published.json()["acknowledged"] is True
            event = [next(lines) for _ in range(4)]
            assert event == ["", "event: headline", 'data: {"headline": "hello"}', ""]
        # The browser went: its relay has ended (the test client waits for it).
        assert "a browser stopped following 'news'" in caplog.messages


def test_starlette_app_served_by_hypercorn(gate: Gate) -> None:
    command = [
        sys.executable,
        str(EXAMPLES / "starlette_app.py"),
        *("--backend", gate.backend, "--port", "0", "--url", gate.url(subject="web")),
    ]
    with running(command, pipe="stderr") as (server, log):
        port = log.until(r"Running on http://127\.0\.0\.1:(\d+)").group(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            with http.stream("GET", "/topics/alerts/events") as events:
                lines = events.iter_lines()
                assert next(lines) == ": following"
                assert http.post("/topics/alerts", json="fire").status_code == 201
                assert [next(lines) for _ in range(3)] == ["", "event: headline", 'data: "fire"']
            # Closing the response closes the connection: the server notices, at once.
            log.until("a browser stopped following 'alerts'")
        server.send_signal(2)
        assert server.wait(20) == 0


# --------------------------------------------------------------------------- Flask


def test_flask_views_publish_and_ask_a_plain_python_worker(gate: Gate) -> None:
    flask_app = example("flask_app")
    worker_command = [
        sys.executable,
        str(EXAMPLES / "sync_worker.py"),
        *("--backend", gate.backend, "--url", gate.url(subject="worker", permissions=WORKER)),
    ]
    app = flask_app.create_app(gate.url(subject="web"), reply_timeout=20, backend=gate.backend)
    with gate.connect() as watcher, running(worker_command, pipe="stdout") as (worker, output):
        watcher.subscribe("news")
        output.until("worker ready")
        gate.wait_for_subscribers("secure/inbound")
        gate.wait_for_subscribers("news")
        http = app.test_client()
        try:
            with watcher.listen("news.*") as headlines:
                published = http.post("/topics/news", json={"headline": "hello"})
                assert published.status_code == 201
                headline = headlines.get(timeout=20)
            assert headline is not None
            assert headline.payload == {"headline": "hello"}
            assert headline.client is not None
            assert headline.client.subject == "web"
            assert http.post("/topics/secret", json={}).status_code == 404

            # Request threads share the process's one client.
            def quote(symbol: str) -> tuple[int, Any]:
                response = app.test_client().get(f"/quotes/{symbol}")
                return response.status_code, response.get_json()

            with ThreadPoolExecutor(max_workers=8) as pool:
                quotes = list(pool.map(quote, ["ACME", "GLOBEX", "NOPE"] * 4))
            assert quotes[:3] == [
                (200, {"symbol": "ACME", "price": 12.5}),
                (200, {"symbol": "GLOBEX", "price": 40.25}),
                (404, {"error": "no price for 'NOPE'"}),
            ]
            assert quotes == quotes[:3] * 4
        finally:
            app.extensions["pubsub"].close()
        worker.send_signal(2)
        assert worker.wait(20) == 0

    unanswered = flask_app.create_app(gate.url(), reply_timeout=0.1, backend=gate.backend)
    try:
        response = unanswered.test_client().get("/quotes/ACME")
        assert response.status_code == 504
    finally:
        unanswered.extensions["pubsub"].close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_flask_backend_mints_browser_tokens_and_publishes_over_http(backend: Backend) -> None:
    """examples/token_service.py against a gateway whose app has an authKey and an
    adminKey of its own: each token is signed with the right one."""
    keys = {"auth_key": "an authKey secret of 32 bytes or more", "admin_key": "an adminKey" * 4}
    apps = {"shop": AppConfig(KeyConfig(keys["auth_key"]), KeyConfig(keys["admin_key"]))}
    with threaded_gateway(backend, apps=apps) as gate:
        service = example("token_service")
        app = service.create_app(app_id="shop", api_url=gate.gateway.http_url, **keys)
        http = app.test_client()
        try:
            assert http.get("/token").status_code == 401
            answer = http.get("/token", headers={"X-User": "alice"}).get_json()
            assert answer["url"] == gate.gateway.url(answer["token"], app_id="shop")
            with realtime_pubsub.blocking.connect(answer["url"], backend=backend) as browser:
                assert browser.connection.app_id == "shop"
                browser.subscribe("orders/42")
                gate.wait_for_subscribers("orders/42")
                with browser.listen("orders/42.*") as updates:
                    shipped = http.post("/orders/42/ship")
                    assert (shipped.status_code, shipped.get_json()["announced"]) == (200, True)
                    update = updates.get(timeout=20)
            assert update is not None
            assert update.payload == {"order": "42", "status": "shipped"}
        finally:
            app.extensions["admin"].close()
        # A failure to announce does not fail the view: the order is shipped anyway.
        unreachable = service.create_app(app_id="shop", api_url="http://127.0.0.1:1", **keys)
        try:
            shipped = unreachable.test_client().post("/orders/7/ship")
            assert (shipped.status_code, shipped.get_json()["announced"]) == (202, False)
        finally:
            unreachable.extensions["admin"].close()


# --------------------------------------------------------------------------- trio


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])  # a trio program
async def test_trio_relay_forwards_a_topic_to_websocket_browsers(
    realtime_pubsub_gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = realtime_pubsub_gateway
    trio_relay = example("trio_relay")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            relay_url = url_for(gateway, subject="relay")
            port = await nursery.start(trio_relay.serve, relay_url, "127.0.0.1", 0)
            async with realtime_pubsub.connect(url_for(gateway, subject="newsroom")) as newsroom:
                address = f"ws://127.0.0.1:{port}"
                async with trio_websocket.open_websocket_url(f"{address}/news") as browser:
                    hello = json.loads(await browser.get_message())
                    assert hello == {"type": "following", "topic": "news"}
                    receipt = await newsroom.publish("news", {"headline": "hi"}, message_type="h")
                    await receipt.wait_for_ack()
                    event = json.loads(await browser.get_message())
                    assert event == {"type": "h", "payload": {"headline": "hi"}}
                await trio.testing.wait_all_tasks_blocked()
                assert "a browser stopped following news" in capsys.readouterr().out
                # A topic it does not relay is refused (404) before the WebSocket opens.
                async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                    await stream.send_all(UPGRADE_TO_SECRET)
                    assert (await stream.receive_some()).startswith(b"HTTP/1.1 404 ")
            nursery.cancel_scope.cancel()
