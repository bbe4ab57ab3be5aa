"""Task groups whose body's own exception comes out as itself, and a cheap mutex.

anyio's task groups (and trio's nurseries) wrap even the body's exception in an exception
group. Ours run background tasks that never raise, so a group holding one exception is
that exception: callers get ``KeyError``, ``Forbidden`` or a cancellation back as they
were raised, not an ``ExceptionGroup`` they would have to take apart.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio
import anyio.abc

if sys.version_info < (3, 11):  # pragma: no cover - the backport anyio itself requires
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Mutex", "is_cancellation", "task_group", "unwrapped"]


@contextmanager
def unwrapped() -> Iterator[None]:
    """Re-raise an exception group that holds a single exception as that exception (one
    level only: a group the body itself raised with several members stays a group)."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


@asynccontextmanager
async def task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    """:func:`anyio.create_task_group`, :func:`unwrapped`."""
    with unwrapped():
        async with anyio.create_task_group() as group:
            yield group


def is_cancellation(error: BaseException) -> bool:
    """Whether ``error`` is the event loop's cancellation (alone or in a group of them)."""
    cancelled = anyio.get_cancelled_exc_class()
    if isinstance(error, BaseExceptionGroup):
        return all(is_cancellation(inner) for inner in error.exceptions)
    return isinstance(error, cancelled)


class Mutex:
    """A lock for the hot paths: no owner (the task that acquires it releases it), no
    fairness, and no task lookups, so that taking a free one costs an attribute store.
    anyio's and trio's locks look up the current task on every acquire and release."""

    __slots__ = ("_released", "locked")

    def __init__(self) -> None:
        #: Whether somebody holds it.
        self.locked = False
        self._released: anyio.Event | None = None

    def acquire_nowait(self) -> bool:
        """Take it if it is free; whether it was."""
        if self.locked:
            return False
        self.locked = True
        return True

    async def acquire(self) -> None:
        """Take it, waiting while somebody holds it."""
        while self.locked:
            if self._released is None:
                self._released = anyio.Event()
            await self._released.wait()
        self.locked = True

    def release(self) -> None:
        """Give it back, waking whoever waits for it."""
        self.locked = False
        released, self._released = self._released, None
        if released is not None:
            released.set()
