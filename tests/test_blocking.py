"""What only the blocking client has to get right, from plain (non-async) tests: handlers on
worker threads, many threads at once, replying from plain code, closing without leaving a
thread behind, the lazy import. The scenarios it shares with the async client are in
tests/test_scenarios.py. The gateway runs on a thread of its own."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import realtime_pubsub
import realtime_pubsub.blocking
from realtime_pubsub import ClientClosed, ConnectionState
from realtime_pubsub.blocking import BlockingClient, BlockingMessage, BlockingReceipt

from .threaded import BACKENDS, Gate, threaded_gateway


@pytest.fixture(params=BACKENDS)
def gate(request: pytest.FixtureRequest) -> Iterator[Gate]:
    with threaded_gateway(request.param) as gate:
        yield gate


class Recorder:
    """A handler that records the payloads (or values) it gets, from any thread."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.threads: set[str] = set()
        self._changed = threading.Condition()

    def __call__(self, value: Any, *reply: Any) -> None:
        with self._changed:
            self.values.append(value.payload if isinstance(value, BlockingMessage) else value)
            self.threads.add(threading.current_thread().name)
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list[Any]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.values) >= count, timeout), (
                f"{len(self.values)} calls, not {count}"
            )
            return self.values[:count]

    def wait_until(self, value: Any, timeout: float = 10.0) -> list[Any]:
        with self._changed:
            assert self._changed.wait_for(lambda: value in self.values, timeout)
            return list(self.values)


def state_of(client: BlockingClient) -> ConnectionState:
    return client.state


def subscribed(gate: Gate, client: BlockingClient, topic: str) -> None:
    client.subscribe(topic)
    gate.wait_for_subscribers(topic)


# --------------------------------------------------------------------------- the module


