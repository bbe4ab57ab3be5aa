"""Minting Realtime Pub/Sub tokens: the JWT a WebSocket client connects with
(:func:`client_token`), the one the HTTP admin API takes (:func:`admin_token`), and the
permission strings a client token carries (:func:`can_publish`, :func:`can_read`).

Tokens usually come from your identity provider. Mint them here when you run a small token
service of your own, as the service's getting-started page suggests: a backend endpoint
that checks who is asking and hands the browser a token that expires in minutes. The
service verifies them with the application's ``authKey`` (client tokens) or ``adminKey``
(admin tokens): a shared secret for the ``HS*`` algorithms, or a public key whose private
half you sign with here for ``RS*``, ``PS256`` and ``ES*``.

.. code-block:: python

    from realtime_pubsub import tokens

    token = tokens.client_token(
        private_key_pem,
        subject="user-42",
        permissions=[tokens.can_publish("chat/*"), tokens.can_read("secure/alerts")],
        ttl=300,
        algorithm="RS256",
        issuer="https://idp.example.com",
    )

This module needs PyJWT with its ``crypto`` extra (a dependency of ``realtime-pubsub``);
``import realtime_pubsub`` does not import it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import (
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from ._protocol import READ_PERMISSION_PREFIX, WRITE_PERMISSION_PREFIX

__all__ = [
    "ALGORITHMS",
    "ASYMMETRIC_ALGORITHMS",
    "HMAC_ALGORITHMS",
    "admin_token",
    "can_publish",
    "can_read",
    "client_token",
]

#: Algorithms signed with a shared secret.
HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
#: Algorithms signed with a private key and verified with its public key.
ASYMMETRIC_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
#: Every algorithm the service accepts in an application's key configuration.
ALGORITHMS: Final = HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS


# --------------------------------------------------------------------------- permissions


def can_publish(pattern: str) -> str:
    """The permission to publish to the topics matching ``pattern``:
    ``realtime:publisher:write:topic:<pattern>``.

    In a pattern ``*`` matches any run of characters, ``/`` included: ``can_publish("*")``
    allows every topic, ``can_publish("chat/*")`` every topic under ``chat/``.
    """
    return WRITE_PERMISSION_PREFIX + _pattern(pattern)


def can_read(pattern: str) -> str:
    """The permission to subscribe to the *secure* topics (``secure/...``) matching
    ``pattern``: ``realtime:subscriber:read:topic:<pattern>``.

    Other topics need no permission to subscribe to. A backend service that receives
    ``send`` messages and presence events needs ``can_read("secure/inbound")``.
    """
    return READ_PERMISSION_PREFIX + _pattern(pattern)


def _pattern(pattern: object) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"a topic pattern is a non-empty string, not {pattern!r}")
    return pattern


# --------------------------------------------------------------------------- tokens


def client_token(
    key: str | bytes,
    *,
    subject: str,
    permissions: Iterable[str] = (),
    ttl: float | None = 3600.0,
    algorithm: str = "HS256",
    issuer: str | None = None,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """A token a WebSocket client connects with.

    Args:
        key: the application's ``authKey`` secret for ``HS256``/``HS384``/``HS512``, or the
            PEM private key (``str`` or ``bytes``) whose public key the application holds,
            for the other algorithms.
        subject: the ``sub`` claim: who connects (a user or device id). Backend services
            see it in presence events and beside every message.
        permissions: the ``permissions`` claim; build them with :func:`can_publish` and
            :func:`can_read`.
        ttl: seconds until the token expires (the ``exp`` claim). Keep it short for tokens
            handed to browsers: the client asks its URL provider for a fresh one before
            every reconnection. A negative ``ttl`` gives an already expired token (for
            tests); ``None`` one without ``exp``, which never expires.
        algorithm: one of :data:`ALGORITHMS`, and one the application's ``authKey`` lists.
        issuer: the ``iss`` claim, when the application accepts only some issuers.
        claims: more claims, added last (they win over the ones above).

    Returns:
        The signed JWT.

    Raises:
        ValueError: an unknown algorithm, or a key that does not suit it (a PEM key for
            ``HS*``, a secret or a public key for the others). The message never contains
            the key.
        TypeError: ``permissions`` given as one string instead of a list of them.
    """
    payload: dict[str, Any] = {
        "sub": _subject(subject),
        "permissions": _strings(permissions, "permissions"),
    }
    return _sign(key, payload, ttl=ttl, algorithm=algorithm, issuer=issuer, claims=claims)


def admin_token(
    key: str | bytes,
    *,
    subject: str,
    roles: Iterable[str],
    allowed_topics: Iterable[str] | None = None,
    ttl: float | None = 300.0,
    algorithm: str = "HS256",
    issuer: str | None = None,
) -> str:
    """A token for the HTTP admin API, signed for the application's ``adminKey``.

    Args:
        key: as for :func:`client_token`, for the ``adminKey``.
        subject: the ``sub`` claim: the administrator or service acting.
        roles: the ``roles`` claim: ``"Publisher"`` to publish, ``"SubscribersAdmin"`` to
            unsubscribe clients, ``"ConnectionsAdmin"`` to terminate connections.
        allowed_topics: the ``allowedTopics`` claim, topic patterns a ``Publisher`` may
            publish to (``["*"]`` for all); left out when ``None``.
        ttl: seconds until it expires (the service's own demos use a few seconds: mint one
            per request rather than keeping one around).
        algorithm: as for :func:`client_token`.
        issuer: the ``iss`` claim, when the application accepts only some issuers.

    Returns:
        The signed JWT.

    Raises:
        ValueError, TypeError: as for :func:`client_token`.
    """
    payload: dict[str, Any] = {"sub": _subject(subject), "roles": _strings(roles, "roles")}
    if allowed_topics is not None:
        payload["allowedTopics"] = _strings(allowed_topics, "allowed_topics")
    return _sign(key, payload, ttl=ttl, algorithm=algorithm, issuer=issuer, claims=None)


def _subject(subject: object) -> str:
    if not isinstance(subject, str):
        raise TypeError(f"subject must be a string, not {type(subject).__name__}")
    return subject


def _strings(values: Iterable[str], name: str) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not a single string")
    result = list(values)
    for value in result:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be strings, not {type(value).__name__}")
    return result


def _sign(
    key: str | bytes,
    payload: dict[str, Any],
    *,
    ttl: float | None,
    algorithm: str,
    issuer: str | None,
    claims: Mapping[str, Any] | None,
) -> str:
    now = int(time.time())
    payload["iat"] = now
    if ttl is not None:
        payload["exp"] = int(now + ttl)
    if issuer is not None:
        payload["iss"] = issuer
    if claims:
        payload.update(claims)
    return jwt.encode(payload, _prepared_key(key, algorithm, private=True), algorithm=algorithm)


def _prepared_key(key: str | bytes, algorithm: str, *, private: bool) -> Any:
    """``key`` made ready for PyJWT to sign (``private``) or verify ``algorithm`` with: a
    secret's bytes, or a private or public key object; else :class:`ValueError` saying why
    not, without showing the key."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    if not isinstance(key, (str, bytes)) or not key:
        raise ValueError(f"the {algorithm} key must be a non-empty str or bytes")
    try:
        prepared = jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (jwt.PyJWTError, ValueError, TypeError):
        prepared = None
    if algorithm in HMAC_ALGORITHMS:
        if prepared is None:
            raise ValueError(f"{algorithm} takes a shared secret, not a PEM key")
        return prepared
    elliptic = algorithm.startswith("ES")
    wanted = {
        (True, True): EllipticCurvePrivateKey,
        (True, False): EllipticCurvePublicKey,
        (False, True): RSAPrivateKey,
        (False, False): RSAPublicKey,
    }[elliptic, private]
    if not isinstance(prepared, wanted):
        kind = "an EC" if elliptic else "an RSA"
        half = "private" if private else "public"
        raise ValueError(f"{algorithm} takes {kind} {half} key in PEM form")
    return prepared
