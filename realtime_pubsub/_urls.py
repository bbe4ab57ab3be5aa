"""Connection URLs: checking them, and keeping their secrets out of everything people read.

A connection URL carries the access token in its query string. Every log line, repr,
exception message and command output shows URLs through :func:`mask_url`, and any text a
peer sends back (the body of a refused handshake) goes through :func:`redact` before it is
quoted, so the token is never shown whatever the spelling of its parameter's name and
wherever a server echoes it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Final

__all__ = ["mask_url", "redact", "secrets_of", "validate_url"]

MASK: Final = "***"
# Query parameters whose values are secrets, by (decoded) name.
_SECRET_NAME: Final = re.compile(
    r"token|secret|key|pass|pwd|auth|jwt|sig|credential|session|cookie|bearer", re.I
)
# A JWT (or anything shaped like one): base64url segments joined by dots.
_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# The shortest part of a secret worth searching for in a peer's text.
_MIN_SECRET_PART: Final = 8


def _decoded(text: str) -> str:
    """``text`` percent-decoded until it stops changing (servers decode once; a name
    encoded twice must not slip through either)."""
    for _ in range(4):
        decoded = urllib.parse.unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _is_secret(name: str, value: str) -> bool:
    return bool(_SECRET_NAME.search(_decoded(name)) or _JWT_SHAPE.search(_decoded(value)))


def _split_query(query: str) -> list[tuple[str, str | None]]:
    """The query's parameters as (name, value) pairs, exactly as written (no decoding);
    value is None for a parameter without ``=``."""
    pairs: list[tuple[str, str | None]] = []
    for part in re.split(r"[&;]", query):
        name, equals, value = part.partition("=")
        pairs.append((name, value if equals else None))
    return pairs


def mask_url(url: str) -> str:
    """``url`` with the access token, every other secret-looking query value (by name, in
    any percent-encoding, or by shape: anything that looks like a JWT) and any user
    information replaced by ``***``, and the fragment dropped: safe for logs, reprs and
    exception messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    path = _JWT_SHAPE.sub(MASK, parts.path)
    query = "&".join(
        (MASK if _is_secret("", name) else name)
        if value is None
        else f"{name}={MASK if _is_secret(name, value) else value}"
        for name, value in _split_query(parts.query)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))


def secrets_of(url: str) -> list[str]:
    """The secrets ``url`` carries (as written and decoded, and their long parts), longest
    first: what :func:`redact` looks for in a peer's text."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    found: set[str] = set()
    for name, value in _split_query(parts.query):
        if value is None:
            name, text = "", name
        else:
            text = value
        if _is_secret(name, text):
            for form in (text, _decoded(text)):
                found.add(form)
                found.update(p for p in re.split(r"[.\s]", form) if len(p) >= _MIN_SECRET_PART)
    if parts.password:
        found.add(parts.password)
    return sorted((s for s in found if s), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every one of ``secrets`` and anything shaped like a JWT replaced by
    ``***``: for quoting what a peer sent back, which may echo the token."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_PART:
            text = text.replace(secret, MASK)
        else:  # a short one only as a whole word, or it would eat ordinary text
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", MASK, text)
    return _JWT_SHAPE.sub(MASK, text)


def validate_url(url: object) -> str:
    """Return ``url`` if it is a usable ``ws://`` or ``wss://`` URL; else raise
    :class:`ValueError` saying what is wrong with it (:class:`TypeError` if it is not a
    string). The message shows the URL masked."""
    if not isinstance(url, str):
        raise TypeError(f"the URL must be a str, not {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc}): {mask_url(url)!r}") from None
    if parts.scheme not in ("ws", "wss"):
        scheme = f", not {parts.scheme}://" if parts.scheme else ""
        raise ValueError(f"the URL must start with ws:// or wss://{scheme}: {mask_url(url)!r}")
    if not parts.hostname:
        raise ValueError(f"the URL has no host: {mask_url(url)!r}")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        port = parts.netloc.rpartition(":")[2]
        raise ValueError(
            f"the port of the URL is not a number from 0 to 65535 ({port!r}): {mask_url(url)!r}"
        ) from None
    return url
