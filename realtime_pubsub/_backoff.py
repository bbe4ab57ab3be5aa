"""The reconnect policy: full-jitter exponential backoff with a cap and an optional limit on
consecutive failed attempts."""

from __future__ import annotations

import random

import attrs

__all__ = ["ReconnectPolicy"]


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
    ``retry_refused=True`` also retries refused handshakes (HTTP 401/403/404) and 1008
    closes, which by default end the block at once: with the same credentials the gateway
    would refuse again. Use it when your URL provider fetches a fresh token each time.
    ``enabled=False`` turns reconnection off altogether: the first loss ends the block
    with :class:`~realtime_pubsub.ConnectionClosed`.
    """

    initial_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    max_attempts: int | None = attrs.field(default=None, validator=_max_attempts)
    retry_refused: bool = False
    enabled: bool = True

    def delay(self, attempt: int) -> float:
        """Seconds to sleep before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_delay, self.initial_delay * 2 ** min(attempt, 62))
        return random.uniform(0.0, ceiling)

    def gives_up_after(self, failures: int) -> bool:
        """Whether ``failures`` consecutive failed attempts exhaust the policy."""
        if not self.enabled:
            return True
        return self.max_attempts is not None and failures >= self.max_attempts
