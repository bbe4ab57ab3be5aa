"""The sans-IO codec of the HTTP admin API (PROTOCOL.md §8): its endpoints and their paths,
the roles that open them, the request bodies and their rules, and the error bodies. The
admin client builds requests with it and the local gateway parses them with it, so a
request one refuses the other refuses too, for the same reason. No I/O, no httpx.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import Any, Final

import attrs
import orjson

__all__ = [
    "CONNECTIONS_ADMIN",
    "ENDPOINTS",
    "MAX_TOPIC_PATTERNS",
    "PUBLISH",
    "PUBLISHER",
    "ROLES",
    "SUBSCRIBERS_ADMIN",
    "TERMINATE_ALL",
    "TERMINATE_ONE",
    "UNSUBSCRIBE",
    "Endpoint",
    "PublishRequest",
    "Target",
    "UnsubscribeRequest",
    "encode_error",
    "encode_publish",
    "encode_unsubscribe",
    "error_text",
    "parse_path",
    "parse_publish",
    "parse_unsubscribe",
    "path_of",
    "publish_request",
    "unsubscribe_request",
    "validate_id",
]

#: The roles of an admin token's ``roles`` claim, one per kind of operation.
PUBLISHER: Final = "Publisher"
SUBSCRIBERS_ADMIN: Final = "SubscribersAdmin"
CONNECTIONS_ADMIN: Final = "ConnectionsAdmin"
ROLES: Final = (PUBLISHER, SUBSCRIBERS_ADMIN, CONNECTIONS_ADMIN)
#: How many topic patterns one unsubscribe request may carry.
MAX_TOPIC_PATTERNS: Final = 50
#: The longest error text quoted from an answer.
_MAX_ERROR_TEXT: Final = 200


# --------------------------------------------------------------------------- endpoints


@attrs.frozen
class Endpoint:
    """One operation of the API: its HTTP method and the role it needs."""

    name: str
    method: str
    role: str


PUBLISH: Final = Endpoint("publish", "POST", PUBLISHER)
UNSUBSCRIBE: Final = Endpoint("unsubscribe", "POST", SUBSCRIBERS_ADMIN)
TERMINATE_ONE: Final = Endpoint("terminate a connection", "DELETE", CONNECTIONS_ADMIN)
TERMINATE_ALL: Final = Endpoint("terminate every connection", "DELETE", CONNECTIONS_ADMIN)
ENDPOINTS: Final = (PUBLISH, UNSUBSCRIBE, TERMINATE_ONE, TERMINATE_ALL)


@attrs.frozen
class Target:
    """An endpoint applied to an app (and, to terminate one, a connection)."""

    endpoint: Endpoint
    app_id: str
    connection_id: str | None = None


def validate_id(value: object, name: str) -> str:
    """``value`` if it is a non-empty string (an app or connection id), else
    :class:`ValueError` naming it."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")
    return value


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def path_of(target: Target) -> str:
    """The request path of ``target``, its ids percent-encoded:
    ``/api/topics/<app>/publish``, ``/api/topics/<app>/unsubscribe``,
    ``/api/connections/<app>/<connection id>``, ``/api/connections/<app>``."""
    app = _quote(target.app_id)
    endpoint = target.endpoint
    if endpoint is PUBLISH or endpoint is UNSUBSCRIBE:
        return f"/api/topics/{app}/{endpoint.name}"
    if endpoint is TERMINATE_ONE:
        assert target.connection_id is not None
        return f"/api/connections/{app}/{_quote(target.connection_id)}"
    return f"/api/connections/{app}"


def parse_path(path: str) -> Target | None:
    """The target a request path names, whatever its method; None for any other path."""
    parts = path.split("/")
    if len(parts) < 4 or parts[0] or parts[1] != "api" or not all(parts[2:]):
        return None
    app_id = urllib.parse.unquote(parts[3])
    if parts[2] == "topics" and len(parts) == 5:
        endpoint = {"publish": PUBLISH, "unsubscribe": UNSUBSCRIBE}.get(parts[4])
        return Target(endpoint, app_id) if endpoint is not None else None
    if parts[2] == "connections" and len(parts) == 4:
        return Target(TERMINATE_ALL, app_id)
    if parts[2] == "connections" and len(parts) == 5:
        return Target(TERMINATE_ONE, app_id, urllib.parse.unquote(parts[4]))
    return None


