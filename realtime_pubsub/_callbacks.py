"""The callback API of the official clients, for people migrating: ``on``, ``once``, ``off``
and ``wait_for``, over the router.

Each registration gets a bounded queue and a task of its own, so one handler never delays
another, and a handler that awaits (even a reply to a request it sends) cannot deadlock
the client. A sync handler runs on the event loop, like any sync code in an async program:
one that holds the loop for long is reported once, by name.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import anyio
import anyio.abc

from ._errors import ClientClosed, WaitTimeout
from ._router import Router, is_lifecycle_event, validate_name
from ._streams import MessageStream, StreamSender, open_stream

__all__ = ["SLOW_HANDLER_SECONDS", "Callbacks", "Handler"]

#: A callback: ``handler(message, reply)`` for messages, ``handler(value)`` for lifecycle
#: events; may be sync or async.
Handler = Callable[..., Any]

#: A sync handler that holds the event loop longer than this is reported (once).
SLOW_HANDLER_SECONDS: Final = 0.1
#: Events that may wait for one handler before the oldest are dropped (and logged).
_QUEUE_SIZE: Final = 1000


def _name(handler: Handler) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


class _Callback:
    """One registration: a sink feeding the queue its task consumes."""

    __slots__ = ("handler", "id", "lifecycle", "once", "pattern", "queue", "sender", "warned")

    def __init__(
        self, listener_id: int, pattern: str, handler: Handler, *, once: bool, logger: Any
    ) -> None:
        self.id = listener_id
        self.pattern = pattern
        self.handler = handler
        self.once = once
        self.lifecycle = is_lifecycle_event(pattern)
        self.warned = False
        self.sender: StreamSender[Any]
        self.queue: MessageStream[Any]
        self.sender, self.queue = open_stream(
            pattern,
            max_buffer=_QUEUE_SIZE,
            logger=logger,
            consumer=f"handler {_name(handler)} for {pattern!r}",
        )

    def deliver(self, value: object) -> bool:
        if not self.sender.deliver(value):
            return False
        if self.once:
            self.sender.close()
            return False
        return True

    def close(self) -> None:
        self.sender.close()

    def discard(self) -> None:
        """Stop at once: what is still queued is dropped."""
        self.sender.close()
        self.queue.close()


class _Waiter:
    """The one-shot sink behind wait_for()."""

    __slots__ = ("_event", "pattern", "value")

    _NOTHING: Final = object()

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.value: object = self._NOTHING
        self._event = anyio.Event()

    def deliver(self, value: object) -> bool:
        if self.value is self._NOTHING:
            self.value = value
            self._event.set()
        return False

    def close(self) -> None:
        self._event.set()

    async def wait(self) -> object:
        await self._event.wait()
        if self.value is self._NOTHING:
            raise ClientClosed("the client closed while waiting for an event")
        return self.value


class Callbacks:
    """The registrations of one client."""

    __slots__ = ("_callbacks", "_ids", "_logger", "_name", "_router")

    def __init__(self, router: Router, *, logger: logging.Logger, name: str) -> None:
        self._router = router
        self._logger = logger
        self._name = name
        self._callbacks: dict[int, _Callback] = {}
        self._ids = itertools.count(1)

    def add(
        self, pattern: str, handler: Handler, *, once: bool, task_group: anyio.abc.TaskGroup
    ) -> int:
        """Register ``handler`` (see :meth:`Client.on <realtime_pubsub.Client.on>`); its
        task runs in ``task_group``."""
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        validate_name(pattern)
        callback = _Callback(next(self._ids), pattern, handler, once=once, logger=self._logger)
        self._router.add(pattern, callback)
        self._callbacks[callback.id] = callback
        task_group.start_soon(self._run, callback, name=f"{self._name}.handler[{pattern}]")
        return callback.id

    def remove(self, listener_id: int) -> bool:
        """Unregister a handler: it is not called again (a call in progress finishes);
        False if there was none under that id."""
        callback = self._callbacks.pop(listener_id, None)
        if callback is None:
            return False
        self._router.remove(callback.pattern, callback)
        callback.discard()
        return True

    async def wait_for(self, event: str, timeout: float | None) -> Any:
        """The next value of ``event`` (a pattern or a lifecycle event)."""
        waiter = _Waiter(event)
        self._router.add(event, waiter)
        try:
            with anyio.move_on_after(timeout):
                return await waiter.wait()
            raise WaitTimeout(f"no {event!r} event within {timeout} s")
        finally:
            self._router.remove(event, waiter)

    async def _run(self, callback: _Callback) -> None:
        handler, lifecycle = callback.handler, callback.lifecycle
        try:
            async for value in callback.queue:
                started = time.perf_counter()
                try:
                    result = handler(value) if lifecycle else handler(value, value.reply)
                    if inspect.isawaitable(result):
                        await result
                    elif not callback.warned:
                        self._check_pace(callback, time.perf_counter() - started)
                except Exception as exc:
                    self._logger.exception("handler for %r raised", callback.pattern)
                    if callback.pattern != "error":
                        self._router.emit("error", exc)
        finally:
            callback.queue.close()
            if self._callbacks.get(callback.id) is callback:
                del self._callbacks[callback.id]

    def _check_pace(self, callback: _Callback, held: float) -> None:
        if held > SLOW_HANDLER_SECONDS:
            callback.warned = True
            self._logger.warning(
                "sync handler %s for %r held the event loop for %.0f ms: nothing else of the "
                "client ran meanwhile (not the reader, the heartbeat, other handlers or "
                "listeners). Make it async, or run its blocking work in a thread "
                "(anyio.to_thread.run_sync). Reported once per handler.",
                _name(callback.handler),
                callback.pattern,
                held * 1000,
            )
