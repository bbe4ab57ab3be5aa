"""Who gets what the client receives: sinks (listeners' streams, callbacks' queues, waiters)
registered under a name, which is either one of the lifecycle events or an event-name
pattern; the reader hands each message to every matching sink without ever blocking."""

from __future__ import annotations

from typing import Any, Final, Protocol, TypeVar

from ._messages import IncomingMessage
from ._patterns import PatternIndex, validate_pattern

__all__ = ["LIFECYCLE_EVENTS", "Router", "Sink", "is_lifecycle_event", "validate_name"]

#: The lifecycle events of the callback API. They are not topics: patterns never match them.
LIFECYCLE_EVENTS: Final = frozenset({"session.started", "error", "close"})

T_contra = TypeVar("T_contra", contravariant=True)


def is_lifecycle_event(name: str) -> bool:
    """Whether ``name`` is a lifecycle event rather than a message pattern: the one place
    that decides it."""
    return name in LIFECYCLE_EVENTS


def validate_name(name: object) -> str:
    """Return ``name`` if it is a lifecycle event or a usable pattern, else raise
    :class:`ValueError`."""
    if isinstance(name, str) and is_lifecycle_event(name):
        return name
    return validate_pattern(name)


class Sink(Protocol[T_contra]):
    """Where the router hands values."""

    @property
    def pattern(self) -> str:
        """The pattern (or lifecycle event name) the sink is registered under."""

    def deliver(self, value: T_contra, /) -> bool:
        """Take ``value`` without blocking; False asks to be unregistered."""

    def close(self) -> None:
        """The client is closing: end whatever consumes this sink."""


class Router:
    """Sinks by pattern, for messages, and by lifecycle event."""

    __slots__ = ("_index", "_lifecycle", "_match")

    def __init__(self) -> None:
        self._index: PatternIndex[Sink[IncomingMessage]] = PatternIndex()
        self._match = self._index.match  # the reader calls it for every message
        self._lifecycle: dict[str, list[Sink[Any]]] = {}

    def __len__(self) -> int:
        return len(self._index) + sum(len(s) for s in self._lifecycle.values())

    def add(self, name: str, sink: Sink[Any]) -> None:
        """Register ``sink`` under a lifecycle event or a pattern (checked: raises
        :class:`ValueError` for an unusable one)."""
        if is_lifecycle_event(name):
            self._lifecycle.setdefault(name, []).append(sink)
        else:
            self._index.add(name, sink)

    def remove(self, name: str, sink: Sink[Any]) -> None:
        """Unregister ``sink`` (nothing happens if it is not registered)."""
        if is_lifecycle_event(name):
            sinks = self._lifecycle.get(name, [])
            if sink in sinks:
                sinks.remove(sink)
        else:
            self._index.remove(name, sink)

    def dispatch(self, message: IncomingMessage) -> int:
        """Hand ``message`` to every matching sink without blocking; returns how many."""
        sinks = self._match(message.topic + "." + message.message_type)
        for sink in sinks:
            if not sink.deliver(message):
                self._index.remove(sink.pattern, sink)
        return len(sinks)

    def emit(self, event: str, value: object) -> None:
        """Hand a lifecycle event's value to its sinks."""
        for sink in list(self._lifecycle.get(event, ())):
            if not sink.deliver(value):
                self.remove(event, sink)

    def close_all(self) -> None:
        """End every sink's consumer (the client is closing)."""
        for sink in [*self._index, *(s for sinks in self._lifecycle.values() for s in sinks)]:
            sink.close()
