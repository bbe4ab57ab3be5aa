"""The service's app keys in the gateway (PROTOCOL.md §1): each app's ``authKey`` verifies
its clients' tokens (algorithm, key and issuer), configured from Python or from a JSON file
in the service's shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import InvalidStatus

from realtime_pubsub import tokens
from realtime_pubsub.gateway import (
    AppConfig,
    AppConfigError,
    Gateway,
    KeyConfig,
    load_app_config,
    serve,
)

from .keys import OTHER_SECRET, SECRET, ec_pair, rsa_pair
from .raw import connect

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.com"
PERMISSIONS = [tokens.can_publish("*")]


def rs256_app(**key: Any) -> dict[str, AppConfig]:
    """One RS256 app, "rs-app", trusting ISSUER, whose private key the test holds."""
    key.setdefault("private_key", rsa_pair().private_pem)
    return {
        "rs-app": AppConfig(
            auth_key=KeyConfig(rsa_pair().public_pem, ["RS256"], [ISSUER], **key),
            admin_key=KeyConfig(SECRET),
        )
    }


def forge_hs256(key: bytes, claims: dict[str, Any]) -> str:
    """An HS256 token made by hand (PyJWT refuses to use a PEM key as an HMAC secret, which
    is exactly what an algorithm-confusion attack does)."""

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signed = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(orjson.dumps(claims))
    signature = part(hmac.new(key, signed, hashlib.sha256).digest())
    return (signed + b"." + signature).decode()


async def status_of(gateway: Gateway, token: str, app_id: str = "rs-app") -> int:
    """101 if ``token`` connects to ``app_id``, else the HTTP status it is refused with."""
    try:
        async with connect(gateway.url(token, app_id=app_id)) as client:
            assert client.welcome["data"]["connection"]["appId"] == app_id
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


# --------------------------------------------------------------------------- verification


async def test_an_rs256_app_accepts_rs256_tokens_and_refuses_hs256_and_wrong_issuers() -> None:
    private, public = rsa_pair().private_pem, rsa_pair().public_pem
    claims = {"sub": "alice", "iss": ISSUER, "exp": 2**40}
    async with serve(apps=rs256_app()) as gw:

        def rs256(**changes: Any) -> str:
            return tokens.client_token(
                changes.pop("key", private),
                subject="alice",
                permissions=PERMISSIONS,
                algorithm=changes.pop("algorithm", "RS256"),
                issuer=changes.pop("issuer", ISSUER),
                **changes,
            )

        assert await status_of(gw, rs256()) == 101
        assert await status_of(gw, gw.mint_token(subject="bob")) == 101
        refused = {
            "hs256 with a secret": tokens.client_token(SECRET, subject="x", issuer=ISSUER),
            "hs256 with the public key as secret": forge_hs256(public.encode(), claims),
            "another rsa key": rs256(key=rsa_pair(1).private_pem),
            "rs384, not listed": rs256(algorithm="RS384"),
            "ps256, not listed": rs256(algorithm="PS256"),
            "a wrong issuer": rs256(issuer="https://evil.example.com"),
            "no issuer": rs256(issuer=None),
            "expired": rs256(ttl=-10),
        }
        statuses = {name: await status_of(gw, token) for name, token in refused.items()}
    assert statuses == dict.fromkeys(refused, 401)


async def test_only_the_configured_apps_are_served() -> None:
    async with serve(apps=rs256_app()) as gw:
        assert await status_of(gw, gw.mint_token(), app_id="other") == 404
        assert gw.url("t").startswith(f"ws://127.0.0.1:{gw.port}/apps/rs-app?")


async def test_each_app_verifies_with_its_own_key() -> None:
    apps = {
        "one": AppConfig(auth_key=KeyConfig(SECRET, ["HS384"])),
        "two": AppConfig(auth_key=KeyConfig(OTHER_SECRET, ["HS256", "HS512"])),
        "ec": AppConfig(
            auth_key=KeyConfig(
                ec_pair("P-384").public_pem, ["ES384"], private_key=ec_pair("P-384").private_pem
            )
        ),
    }
    async with serve(apps=apps) as gw:
        with pytest.raises(ValueError, match="several apps"):
            gw.url("t")
        for app in apps:
            assert await status_of(gw, gw.mint_token(app_id=app), app) == 101
        hs512 = tokens.client_token(OTHER_SECRET, subject="s", algorithm="HS512")
        assert await status_of(gw, hs512, "two") == 101
        assert await status_of(gw, hs512, "one") == 401  # another app's key
        hs256 = tokens.client_token(SECRET, subject="s")
        assert await status_of(gw, hs256, "one") == 401  # the right key, not HS384
        assert await status_of(gw, gw.mint_token(app_id="ec"), "two") == 401


async def test_an_empty_issuer_list_accepts_any_issuer_or_none() -> None:
    apps = {"app": AppConfig(auth_key=KeyConfig(SECRET))}
    async with serve(apps=apps) as gw:
        for issuer in (None, "anyone"):
            token = tokens.client_token(SECRET, subject="s", issuer=issuer)
            assert await status_of(gw, token, "app") == 101


async def test_minting_for_an_asymmetric_app_needs_its_private_key() -> None:
    async with serve(apps=rs256_app(private_key=None)) as gw:
        with pytest.raises(ValueError, match="private_key"):
            gw.mint_token()


async def test_secret_is_the_short_form_for_every_app() -> None:
    async with serve(secret=SECRET) as gw:
        for app in ("a", "b"):
            assert await status_of(gw, gw.mint_token(app_id=app), app) == 101
        assert await status_of(gw, tokens.client_token(OTHER_SECRET, subject="s"), "a") == 401


async def test_secret_and_apps_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        async with serve(secret=SECRET, apps=rs256_app()):
            pass
    with pytest.raises(ValueError, match="not one of the configured apps"):
        async with serve(apps=rs256_app(), app_id="other"):
            pass
    with pytest.raises(ValueError, match="empty"):
        async with serve(apps={}):
            pass


# --------------------------------------------------------------------------- KeyConfig


@pytest.mark.parametrize(
    ("key", "algorithms", "message"),
    [
        (SECRET, ["HS256", "none"], "unknown algorithm 'none'"),
        (SECRET, [], "at least one"),
        ("", ["HS256"], "non-empty"),
        (rsa_pair().public_pem, ["HS256"], "shared secret"),
        (SECRET, ["RS256"], "RSA public key"),
        (rsa_pair().private_pem, ["RS256"], "RSA public key"),
        (rsa_pair().public_pem, ["RS256", "ES256"], "EC public key"),
    ],
)
def test_a_key_that_does_not_suit_its_algorithms_is_refused(
    key: str, algorithms: list[str], message: str
) -> None:
    with pytest.raises(AppConfigError, match=message) as info:
        KeyConfig(key, algorithms)
    if key:
        assert key not in str(info.value)


def test_a_private_key_that_does_not_suit_is_refused() -> None:
    with pytest.raises(AppConfigError, match="private_key"):
        KeyConfig(rsa_pair().public_pem, ["RS256"], private_key=ec_pair().private_pem)


def test_a_key_config_never_shows_its_keys() -> None:
    text = repr(KeyConfig(rsa_pair().public_pem, ["RS256"], private_key=rsa_pair().private_pem))
    assert "PRIVATE" not in text and "PUBLIC" not in text
    assert SECRET not in repr(AppConfig(auth_key=KeyConfig(SECRET), admin_key=KeyConfig(SECRET)))


# --------------------------------------------------------------------------- the JSON file


def service_app(app_id: str = "rs-app") -> dict[str, Any]:
    """An app in the service's own JSON shape."""
    return {
        "appId": app_id,
        "name": "ignored",
        "authKey": {"key": rsa_pair().public_pem, "algorithms": ["RS256"], "issuer": [ISSUER]},
        "adminKey": {"key": SECRET, "algorithms": ["HS256"], "issuer": []},
    }