def test_import_realtime_pubsub_makes_blocking_available_lazily() -> None:
    code = (
        "import sys, realtime_pubsub\n"
        "assert 'realtime_pubsub.blocking' not in sys.modules\n"
        "assert callable(realtime_pubsub.blocking.connect)\n"
        "assert 'realtime_pubsub.blocking' in sys.modules\n"
        "try:\n"
        "    realtime_pubsub.no_such_thing\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_signatures_are_the_async_clients() -> None:
    def parameters(function: Any) -> list[tuple[str, Any, Any]]:
        return [
            (p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
        ]

    pairs = [
        (BlockingClient.subscribe, realtime_pubsub.Client.subscribe),
        (BlockingClient.publish, realtime_pubsub.Client.publish),
        (BlockingClient.send, realtime_pubsub.Client.send),
        (BlockingClient.listen, realtime_pubsub.Client.listen),
        (BlockingClient.wait_for, realtime_pubsub.Client.wait_for),
        (BlockingReceipt.wait_for_ack, realtime_pubsub.Receipt.wait_for_ack),
        (BlockingMessage.reply, realtime_pubsub.IncomingMessage.reply),
    ]
    for blocking, asynchronous in pairs:
        assert parameters(blocking) == parameters(asynchronous), blocking
    assert inspect.signature(BlockingClient.publish).return_annotation == "BlockingReceipt"
    # connect() takes every option of the async connect(), and shows their defaults.
    options = parameters(realtime_pubsub.connect)[1:]
    assert set(realtime_pubsub.blocking.ConnectOptions.__annotations__) == {
        name for name, _, _ in options
    }
    assert parameters(realtime_pubsub.blocking.connect)[3:] == options


# --------------------------------------------------------------------------- basics


def test_publish_listen_and_properties(gate: Gate) -> None:
    with gate.connect() as client:
        assert client.state is ConnectionState.OPEN
        assert client.connection.id
        subscribed(gate, client, "chat")
        assert client.subscriptions == {"chat"}
        with client.listen("chat.*") as messages:
            assert messages.get(timeout=0) is None
            receipt = client.publish("chat", {"n": 1}, message_type="text")
            assert client.in_flight == 1
            assert receipt.wait_for_ack(timeout=10).id == receipt.id
            message = next(messages)
            assert isinstance(message, BlockingMessage)
            assert (message.topic, message.message_type, message.payload) == (
                "chat",
                "text",
                {"n": 1},
            )
            assert message.event == "chat.text"
            assert message.message.payload == {"n": 1}
            client.publish("chat", 2)
            assert messages.get(timeout=10).payload == 2  # type: ignore[union-attr]
            assert messages.get(timeout=0.01) is None
            assert messages.dropped == 0
    assert state_of(client) is ConnectionState.CLOSED


def test_errors_come_through_as_themselves(gate: Gate) -> None:
    with pytest.raises(realtime_pubsub.AuthenticationError):
        with realtime_pubsub.blocking.connect(gate.gateway.url(gate.gateway.mint_token(ttl=-5))):
            pass
    with pytest.raises(ValueError, match="handler_timeout"):
        with realtime_pubsub.blocking.connect(gate.url(), handler_timeout=-1):
            pass
    with gate.connect() as client:
        with pytest.raises(TypeError):
            client.publish("t", object())
        with pytest.raises(ValueError):
            client.listen("bad..pattern")

        async def coroutine_handler(message: Any, reply: Any) -> None: ...

        with pytest.raises(TypeError, match="coroutine"):
            client.on("chat.*", coroutine_handler)
        assert "BlockingReceipt" in repr(client.publish("t", 1))
        assert "BlockingClient" in repr(client)
        assert "access_token=***" in repr(client)


def test_every_method_raises_client_closed_after_the_block(gate: Gate) -> None:
    with gate.connect() as client:
        receipt = client.publish("t", 1)
    for call in (
        lambda: client.publish("t", 1),
        lambda: client.send(1),
        lambda: client.subscribe("t"),
        lambda: client.on("t.*", print),
        lambda: client.wait_for("t.*", timeout=1),
        lambda: client.off(1),
        lambda: receipt.wait_for_reply(timeout=1),
        lambda: client.listen("chat.*"),
    ):
        with pytest.raises(ClientClosed):
            call()
    assert state_of(client) is ConnectionState.CLOSED


# --------------------------------------------------------------------------- replying


def test_plain_code_replies_from_a_loop_and_from_a_handler(gate: Gate) -> None:
    with gate.connect(subject="backend") as service, gate.connect(subject="caller") as caller:
        subscribed(gate, service, "secure/inbound")

        def double(message: BlockingMessage, reply: Callable[..., BlockingReceipt]) -> None:
            assert not inspect.iscoroutinefunction(reply)
            receipt = reply(message.payload * 2, status="doubled")
            assert isinstance(receipt, BlockingReceipt)
            receipt.wait_for_ack(timeout=10)  # the gateway acks replies too

        service.on("secure/inbound.double", double)
        reply = caller.send(21, message_type="double").wait_for_reply(timeout=10)
        assert (reply.data, reply.status) == (42, "doubled")

        with service.listen("secure/inbound.upper") as requests:
            receipt = caller.send("hi", message_type="upper")
            request = next(requests)
            assert request.can_reply
            assert request.client is not None
            assert request.client.subject == "caller"
            request.reply(request.payload.upper()).wait_for_ack(timeout=10)
        assert receipt.wait_for_reply(timeout=10).data == "HI"

        # wait_for() registers itself at a moment of its own: send until it has one.
        got: list[Any] = []
        waiter = threading.Thread(
            target=lambda: got.append(service.wait_for("secure/inbound.later", timeout=10))
        )
        waiter.start()
        sent = {}
        while waiter.is_alive():
            receipt = caller.send("again", message_type="later")
            sent[receipt.id] = receipt
            waiter.join(0.02)
        [message] = got
        assert isinstance(message, BlockingMessage)
        assert message.id is not None
        message.reply("from wait_for")
        assert sent[message.id].wait_for_reply(timeout=10).data == "from wait_for"


# --------------------------------------------------------------------------- handlers


def test_handlers_run_on_their_own_threads_in_order(gate: Gate) -> None:
    first, second = Recorder(), Recorder()
    with gate.connect() as client:
        subscribed(gate, client, "chat")
        client.on("chat.*", first)
        client.on("chat.*", second)
        for n in range(50):
            client.publish("chat", n)
        assert first.wait(50) == list(range(50))
        assert second.wait(50) == list(range(50))
    [first_thread] = first.threads
    [second_thread] = second.threads
    assert first_thread != second_thread
    assert "realtime_pubsub.blocking handler" in first_thread


def test_a_blocked_handler_delays_nothing_else(gate: Gate) -> None:
    release = threading.Event()
    blocked = Recorder()
    others = Recorder()
    closes = Recorder()

    def block(message: BlockingMessage, reply: Any) -> None:
        release.wait(30)
        blocked(message)

    with gate.connect(heartbeat_interval=0.05, heartbeat_timeout=5) as client:
        connection = client.connection.id
        client.on("close", closes)
        subscribed(gate, client, "chat")
        client.on("chat.*", block)
        client.on("chat.*", others)
        with client.listen("chat.*") as messages:
            for n in range(3):
                client.publish("chat", n)
            # While the first handler blocks: the other handler, the listener, publishing
            # and acks, the loop's own reads all go on.
            assert others.wait(3) == [0, 1, 2]
            assert [next(messages).payload for _ in range(3)] == [0, 1, 2]
            assert client.publish("chat", 3).wait_for_ack(timeout=10)
            assert others.wait(4)[3] == 3
            assert client.connection.id == connection
            assert blocked.values == []
            assert closes.values == []
            release.set()
            assert blocked.wait(4) == [0, 1, 2, 3]


def test_a_handler_may_call_the_client(gate: Gate) -> None:
    results = Recorder()
    with gate.connect(subject="backend") as service, gate.connect() as client:
        subscribed(gate, service, "secure/inbound")
        service.on("secure/inbound.ask", lambda message, reply: reply("answer"))
        subscribed(gate, client, "chat")

        def handler(message: BlockingMessage, reply: Any) -> None:
            client.publish("elsewhere", 1).wait_for_ack(timeout=10)
            answer = client.send("q", message_type="ask").wait_for_reply(timeout=10)
            client.subscribe("more")
            results(answer.data)
            assert client.off(listener) is True  # a handler may remove itself

        listener = client.on("chat.*", handler)
        client.publish("chat", 1)
        assert results.wait(1) == ["answer"]
        client.publish("chat", 2).wait_for_ack(timeout=10)
        assert "more" in client.subscriptions
    assert results.values == ["answer"]


def test_an_exception_in_a_handler_is_logged_and_reported(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    errors = Recorder()

    def fail(message: BlockingMessage, reply: Any) -> None:
        if message.payload == "boom":
            raise LookupError("boom")
        later(message)

    later = Recorder()
    with gate.connect() as client:
        subscribed(gate, client, "chat")
        client.on("error", errors)
        client.on("chat.*", fail)
        client.publish("chat", "boom")
        client.publish("chat", "fine")
        [error] = errors.wait(1)
        assert later.wait(1) == ["fine"]  # the handler's thread carries on
    assert isinstance(error, LookupError)
    assert any(record.exc_info and record.exc_info[1] is error for record in caplog.records)


def test_a_slow_handler_drops_the_oldest_messages_rather_than_grow(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    seen = Recorder()
    total = 1300  # more than a handler's buffer

    def slow(message: BlockingMessage, reply: Any) -> None:
        release.wait(30)
        seen(message)

    with gate.connect() as client, gate.connect() as publisher:
        subscribed(gate, client, "chat")
        client.on("chat.*", slow)
        with client.listen("chat.*", max_buffer=total) as messages:
            for n in range(total):
                publisher.publish("chat", n)
            # Once the listener has the last message, so has the handler's buffer.
            while next(messages).payload != total - 1:
                pass
        release.set()
        values = seen.wait_until(total - 1)
    assert values[0] == 0  # the call that was running when the buffer filled
    assert len(values) < total
    assert values == sorted(values)
    assert any("is slow" in record.getMessage() for record in caplog.records)


# --------------------------------------------------------------------------- threads


def test_many_threads_publish_send_and_wait_at_once(gate: Gate) -> None:
    with gate.connect(subject="backend") as service, gate.connect() as client:
        subscribed(gate, service, "secure/inbound")
        service.on("secure/inbound.echo", lambda message, reply: reply(message.payload))

        def publish(worker: int) -> list[bool]:
            results = []
            for n in range(20):
                receipt = client.publish("load", [worker, n])
                results.append(receipt.wait_for_ack(timeout=30).id == receipt.id)
            return results

        def ask(worker: int) -> list[Any]:
            return [
                client.send([worker, n], message_type="echo").wait_for_reply(timeout=30).data
                for n in range(10)
            ]

        with ThreadPoolExecutor(max_workers=24) as pool:
            published = list(pool.map(publish, range(16)))
            asked = list(pool.map(ask, range(8)))
    assert all(all(results) for results in published)
    assert asked == [[[worker, n] for n in range(10)] for worker in range(8)]


def test_leaving_the_block_waits_for_running_handlers(gate: Gate) -> None:
    running, release = threading.Event(), threading.Event()
    outcome = Recorder()

    def handler(message: BlockingMessage, reply: Any) -> None:
        running.set()
        release.wait(30)
        # The client is still open for a handler that finishes in time.
        outcome(client.publish("done", 1).wait_for_ack(timeout=10).id)

    with gate.connect(handler_timeout=30) as client:
        subscribed(gate, client, "chat")
        client.on("chat.*", handler)
        client.publish("chat", 1)
        assert running.wait(10)
        threading.Timer(0.2, release.set).start()
    assert len(outcome.values) == 1


def test_a_handler_that_outlives_handler_timeout_is_left_to_finish(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    running, release = threading.Event(), threading.Event()
    outcome = Recorder()

    def handler(message: BlockingMessage, reply: Any) -> None:
        running.set()
        release.wait(30)
        try:
            client.publish("late", 1)
        except ClientClosed as exc:
            outcome(exc)

    with gate.connect(handler_timeout=0.05) as client:
        subscribed(gate, client, "chat")
        client.on("chat.*", handler)
        client.publish("chat", 1)
        assert running.wait(10)
        [worker] = [
            t
            for t in threading.enumerate()
            if t.name.startswith("realtime_pubsub.blocking handler")
        ]
    assert worker.is_alive()
    assert any("still running" in record.getMessage() for record in caplog.records)
    release.set()
    worker.join(10)
    assert not worker.is_alive()
    assert isinstance(outcome.values[0], ClientClosed)


def test_no_thread_is_left_behind(gate: Gate) -> None:
    before = set(threading.enumerate())
    running = threading.Event()

    def busy(message: BlockingMessage, reply: Any) -> None:
        running.set()
        time.sleep(0.2)  # still running when the block ends: leaving it waits

    with gate.connect() as client, gate.connect() as other:
        subscribed(gate, client, "chat")
        handled = Recorder()
        for _ in range(3):
            client.on("chat.*", handled)
        client.once("chat.*", handled)
        client.on("session.started", handled)
        removed = client.on("chat.*", handled)
        client.off(removed)
        with client.listen("chat.*") as messages:
            other.publish("chat", 1)
            next(messages)
        handled.wait(4)
        client.on("chat.*", busy)
        other.publish("chat", 2)
        assert running.wait(10)
        during = {t.name for t in set(threading.enumerate()) - before}
        assert "realtime_pubsub.blocking event loop" in during
    assert set(threading.enumerate()) - before == set()


def test_another_threads_listener_ends_when_the_block_closes(gate: Gate) -> None:
    listening = threading.Event()
    ended: list[str] = []

    def consume(client: BlockingClient) -> None:
        with client.listen("chat.*") as messages:
            listening.set()
            for _ in messages:
                pass
            ended.append("iteration")
            assert messages.get(timeout=None) is None
        ended.append("block")

    with gate.connect() as client:
        thread = threading.Thread(target=consume, args=(client,))
        thread.start()
        assert listening.wait(10)
    thread.join(10)
    assert ended == ["iteration", "block"]


def test_a_listener_left_open_in_another_thread_does_not_hold_up_closing(gate: Gate) -> None:
    entered, closed = threading.Event(), threading.Event()
    ended: list[Any] = []

    def consume(client: BlockingClient) -> None:
        with client.listen("chat.*") as messages:
            entered.set()
            closed.wait(30)  # still inside the block when the client closes
            ended.append(list(messages))
        ended.append("left")

    with gate.connect() as client:
        thread = threading.Thread(target=consume, args=(client,))
        thread.start()
        assert entered.wait(10)
    closed.set()
    thread.join(10)
    assert ended == [[], "left"]


@pytest.fixture(autouse=True)
def _log_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="realtime_pubsub")
