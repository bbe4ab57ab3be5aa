"""Ack and reply slots, keyed by message id, and the clock that times the waits on them.

``publish`` and ``send`` register a slot *before* the frame is written, so an ack or a reply
that arrives before anybody waits is kept. A slot lives as long as its :class:`Receipt`: a
receipt nobody keeps frees its slot at once (its finalizer does), so memory does not grow
with messages nobody waits for.

A wait with a timeout is timed by the table's :class:`Clock`, one task for all of them,
rather than by a cancel scope of its own: a cancel scope with a deadline costs more than
all the rest of a request/reply round trip's bookkeeping put together.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Final

import anyio

from ._errors import AckTimeout, ReplyTimeout
from ._messages import Ack, ResponseMessage

__all__ = ["Clock", "PendingTable", "Receipt"]


ErrorFactory = Callable[[], BaseException]

#: The clock's resolution (seconds): a wait times out at most this much late. Deadlines
#: that fall in the same tick share one entry, so the clock wakes at most this often.
TICK: Final = 1 / 64


class Clock:
    """Wakes waits whose deadline has passed (it sets their event). :meth:`run` must run,
    in a task of its own, for as long as anybody waits with a timeout."""

    __slots__ = ("_next", "_ticks", "_wake", "_when")

    def __init__(self) -> None:
        self._ticks: dict[int, set[anyio.Event]] = {}
        self._when: list[int] = []  # the ticks in _ticks (and some emptied since), a heap
        self._next: float = math.inf  # the tick the clock sleeps until
        self._wake: anyio.Event | None = None

    def __len__(self) -> int:
        return sum(map(len, self._ticks.values()))

    def add(self, event: anyio.Event, deadline: float) -> int:
        """Set ``event`` once ``deadline`` (in :func:`anyio.current_time`'s time) has
        passed; returns the key to :meth:`remove` it with."""
        tick = math.ceil(deadline / TICK)
        events = self._ticks.get(tick)
        if events is None:
            events = self._ticks[tick] = set()
            heapq.heappush(self._when, tick)
            if tick < self._next and self._wake is not None:
                self._wake.set()
        events.add(event)
        return tick

    def remove(self, event: anyio.Event, tick: int) -> None:
        """Forget ``event`` (its wait is over)."""
        events = self._ticks.get(tick)
        if events is not None:
            events.discard(event)
            if not events:
                del self._ticks[tick]

    async def run(self) -> None:
        """Keep time until cancelled."""
        when, ticks = self._when, self._ticks
        while True:
            self._wake = anyio.Event()
            now = anyio.current_time()
            while when and when[0] * TICK <= now:
                for event in ticks.pop(heapq.heappop(when), ()):
                    event.set()
            self._next = when[0] if when else math.inf
            with anyio.move_on_after(self._next * TICK - now):
                await self._wake.wait()


class _OneShot:
    """A value delivered at most once, or an error; waited for by any number of tasks,
    each with a timeout of its own."""

    __slots__ = ("_waiting", "done", "error", "value")

    def __init__(self) -> None:
        self.value: object = None
        # A factory, not an instance: every waiter raises its own exception object, so
        # tracebacks of different tasks never pile up on one shared instance.
        self.error: ErrorFactory | None = None
        self.done = False
        self._waiting: list[anyio.Event] | None = None

    def set(self, value: object) -> None:
        if not self.done:
            self.value, self.done = value, True
            self._wake_all()

    def fail(self, error: ErrorFactory) -> None:
        if not self.done:
            self.error, self.done = error, True
            self._wake_all()

    def _wake_all(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            for event in waiting:
                event.set()

    async def wait(self, clock: Clock, deadline: float | None) -> bool:
        """Wait for the value or the error until ``deadline`` (None: no limit); whether it
        came (then :meth:`result` has it)."""
        if not self.done:
            event = anyio.Event()
            if self._waiting is None:
                self._waiting = []
            self._waiting.append(event)
            tick = None if deadline is None else clock.add(event, deadline)
            try:
                await event.wait()
            finally:
                if tick is not None:
                    clock.remove(event, tick)
                if self._waiting is not None and event in self._waiting:
                    self._waiting.remove(event)
        return self.done

    @property
    def waited(self) -> bool:
        """Whether some task waits for it now."""
        return bool(self._waiting)

    def result(self) -> object:
        """The value, or raise the error (once :attr:`done`)."""
        if self.error is not None:
            raise self.error()
        return self.value


class _Slot:
    __slots__ = ("ack", "id", "reply")

    def __init__(self, message_id: str) -> None:
        self.id = message_id
        self.ack = _OneShot()
        self.reply = _OneShot()


class PendingTable:
    """The slots of the messages in flight on one client. Its :attr:`clock` must run (in
    a task of the client's) while anybody waits with a timeout."""

    __slots__ = ("_slots", "clock")

    def __init__(self) -> None:
        # Freed by the receipts' finalizers (a weak dictionary costs a Python call per
        # access; this is every publish's path).
        self._slots: dict[str, _Slot] = {}
        #: Times the waits on this table's receipts.
        self.clock = Clock()

    def __len__(self) -> int:
        return len(self._slots)

    def register(self, message_id: str) -> Receipt:
        """A receipt whose slot is registered under ``message_id``; raises
        :class:`ValueError` if that id is already waiting."""
        if message_id in self._slots:
            raise ValueError(f"message id {message_id!r} is already in flight")
        slot = _Slot(message_id)
        self._slots[message_id] = slot
        return Receipt(slot, self)

    def discard(self, receipt: Receipt) -> None:
        """Forget ``receipt``'s slot (if it is still the one registered under its id)."""
        slot, slots = receipt._slot, self._slots
        if slots.get(slot.id) is slot:
            del slots[slot.id]

    def ack(self, ack: Ack) -> bool:
        """Deliver an ack; False when nobody holds a receipt for it."""
        slot = self._slots.get(ack.id)
        if slot is None:
            return False
        slot.ack.set(ack)
        return True

    def reply(self, response: ResponseMessage) -> bool:
        """Deliver a reply and free the slot; False when nobody holds a receipt for it."""
        slot = self._slots.pop(response.id, None)
        if slot is None:
            return False
        # A reply implies the message was received: an ack still in flight is moot.
        slot.reply.set(response)
        slot.ack.set(Ack(response.id))
        return True

    def fail_all(self, error: ErrorFactory) -> None:
        """Fail every wait (the connection died, or the client closed) and forget them."""
        slots = list(self._slots.values())
        self._slots.clear()
        for slot in slots:
            slot.ack.fail(error)
            slot.reply.fail(error)


class Receipt:
    """What :meth:`Client.publish <realtime_pubsub.Client.publish>` and
    :meth:`Client.send <realtime_pubsub.Client.send>` return: a handle on the message's
    acknowledgement and reply.

    The slots for both exist from before the frame was written, so awaiting late never
    loses an ack or a reply that already arrived. Dropping the receipt frees them.
    """

    __slots__ = ("_slot", "_table")

    def __init__(self, slot: _Slot, table: PendingTable) -> None:
        self._slot = slot
        self._table = table

    def __del__(self) -> None:
        self._table.discard(self)

    def __repr__(self) -> str:
        state = "acked" if self._slot.ack.done and self._slot.ack.error is None else "pending"
        return f"<realtime_pubsub.Receipt id={self._slot.id!r} {state}>"

    @property
    def id(self) -> str:
        """The message id, which the gateway's ack and a replier's answer refer to."""
        return self._slot.id

    async def wait_for_ack(self, timeout: float | None = 5.0) -> Ack:
        """Wait for the gateway's acknowledgement (at once if it already came).

        The service acks only when the application has "WebSocket Inbound ACK" enabled,
        so prefer a timeout. After a timeout or a cancellation the receipt is done with:
        its slot is freed (once no other task waits on it).

        Args:
            timeout: seconds to wait at most (``None``: as long as the connection lives).

        Returns:
            The :class:`~realtime_pubsub.Ack`.

        Raises:
            AckTimeout: no ack within ``timeout`` seconds (the message may still have
                been delivered).
            ConnectionClosed: at once, when the connection the message went out on dies
                first: its ack can no longer arrive.
            ClientClosed: the client closed first.
        """
        value = await self._wait(self._slot.ack, timeout, AckTimeout, "acknowledgement")
        assert isinstance(value, Ack)
        return value

    async def wait_for_reply(self, timeout: float | None = 5.0) -> ResponseMessage:
        """Wait for a reply, what a backend's ``message.reply(...)`` sent (at once if it
        already came). The slot is freed when the reply arrives, and on a timeout or a
        cancellation once no other task waits on it.

        Args:
            timeout: seconds to wait at most (``None``: as long as the connection lives).

        Returns:
            The :class:`~realtime_pubsub.ResponseMessage`.

        Raises:
            ReplyTimeout: no reply within ``timeout`` seconds (the request may still be
                processed).
            ConnectionClosed: at once, when the connection dies first: replies are
                addressed to it, so they can no longer arrive.
            ClientClosed: the client closed first.
        """
        value = await self._wait(self._slot.reply, timeout, ReplyTimeout, "reply")
        assert isinstance(value, ResponseMessage)
        return value

    async def _wait(
        self,
        shot: _OneShot,
        timeout: float | None,
        timeout_error: type[AckTimeout | ReplyTimeout],
        what: str,
    ) -> object:
        try:
            deadline = None if timeout is None else anyio.current_time() + timeout
            if not await shot.wait(self._table.clock, deadline):
                raise timeout_error(f"no {what} for message {self.id!r} within {timeout} s")
            return shot.result()
        except BaseException:
            # Done with, unless another task still waits on this receipt.
            if not (self._slot.ack.waited or self._slot.reply.waited):
                self._table.discard(self)
            raise
