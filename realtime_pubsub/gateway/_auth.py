"""Tokens and permissions of the local gateway: JWT verification with PyJWT, minting for
tests and development, and the ``*`` permission patterns of PROTOCOL.md §1."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
import jwt

__all__ = ["Identity", "TokenRejected", "decode_token", "mint_token", "permits"]

#: Signs minted tokens when the gateway runs without a secret (it then verifies nothing).
DEVELOPMENT_SECRET: Final = "realtime-pubsub-development-secret"
_ALGORITHM: Final = "HS256"


class TokenRejected(Exception):
    """The token is missing, malformed, badly signed or expired; the handshake gets 401."""


@attrs.frozen
class Identity:
    """Who a connection is, from its token."""

    subject: str | None
    permissions: tuple[str, ...]


def mint_token(
    *,
    secret: str | None,
    subject: str = "user",
    permissions: Sequence[str] = (),
    ttl: float | None = 3600.0,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 JWT with ``sub``, ``permissions`` and, unless ``ttl`` is None, ``exp``."""
    payload: dict[str, Any] = {"sub": subject, "permissions": list(permissions)}
    now = int(time.time())
    payload["iat"] = now
    if ttl is not None:
        payload["exp"] = int(now + ttl)
    if claims:
        payload.update(claims)
    return jwt.encode(payload, secret or DEVELOPMENT_SECRET, algorithm=_ALGORITHM)


def decode_token(token: str | None, *, secret: str | None) -> Identity:
    """Verify ``token`` (HS256 with ``secret``; signature unchecked without one, but ``exp``
    always honoured) and read the subject and permissions (``permissions`` list or
    space-separated ``scope``)."""
    if not token:
        raise TokenRejected("missing access token")
    try:
        if secret is None:
            claims = jwt.decode(
                token,
                options={"verify_signature": False, "verify_exp": True},
                algorithms=[_ALGORITHM],
            )
        else:
            claims = jwt.decode(token, secret, algorithms=[_ALGORITHM])
    except jwt.ExpiredSignatureError:
        raise TokenRejected("access token expired") from None
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(f"invalid access token ({type(exc).__name__})") from None
    subject = claims.get("sub")
    raw_permissions = claims.get("permissions")
    if raw_permissions is None and isinstance(claims.get("scope"), str):
        raw_permissions = claims["scope"].split()
    permissions: Iterable[Any] = raw_permissions if isinstance(raw_permissions, list) else ()
    return Identity(
        subject=str(subject) if subject is not None else None,
        permissions=tuple(p for p in permissions if isinstance(p, str)),
    )


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    # [E] In a permission pattern, "*" matches any run of characters, "/" included.
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def permits(permissions: Iterable[str], prefix: str, topic: str) -> bool:
    """Whether any permission ``<prefix><pattern>`` has a pattern matching ``topic``."""
    for permission in permissions:
        if permission.startswith(prefix) and _compile(permission[len(prefix) :]).match(topic):
            return True
    return False