# --------------------------------------------------------------------------- request bodies


@attrs.frozen
class PublishRequest:
    """``{"topic": T, "message": M, "compress": B}``: M reaches T's subscribers as it is."""

    topic: str
    message: Any
    compress: bool = False


@attrs.frozen
class UnsubscribeRequest:
    """``{"subject": S, "topicPatterns": [...]}``: the subscriptions matching a pattern
    (``*`` matches any run of characters) are removed from every connection of S."""

    subject: str
    topic_patterns: tuple[str, ...]


def publish_request(topic: object, message: object, compress: object = False) -> PublishRequest:
    """A valid publish, or :class:`ValueError` saying what is wrong: the topic is not a
    non-empty string, there is no message (``None`` counts as none), ``compress`` is not a
    bool."""
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic must be a non-empty string, not {topic!r}")
    if message is None:
        raise ValueError("message is required (any JSON value but null)")
    if not isinstance(compress, bool):
        raise ValueError(f"compress must be true or false, not {compress!r}")
    return PublishRequest(topic, message, compress)


def unsubscribe_request(subject: object, topic_patterns: object) -> UnsubscribeRequest:
    """A valid unsubscribe, or :class:`ValueError` saying what is wrong: the subject is not
    a non-empty string, or the patterns are not a list of 1 to :data:`MAX_TOPIC_PATTERNS`
    non-empty strings."""
    if not isinstance(subject, str) or not subject:
        raise ValueError(f"subject must be a non-empty string, not {subject!r}")
    if isinstance(topic_patterns, (str, bytes)) or not isinstance(topic_patterns, Iterable):
        raise ValueError("topic patterns must be a list of strings, not a single value")
    patterns = tuple(topic_patterns)
    if not 1 <= len(patterns) <= MAX_TOPIC_PATTERNS:
        raise ValueError(f"give 1 to {MAX_TOPIC_PATTERNS} topic patterns, not {len(patterns)}")
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"a topic pattern is a non-empty string, not {pattern!r}")
    return UnsubscribeRequest(subject, patterns)


def encode_publish(request: PublishRequest) -> bytes:
    """The JSON body of a publish; :class:`TypeError` when the message is not
    JSON-serializable."""
    try:
        return orjson.dumps(
            {"topic": request.topic, "message": request.message, "compress": request.compress}
        )
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"message is not JSON-serializable: {exc}") from None


def encode_unsubscribe(request: UnsubscribeRequest) -> bytes:
    """The JSON body of an unsubscribe."""
    return orjson.dumps(
        {"subject": request.subject, "topicPatterns": list(request.topic_patterns)}
    )


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the body is not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"the body is not a JSON object (got {type(value).__name__})")
    return value


def parse_publish(body: bytes) -> PublishRequest:
    """The publish a request body asks for; :class:`ValueError` saying what is wrong."""
    data = _object(body)
    compress = data.get("compress")
    return publish_request(data.get("topic"), data.get("message"), compress or False)


def parse_unsubscribe(body: bytes) -> UnsubscribeRequest:
    """The unsubscribe a request body asks for; :class:`ValueError` saying what is wrong."""
    data = _object(body)
    patterns = data.get("topicPatterns")
    if not isinstance(patterns, list):
        raise ValueError("topicPatterns must be a list of strings")
    return unsubscribe_request(data.get("subject"), patterns)


# --------------------------------------------------------------------------- answers


def encode_error(text: str) -> dict[str, Any]:
    """The body of a failure: ``{"error": text}``."""
    return {"error": text}


def error_text(body: bytes) -> str:
    """What an error answer says, as one short line: its ``error`` member when it is JSON
    in the emulator's shape, else its text (the real service's bodies are unpublished)."""
    text = ""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace")
    else:
        if isinstance(value, dict):
            found = value.get("error", value.get("message"))
            text = found if isinstance(found, str) else orjson.dumps(value).decode()
        elif isinstance(value, str):
            text = value
    line = " ".join(text.split())
    if len(line) > _MAX_ERROR_TEXT:
        line = line[: _MAX_ERROR_TEXT - 3] + "..."
    return line
