"""The gateway's configuration: each application's keys in the service's own shape
(PROTOCOL.md §1: ``authKey`` and ``adminKey``, each ``{key, algorithms, issuer}``), read
from Python or from the JSON file that ``realtime-pubsub gateway --app-config`` takes, and
the per-connection limits."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable
from typing import Any, Final

import attrs
import jwt
import orjson

from ..tokens import HMAC_ALGORITHMS, _prepared_key

__all__ = ["AppConfig", "AppConfigError", "KeyConfig", "Limits", "load_app_config"]

#: Defaults of :func:`~realtime_pubsub.gateway.serve` and ``realtime-pubsub gateway``.
DEFAULT_MAX_MESSAGE_SIZE: Final = 65536
DEFAULT_MAX_SEND_BUFFER: Final = 1 << 20
DEFAULT_WRITE_TIMEOUT: Final = 10.0


class AppConfigError(ValueError):
    """An application's configuration cannot be used: the message says which field and
    why (never the key itself)."""


def _tuple_of_strings(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _public_key(algorithm: str, key: str) -> Any:
    """``key`` ready to verify ``algorithm`` with: a secret's bytes or a public key."""
    try:
        return _prepared_key(key, algorithm, private=False)
    except ValueError as exc:
        raise AppConfigError(str(exc)) from None


