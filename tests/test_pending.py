"""The ack and reply slots (realtime_pubsub._pending), on their own."""

from __future__ import annotations

import gc

import anyio
import pytest

from realtime_pubsub import Ack, AckTimeout, ConnectionClosed, ReplyTimeout, ResponseMessage
from realtime_pubsub._pending import PendingTable

pytestmark = pytest.mark.anyio


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
    table = PendingTable()
    receipt = table.register("m1")
    with pytest.raises(AckTimeout, match="m1"):
        await receipt.wait_for_ack(timeout=0.01)
    assert len(table) == 0
    other = table.register("m2")
    with pytest.raises(ReplyTimeout):
        await other.wait_for_reply(timeout=0.01)
    assert len(table) == 0


async def test_a_cancelled_wait_frees_the_slot() -> None:
    table = PendingTable()
    receipt = table.register("m1")
    with anyio.move_on_after(0.01):
        await receipt.wait_for_reply(timeout=None)
    assert len(table) == 0
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
