"""The ``realtime-pubsub`` command's options: one parser for every command, and the
variables that stand in for the options that name a place or a secret."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, Final, NoReturn, TypeVar

from ._patterns import validate_pattern
from ._protocol import validate_topic
from ._router import is_lifecycle_event
from ._version import __version__
from .gateway._config import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_WRITE_TIMEOUT,
)
from .tokens import ALGORITHMS, can_publish

__all__ = [
    "ADMIN_TOKEN_VARIABLE",
    "API_URL_VARIABLE",
    "APP_ID_VARIABLE",
    "BACKENDS",
    "DEFAULT_API_URL",
    "DEFAULT_PERMISSION",
    "GATEWAY_PORT",
    "PROG",
    "URL_VARIABLE",
    "build_parser",
]

#: The command's name.
PROG: Final = "realtime-pubsub"
#: The port ``realtime-pubsub gateway`` listens on unless told.
GATEWAY_PORT: Final = 8765
URL_VARIABLE = "REALTIME_PUBSUB_URL"
APP_ID_VARIABLE = "REALTIME_PUBSUB_APP_ID"
ADMIN_TOKEN_VARIABLE = "REALTIME_PUBSUB_ADMIN_TOKEN"
API_URL_VARIABLE = "REALTIME_PUBSUB_API_URL"
#: The public cluster (realtime_pubsub.admin.DEFAULT_BASE_URL, without importing httpx).
DEFAULT_API_URL = "https://genesis.r7.21no.de"
DEFAULT_PERMISSION = can_publish("*")
BACKENDS: Final = ("asyncio", "trio")

T = TypeVar("T")


class _HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default, unless its help already says it or there is none to
    show (an option that is off, or left out, unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, [], argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------- values


def _checked(name: str, check: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type`` from ``check``, whose ValueError says what is wrong: argparse
    then reports it as bad usage, naming the option."""

    def parse(text: str) -> T:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse


