"""realtime_pubsub.tokens: minting client and admin tokens, and the permission strings."""

from __future__ import annotations

import time

import jwt
import pytest

from realtime_pubsub import tokens
from realtime_pubsub._protocol import READ_PERMISSION_PREFIX, WRITE_PERMISSION_PREFIX

from .keys import OTHER_SECRET, SECRET, ec_pair, rsa_pair


def test_permission_helpers_build_the_protocol_strings() -> None:
    assert tokens.can_publish("chat/*") == "realtime:publisher:write:topic:chat/*"
    assert tokens.can_read("secure/*") == "realtime:subscriber:read:topic:secure/*"
    assert tokens.can_publish("*").startswith(WRITE_PERMISSION_PREFIX)
    assert tokens.can_read("*").startswith(READ_PERMISSION_PREFIX)


@pytest.mark.parametrize("pattern", ["", None, 3])
def test_a_permission_needs_a_pattern(pattern: object) -> None:
    with pytest.raises(ValueError, match="pattern"):
        tokens.can_publish(pattern)  # type: ignore[arg-type]


def test_client_token_carries_subject_permissions_and_expiry() -> None:
    before = int(time.time())
    token = tokens.client_token(
        SECRET, subject="alice", permissions=[tokens.can_publish("chat")], ttl=60
    )
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["permissions"] == ["realtime:publisher:write:topic:chat"]
    assert before + 60 <= claims["exp"] <= int(time.time()) + 60
    assert "iss" not in claims


def test_client_token_issuer_claims_and_no_expiry() -> None:
    token = tokens.client_token(
        SECRET, subject="s", ttl=None, issuer="https://idp.example.com", claims={"sub": "x"}
    )
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="https://idp.example.com")
    assert "exp" not in claims
    assert claims["sub"] == "x"  # extra claims win
    assert claims["permissions"] == []


def test_a_negative_ttl_gives_an_expired_token() -> None:
    token = tokens.client_token(SECRET, subject="s", ttl=-10)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, SECRET, algorithms=["HS256"])


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hmac_algorithms(algorithm: str) -> None:
    token = tokens.client_token(SECRET, subject="s", algorithm=algorithm)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    jwt.decode(token, SECRET, algorithms=[algorithm])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, OTHER_SECRET, algorithms=[algorithm])


ASYMMETRIC = [
    ("RS256", None),
    ("RS384", None),
    ("RS512", None),
    ("PS256", None),
    ("ES256", "P-256"),
    ("ES384", "P-384"),
]


@pytest.mark.parametrize(("algorithm", "curve"), ASYMMETRIC)
def test_asymmetric_algorithms_sign_with_the_private_key(
    algorithm: str, curve: str | None
) -> None:
    pair = ec_pair(curve) if curve else rsa_pair()
    token = tokens.client_token(pair.private_pem.encode(), subject="s", algorithm=algorithm)
    assert jwt.decode(token, pair.public_pem, algorithms=[algorithm])["sub"] == "s"


def test_admin_token_carries_roles_and_allowed_topics() -> None:
    before = int(time.time())
    token = tokens.admin_token(
        rsa_pair().private_pem,
        subject="ops",
        roles=["Publisher", "ConnectionsAdmin"],
        allowed_topics=["*"],
        algorithm="RS256",
        issuer="https://idp.example.com",
    )
    claims = jwt.decode(token, rsa_pair().public_pem, algorithms=["RS256"])
    assert claims["roles"] == ["Publisher", "ConnectionsAdmin"]
    assert claims["allowedTopics"] == ["*"]
    assert claims["iss"] == "https://idp.example.com"
    assert before + 300 <= claims["exp"] <= int(time.time()) + 300
    bare = jwt.decode(
        tokens.admin_token(SECRET, subject="ops", roles=["SubscribersAdmin"]),
        SECRET,
        algorithms=["HS256"],
    )
    assert "allowedTopics" not in bare


@pytest.mark.parametrize(
    ("key", "algorithm", "message"),
    [
        (SECRET, "none", "unknown algorithm"),
        (SECRET, "EdDSA", "unknown algorithm"),
        ("", "HS256", "non-empty"),
        (rsa_pair().public_pem, "HS256", "shared secret"),
        (SECRET, "RS256", "an RSA private key"),
        (rsa_pair().public_pem, "RS256", "an RSA private key"),
        (rsa_pair().private_pem, "ES256", "an EC private key"),
        (ec_pair().private_pem, "PS256", "an RSA private key"),
    ],
)
def test_a_key_that_does_not_suit_the_algorithm_is_a_value_error(
    key: str, algorithm: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        tokens.client_token(key, subject="s", algorithm=algorithm)
    if key:
        assert key not in str(info.value)
        assert SECRET not in str(info.value)


def test_a_single_string_is_not_a_list_of_permissions_or_roles() -> None:
    with pytest.raises(TypeError, match="permissions"):
        tokens.client_token(SECRET, subject="s", permissions=tokens.can_publish("*"))
    with pytest.raises(TypeError, match="roles"):
        tokens.admin_token(SECRET, subject="s", roles="Publisher")
    with pytest.raises(TypeError, match="subject"):
        tokens.client_token(SECRET, subject=7)  # type: ignore[arg-type]
