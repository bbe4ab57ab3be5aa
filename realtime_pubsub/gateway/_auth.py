"""Who may connect to the local gateway and call its admin API: which key verifies which
application's tokens (the service's ``authKey``/``adminKey`` per app, one shared secret for
all, or nothing in development mode), and the identity a verified token gives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
import jwt

from ..tokens import admin_token, can_publish, client_token
from ._config import AppConfig, KeyConfig

__all__ = ["AdminIdentity", "Identity", "Keyring", "TokenRejected", "UnknownApp", "mint_token"]

#: Signs minted tokens when the gateway runs without keys (it then verifies nothing).
DEVELOPMENT_SECRET: Final = "realtime-pubsub-development-secret"
#: The app id of URLs when the gateway serves any app and none was named.
DEFAULT_APP: Final = "default"


class TokenRejected(Exception):
    """The token is missing, malformed, badly signed, expired, signed with an algorithm the
    app does not accept or by an issuer it does not trust: the handshake (or the admin
    request) gets 401."""


class UnknownApp(Exception):
    """The gateway does not serve this app id: the handshake gets 404."""


@attrs.frozen
class Identity:
    """Who a connection is, from its token."""

    subject: str | None
    permissions: tuple[str, ...]

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Identity:
        """The subject (``sub``) and permissions (the ``permissions`` list, or the
        space-separated ``scope``) of verified claims; anything ill-typed is ignored."""
        subject = claims.get("sub")
        raw = claims.get("permissions")
        if raw is None and isinstance(claims.get("scope"), str):
            raw = claims["scope"].split()
        permissions: Iterable[Any] = raw if isinstance(raw, list) else ()
        return cls(
            subject=str(subject) if subject is not None else None,
            permissions=tuple(p for p in permissions if isinstance(p, str)),
        )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


@attrs.frozen
class AdminIdentity:
    """Who calls the admin API, from an admin token: its subject, ``roles`` and (for a
    ``Publisher``) the ``allowedTopics`` patterns."""

    subject: str | None
    roles: tuple[str, ...]
    allowed_topics: tuple[str, ...]

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> AdminIdentity:
        """The identity of verified claims; anything ill-typed counts as absent."""
        subject = claims.get("sub")
        return cls(
            subject=str(subject) if subject is not None else None,
            roles=_strings(claims.get("roles")),
            allowed_topics=_strings(claims.get("allowedTopics")),
        )


class Keyring:
    """The gateway's keys: ``apps`` (each app verified with its own keys, other app ids
    unknown), or one HS256 ``secret`` for every app, or neither (development mode: any app,
    tokens decoded but signatures not checked; ``exp`` still honoured). ``app_id`` narrows
    the apps served to that one."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        apps: Mapping[str, AppConfig] | None = None,
        app_id: str | None = None,
    ) -> None:
        if secret is not None and apps is not None:
            raise ValueError("give either secret (one key for every app) or apps, not both")
        if apps is not None:
            if not apps:
                raise ValueError("apps is empty: configure at least one application")
            if app_id is not None and app_id not in apps:
                raise ValueError(f"app_id {app_id!r} is not one of the configured apps")
        self._apps = dict(apps) if apps is not None else None
        self._shared = KeyConfig(secret) if secret is not None else None
        self.app_id = app_id

    @property
    def verifies(self) -> bool:
        """False in development mode (no keys: signatures unchecked)."""
        return self._apps is not None or self._shared is not None

    @property
    def default_app(self) -> str | None:
        """The app id URLs and tokens are for when none is named: ``app_id``, the only
        configured app, or ``"default"``; None when several apps leave it ambiguous."""
        if self.app_id is not None:
            return self.app_id
        if self._apps is None:
            return DEFAULT_APP
        return next(iter(self._apps)) if len(self._apps) == 1 else None

    def app(self, app_id: str | None) -> str:
        """``app_id``, or the default app; :class:`ValueError` when neither is known."""
        app = app_id or self.default_app
        if app is None:
            raise ValueError("this gateway serves several apps: name one with app_id=")
        return app

    def auth_key(self, app_id: str) -> KeyConfig | None:
        """The key that verifies ``app_id``'s client tokens (None in development mode);
        raises :class:`UnknownApp`."""
        return self._keys(app_id, admin=False)

    def admin_key(self, app_id: str) -> KeyConfig | None:
        """The key that verifies ``app_id``'s admin tokens (None in development mode);
        raises :class:`UnknownApp`, and :class:`TokenRejected` when the app has none."""
        key = self._keys(app_id, admin=True)
        if key is None and self._apps is not None:
            raise TokenRejected("this app has no adminKey")
        return key

    def _keys(self, app_id: str, *, admin: bool) -> KeyConfig | None:
        if self.app_id is not None and app_id != self.app_id:
            raise UnknownApp(app_id)
        if self._apps is None:
            return self._shared
        app = self._apps.get(app_id)
        if app is None:
            raise UnknownApp(app_id)
        return app.admin_key if admin else app.auth_key

    def authenticate(self, app_id: str, token: str | None) -> Identity:
        """Verify a client's ``token`` for ``app_id`` and say who it is.

        Raises :class:`UnknownApp` or :class:`TokenRejected` (never showing the token)."""
        key = self.auth_key(app_id)
        return Identity.from_claims(decode(token, key))

    def authenticate_admin(self, app_id: str, token: str | None) -> AdminIdentity:
        """Verify an admin ``token`` for ``app_id`` with its ``adminKey`` (the shared
        secret when the gateway has one) and say who it is. Raises :class:`UnknownApp` or
        :class:`TokenRejected` (never showing the token)."""
        key = self.admin_key(app_id)
        return AdminIdentity.from_claims(decode(token, key, what="admin token"))

    def client_token(
        self,
        app_id: str | None,
        *,
        subject: str,
        permissions: Sequence[str],
        ttl: float | None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A token :meth:`authenticate` accepts for ``app_id`` (or the default app): signed
        with the app's first algorithm, by its first issuer."""
        return client_token(
            subject=subject,
            permissions=permissions,
            ttl=ttl,
            claims=claims,
            **_signing(self.auth_key(self.app(app_id))),
        )

    def admin_token(
        self,
        app_id: str | None,
        *,
        subject: str,
        roles: Sequence[str],
        allowed_topics: Sequence[str] | None,
        ttl: float | None,
    ) -> str:
        """A token :meth:`authenticate_admin` accepts for ``app_id`` (or the default app),
        signed as :meth:`client_token` signs; :class:`TokenRejected` when the app has no
        ``adminKey``."""
        return admin_token(
            subject=subject,
            roles=roles,
            allowed_topics=allowed_topics,
            ttl=ttl,
            **_signing(self.admin_key(self.app(app_id))),
        )


def _signing(key: KeyConfig | None) -> dict[str, Any]:
    """How to sign a token that ``key`` verifies: its signing key, first algorithm and
    first issuer (without a key, development mode's secret)."""
    if key is None:
        return {"key": DEVELOPMENT_SECRET}
    return {
        "key": key.signing_key(),
        "algorithm": key.algorithms[0],
        "issuer": key.issuer[0] if key.issuer else None,
    }


def decode(
    token: str | None, key: KeyConfig | None, *, what: str = "access token"
) -> dict[str, Any]:
    """The claims of ``token`` (``what`` names it in messages), verified with ``key``
    (without one, decoded unverified but ``exp`` still honoured); :class:`TokenRejected`
    says what is wrong with it."""
    if not token:
        raise TokenRejected(f"missing {what}")
    try:
        if key is None:
            claims: dict[str, Any] = jwt.decode(
                token, options={"verify_signature": False, "verify_exp": True}
            )
            return claims
        return key.decode(token)
    except jwt.ExpiredSignatureError:
        raise TokenRejected(f"{what} expired") from None
    except jwt.InvalidAlgorithmError:
        raise TokenRejected(f"{what} signed with an algorithm the app does not accept") from None
    except (jwt.InvalidIssuerError, jwt.MissingRequiredClaimError):
        raise TokenRejected(f"{what} from an issuer the app does not accept") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"invalid {what} ({type(exc).__name__})") from None


def mint_token(
    *,
    secret: str | None,
    subject: str = "user",
    permissions: Sequence[str] = (can_publish("*"),),
    ttl: float | None = 3600.0,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 token for a gateway run with ``secret`` (or without one)."""
    return client_token(
        secret or DEVELOPMENT_SECRET,
        subject=subject,
        permissions=permissions,
        ttl=ttl,
        claims=claims,
    )