def _number(text: str, kind: Callable[[str], float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a number: {text!r}")
    return value


def _seconds_value(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise ValueError(f"must be a positive number of seconds, not {text}")
    return value


def _positive_value(text: str) -> int:
    value = int(_number(text, int))
    if value <= 0:
        raise ValueError(f"must be a positive whole number, not {text}")
    return value


def _count_value(text: str) -> int:
    value = int(_number(text, int))
    if value < 0:
        raise ValueError(f"must be 0 or more, not {text}")
    return value


def _port_value(text: str) -> int:
    value = int(_number(text, int))
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a port number from 0 to 65535, not {text}")
    return value


def _pattern_value(text: str) -> str:
    if is_lifecycle_event(validate_pattern(text)):
        raise ValueError(f"{text!r} is a lifecycle event, not a message pattern")
    return text


_seconds = _checked("seconds", _seconds_value)
_positive = _checked("positive", _positive_value)
_count = _checked("count", _count_value)
_port = _checked("port", _port_value)
_topic = _checked("topic", validate_topic)
_pattern = _checked("pattern", _pattern_value)


# --------------------------------------------------------------------------- the parser


def _common_options(*, backend: bool) -> _Parser:
    """``--debug`` (and ``--backend``) for a command. Their defaults are the top-level
    parser's: given before the command or after it, an option means the same, because
    the command's parser sets nothing that was not given (``SUPPRESS``)."""
    options = _Parser(add_help=False)
    options.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log what happens (to stderr), and show the traceback of a failure",
    )
    if backend:
        options.add_argument(
            "--backend",
            choices=BACKENDS,
            default=argparse.SUPPRESS,
            help="event loop to run on (default: asyncio)",
        )
    return options


def _attempts(command: argparse.ArgumentParser, default: int) -> None:
    command.add_argument(
        "--attempts",
        type=_count,
        default=default,
        metavar="N",
        help="give up once this many connection attempts in a row have failed; 0 never gives up",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(backend=True)
    connecting = _Parser(add_help=False)
    connecting.add_argument(
        "--url", help=f"wss://host/apps/<app>?access_token=<JWT> (default: ${URL_VARIABLE})"
    )
    connecting.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="seconds per connection attempt",
    )
    connecting.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print errors only: no progress, no word of success",
    )

    parser = _Parser(prog=PROG, description="Realtime Pub/Sub from the command line.")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log what happens (to stderr), and show the traceback of a failure",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="asyncio",
        help="event loop for the commands that run one (all but token)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listen = commands.add_parser(
        "listen",
        parents=[common, connecting],
        help="print incoming messages until Ctrl-C",
        description="Print the messages whose event name <topic>.<messageType> matches a "
        "PATTERN (* one segment, ** any number). Listening does not subscribe: add "
        "--subscribe TOPIC for remote topics.",
    )
    listen.add_argument(
        "patterns", nargs="+", type=_pattern, metavar="PATTERN", help="e.g. 'chat.*'"
    )
    listen.add_argument(
        "--subscribe",
        action="append",
        default=[],
        type=_topic,
        metavar="TOPIC",
        help="subscribe to this remote topic first; repeatable",
    )
    listen.add_argument("--json", action="store_true", help="one JSON object a line")
    _attempts(listen, 0)

    for name, help_text in (
        ("publish", "publish a message to a topic"),
        ("send", "send a message to the backend services"),
    ):
        command = commands.add_parser(
            name,
            parents=[common, connecting],
            help=help_text,
            description=f"{help_text[0].upper()}{help_text[1:]}. PAYLOAD is sent as JSON when "
            "it is valid JSON, else as a string.",
        )
        if name == "publish":
            command.add_argument("topic", type=_topic, metavar="TOPIC", help="where to publish")
        command.add_argument("payload", metavar="PAYLOAD", help="JSON, or else a string")
        command.add_argument(
            "--type",
            dest="message_type",
            metavar="T",
            help="the message type (default: broadcast)",
        )
        command.add_argument("--compress", action="store_true", help="deliver compressed")
        command.add_argument(
            "--ack",
            action="store_true",
            help="fail (status 1) if the gateway's ack does not come within --ack-timeout "
            "(without --ack: say so, status 0)",
        )
        command.add_argument(
            "--ack-timeout",
            type=_seconds,
            default=1.0,
            metavar="S",
            help="seconds to wait for the gateway's ack",
        )
        command.add_argument(
            "--reply-timeout",
            type=_seconds,
            metavar="S",
            help="wait this many seconds for a reply (instead of the ack) and print it",
        )
        _attempts(command, 3)

    serve = commands.add_parser(
        "gateway",
        parents=[common],
        help="run the local gateway (development and tests) until Ctrl-C",
        description="Run a local Realtime Pub/Sub gateway until Ctrl-C. For development and "
        "tests; production traffic goes to the hosted service.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port",
        type=_port,
        default=GATEWAY_PORT,
        help="TCP port to listen on; 0 takes any free one",
    )
    keys = serve.add_mutually_exclusive_group()
    keys.add_argument(
        "--secret",
        metavar="S",
        help="HS256 secret tokens must be signed with (default: none, verify nothing)",
    )
    keys.add_argument(
        "--app-config",
        metavar="FILE",
        help="JSON file of apps in the service's shape (appId, authKey, adminKey): only "
        "those apps are served, each verified with its own keys",
    )
    serve.add_argument("--app-id", help="serve only this app id (default: any)")
    serve.add_argument("--no-acks", action="store_true", help="never acknowledge messages")
    serve.add_argument(
        "--max-message-size",
        type=_positive,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help="close a connection that sends a larger frame, with 1009",
    )
    serve.add_argument(
        "--max-send-buffer",
        type=_positive,
        default=DEFAULT_MAX_SEND_BUFFER,
        metavar="BYTES",
        help="close a connection with more than this many bytes queued for it, with 1013",
    )
    serve.add_argument(
        "--write-timeout",
        type=_seconds,
        default=DEFAULT_WRITE_TIMEOUT,
        metavar="S",
        help="seconds a write to one connection may take before it is aborted",
    )
    serve.add_argument("--certfile", metavar="FILE", help="PEM certificate (chain): serve wss://")
    serve.add_argument(
        "--keyfile", metavar="FILE", help="PEM private key of --certfile (if not in it)"
    )

    token = commands.add_parser(
        "token",
        parents=[_common_options(backend=False)],
        help="print a token (JWT) for the local gateway",
        description="Print a JWT for the local gateway, or for your app on the service.",
    )
    signing = token.add_mutually_exclusive_group()
    signing.add_argument(
        "--secret",
        metavar="S",
        help="HS* secret to sign with: the gateway's --secret, or your app's (default: the "
        "development secret of a gateway without --secret)",
    )
    signing.add_argument(
        "--private-key",
        metavar="FILE",
        help="PEM private key to sign with, for RS*/PS256/ES* apps",
    )
    token.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        metavar="ALG",
        help=f"signing algorithm: {', '.join(ALGORITHMS)} (default: HS256, or RS256 with "
        "--private-key)",
    )
    token.add_argument("--issuer", metavar="ISS", help="the iss claim (default: none)")
    token.add_argument("--subject", default="user", metavar="SUB", help="the sub claim")
    token.add_argument(
        "--permission",
        action="append",
        default=None,
        metavar="P",
        help=f"a permission string, repeatable (default: {DEFAULT_PERMISSION})",
    )
    token.add_argument(
        "--ttl",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds until it expires (default: 3600, or 300 with --admin)",
    )

    _add_admin_parsers(commands, token, common)

    commands.add_parser(
        "demo",
        parents=[common],
        help="walk through the protocol against a local gateway, in one process",
        description="Start a local gateway, a backend service and a client, and walk through "
        "subscribe, publish with ack, RPC, presence and a forced reconnection.",
    )
    return parser


