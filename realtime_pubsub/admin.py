"""The service's HTTP admin API, for backends that hold no WebSocket: publish from a Django
or Flask view, a Celery task or a cron job, unsubscribe a user, terminate connections.

.. code-block:: python

    from realtime_pubsub.admin import AdminClient

    with AdminClient("my-app", token) as admin:
        admin.publish("orders/42", {"status": "shipped"})

:class:`AsyncAdminClient` is the same for async code, on trio and asyncio alike. Both take
an admin token, signed with the application's ``adminKey`` and carrying the roles the
operations need (``Publisher`` with ``allowedTopics``, ``SubscribersAdmin``,
``ConnectionsAdmin``; mint one with :func:`realtime_pubsub.tokens.admin_token`), or a
function that returns a fresh one before every request.

This module is built on httpx; ``import realtime_pubsub`` does not import either.
"""

from __future__ import annotations

import inspect
import logging
import random
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Final, TypeVar

import anyio
import attrs
import httpx

from ._admin_protocol import (
    PUBLISH,
    TERMINATE_ALL,
    TERMINATE_ONE,
    UNSUBSCRIBE,
    Target,
    encode_publish,
    encode_unsubscribe,
    error_text,
    path_of,
    publish_request,
    unsubscribe_request,
    validate_id,
)
from ._errors import (
    AdminAPIError,
    AuthenticationError,
    CertificateError,
    ClientClosed,
    ConnectError,
    ConnectTimeout,
    Forbidden,
    RealtimePubSubError,
)
from ._transport import find_error, os_reason
from ._urls import redact

__all__ = ["DEFAULT_BASE_URL", "AdminClient", "AsyncAdminClient"]

logger = logging.getLogger("realtime_pubsub.admin")

#: The public cluster's HTTP API.
DEFAULT_BASE_URL: Final = "https://genesis.r7.21no.de"
#: The backoff between retries: full jitter, from 0.1 s doubling up to 1 s.
_RETRY_INITIAL_DELAY: Final = 0.1
_RETRY_MAX_DELAY: Final = 1.0

_Self = TypeVar("_Self", bound="_AdminBase")


@attrs.frozen
class _Call:
    """One request, decided before any I/O: where, with what body, and whether a network
    failure may be retried."""

    target: Target
    body: bytes | None
    #: What the request does, for messages: "publish to 'chat'".
    action: str
    retry: bool


class _AdminBase:
    """What the two clients share, all but the I/O: checking arguments, building
    requests, reading answers, translating errors, and the retry policy."""

    def __init__(
        self,
        app_id: str,
        token: object,
        *,
        base_url: str,
        timeout: float,
        retries: int,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.app_id: str = validate_id(app_id, "app_id")
        if isinstance(token, str):
            _checked_token(token)
        elif not callable(token):
            raise TypeError(f"token must be a string or a function, not {type(token).__name__}")
        scheme = urllib.parse.urlsplit(base_url).scheme if isinstance(base_url, str) else ""
        if scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, not {retries!r}")
        #: The API's base URL (the cluster's, or a local gateway's ``http_url``).
        self.base_url: str = base_url.rstrip("/")
        #: Seconds each request may take, connecting included.
        self.timeout: float = timeout
        #: How many times a request that may be retried is tried again after a network
        #: failure.
        self.retries: int = retries
        self._token_source: str | Callable[[], object] = token
        self._closed = False
        self._http_options: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": timeout,
            "verify": ssl_context if ssl_context is not None else True,
        }

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<{type(self).__module__}.{type(self).__qualname__} app={self.app_id!r} "
            f"base_url={self.base_url!r}{state}>"
        )

    # ------------------------------------------------------------------ requests

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed(f"this {type(self).__name__} is closed")

    def _publish_call(self, topic: str, message: Any, compress: bool, retry: bool) -> _Call:
        self._check_open()
        request = publish_request(topic, message, compress)
        return _Call(
            Target(PUBLISH, self.app_id),
            encode_publish(request),
            f"publish to {topic!r}",
            retry=retry,
        )

    def _unsubscribe_call(self, subject: str, topic_patterns: Iterable[str]) -> _Call:
        self._check_open()
        request = unsubscribe_request(subject, topic_patterns)
        # Removing the same subscriptions twice removes nothing more: safe to retry.
        return _Call(
            Target(UNSUBSCRIBE, self.app_id),
            encode_unsubscribe(request),
            f"unsubscribe {subject!r}",
            retry=True,
        )

    def _terminate_call(self, connection_id: str | None) -> _Call:
        self._check_open()
        if connection_id is None:
            return _Call(Target(TERMINATE_ALL, self.app_id), None, "terminate all", retry=True)
        connection_id = validate_id(connection_id, "connection_id")
        return _Call(
            Target(TERMINATE_ONE, self.app_id, connection_id),
            None,
            f"terminate {connection_id!r}",
            retry=True,
        )

    def _request(self, http: httpx.Client | httpx.AsyncClient, call: _Call, token: str) -> Any:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        return http.build_request(
            call.target.endpoint.method, path_of(call.target), headers=headers, content=call.body
        )

    # ------------------------------------------------------------------ answers and failures

    def _outcome(self, call: _Call, response: httpx.Response, token: str) -> None:
        """Nothing for a success; the error that says why for any other answer."""
        status = response.status_code
        logger.debug("%s: HTTP %d", redact(call.action, [token]), status)
        if 200 <= status < 300:
            return
        reason = redact(error_text(response.content), [token])
        message = redact(f"admin API refused to {call.action}: HTTP {status}: {reason}", [token])
        if status == 401:
            raise AuthenticationError(message, status=status)
        if status == 403:
            raise Forbidden(message, code=status, reason=reason)
        raise AdminAPIError(message, status=status)

    def _retry_delay(
        self, call: _Call, error: httpx.TransportError, attempt: int, token: str
    ) -> float:
        """Seconds to wait before trying ``call`` again after ``error`` on try number
        ``attempt`` (0-based); raises the error translated when it is not to be retried
        (a certificate that is not valid never is: it would fail the same way)."""
        action = redact(call.action, [token])
        certificate = find_error(error, ssl.SSLCertVerificationError)
        if call.retry and attempt < self.retries and certificate is None:
            ceiling = min(_RETRY_MAX_DELAY, _RETRY_INITIAL_DELAY * 2**attempt)
            logger.info("%s failed (%s): trying again", action, type(error).__name__)
            return random.uniform(0.0, ceiling)
        failure: RealtimePubSubError
        if certificate is not None:
            failure = CertificateError(
                f"admin API: {action} failed: the TLS certificate of {self.base_url} is not "
                f"valid ({certificate.verify_message}): pass an ssl_context that trusts it"
            )
        elif isinstance(error, httpx.TimeoutException):
            failure = ConnectTimeout(
                f"admin API: no answer to {action} from {self.base_url} within {self.timeout} s"
            )
        else:
            detail = redact(os_reason(error), [token])
            failure = ConnectError(f"admin API: {action} failed: {self.base_url}: {detail}")
        raise failure from error


