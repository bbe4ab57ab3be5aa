"""For plain (non-async) tests, the blocking client's and those of the framework integrations
whose test clients are synchronous: a local gateway on a thread of its own, and processes
whose output is read on a thread."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import IO, Any, Literal

from anyio.from_thread import start_blocking_portal

import realtime_pubsub.blocking
from realtime_pubsub.blocking import BlockingClient
from realtime_pubsub.gateway import Gateway, serve

from .raw import url_for

Backend = Literal["asyncio", "trio"]
BACKENDS: tuple[Backend, ...] = ("asyncio", "trio")


class Gate:
    """The gateway on its own thread, and what a plain test needs of it."""

    def __init__(self, gateway: Gateway, call: Callable[..., Any], backend: Backend) -> None:
        self.gateway = gateway
        self.call = call
        #: The event loop the gateway runs on, and the one the test's clients should use.
        self.backend = backend

    def url(self, **token: Any) -> str:
        """A URL with a fresh token; see :func:`tests.raw.url_for`."""
        return url_for(self.gateway, **token)

    def connect(self, **options: Any) -> AbstractContextManager[BlockingClient]:
        """A blocking client on :attr:`backend` whose token may publish and read anything;
        ``subject`` picks its subject."""
        url = self.url(subject=options.pop("subject", "user"))
        return realtime_pubsub.blocking.connect(url, backend=self.backend, **options)

    def wait_for_subscribers(self, topic: str, count: int = 1) -> None:
        self.call(self.gateway.wait_for_subscribers, topic, count)


@contextmanager
def threaded_gateway(backend: Backend, **options: Any) -> Iterator[Gate]:
    """Run a gateway on an event loop of ``backend`` in a thread, for the block;
    ``options`` go to :func:`~realtime_pubsub.gateway.serve`."""
    with (
        start_blocking_portal(backend) as portal,
        portal.wrap_async_context_manager(serve(**options)) as gateway,
    ):
        yield Gate(gateway, portal.call, backend)


class Output:
    """The lines a process writes to one of its pipes, read on a thread, so that a plain test
    can wait for a line with a timeout."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.put(line.rstrip("\n"))

    def until(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The match of ``pattern`` in the next line that has one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen}") from None
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match


@contextmanager
def running(
    command: list[str], *, pipe: Literal["stdout", "stderr"]
) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """Run ``command`` for the block, reading ``pipe``; SIGINT and a wait at the end, unless
    the test already ended it."""
    options: dict[str, Any] = {pipe: subprocess.PIPE}
    with subprocess.Popen(command, text=True, **options) as process:
        try:
            yield process, Output(getattr(process, pipe))
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
