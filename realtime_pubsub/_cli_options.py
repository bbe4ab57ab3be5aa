"""The ``realtime-pubsub`` command's options: one parser for every command, and the
variables that stand in for the options that name a place or a secret."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

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
    "DEFAULT_API_URL",
    "DEFAULT_PERMISSION",
    "URL_VARIABLE",
    "UsageError",
    "build_parser",
]

URL_VARIABLE = "REALTIME_PUBSUB_URL"
APP_ID_VARIABLE = "REALTIME_PUBSUB_APP_ID"
ADMIN_TOKEN_VARIABLE = "REALTIME_PUBSUB_ADMIN_TOKEN"
API_URL_VARIABLE = "REALTIME_PUBSUB_API_URL"
#: The public cluster (realtime_pubsub.admin.DEFAULT_BASE_URL, without importing httpx).
DEFAULT_API_URL = "https://genesis.r7.21no.de"
DEFAULT_PERMISSION = can_publish("*")


class UsageError(Exception):
    """Bad usage found after parsing (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="log what happens (to stderr)")
    common.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help="event loop to run on"
    )
    connecting = _Parser(add_help=False)
    connecting.add_argument(
        "--url", help=f"wss://host/apps/<app>?access_token=<JWT> (default: ${URL_VARIABLE})"
    )
    connecting.add_argument(
        "--connect-timeout", type=float, default=10.0, help="seconds per connection attempt"
    )

    parser = _Parser(
        prog="realtime-pubsub",
        description="Realtime Pub/Sub from the command line.",
        parents=[common],
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
    listen.add_argument("patterns", nargs="+", metavar="PATTERN")
    listen.add_argument(
        "--subscribe", action="append", default=[], metavar="TOPIC", help="repeatable"
    )
    listen.add_argument("--json", action="store_true", help="one JSON object a line")

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
            command.add_argument("topic", metavar="TOPIC")
        command.add_argument("payload", metavar="PAYLOAD")
        command.add_argument("--type", dest="message_type", help="the message type")
        command.add_argument("--compress", action="store_true", help="deliver compressed")
        command.add_argument("--ack", action="store_true", help="wait for the gateway's ack")
        command.add_argument(
            "--ack-timeout", type=float, default=5.0, help="seconds to wait for the ack"
        )
        command.add_argument(
            "--reply-timeout",
            type=float,
            metavar="S",
            help="wait this many seconds for a reply and print it",
        )

    serve = commands.add_parser(
        "gateway",
        parents=[common],
        help="run the local gateway (development and tests) until Ctrl-C",
        description="Run a local Realtime Pub/Sub gateway until Ctrl-C. For development and "
        "tests; production traffic goes to the hosted service.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    keys = serve.add_mutually_exclusive_group()
    keys.add_argument(
        "--secret", help="HS256 secret tokens must be signed with (none: verify nothing)"
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
        type=int,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        help=f"close frames above this many bytes (1009; default {DEFAULT_MAX_MESSAGE_SIZE})",
    )
    serve.add_argument(
        "--max-send-buffer",
        type=int,
        default=DEFAULT_MAX_SEND_BUFFER,
        help="close a connection with more than this many bytes queued for it (1013; "
        f"default {DEFAULT_MAX_SEND_BUFFER})",
    )
    serve.add_argument(
        "--write-timeout",
        type=float,
        default=DEFAULT_WRITE_TIMEOUT,
        help=f"abort a connection whose write takes longer (default {DEFAULT_WRITE_TIMEOUT} s)",
    )
    serve.add_argument("--certfile", help="PEM certificate (chain): serve wss://")
    serve.add_argument("--keyfile", help="PEM private key of --certfile (if not in it)")

    token = commands.add_parser(
        "token",
        parents=[common],
        help="print a token (JWT) for the local gateway",
        description="Print a JWT for the local gateway, or for your app on the service.",
    )
    signing = token.add_mutually_exclusive_group()
    signing.add_argument("--secret", help="HS* secret (the gateway's --secret)")
    signing.add_argument(
        "--private-key",
        metavar="FILE",
        help="PEM private key to sign with, for RS*/PS256/ES* apps (default algorithm RS256)",
    )
    token.add_argument(
        "--algorithm", choices=ALGORITHMS, help="signing algorithm (default HS256, or RS256)"
    )
    token.add_argument("--issuer", help="the iss claim")
    token.add_argument("--subject", default="user", help="the sub claim (default: user)")
    token.add_argument(
        "--permission",
        action="append",
        default=None,
        metavar="P",
        help=f"a permission string, repeatable (default: {DEFAULT_PERMISSION})",
    )
    token.add_argument(
        "--ttl",
        type=float,
        default=None,
        help="seconds until it expires (default 3600, or 300 with --admin)",
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


def _add_admin_parsers(
    commands: Any, token: argparse.ArgumentParser, common: argparse.ArgumentParser
) -> None:
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
        "--timeout", type=float, default=10.0, help="seconds per request (default 10)"
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
    publish.add_argument("topic", metavar="TOPIC")
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