@attrs.frozen
class KeyConfig:
    """One of an application's keys, as the service configures it (``authKey`` verifies
    WebSocket clients' tokens, ``adminKey`` the HTTP admin API's).

    Raises :class:`AppConfigError` (a :class:`ValueError`) when the key does not suit
    every algorithm listed.
    """

    #: The shared secret (``HS256``/``HS384``/``HS512``), or the PEM public key
    #: (``-----BEGIN PUBLIC KEY-----...``) for the asymmetric algorithms.
    key: str = attrs.field(repr=False)
    #: The algorithms a token may be signed with; any other is refused (401).
    algorithms: tuple[str, ...] = attrs.field(default=("HS256",), converter=_tuple_of_strings)
    #: The accepted ``iss`` values; empty accepts any issuer (and tokens without ``iss``).
    issuer: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_strings)
    #: The private key (PEM) matching ``key``, not part of the service's configuration,
    #: which lets :meth:`Gateway.mint_token <realtime_pubsub.gateway.Gateway.mint_token>`
    #: sign tokens for an asymmetric key. Unused for ``HS*``.
    private_key: str | bytes | None = attrs.field(default=None, repr=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise AppConfigError("key must be a non-empty string")
        if not self.algorithms:
            raise AppConfigError("algorithms must list at least one algorithm")
        for algorithm in self.algorithms:
            _public_key(algorithm, self.key)
        if not all(isinstance(issuer, str) for issuer in self.issuer):
            raise AppConfigError("issuer must be a list of strings")
        if self.private_key is not None and not self.symmetric:
            try:
                _prepared_key(self.private_key, self.algorithms[0], private=True)
            except ValueError as exc:
                raise AppConfigError(f"private_key: {exc}") from None

    @property
    def symmetric(self) -> bool:
        """Whether tokens are signed with the shared secret :attr:`key` itself."""
        return self.algorithms[0] in HMAC_ALGORITHMS

    def verifying_key(self, algorithm: str) -> Any:
        """The key object PyJWT verifies ``algorithm`` with (parsed once)."""
        return _verifying_key(algorithm, self.key)

    def decode(self, token: str) -> dict[str, Any]:
        """Verify ``token`` and return its claims: signed with one of :attr:`algorithms`
        and this key, issued by one of :attr:`issuer` (when any), not expired. Raises
        PyJWT's errors."""
        algorithm = jwt.get_unverified_header(token).get("alg")
        if algorithm not in self.algorithms:
            raise jwt.InvalidAlgorithmError("the token's algorithm is not allowed")
        with warnings.catch_warnings():
            # A short development secret is the user's choice; say nothing per handshake.
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            claims: dict[str, Any] = jwt.decode(
                token,
                self.verifying_key(algorithm),
                algorithms=[algorithm],
                issuer=list(self.issuer) or None,
            )
        return claims

    def signing_key(self) -> str | bytes:
        """The key tokens for this key are signed with: the secret itself, or
        :attr:`private_key`. Raises :class:`ValueError` for an asymmetric key without one."""
        if self.symmetric:
            return self.key
        if self.private_key is None:
            raise ValueError(
                f"the key verifies {self.algorithms[0]} tokens: give its KeyConfig a "
                "private_key to mint them"
            )
        return self.private_key


@functools.lru_cache(maxsize=64)
def _verifying_key(algorithm: str, key: str) -> Any:
    return _public_key(algorithm, key)


@attrs.frozen
class AppConfig:
    """An application as the service configures it: the key that verifies its WebSocket
    clients' tokens and the key that verifies its admin tokens."""

    #: The ``authKey``, which verifies the tokens WebSocket clients connect with.
    auth_key: KeyConfig
    #: The ``adminKey``, which verifies the HTTP admin API's tokens (none refuses them).
    admin_key: KeyConfig | None = None


def _key_from_json(value: object, where: str) -> KeyConfig:
    if not isinstance(value, dict):
        raise AppConfigError(f"{where} must be an object with key, algorithms and issuer")
    missing = {"key", "algorithms"} - value.keys()
    if missing:
        raise AppConfigError(f"{where} lacks {', '.join(sorted(missing))}")
    key, algorithms, issuer = value["key"], value["algorithms"], value.get("issuer", [])
    if not isinstance(key, str):
        raise AppConfigError(f"{where}.key must be a string")
    for name, field in (("algorithms", algorithms), ("issuer", issuer)):
        if not isinstance(field, list) or not all(isinstance(item, str) for item in field):
            raise AppConfigError(f"{where}.{name} must be a list of strings")
    try:
        return KeyConfig(key, algorithms, issuer)
    except AppConfigError as exc:
        raise AppConfigError(f"{where}: {exc}") from None


def apps_from_json(value: object, *, source: str = "app config") -> dict[str, AppConfig]:
    """Applications from the service's JSON shape: one object with ``appId``, ``authKey``
    and ``adminKey`` (each ``{key, algorithms, issuer}``), or a list of them. Other fields
    are ignored."""
    entries = value if isinstance(value, list) else [value]
    if not entries:
        raise AppConfigError(f"{source}: no application in it")
    apps: dict[str, AppConfig] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: application {index + 1}"
        if not isinstance(entry, dict):
            raise AppConfigError(f"{where} is not a JSON object")
        app_id = entry.get("appId")
        if not isinstance(app_id, str) or not app_id:
            raise AppConfigError(f"{where} has no appId")
        where = f"{source}: {app_id!r}"
        if app_id in apps:
            raise AppConfigError(f"{where} appears twice")
        if "authKey" not in entry:
            raise AppConfigError(f"{where} has no authKey")
        admin = entry.get("adminKey")
        apps[app_id] = AppConfig(
            auth_key=_key_from_json(entry["authKey"], f"{where} authKey"),
            admin_key=None if admin is None else _key_from_json(admin, f"{where} adminKey"),
        )
    return apps


def load_app_config(path: str | os.PathLike[str]) -> dict[str, AppConfig]:
    """Read applications from a JSON file in the service's shape (see
    :class:`AppConfig`): one application object or a list of them.

    .. code-block:: json

        {"appId": "my-app",
         "authKey": {"key": "-----BEGIN PUBLIC KEY-----\\n...", "algorithms": ["RS256"],
                     "issuer": ["https://idp.example.com"]},
         "adminKey": {"key": "a shared secret of 32 bytes or more", "algorithms": ["HS256"],
                      "issuer": []}}

    Returns:
        The applications by app id, ready for ``serve(apps=...)``.

    Raises:
        AppConfigError: the file is not valid JSON, or an application is incomplete or its
            keys unusable (the message names the file and the field).
        OSError: the file cannot be read.
    """
    source = os.fspath(path)
    with open(source, "rb") as file:
        data = file.read()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise AppConfigError(f"{source}: not valid JSON ({exc})") from None
    return apps_from_json(value, source=source)


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


@attrs.frozen
class Limits:
    """What one connection may cost the gateway."""

    #: Frames a client sends above this many bytes close its connection with 1009.
    max_message_size: int = attrs.field(default=DEFAULT_MAX_MESSAGE_SIZE, validator=_positive)
    #: Bytes queued for a connection and not yet written, above which it is closed with
    #: 1013 (it reads too slowly to keep up).
    max_send_buffer: int = attrs.field(default=DEFAULT_MAX_SEND_BUFFER, validator=_positive)
    #: Seconds one write may take before the connection is aborted.
    write_timeout: float = attrs.field(default=DEFAULT_WRITE_TIMEOUT, validator=_positive)
    #: Seconds for the TLS and WebSocket handshakes of a new connection.
    handshake_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Seconds a closing handshake may take before the connection is aborted.
    close_timeout: float = attrs.field(default=2.0, validator=_positive)
