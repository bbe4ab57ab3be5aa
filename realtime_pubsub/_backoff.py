"""The reconnect policy: which failures are tried again (one table, :data:`REFUSALS`), and
when: full-jitter exponential backoff with a cap and an optional limit on consecutive
failed attempts."""

from __future__ import annotations

import random
from typing import Final

import attrs

from ._errors import AuthenticationError, CertificateError, Forbidden, RealtimePubSubError

__all__ = ["REFUSALS", "ReconnectPolicy"]

#: The failures that end the ``async with`` block at once, unless ``retry_refused=True``:
#: the same credentials, certificate or request would be refused again. Every other
#: failure of this library's (network errors, timeouts, failed handshakes, connections
#: lost or closed with any other code, a URL provider that failed) is tried again;
#: anything else is a bug and ends the block as itself. docs/reference/guarantees.rst
#: shows this table to users (a test keeps the two in step).
REFUSALS: Final = (AuthenticationError, CertificateError, Forbidden)


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, not {value!r}")


def _max_attempts(
    instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and value < 1:
        raise ValueError(f"max_attempts must be None or >= 1, not {value!r}")


@attrs.frozen
class ReconnectPolicy:
    """How the client reconnects after losing its connection, or failing to open one.

    Before attempt ``n`` (0 for the first retry) it sleeps a random time between 0 and
    ``min(max_delay, initial_delay * 2**n)`` ("full jitter"), so that a thousand clients
    cut off together do not all come back in the same millisecond. The count restarts
    after every connection that reaches its welcome.

    ``max_attempts`` bounds consecutive failed attempts (``None``: retry forever); when it
    is exhausted, the ``async with connect(...)`` block ends with the last error.
    ``retry_refused=True`` also retries the refusals (:data:`REFUSALS`: refused handshakes,
    HTTP 401/403/404; certificates that are not valid; 1008 closes), which by default end
    the block at once: the gateway would refuse the same credentials again. Use it when
    your URL provider fetches a fresh token each time.
    ``enabled=False`` turns reconnection off altogether: the first loss ends the block
    with :class:`~realtime_pubsub.ConnectionClosed`.
    """

    initial_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    max_attempts: int | None = attrs.field(default=None, validator=_max_attempts)
    retry_refused: bool = False
    enabled: bool = True

    def delay(self, attempt: int) -> float:
        """A random delay between 0 and ``min(max_delay, initial_delay * 2**attempt)``.

        Args:
            attempt: which retry this is, counting from 0.

        Returns:
            Seconds to sleep before it.
        """
        ceiling = min(self.max_delay, self.initial_delay * 2 ** min(attempt, 62))
        return random.uniform(0.0, ceiling)

    def retries(self, error: BaseException, failures: int) -> bool:
        """Whether the client tries again (the table of :data:`REFUSALS` and the options).

        Args:
            error: what ended the attempt, or the connection.
            failures: how many attempts in a row have failed (0 after a connection that
                was open is lost).

        Returns:
            True to try again after :meth:`delay`; False to end the block with ``error``.
        """
        if not self.enabled or not isinstance(error, RealtimePubSubError):
            return False
        if isinstance(error, REFUSALS) and not self.retry_refused:
            return False
        return self.max_attempts is None or failures < self.max_attempts
