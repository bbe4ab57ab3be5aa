"""The exception hierarchy: everything the library raises on purpose derives from
:class:`RealtimePubSubError`, so one ``except`` clause catches it all, and the subclasses
let callers catch exactly the failure they can handle."""

from __future__ import annotations

__all__ = [
    "AckTimeout",
    "AdminAPIError",
    "AuthenticationError",
    "CertificateError",
    "ClientClosed",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "Forbidden",
    "HandshakeError",
    "MessageTooLarge",
    "ProtocolError",
    "RealtimePubSubError",
    "ReplyTimeout",
    "SlowConsumer",
    "WaitTimeout",
]


class RealtimePubSubError(Exception):
    """Base class of every exception raised by ``realtime_pubsub``."""


class ProtocolError(RealtimePubSubError):
    """A frame broke the wire protocol (PROTOCOL.md §2, §6).

    Raised by the codec for input it cannot understand: text that is not UTF-8 JSON, JSON
    that is not an object, a missing or ill-typed field, an unknown frame ``type``.
    ``close_code`` is the WebSocket close code a gateway answers it with: 1003
    (unsupported data) when the frame is not a JSON object at all, 1008 (policy
    violation) when the object has the wrong shape.
    """

    def __init__(self, message: str, *, close_code: int = 1008) -> None:
        super().__init__(message)
        self.close_code = close_code


class ConnectionClosed(RealtimePubSubError):
    """The connection a wait depended on is gone.

    Raised at once to everybody waiting for an ack or a reply on a connection that died
    (acks and replies addressed to a dead connection never arrive), with the close
    ``code`` and ``reason`` when the gateway sent any (``code`` is 1006 when the
    connection was lost without a closing handshake).
    """

    def __init__(self, message: str, *, code: int = 1006, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ClientClosed(RealtimePubSubError):
    """The client was closed by its owner (the ``async with`` block ended); it cannot be
    used any more. You get this for calls made after the close, never for a connection
    that broke under you (that is :class:`ConnectionClosed`)."""


class AuthenticationError(RealtimePubSubError):
    """The gateway refused the WebSocket handshake with HTTP ``status`` (401: missing,
    malformed or expired token; 403: not allowed; 404: unknown app). Not retried by
    default: a new attempt with the same credentials would be refused again.

    The admin client (:mod:`realtime_pubsub.admin`) raises it, with ``status`` 401, when
    the HTTP admin API refuses its token."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class AdminAPIError(RealtimePubSubError):
    """The HTTP admin API answered with a failure ``status`` other than 401
    (:class:`AuthenticationError`) and 403 (:class:`Forbidden`): 404 for an unknown app or
    connection, 400 for a request it cannot use, 5xx for a failure of its own. The message
    quotes the API's explanation, never the token. Not retried: the same request would
    fail the same way."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class HandshakeError(RealtimePubSubError):
    """The WebSocket handshake failed for a reason other than a refusal (an HTTP status
    other than 101/401/403/404, or a malformed response). Retried under the policy."""


class Forbidden(RealtimePubSubError):
    """The gateway closed the connection with 1008 (policy violation), for instance on a
    subscription to a secure topic without the read permission. ``code`` and ``reason``
    are the gateway's own. Not retried by default.

    The admin client (:mod:`realtime_pubsub.admin`) raises it when the HTTP admin API
    answers 403 (the token lacks the operation's role, or the topic is not among its
    ``allowedTopics``): ``code`` is then 403 and ``reason`` the API's explanation."""

    def __init__(self, message: str, *, code: int = 1008, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ConnectError(RealtimePubSubError, ConnectionError):
    """A connection attempt failed in the network (refused, unreachable, TLS), the
    connection closed before its session started, or the URL provider failed; the
    original error is the ``__cause__``. Retried under the policy; you get it from the
    ``async with`` block only when the policy gives up (but see :class:`CertificateError`,
    a subclass that is not retried).

    The admin client raises it when the HTTP admin API cannot be reached or the
    connection fails before the answer arrives."""


class CertificateError(ConnectError):
    """The server's TLS certificate is not valid: not trusted, expired, or another host's.
    Unlike other connect errors it is not retried by default (it would fail the same way):
    pass an ``ssl_context`` that trusts the certificate, or fix the host name."""


class WaitTimeout(RealtimePubSubError, TimeoutError):
    """:meth:`Client.wait_for <realtime_pubsub.Client.wait_for>` saw no such event within
    its timeout."""


class ConnectTimeout(RealtimePubSubError, TimeoutError):
    """Opening the connection (TCP, TLS, handshake and welcome) took longer than
    ``connect_timeout``; or, from the admin client, a request to the HTTP admin API got
    no answer within its ``timeout``."""


class AckTimeout(RealtimePubSubError, TimeoutError):
    """No acknowledgement arrived within the timeout. The message may still have been
    delivered: the gateway may have acks disabled, or the ack may simply be late."""


class ReplyTimeout(RealtimePubSubError, TimeoutError):
    """No reply arrived within the timeout. The request may still be processed."""


class MessageTooLarge(RealtimePubSubError, ValueError):
    """A frame is larger than ``max_message_size``; it was refused before anything was
    written, so the connection is unaffected."""


class SlowConsumer(RealtimePubSubError):
    """A listener with ``overflow="error"`` fell ``max_buffer`` messages behind; raised
    from that listener's iterator (other listeners are unaffected). ``dropped`` counts the
    messages it missed."""

    def __init__(self, message: str, *, dropped: int) -> None:
        super().__init__(message)
        self.dropped = dropped
