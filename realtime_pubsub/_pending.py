"""Ack and reply slots, keyed by message id.

``publish`` and ``send`` register a slot *before* the frame is written, so an ack or a reply
that arrives before anybody waits is kept. The table holds slots weakly: a :class:`Receipt`
is the only strong reference, so a receipt nobody keeps frees its slot at once, and memory
does not grow with messages nobody waits for.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import anyio

from ._errors import AckTimeout, ReplyTimeout
from ._messages import Ack, ResponseMessage

__all__ = ["PendingTable", "Receipt"]


ErrorFactory = Callable[[], BaseException]


class _OneShot:
    """A value delivered at most once, or an error; waited for by any number of tasks."""

    __slots__ = ("_event", "done", "error", "value")

    def __init__(self) -> None:
        self.value: object = None
        # A factory, not an instance: every waiter raises its own exception object, so
        # tracebacks of different tasks never pile up on one shared instance.
        self.error: ErrorFactory | None = None
        self.done = False
        self._event: anyio.Event | None = None

    def set(self, value: object) -> None:
        if not self.done:
            self.value, self.done = value, True
            if self._event is not None:
                self._event.set()

    def fail(self, error: ErrorFactory) -> None:
        if not self.done:
            self.error, self.done = error, True
            if self._event is not None:
                self._event.set()

    async def wait(self) -> object:
        if not self.done:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        if self.error is not None:
            raise self.error()
        return self.value


class _Slot:
    __slots__ = ("__weakref__", "ack", "id", "reply")

    def __init__(self, message_id: str) -> None:
        self.id = message_id
        self.ack = _OneShot()
        self.reply = _OneShot()


class PendingTable:
    """The slots of the messages in flight on one client."""

    __slots__ = ("_slots",)

    def __init__(self) -> None:
        self._slots: weakref.WeakValueDictionary[str, _Slot] = weakref.WeakValueDictionary()

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
        slot = receipt._slot
        if self._slots.get(slot.id) is slot:
            del self._slots[slot.id]

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

    def __repr__(self) -> str:
        state = "acked" if self._slot.ack.done and self._slot.ack.error is None else "pending"
        return f"<realtime_pubsub.Receipt id={self._slot.id!r} {state}>"

    @property
    def id(self) -> str:
        """The message id: what the gateway's ack and a replier's answer refer to."""
        return self._slot.id

    async def wait_for_ack(self, timeout: float | None = 5.0) -> Ack:
        """Wait for the gateway's acknowledgement.

        Raises :class:`~realtime_pubsub.AckTimeout` after ``timeout`` seconds (``None``:
        wait as long as the connection lives; the application may have acks disabled, so
        prefer a timeout), and :class:`~realtime_pubsub.ConnectionClosed` at once if the
        connection the message went out on dies first: the ack can no longer arrive.
        After a timeout or a cancellation the receipt is done with: its slot is freed.
        """
        value = await self._wait(self._slot.ack, timeout, AckTimeout, "acknowledgement")
        assert isinstance(value, Ack)
        return value

    async def wait_for_reply(self, timeout: float | None = 5.0) -> ResponseMessage:
        """Wait for a reply (what a backend's ``message.reply(...)`` sent).

        Raises :class:`~realtime_pubsub.ReplyTimeout` after ``timeout`` seconds and
        :class:`~realtime_pubsub.ConnectionClosed` at once if the connection dies first
        (replies are addressed to the connection, so they can no longer arrive). The slot
        is freed when the reply arrives, on a timeout and on a cancellation.
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
            if shot.done or timeout is None:
                return await shot.wait()
            # A cancel scope of our own rather than move_on_after(): this runs for every
            # message someone waits for, and that context manager costs a generator.
            with anyio.CancelScope(deadline=anyio.current_time() + timeout):
                return await shot.wait()
            raise timeout_error(f"no {what} for message {self.id!r} within {timeout} s")
        except BaseException:
            self._table.discard(self)
            raise
