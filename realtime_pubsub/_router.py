"""Fan-out of incoming messages to listeners: bounded memory object streams registered under
patterns, each with its own overflow policy, fed without ever blocking the reader."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Generic, Literal, NoReturn, Protocol, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._errors import SlowConsumer
from ._messages import IncomingMessage
from ._patterns import PatternIndex

__all__ = ["MessageStream", "Overflow", "Router", "Sink"]

Overflow = Literal["drop-oldest", "drop-newest", "error"]
_OVERFLOWS = ("drop-oldest", "drop-newest", "error")

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class Sink(Protocol[T_contra]):
    """Where the router hands values: a listener's stream, a callback's queue, a waiter."""

    @property
    def pattern(self) -> str:
        """The pattern (or lifecycle event name) the sink is registered under."""

    def deliver(self, value: T_contra, /) -> bool:
        """Take ``value`` without blocking; False asks to be unregistered."""

    def close(self) -> None:
        """The client is closing: end whatever consumes this sink."""


class MessageStream(Generic[T]):
    """An async iterator over the messages a listener receives, through a bounded buffer.

    When the consumer falls ``max_buffer`` messages behind, the overflow policy decides:
    ``"drop-oldest"`` (default) discards the oldest buffered message to make room,
    ``"drop-newest"`` discards the new one, ``"error"`` ends the iteration with
    :class:`~realtime_pubsub.SlowConsumer` once the buffer is drained. Either way
    :attr:`dropped` counts what was lost, and the client's reader, heartbeat and other
    listeners never wait for this consumer.
    """

    __slots__ = (
        "_logger",
        "_receive",
        "_send",
        "_streak",
        "dropped",
        "max_buffer",
        "overflow",
        "overflowed",
        "pattern",
    )

    def __init__(
        self,
        pattern: str,
        *,
        max_buffer: int = 1000,
        overflow: Overflow = "drop-oldest",
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        if not isinstance(max_buffer, int) or max_buffer < 1:
            raise ValueError(f"max_buffer must be a positive integer, not {max_buffer!r}")
        if overflow not in _OVERFLOWS:
            raise ValueError(f"overflow must be one of {', '.join(_OVERFLOWS)}; not {overflow!r}")
        self.pattern = pattern
        self.max_buffer = max_buffer
        self.overflow: Overflow = overflow
        #: How many messages this listener lost to its overflow policy.
        self.dropped = 0
        #: True once ``overflow="error"`` tripped.
        self.overflowed = False
        self._logger = logger or logging.getLogger("realtime_pubsub")
        self._streak = 0
        self._send: MemoryObjectSendStream[T]
        self._receive: MemoryObjectReceiveStream[T]
        self._send, self._receive = anyio.create_memory_object_stream[T](max_buffer)

    def __repr__(self) -> str:
        return (
            f"<realtime_pubsub.MessageStream pattern={self.pattern!r} "
            f"buffered={self._receive.statistics().current_buffer_used} dropped={self.dropped}>"
        )

    def deliver(self, value: T) -> bool:
        try:
            self._send.send_nowait(value)
            return True
        except anyio.WouldBlock:
            pass
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            self._logger.warning(
                "listener %r is slow: %d message(s) dropped (overflow=%s, max_buffer=%d)",
                self.pattern,
                self.dropped,
                self.overflow,
                self.max_buffer,
            )
        if self.overflow == "drop-oldest":
            try:
                self._receive.receive_nowait()
                self._send.send_nowait(value)
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                pass
            return True
        if self.overflow == "error":
            self.overflowed = True
            self._send.close()
            return False
        return True

    def close(self) -> None:
        """End the iteration once what is buffered has been consumed."""
        self._send.close()

    def discard(self) -> None:
        """Close both ends at once: nothing more is delivered or consumed."""
        self._send.close()
        self._receive.close()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        # anyio's receive() yields to the event loop on every call, even with messages
        # waiting: a full scheduling round per message. Take what is buffered directly and
        # pass a checkpoint (cancellation, fairness) every 64 messages, before taking one,
        # so a cancelled consumer never loses the message it was about to get.
        self._streak = streak = (self._streak + 1) & 63
        if not streak:
            await anyio.lowlevel.checkpoint()
        try:
            return self._receive.receive_nowait()
        except anyio.WouldBlock:
            pass
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._end()
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._end()

    def _end(self) -> NoReturn:
        self._receive.close()
        if self.overflowed:
            raise SlowConsumer(
                f"listener {self.pattern!r} fell {self.max_buffer} messages behind",
                dropped=self.dropped,
            ) from None
        raise StopAsyncIteration from None

    def receive_nowait(self) -> T:
        """The next buffered message; raises :class:`anyio.WouldBlock` if there is none."""
        return self._receive.receive_nowait()


class Router:
    """Listeners registered under event-name patterns, and lifecycle-event listeners."""

    __slots__ = ("_index", "_lifecycle", "_match")

    def __init__(self) -> None:
        self._index: PatternIndex[Sink[IncomingMessage]] = PatternIndex()
        self._match = self._index.match  # the reader calls it for every message
        self._lifecycle: dict[str, list[Sink[Any]]] = {}

    def __len__(self) -> int:
        return len(self._index) + sum(len(s) for s in self._lifecycle.values())

    def add(self, pattern: str, sink: Sink[IncomingMessage]) -> None:
        self._index.add(pattern, sink)

    def remove(self, pattern: str, sink: Sink[IncomingMessage]) -> None:
        self._index.remove(pattern, sink)

    def dispatch(self, message: IncomingMessage) -> int:
        """Hand ``message`` to every matching listener without blocking; returns how many."""
        sinks = self._match(message.topic + "." + message.message_type)
        for sink in sinks:
            if not sink.deliver(message):
                self._index.remove(sink.pattern, sink)
        return len(sinks)

    def add_lifecycle(self, event: str, sink: Sink[Any]) -> None:
        self._lifecycle.setdefault(event, []).append(sink)

    def remove_lifecycle(self, event: str, sink: Sink[Any]) -> None:
        sinks = self._lifecycle.get(event, [])
        if sink in sinks:
            sinks.remove(sink)

    def emit(self, event: str, value: object) -> None:
        for sink in list(self._lifecycle.get(event, ())):
            if not sink.deliver(value):
                self.remove_lifecycle(event, sink)

    def close_all(self) -> None:
        """End every listener's iteration (the client is closing)."""
        for sink in [*self._index, *(s for sinks in self._lifecycle.values() for s in sinks)]:
            sink.close()
