"""Task groups whose body's own exception comes out as itself.

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

__all__ = ["is_cancellation", "task_group", "unwrapped"]


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
