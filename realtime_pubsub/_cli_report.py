"""What ``realtime-pubsub`` prints besides its results: a failure as one line a person
understands (whatever raised it, and however deep in exception groups), warnings as one
line each, and the exit status that goes with them."""

from __future__ import annotations

import sys
import urllib.parse
from typing import Final

from ._errors import CertificateError, ConnectError, RealtimePubSubError
from ._tasks import is_cancellation
from ._transport import os_reason

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "PROG",
    "CommandFailed",
    "UsageError",
    "describe",
    "error",
    "leaves",
    "local_gateway_hint",
    "stopped",
    "warning",
]

PROG: Final = "realtime-pubsub"
#: The hosts a gateway started on this machine listens on.
_LOCAL_HOSTS: Final = ("127.0.0.1", "localhost", "::1")
#: The gateway command's default port.
_GATEWAY_PORT: Final = 8765


class UsageError(Exception):
    """Bad usage found after parsing (exit status 2)."""


class CommandFailed(Exception):
    """A failure at run time, with its message ready for the reader (exit status 1)."""


def error(text: str) -> None:
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)


def warning(text: str) -> None:
    print(f"{PROG}: warning: {text}", file=sys.stderr, flush=True)


def stopped() -> None:
    """What Ctrl-C (or SIGTERM) prints, whatever the command: it then exits with 0."""
    print("stopped", file=sys.stderr, flush=True)


def leaves(failure: BaseException) -> list[BaseException]:
    """The exceptions inside ``failure``'s exception groups, however nested (``failure``
    itself if it is not a group): what a person needs to hear about."""
    if isinstance(failure, BaseExceptionGroup):
        return [leaf for member in failure.exceptions for leaf in leaves(member)]
    return [failure]


def interrupted(failure: BaseException) -> bool:
    """Whether ``failure`` is nothing but Ctrl-C (trio delivers it wrapped in the groups of
    the task groups it crossed), and the cancellations it caused."""
    found = leaves(failure)
    return any(isinstance(e, KeyboardInterrupt) for e in found) and all(
        isinstance(e, KeyboardInterrupt) or is_cancellation(e) for e in found
    )


def describe(failure: BaseException) -> str:
    """One line that says what went wrong: the library's and the command's own messages as
    they are, an operating system error as its reason (and file), anything else with its
    type, since that is a bug."""
    if isinstance(failure, (CommandFailed, UsageError, RealtimePubSubError)):
        text = str(failure)
    elif isinstance(failure, OSError):
        where = f"{failure.filename}: " if failure.filename else ""
        text = where + os_reason(failure)
    elif isinstance(failure, ValueError) and str(failure):
        text = str(failure)
    else:
        text = f"unexpected {type(failure).__name__}: {failure} (--debug shows the traceback)"
    lines = text.strip().splitlines()
    return lines[0] if lines else type(failure).__name__


def local_gateway_hint(failure: BaseException, url: str) -> str:
    """Advice to add to ``failure``'s line: how to start the gateway, when ``url`` could
    not be reached and names this machine; else nothing."""
    if not isinstance(failure, ConnectError) or isinstance(failure, CertificateError):
        return ""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in _LOCAL_HOSTS:
        return ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    option = "" if port == _GATEWAY_PORT else f" --port {port}"
    return f" (is the local gateway running? Start it with: {PROG} gateway{option})"
