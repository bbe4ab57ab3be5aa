"""Bounded message streams with two ends, as trio's and anyio's memory channels have: the
client delivers into the send end without ever blocking, the consumer iterates the receive
end (:class:`MessageStream`, the public one). What happens when the consumer falls behind
is the stream's overflow policy, which lives on the send end."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Final, Generic, Literal, NoReturn, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._errors import SlowConsumer

__all__ = ["MessageStream", "Overflow", "StreamSender", "check_options", "open_stream"]

#: What a stream does when its consumer is ``max_buffer`` messages behind.
Overflow = Literal["drop-oldest", "drop-newest", "error"]
_OVERFLOWS: Final = ("drop-oldest", "drop-newest", "error")

T = TypeVar("T")


class _Losses:
    """What the overflow policy cost, shared by both ends of one stream."""

    __slots__ = ("dropped", "overflowed")

    def __init__(self) -> None:
        self.dropped = 0
        self.overflowed = False


def check_options(max_buffer: object, overflow: object) -> None:
    """Raise :class:`ValueError` for a ``max_buffer`` below 1 or an unknown ``overflow``."""
    if not isinstance(max_buffer, int) or max_buffer < 1:
        raise ValueError(f"max_buffer must be a positive integer, not {max_buffer!r}")
    if overflow not in _OVERFLOWS:
        raise ValueError(f"overflow must be one of {', '.join(_OVERFLOWS)}; not {overflow!r}")


def open_stream(
    pattern: str,
    *,
    max_buffer: int = 1000,
    overflow: Overflow = "drop-oldest",
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    consumer: str | None = None,
) -> tuple[StreamSender[T], MessageStream[T]]:
    """Both ends of a new stream for ``pattern``. ``consumer`` names who reads it in the
    warning logged when it falls behind (default: "listener <pattern>"). Raises what
    :func:`check_options` raises. Close both ends when done (anyio warns about memory
    streams left open)."""
    check_options(max_buffer, overflow)
    send, receive = anyio.create_memory_object_stream[T](max_buffer)
    losses = _Losses()
    stream = MessageStream(pattern, receive, losses, max_buffer=max_buffer, overflow=overflow)
    sender = StreamSender(
        pattern,
        send,
        receive,
        losses,
        max_buffer=max_buffer,
        overflow=overflow,
        logger=logger or logging.getLogger("realtime_pubsub"),
        consumer=consumer or f"listener {pattern!r}",
    )
    return sender, stream


class StreamSender(Generic[T]):
    """The send end: hands values to the consumer without blocking, applying the overflow
    policy when the buffer is full."""

    __slots__ = (
        "_consumer",
        "_logger",
        "_losses",
        "_overflow",
        "_receive",
        "_send",
        "max_buffer",
        "pattern",
    )

    def __init__(
        self,
        pattern: str,
        send: MemoryObjectSendStream[T],
        receive: MemoryObjectReceiveStream[T],
        losses: _Losses,
        *,
        max_buffer: int,
        overflow: Overflow,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        consumer: str,
    ) -> None:
        self.pattern = pattern
        self.max_buffer = max_buffer
        self._send = send
        # Only for "drop-oldest": the send end makes room by taking the oldest message.
        self._receive = receive
        self._losses = losses
        self._overflow = overflow
        self._logger = logger
        self._consumer = consumer

    def deliver(self, value: T) -> bool:
        """Hand ``value`` over without blocking; False once the stream is closed (or closed
        itself under ``overflow="error"``): unregister it then."""
        try:
            self._send.send_nowait(value)
            return True
        except anyio.WouldBlock:
            pass
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        losses = self._losses
        losses.dropped += 1
        if losses.dropped == 1 or losses.dropped % 1000 == 0:
            self._logger.warning(
                "%s is slow: %d message(s) dropped (overflow=%s, max_buffer=%d)",
                self._consumer,
                losses.dropped,
                self._overflow,
                self.max_buffer,
            )
        if self._overflow == "drop-oldest":
            try:
                self._receive.receive_nowait()
                self._send.send_nowait(value)
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                pass
            return True
        if self._overflow == "error":
            losses.overflowed = True
            self._send.close()
            return False
        return True

    def close(self) -> None:
        """End the consumer's iteration once it has taken what is buffered."""
        self._send.close()


class MessageStream(Generic[T]):
    """An async iterator over the messages a listener receives, through a bounded buffer.

    When the consumer falls ``max_buffer`` messages behind, the overflow policy decides:
    ``"drop-oldest"`` (default) discards the oldest buffered message to make room,
    ``"drop-newest"`` discards the new one, ``"error"`` ends the iteration with
    :class:`~realtime_pubsub.SlowConsumer` once the buffer is drained. Either way
    :attr:`dropped` counts what was lost, and the client's reader, heartbeat and other
    listeners never wait for this consumer.

    Which policy to pick: ``"drop-oldest"`` when the latest state is what matters
    (prices, positions, presence); ``"drop-newest"`` when the first messages of a burst
    matter more than its tail; ``"error"`` when losing any message is a bug that should
    stop this consumer loudly.
    """

    __slots__ = ("_losses", "_receive", "_streak", "max_buffer", "overflow", "pattern")

    def __init__(
        self,
        pattern: str,
        receive: MemoryObjectReceiveStream[T],
        losses: _Losses,
        *,
        max_buffer: int,
        overflow: Overflow,
    ) -> None:
        #: The pattern this stream listens to.
        self.pattern = pattern
        #: How many messages may wait for the consumer.
        self.max_buffer = max_buffer
        #: The overflow policy.
        self.overflow: Overflow = overflow
        self._receive = receive
        self._losses = losses
        self._streak = 0

    def __repr__(self) -> str:
        return (
            f"<realtime_pubsub.MessageStream pattern={self.pattern!r} "
            f"buffered={self._receive.statistics().current_buffer_used} dropped={self.dropped}>"
        )

    @property
    def dropped(self) -> int:
        """How many messages this listener lost to its overflow policy."""
        return self._losses.dropped

    @property
    def overflowed(self) -> bool:
        """True once ``overflow="error"`` tripped."""
        return self._losses.overflowed

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
        if self._losses.overflowed:
            raise SlowConsumer(
                f"listener {self.pattern!r} fell {self.max_buffer} messages behind",
                dropped=self._losses.dropped,
            ) from None
        raise StopAsyncIteration from None

    def receive_nowait(self) -> T:
        """The next buffered message; raises :class:`anyio.WouldBlock` if there is none,
        :class:`anyio.EndOfStream` once the stream has ended."""
        return self._receive.receive_nowait()

    def close(self) -> None:
        """Stop consuming: what is buffered is dropped and nothing more is delivered."""
        self._receive.close()
