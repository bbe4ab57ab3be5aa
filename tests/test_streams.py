"""Message streams with two ends (realtime_pubsub._streams), on their own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import pytest

from realtime_pubsub import SlowConsumer
from realtime_pubsub._streams import (
    MessageStream,
    Overflow,
    StreamSender,
    check_options,
    open_stream,
)

pytestmark = pytest.mark.anyio


T = TypeVar("T")


@contextmanager
def stream_pair(
    max_buffer: int = 10, overflow: Overflow = "drop-oldest", consumer: str | None = None
) -> Iterator[tuple[StreamSender[Any], MessageStream[Any]]]:
    """Both ends of a stream, closed on the way out."""
    sender: StreamSender[Any]
    stream: MessageStream[Any]
    sender, stream = open_stream("p", max_buffer=max_buffer, overflow=overflow, consumer=consumer)
    try:
        yield sender, stream
    finally:
        sender.close()
        stream.close()


async def drain(stream: MessageStream[T]) -> list[T]:
    return [value async for value in stream]


@pytest.mark.parametrize(
    ("overflow", "expected"), [("drop-oldest", [7, 8, 9]), ("drop-newest", [0, 1, 2])]
)
async def test_overflow_drops_and_counts(overflow: Overflow, expected: list[int]) -> None:
    with stream_pair(max_buffer=3, overflow=overflow) as (sender, stream):
        assert all(sender.deliver(i) for i in range(10))
        sender.close()
        assert await drain(stream) == expected
        assert stream.dropped == 7


async def test_overflow_error_ends_the_iteration_with_slow_consumer() -> None:
    with stream_pair(max_buffer=2, overflow="error") as (sender, stream):
        assert sender.deliver(0) and sender.deliver(1)
        assert sender.deliver(2) is False  # unregister me
        assert [await stream.__anext__(), await stream.__anext__()] == [0, 1]
        with pytest.raises(SlowConsumer) as info:
            await stream.__anext__()
        assert info.value.dropped == 1
        assert stream.overflowed


async def test_closing_the_send_end_ends_the_iteration_after_what_is_buffered() -> None:
    with stream_pair() as (sender, stream):
        sender.deliver("a")
        sender.close()
        assert await drain(stream) == ["a"]


async def test_a_consumer_that_stops_makes_delivery_ask_to_be_unregistered() -> None:
    with stream_pair() as (sender, stream):
        stream.close()
        assert sender.deliver("a") is False


async def test_a_waiting_consumer_gets_what_is_delivered() -> None:
    got: list[str] = []
    with stream_pair() as (sender, stream):
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                got.append(await stream.__anext__())

            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            sender.deliver("late")
    assert got == ["late"]


def test_the_slow_consumer_warning_names_the_consumer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with stream_pair(max_buffer=1, consumer="handler h for 'chat.*'") as (sender, _):
        for i in range(3):
            sender.deliver(i)
    assert [r.getMessage() for r in caplog.records] == [
        "handler h for 'chat.*' is slow: 1 message(s) dropped (overflow=drop-oldest, max_buffer=1)"
    ]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        check_options(0, "drop-oldest")
    with pytest.raises(ValueError, match="overflow"):
        check_options(1, "block")
