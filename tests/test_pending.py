"""The ack and reply slots (realtime_pubsub._pending) and their clock, on their own."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from realtime_pubsub import Ack, AckTimeout, ConnectionClosed, ReplyTimeout, ResponseMessage
from realtime_pubsub._pending import TICK, Clock, PendingTable

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(table: PendingTable) -> AsyncIterator[PendingTable]:
    """``table`` with its clock running, as the client runs it."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(table.clock.run)
        yield table
        tg.cancel_scope.cancel()


async def test_an_ack_delivered_before_the_wait_is_kept() -> None:
    table = PendingTable()
    receipt = table.register("m1")
    assert table.ack(Ack("m1")) is True
    assert await receipt.wait_for_ack(timeout=0) == Ack("m1")
    assert len(table) == 1  # the reply may still come


async def test_a_reply_answers_both_waits_and_frees_the_slot() -> None:
    table = PendingTable()
    receipt = table.register("m1")
    assert table.reply(ResponseMessage(id="m1", data=42)) is True
    assert len(table) == 0
    assert (await receipt.wait_for_reply(timeout=0)).data == 42
    assert await receipt.wait_for_ack(timeout=0) == Ack("m1")


async def test_answers_nobody_waits_for_are_ignored() -> None:
    table = PendingTable()
    assert table.ack(Ack("nobody")) is False
    assert table.reply(ResponseMessage(id="nobody", data=None)) is False


def test_an_id_already_in_flight_is_refused() -> None:
    table = PendingTable()
    kept = table.register("m1")
    with pytest.raises(ValueError, match="already in flight"):
        table.register("m1")
    assert kept.id == "m1"


async def test_fail_all_fails_every_waiter_with_an_exception_of_its_own() -> None:
    table = PendingTable()
    receipt = table.register("m1")
    raised: list[BaseException] = []

    async def wait() -> None:
        with pytest.raises(ConnectionClosed) as info:
            await receipt.wait_for_ack(timeout=None)
        raised.append(info.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        table.fail_all(lambda: ConnectionClosed("gone", code=1006))
    assert len(raised) == 2 and raised[0] is not raised[1]
    assert len(table) == 0
    with pytest.raises(ConnectionClosed):
        await receipt.wait_for_reply(timeout=None)


async def test_a_timeout_raises_and_frees_the_slot() -> None:
    async with running(PendingTable()) as table:
        receipt = table.register("m1")
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(AckTimeout, match="m1"):
            await receipt.wait_for_ack(timeout=0.05)
        assert anyio.current_time() - started >= 0.05
        assert len(table) == 0
        other = table.register("m2")
        with anyio.fail_after(5), pytest.raises(ReplyTimeout):
            await other.wait_for_reply(timeout=0.01)
        assert len(table) == 0
        assert len(table.clock) == 0


async def test_waits_with_different_timeouts_on_one_receipt_time_out_apart() -> None:
    async with running(PendingTable()) as table:
        receipt = table.register("m1")
        outcomes: list[str] = []

        async def wait(timeout: float) -> None:
            try:
                await receipt.wait_for_ack(timeout=timeout)
                outcomes.append(f"acked {timeout}")
            except AckTimeout:
                outcomes.append(f"timed out {timeout}")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait, 0.02)
                tg.start_soon(wait, 60)
                await anyio.sleep(0.2)
                table.ack(Ack("m1"))
        assert outcomes == ["timed out 0.02", "acked 60"]


async def test_the_clock_forgets_waits_that_are_over() -> None:
    clock = Clock()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.run)
        early, late = anyio.Event(), anyio.Event()
        tick = clock.add(late, anyio.current_time() + 60)
        clock.add(early, anyio.current_time() + 0.01)  # earlier: wakes the sleeping clock
        with anyio.fail_after(5):
            await early.wait()
        assert not late.is_set()
        clock.remove(late, tick)
        assert len(clock) == 0
        # A deadline already past fires at the next tick.
        past = anyio.Event()
        clock.add(past, anyio.current_time() - 1)
        with anyio.fail_after(5 + TICK):
            await past.wait()
        tg.cancel_scope.cancel()


async def test_a_cancelled_wait_frees_the_slot() -> None:
    async with running(PendingTable()) as table:
        receipt = table.register("m1")
        with anyio.move_on_after(0.01):
            await receipt.wait_for_reply(timeout=30)
        assert len(table) == 0
        assert len(table.clock) == 0
        assert table.reply(ResponseMessage(id="m1", data=1)) is False


def test_a_receipt_nobody_keeps_frees_its_slot() -> None:
    table = PendingTable()
    table.register("m1")
    gc.collect()
    assert len(table) == 0
    kept = table.register("m2")
    assert len(table) == 1
    del kept
    gc.collect()
    assert len(table) == 0
