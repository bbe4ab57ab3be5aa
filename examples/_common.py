"""Shared command-line handling for the examples: the URL, the event loop, and running
until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import realtime_pubsub


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--url`` (default ``$REALTIME_PUBSUB_URL``) and
    ``--backend``."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--url",
        default=os.environ.get("REALTIME_PUBSUB_URL"),
        help="wss://host/apps/<app>?access_token=<JWT> (default: $REALTIME_PUBSUB_URL)",
    )
    result.add_argument("--backend", choices=("asyncio", "trio"), default="trio")
    return result


def run(main: Callable[..., Awaitable[None]], *args: Any, backend: str) -> None:
    """``anyio.run(main, *args)`` on ``backend``, ended as the ``realtime-pubsub`` command
    ends: Ctrl-C (or SIGTERM) stops it with "stopped" on stderr and exit status 0, and a
    failure of the client's is one line on stderr with status 1.

    The signal is received as an event and cancels ``main``, rather than raised as
    KeyboardInterrupt wherever the program happens to be, which trio and asyncio deliver
    differently."""

    async def until_stopped() -> None:
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        print("stopped", file=sys.stderr)
                        tg.cancel_scope.cancel()

            tg.start_soon(stop_on_signal)
            try:
                await main(*args)
            except Exception as exc:  # raised as itself, not in the task group's group
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    try:
        anyio.run(until_stopped, backend=backend)
    except realtime_pubsub.RealtimePubSubError as exc:
        sys.exit(f"error: {exc}")