def _add_admin_parsers(commands: Any, token: argparse.ArgumentParser, common: _Parser) -> None:
    """The ``admin`` command group (the HTTP admin API) and the admin options of
    ``token``."""
    token.add_argument(
        "--admin",
        action="store_true",
        help="an admin token for the HTTP admin API (signed with the app's adminKey)",
    )
    token.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="R",
        help="with --admin: Publisher, SubscribersAdmin or ConnectionsAdmin; repeatable",
    )
    token.add_argument(
        "--allowed-topic",
        action="append",
        default=[],
        metavar="P",
        help="with --admin: a topic pattern a Publisher may publish to; repeatable",
    )

    api = _Parser(add_help=False)
    api.add_argument("--app-id", help=f"the application's id (default: ${APP_ID_VARIABLE})")
    api.add_argument("--token", help=f"an admin token (default: ${ADMIN_TOKEN_VARIABLE})")
    api.add_argument(
        "--api-url",
        help=f"the API's base URL (default: ${API_URL_VARIABLE}, else {DEFAULT_API_URL})",
    )
    api.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="S", help="seconds per request"
    )
    admin = commands.add_parser(
        "admin",
        parents=[common],
        help="call the HTTP admin API: publish, unsubscribe users, terminate connections",
        description="Call the service's HTTP admin API (or the local gateway's) with an "
        "admin token.",
    )
    operations = admin.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    publish = operations.add_parser(
        "publish",
        parents=[common, api],
        help="publish MESSAGE to TOPIC (role Publisher)",
        description="Publish MESSAGE to TOPIC; subscribers receive it as it is. MESSAGE is "
        "sent as JSON when it is valid JSON, else as a string. Not retried.",
    )
    publish.add_argument("topic", type=_topic, metavar="TOPIC")
    publish.add_argument("message", metavar="MESSAGE")
    publish.add_argument("--compress", action="store_true", help="deliver compressed")
    unsubscribe = operations.add_parser(
        "unsubscribe",
        parents=[common, api],
        help="remove a subject's subscriptions (role SubscribersAdmin)",
        description="Remove the subscriptions matching a pattern (* matches anything) from "
        "every connection of a subject.",
    )
    unsubscribe.add_argument("--subject", required=True, help="whose connections")
    unsubscribe.add_argument(
        "--pattern",
        action="append",
        required=True,
        type=_topic,
        metavar="P",
        help="a topic pattern, repeatable (up to 50)",
    )
    terminate = operations.add_parser(
        "terminate",
        parents=[common, api],
        help="close one connection, or all of the app's (role ConnectionsAdmin)",
        description="Close the connection CONNECTION_ID, or with --all every connection "
        "of the app. Clients reconnect with a fresh token.",
    )
    terminate.add_argument("connection_id", nargs="?", metavar="CONNECTION_ID")
    terminate.add_argument("--all", action="store_true", help="every connection of the app")
