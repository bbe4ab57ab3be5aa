"""What ``realtime-pubsub`` prints besides its results: a failure as one line a person
understands (whatever raised it, and however deep in exception groups), warnings as one
line each, and the client's progress while it connects and reconnects, as status lines
on stderr."""

from __future__ import annotations

import logging
import ssl
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from ._cli_options import GATEWAY_PORT, PROG
from ._errors import (
    AuthenticationError,
    CertificateError,
    ConnectError,
    RealtimePubSubError,
)
from ._transport import find_error, os_reason

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "CommandFailed",
    "StatusLines",
    "UsageError",
    "advice_for",
    "describe",
    "error",
    "interrupted",
    "leaves",
    "stopped",
    "warning",
]

#: The hosts a gateway started on this machine listens on.
_LOCAL_HOSTS: Final = ("127.0.0.1", "localhost", "::1")


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
    the task groups it crossed), and the cancellations it caused: no :class:`Exception`,
    which a cancellation is not (on either backend, and outside the event loop too)."""
    found = leaves(failure)
    return any(isinstance(e, KeyboardInterrupt) for e in found) and not any(
        isinstance(e, Exception) for e in found
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


def _local_gateway_hint(failure: BaseException, url: str) -> str:
    """Advice to add to ``failure``'s line when ``url`` names this machine, where the
    gateway is the local one: how to start it, when it cannot be reached; how to get a
    token it takes, when it refuses one; else nothing."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in _LOCAL_HOSTS:
        return ""
    if isinstance(failure, AuthenticationError) and failure.status == 401:
        return (
            f" (get a token for the local gateway with: {PROG} token, adding --secret S if "
            "the gateway was started with --secret S)"
        )
    if isinstance(failure, AuthenticationError) and failure.status == 404:
        return " (the local gateway serves only its --app-id, or the apps of its --app-config)"
    if not isinstance(failure, ConnectError) or isinstance(failure, CertificateError):
        return ""
    if parts.scheme == "wss" and find_error(failure, ssl.SSLError) is not None:
        return (
            f" (the local gateway speaks TLS only when started with --certfile: use ws://, "
            f"or start it with: {PROG} gateway --certfile FILE)"
        )
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    option = "" if port == GATEWAY_PORT else f" --port {port}"
    return f" (is the local gateway running? Start it with: {PROG} gateway{option})"


@contextmanager
def advice_for(url: str, kind: type[RealtimePubSubError] = RealtimePubSubError) -> Iterator[None]:
    """Raise a failure of type ``kind`` about ``url`` again with advice added, when ``url``
    names this machine, where the gateway is the local one (see the hints above)."""
    try:
        yield
    except kind as exc:
        hint = _local_gateway_hint(exc, url)
        if not hint:
            raise
        raise CommandFailed(f"{exc}{hint}") from exc


class StatusLines(logging.Handler):
    """Shows the client's progress as lines on stderr, from the records it logs to the
    ``realtime_pubsub`` logger (realtime_pubsub/_client.py; the tests run each case):

    .. code-block:: text

        connecting to ws://127.0.0.1:8765/apps/demo?access_token=***
        connection lost (1006); reconnecting in 1.2 s, attempt 3
        reconnected

    Why an attempt failed or a connection ended is held back until the client says when
    it tries again, and shown on that line; the failure it gives up on is the command's
    error line instead. Other warnings (a listener that drops messages) are shown as
    they come."""

    def __init__(self, max_attempts: int | None) -> None:
        super().__init__(logging.INFO)
        self._max_attempts = max_attempts
        self._cause: str | None = None  # why the connection ended, for the retry line
        self._shown_url: str | None = None
        self._retrying = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self._line(record)
        except Exception:
            self.handleError(record)
            return
        if line is not None:
            print(line, file=sys.stderr, flush=True)

    def _line(self, record: logging.LogRecord) -> str | None:
        if record.name != "realtime_pubsub":
            return None
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg == "%s in %.1f s (attempt %d)":
            again, delay, attempt = args
            cause, self._cause, self._retrying = self._cause, None, True
            limit = f" of {self._max_attempts}" if self._max_attempts else ""
            retry = f"{again} in {delay:.1f} s, attempt {attempt}{limit}"
            return f"{cause}; {retry}" if cause else retry
        held = self._held()
        if record.msg == "connecting to %s":
            url = str(args[0])
            if url == self._shown_url:
                return held
            self._shown_url = url
            return _lines(held, f"connecting to {url}")
        if record.msg == "session %s started (%s)":
            reconnected = "reconnected" if self._retrying else None
            self._retrying = False
            return _lines(held, reconnected)
        if record.msg == "session %s ended (%s)":
            self._cause = f"connection lost ({args[1]})"
            return held
        if record.levelno >= logging.WARNING:
            if record.msg == "%s":  # an attempt failed: wait for what the client does next
                # "cannot connect to <url>: ...": the URL was shown already.
                self._cause = record.getMessage().replace(f" to {self._shown_url}", "")
                return held
            return _lines(held, f"{PROG}: warning: {record.getMessage()}")
        return held

    def _held(self) -> str | None:
        """A cause held back, as a warning line of its own, when no retry came for it."""
        cause, self._cause = self._cause, None
        return f"{PROG}: warning: {cause}" if cause else None


def _lines(*lines: str | None) -> str | None:
    return "\n".join(line for line in lines if line) or None
