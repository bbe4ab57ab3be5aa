"""The ``realtime-pubsub`` command: listen, publish and send from a shell, call the HTTP
admin API, run the local gateway, mint tokens for it, and a demo of the whole protocol in
one process.

Exit status: 0 success, 1 failure (timeout, refused, forbidden, unreachable), 2 bad usage.
Errors are one readable line (a traceback only with ``--debug``); Ctrl-C ends cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import anyio
import orjson

from . import gateway as gateway_module
from ._backoff import ReconnectPolicy
from ._client import connect
from ._errors import RealtimePubSubError
from ._messages import IncomingMessage
from ._urls import mask_url
from ._version import __version__
from .gateway import load_app_config
from .gateway._auth import DEVELOPMENT_SECRET
from .gateway._config import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_WRITE_TIMEOUT,
)
from .tokens import ALGORITHMS, admin_token, can_publish, client_token

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ["main"]

URL_VARIABLE = "REALTIME_PUBSUB_URL"
DEFAULT_PERMISSION = can_publish("*")


class UsageError(Exception):
    """Bad usage found after parsing (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
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


def _url(args: argparse.Namespace) -> str:
    url: str | None = args.url or os.environ.get(URL_VARIABLE)
    if not url:
        raise UsageError(f"no URL: pass --url or set {URL_VARIABLE}")
    return url


def _payload(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _json(value: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


def _describe(message: IncomingMessage) -> str:
    sender = ""
    if message.client is not None:
        who = message.client.subject or "?"
        sender = f" from {who} ({message.client.connection_id})"
    zipped = " [compressed]" if message.compression else ""
    return f"{message.event}{sender}{zipped}: {_json(message.payload)}"


async def _listen(args: argparse.Namespace) -> int:
    async with connect(_url(args), connect_timeout=args.connect_timeout) as client:
        for topic in args.subscribe:
            await client.subscribe(topic)
        send, receive = anyio.create_memory_object_stream[IncomingMessage](1000)

        async def pump(pattern: str) -> None:
            async with client.listen(pattern) as messages:
                async for message in messages:
                    await send.send(message)

        async with anyio.create_task_group() as tg, send, receive:
            for pattern in args.patterns:
                tg.start_soon(pump, pattern)
            print(f"listening on {mask_url(_url(args))} (Ctrl-C to stop)", file=sys.stderr)
            async for message in receive:
                if args.json:
                    line = _json(
                        {
                            "topic": message.topic,
                            "messageType": message.message_type,
                            "data": message.data,
                            "compression": message.compression,
                        }
                    )
                else:
                    line = _describe(message)
                print(line, flush=True)
    return 0


async def _publish_or_send(args: argparse.Namespace) -> int:
    policy = ReconnectPolicy(initial_delay=0.2, max_delay=2.0, max_attempts=3)
    async with connect(
        _url(args), reconnect=policy, connect_timeout=args.connect_timeout
    ) as client:
        payload = _payload(args.payload)
        if args.command == "publish":
            receipt = await client.publish(
                args.topic,
                payload,
                message_type=args.message_type or "broadcast",
                compress=args.compress,
            )
        else:
            receipt = await client.send(
                payload, message_type=args.message_type, compress=args.compress
            )
        if args.ack:
            await receipt.wait_for_ack(timeout=args.ack_timeout)
            print(f"acknowledged {receipt.id}", file=sys.stderr)
        if args.reply_timeout is not None:
            reply = await receipt.wait_for_reply(timeout=args.reply_timeout)
            print(_json({"status": reply.status, "data": reply.data}), flush=True)
    return 0


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.certfile is None:
        if args.keyfile is not None:
            raise UsageError("--keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.certfile, args.keyfile)
    return context


async def _run_gateway(args: argparse.Namespace) -> int:
    apps = load_app_config(args.app_config) if args.app_config else None
    async with gateway_module.serve(
        args.host,
        args.port,
        secret=args.secret,
        apps=apps,
        app_id=args.app_id,
        acks=not args.no_acks,
        max_message_size=args.max_message_size,
        max_send_buffer=args.max_send_buffer,
        write_timeout=args.write_timeout,
        ssl_context=_ssl_context(args),
    ) as gateway:
        app = args.app_id or "<app-id>"
        template = gateway.url("TOKEN", app_id=app).replace("TOKEN", "<token>")
        template = template.replace("%3Capp-id%3E", "<app-id>")
        print(f"realtime-pubsub gateway listening on {gateway.host}:{gateway.port}", flush=True)
        print(f"connect to: {template}", flush=True)
        if apps is not None:
            print(f"serving apps: {', '.join(apps)}", flush=True)
            hint = " --secret <authKey secret> | --private-key <file> --algorithm <alg>"
        else:
            hint = " --secret <secret>" if args.secret else ""
        print(f"get a token with: realtime-pubsub token{hint}", flush=True)
        print(f"admin API (HTTP): {gateway.http_url}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        await anyio.sleep_forever()
    return 0


def _token(args: argparse.Namespace) -> int:
    if args.admin or args.role or args.allowed_topic:
        return _admin_token(args)
    permissions = args.permission or [DEFAULT_PERMISSION]
    key, algorithm = _signing_key(args)
    print(
        client_token(
            key,
            subject=args.subject,
            permissions=permissions,
            ttl=3600.0 if args.ttl is None else args.ttl,
            algorithm=algorithm,
            issuer=args.issuer,
        )
    )
    return 0


def _signing_key(args: argparse.Namespace) -> tuple[str | bytes, str]:
    """The key and algorithm ``token`` signs with: ``--secret`` (or the development
    secret) and HS256, or ``--private-key`` and RS256, unless ``--algorithm`` says."""
    if args.private_key is not None:
        with open(args.private_key, "rb") as file:
            return file.read(), args.algorithm or "RS256"
    return args.secret or DEVELOPMENT_SECRET, args.algorithm or "HS256"


async def _demo(args: argparse.Namespace) -> int:
    from ._demo import DemoFailed, run_demo

    try:
        await run_demo()
    except DemoFailed as exc:
        print(f"realtime-pubsub demo: {exc}", file=sys.stderr)
        return 1
    return 0


async def _until_interrupted(
    command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace
) -> int:
    """Run ``command``; Ctrl-C (SIGINT) or SIGTERM stops it cleanly with status 0. Catching
    the signal ourselves, rather than KeyboardInterrupt, behaves the same on every backend
    and Python version (asyncio on 3.10 turns Ctrl-C into a CancelledError)."""
    status = 0
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    print("stopped", file=sys.stderr)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        try:
            status = await command(args)
        except Exception as exc:
            failure = exc
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return status


# --------------------------------------------------------------------------- the admin API

APP_ID_VARIABLE = "REALTIME_PUBSUB_APP_ID"
ADMIN_TOKEN_VARIABLE = "REALTIME_PUBSUB_ADMIN_TOKEN"
API_URL_VARIABLE = "REALTIME_PUBSUB_API_URL"
#: The public cluster (realtime_pubsub.admin.DEFAULT_BASE_URL, without importing httpx).
_DEFAULT_API_URL = "https://genesis.r7.21no.de"


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
        help=f"the API's base URL (default: ${API_URL_VARIABLE}, else {_DEFAULT_API_URL})",
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


def _admin_token(args: argparse.Namespace) -> int:
    if not args.admin:
        raise UsageError("--role and --allowed-topic need --admin")
    if args.permission:
        raise UsageError("--permission is for client tokens, not --admin ones")
    if not args.role:
        raise UsageError("--admin needs at least one --role")
    key, algorithm = _signing_key(args)
    print(
        admin_token(
            key,
            subject=args.subject,
            roles=args.role,
            allowed_topics=args.allowed_topic or None,
            ttl=300.0 if args.ttl is None else args.ttl,
            algorithm=algorithm,
            issuer=args.issuer,
        )
    )
    return 0


def _admin_setting(args: argparse.Namespace, name: str, variable: str) -> str:
    value: str | None = getattr(args, name) or os.environ.get(variable)
    if not value:
        option = "--" + name.replace("_", "-")
        raise UsageError(f"no {option[2:].replace('-', ' ')}: pass {option} or set {variable}")
    return value


async def _admin(args: argparse.Namespace) -> int:
    """``realtime-pubsub admin ...``: one request, one line."""
    if args.operation == "terminate" and (args.all == (args.connection_id is not None)):
        raise UsageError("terminate takes a CONNECTION_ID or --all (one of the two)")
    app_id = _admin_setting(args, "app_id", APP_ID_VARIABLE)
    token = _admin_setting(args, "token", ADMIN_TOKEN_VARIABLE)
    api_url = args.api_url or os.environ.get(API_URL_VARIABLE) or _DEFAULT_API_URL
    from .admin import AsyncAdminClient  # httpx, for this command alone

    async with AsyncAdminClient(app_id, token, base_url=api_url, timeout=args.timeout) as api:
        if args.operation == "publish":
            await api.publish(args.topic, _payload(args.message), compress=args.compress)
            print(f"published to {args.topic!r}")
        elif args.operation == "unsubscribe":
            await api.unsubscribe(args.subject, args.pattern)
            print(f"unsubscribed {args.subject!r} from {', '.join(args.pattern)}")
        elif args.all:
            await api.terminate_connections()
            print(f"terminated every connection of {app_id!r}")
        else:
            await api.terminate_connection(args.connection_id)
            print(f"terminated connection {args.connection_id!r}")
    return 0


_ASYNC_COMMANDS = {
    "listen": _listen,
    "publish": _publish_or_send,
    "send": _publish_or_send,
    "gateway": _run_gateway,
    "demo": _demo,
    "admin": _admin,
}


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    detail = text[0] if text else type(error).__name__
    return f"{type(error).__name__}: {detail}" if isinstance(error, OSError) else detail


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 failure, 2 bad usage)."""
    args = _parser().parse_args(argv)
    # Without --debug, failures are reported as one line at the end; the gateway alone
    # keeps its warnings (development mode).
    quiet = logging.WARNING if args.command == "gateway" else logging.CRITICAL
    logging.basicConfig(
        level=logging.DEBUG if args.debug else quiet,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "token":
            return _token(args)
        if args.command in ("listen", "publish", "send"):
            _url(args)  # bad usage is reported before anything connects
        status: int = anyio.run(
            _until_interrupted, _ASYNC_COMMANDS[args.command], args, backend=args.backend
        )
        return status
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0
    except BaseExceptionGroup as group:
        # trio may deliver Ctrl-C wrapped by the nurseries it went through.
        interrupted, rest = group.split(KeyboardInterrupt)
        if interrupted is not None and rest is None:
            print("stopped", file=sys.stderr)
            return 0
        raise
    except UsageError as exc:
        print(f"realtime-pubsub: error: {exc}", file=sys.stderr)
        return 2
    except (RealtimePubSubError, OSError, ValueError, TypeError) as exc:
        if args.debug:
            raise
        print(f"realtime-pubsub: error: {_one_line(exc)}", file=sys.stderr)
        return 1
