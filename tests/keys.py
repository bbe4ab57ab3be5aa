"""Key pairs for tests, made fresh by each test run (no private key is committed)."""

from __future__ import annotations

import functools

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@attrs.frozen
class KeyPair:
    private_pem: str = attrs.field(repr=False)
    public_pem: str


def _pair(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> KeyPair:
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


@functools.cache
def rsa_pair(index: int = 0) -> KeyPair:
    """An RSA 2048 key pair (``index`` tells distinct pairs apart)."""
    return _pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@functools.cache
def ec_pair(curve: str = "P-256") -> KeyPair:
    """An EC key pair on ``curve`` (P-256 for ES256, P-384 for ES384)."""
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
    return _pair(ec.generate_private_key(curves[curve]))


#: Shared secrets long enough for HS256/384/512 (PyJWT warns about shorter ones).
SECRET = "s" * 64
OTHER_SECRET = "o" * 64