def test_load_app_config_reads_one_app_or_a_list(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(service_app()))
    [(app_id, app)] = load_app_config(one).items()
    assert app_id == "rs-app"
    assert app.auth_key.algorithms == ("RS256",)
    assert app.auth_key.issuer == (ISSUER,)
    assert app.admin_key == KeyConfig(SECRET, ["HS256"], [])
    several = tmp_path / "several.json"
    several.write_text(json.dumps([service_app("a"), service_app("b")]))
    assert list(load_app_config(several)) == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "no application"),
        ("[1]", "not a JSON object"),
        ('{"authKey": {}}', "no appId"),
        ('{"appId": "a"}', "no authKey"),
        ('{"appId": "a", "authKey": {"key": "k"}}', "authKey lacks algorithms"),
        ('{"appId": "a", "authKey": {"key": 5, "algorithms": []}}', "authKey.key"),
        ('{"appId": "a", "authKey": {"key": "k", "algorithms": "HS256"}}', "algorithms"),
        ('{"appId": "a", "authKey": {"key": "k", "algorithms": ["XS1"]}}', "unknown algorithm"),
    ],
)
def test_a_bad_app_config_names_the_file_and_the_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "apps.json"
    path.write_text(content)
    with pytest.raises(AppConfigError, match=message) as info:
        load_app_config(path)
    assert str(path) in str(info.value)


def test_a_duplicate_app_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "apps.json"
    path.write_text(json.dumps([service_app("a"), service_app("a")]))
    with pytest.raises(AppConfigError, match="twice"):
        load_app_config(path)


def test_a_bad_key_in_the_file_is_never_echoed(tmp_path: Path) -> None:
    app = service_app()
    app["authKey"]["algorithms"] = ["HS256"]  # a PEM key is no HS256 secret
    path = tmp_path / "apps.json"
    path.write_text(json.dumps(app))
    with pytest.raises(AppConfigError, match="'rs-app' authKey") as info:
        load_app_config(path)
    assert "BEGIN" not in str(info.value)


async def test_an_app_loaded_from_the_file_verifies_like_the_service(tmp_path: Path) -> None:
    path = tmp_path / "apps.json"
    path.write_text(json.dumps(service_app()))
    async with serve(apps=load_app_config(path)) as gw:
        good = tokens.client_token(
            rsa_pair().private_pem, subject="s", algorithm="RS256", issuer=ISSUER
        )
        assert await status_of(gw, good) == 101
        assert await status_of(gw, tokens.client_token(SECRET, subject="s", issuer=ISSUER)) == 401