def _checked_token(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"the token must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError("the token is empty")
    return value


class AsyncAdminClient(_AdminBase):
    """The HTTP admin API for async code (trio or asyncio). Use it as an async context
    manager; it keeps its connections to the API open for the next requests until the
    block ends.

    Args:
        app_id: the application's id.
        token: an admin token (a JWT signed with the app's ``adminKey``), or a function,
            sync or async, that returns one: it is called before every request, so that a
            token that expires in seconds (the service's demos mint 5-second ones) is
            always fresh.
        base_url: the API's address: the public cluster by default, or a local gateway's
            :attr:`~realtime_pubsub.gateway.Gateway.http_url`.
        timeout: seconds each request may take, connecting included.
        retries: how many more times a request that is safe to repeat (unsubscribe and the
            terminations, a publish only with ``retry=True``) is tried after a network
            failure, with a short randomized backoff (at most a second).
        ssl_context: replaces the default verified TLS context (to trust a local gateway's
            test certificate, say).

    Raises:
        ValueError: an empty ``app_id`` or token, a ``base_url`` that is not http(s),
            a ``timeout`` that is not positive, a negative ``retries``.
        TypeError: a ``token`` that is neither a string nor a function.

    Every method raises:

    - :class:`~realtime_pubsub.AuthenticationError` (``status`` 401) when the token is
      missing, invalid or expired;
    - :class:`~realtime_pubsub.Forbidden` (``code`` 403, ``reason`` the API's
      explanation) when it lacks the role or the topic is not in its ``allowedTopics``;
    - :class:`~realtime_pubsub.AdminAPIError` for any other failure status (its
      ``status``: 404 for an unknown app or connection, 400 for a request the API
      cannot use...);
    - :class:`~realtime_pubsub.ConnectError` when the API cannot be reached or the
      connection fails, :class:`~realtime_pubsub.ConnectTimeout` when it does not answer
      in time (after the retries, for the requests that are retried), and
      :class:`~realtime_pubsub.CertificateError` (a ``ConnectError``, never retried) when
      its TLS certificate is not valid;
    - :class:`~realtime_pubsub.ClientClosed` after the client was closed;
    - :class:`ValueError` for bad arguments, before any request is made.

    None of these messages, nor the client's repr, contains the token.
    """

    def __init__(
        self,
        app_id: str,
        token: str | Callable[[], str] | Callable[[], Awaitable[str]],
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        retries: int = 2,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            app_id,
            token,
            base_url=base_url,
            timeout=timeout,
            retries=retries,
            ssl_context=ssl_context,
        )
        self._http = httpx.AsyncClient(**self._http_options)

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections to the API; the client cannot be used afterwards."""
        self._closed = True
        await self._http.aclose()

    async def publish(
        self, topic: str, message: Any, *, compress: bool = False, retry: bool = False
    ) -> None:
        """Publish ``message`` to ``topic``: its subscribers receive it as the frame's
        ``data``, as it is (not wrapped in ``payload``), with message type ``broadcast``
        on the local gateway.

        Args:
            topic: a non-empty topic name, allowed by the token's ``allowedTopics``.
            message: any JSON-serializable value but ``None``.
            compress: deliver it compressed (binary frames: the protocol reference, §4).
            retry: try it again after a network failure, as the other methods do. Off by
                default: a publish whose answer was lost may have been delivered, and
                publishing it again would deliver it twice. Turn it on when subscribers
                tolerate duplicates.

        Raises:
            ValueError: an empty topic, no message, a ``compress`` that is not a bool.
            TypeError: a message that is not JSON-serializable.
        """
        await self._perform(self._publish_call(topic, message, compress, retry))

    async def unsubscribe(self, subject: str, topic_patterns: Iterable[str]) -> None:
        """Remove the subscriptions matching ``topic_patterns`` (``*`` matches any run of
        characters) from every connection of ``subject`` (the ``sub`` of their tokens).

        The connections are not told: a client still believes it is subscribed, and
        subscribes again when it reconnects. Keep a user out of a topic with the
        permissions of the tokens you give them.

        Args:
            subject: whose connections.
            topic_patterns: 1 to 50 non-empty patterns (a list, not a single string).

        Raises:
            ValueError: an empty subject, no pattern, more than 50, an empty one.
        """
        await self._perform(self._unsubscribe_call(subject, topic_patterns))

    async def terminate_connection(self, connection_id: str) -> None:
        """Close the connection ``connection_id`` (a client's
        :attr:`Client.connection.id <realtime_pubsub.Client.connection>`, or the
        ``connectionId`` beside a message it sent).

        Its client reconnects, asking its URL provider for a fresh token: to keep a user
        out, stop giving them tokens first (see the how-to). An unknown id is an
        :class:`~realtime_pubsub.AdminAPIError` with ``status`` 404.

        Raises:
            ValueError: an empty ``connection_id``.
        """
        await self._perform(self._terminate_call(connection_id))

    async def terminate_connections(self) -> None:
        """Close every connection of the application (they reconnect, as after
        :meth:`terminate_connection`): after rotating the ``authKey``, say, so that every
        client comes back with a token signed with the new key."""
        await self._perform(self._terminate_call(None))

    async def _token(self) -> str:
        source = self._token_source
        if isinstance(source, str):
            return source
        value = source()
        if inspect.isawaitable(value):
            value = await value
        return _checked_token(value)

    async def _perform(self, call: _Call) -> None:
        attempt = 0
        while True:
            token = await self._token()
            try:
                response = await self._http.send(self._request(self._http, call, token))
            except httpx.TransportError as exc:
                await anyio.sleep(self._retry_delay(call, exc, attempt, token))
                attempt += 1
                continue
            return self._outcome(call, response, token)


class AdminClient(_AdminBase):
    """The HTTP admin API for plain (blocking) code: a Django or Flask view, a worker, a
    script. The same as :class:`AsyncAdminClient` (arguments, methods, errors), with
    plain methods, a ``with`` block and a sync token function. Safe to share between
    threads: one per process is enough."""

    def __init__(
        self,
        app_id: str,
        token: str | Callable[[], str],
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        retries: int = 2,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            app_id,
            token,
            base_url=base_url,
            timeout=timeout,
            retries=retries,
            ssl_context=ssl_context,
        )
        self._http = httpx.Client(**self._http_options)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections to the API; the client cannot be used afterwards."""
        self._closed = True
        self._http.close()

    def publish(
        self, topic: str, message: Any, *, compress: bool = False, retry: bool = False
    ) -> None:
        """Publish ``message`` to ``topic``; see :meth:`AsyncAdminClient.publish`."""
        self._perform(self._publish_call(topic, message, compress, retry))

    def unsubscribe(self, subject: str, topic_patterns: Iterable[str]) -> None:
        """Remove subscriptions of ``subject``'s connections; see
        :meth:`AsyncAdminClient.unsubscribe`."""
        self._perform(self._unsubscribe_call(subject, topic_patterns))

    def terminate_connection(self, connection_id: str) -> None:
        """Close one connection; see :meth:`AsyncAdminClient.terminate_connection`."""
        self._perform(self._terminate_call(connection_id))

    def terminate_connections(self) -> None:
        """Close every connection of the app; see
        :meth:`AsyncAdminClient.terminate_connections`."""
        self._perform(self._terminate_call(None))

    def _token(self) -> str:
        source = self._token_source
        if isinstance(source, str):
            return source
        value = source()
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never awaited: say so here, not in a warning later
            raise TypeError("AdminClient needs a plain token function; use AsyncAdminClient")
        return _checked_token(value)

    def _perform(self, call: _Call) -> None:
        attempt = 0
        while True:
            token = self._token()
            try:
                response = self._http.send(self._request(self._http, call, token))
            except httpx.TransportError as exc:
                time.sleep(self._retry_delay(call, exc, attempt, token))
                attempt += 1
                continue
            return self._outcome(call, response, token)
