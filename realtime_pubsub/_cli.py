"""The ``realtime-pubsub`` command: listen, publish and send from a shell, call the HTTP
admin API, run the local gateway, mint tokens for it, and a demo of the whole protocol in
one process.

Exit status: 0 success, 1 failure (timeout, refused, forbidden, unreachable), 2 bad usage.
Errors are one readable line (a traceback only with ``--debug``); Ctrl-C (or SIGTERM) ends
any command cleanly, with "stopped" on stderr and status 0.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import logging
import os
import re
import signal
import socket
import ssl
import sys
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import orjson
from jwt.warnings import InsecureKeyLengthWarning

from . import gateway as gateway_module
from ._backoff import ReconnectPolicy
from ._cli_options import (
    ADMIN_TOKEN_VARIABLE,
    API_URL_VARIABLE,
    APP_ID_VARIABLE,
    DEFAULT_API_URL,
    DEFAULT_PERMISSION,
    PROG,
    URL_VARIABLE,
    build_parser,
)
from ._cli_report import (
    CommandFailed,
    StatusLines,
    UsageError,
    advice_for,
    describe,
    error,
    interrupted,
    leaves,
    stopped,
    warning,
)
from ._client import Client, connect
from ._errors import (
    AckTimeout,
    ConnectError,
    ConnectionClosed,
    Forbidden,
    ReplyTimeout,
)
from ._messages import IncomingMessage
from ._pending import Receipt
from ._protocol import REFUSAL_CLOSE_CODES
from ._transport import find_error, os_reason
from ._urls import mask_url, validate_url
from .gateway import load_app_config
from .gateway._auth import DEVELOPMENT_SECRET
from .tokens import HMAC_ALGORITHMS, admin_token, client_token

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ["main"]


def _url(args: argparse.Namespace) -> str:
    """The URL to connect to, from ``--url`` or the environment; bad usage if there is
    none or it cannot be one (saying what is wrong with it, and where it came from)."""
    url: str | None = args.url or os.environ.get(URL_VARIABLE)
    if not url:
        raise UsageError(f"no URL: pass --url or set {URL_VARIABLE}")
    try:
        return validate_url(url)
    except ValueError as exc:
        source = "--url" if args.url else URL_VARIABLE
        raise UsageError(f"{source}: {exc}") from None


@asynccontextmanager
async def _client(args: argparse.Namespace, policy: ReconnectPolicy) -> AsyncIterator[Client]:
    """A client of ``args.url`` (which :func:`_run` resolved) for the duration of the
    block. A local URL that cannot be reached fails with advice on starting the gateway."""
    url: str = args.url
    with advice_for(url):
        async with connect(url, reconnect=policy, connect_timeout=args.connect_timeout) as client:
            yield client


def _payload(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _json(value: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


def _message_line(message: IncomingMessage) -> str:
    sender = ""
    if message.client is not None:
        who = message.client.subject or "?"
        sender = f" from {who} ({message.client.connection_id})"
    zipped = " [compressed]" if message.compression else ""
    return f"{message.event}{sender}{zipped}: {_json(message.payload)}"


async def _listen(args: argparse.Namespace) -> int:
    async with _client(args, ReconnectPolicy(max_attempts=args.attempts or None)) as client:
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
            _status(args, f"listening on {mask_url(args.url)} (Ctrl-C to stop)")
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
                    line = _message_line(message)
                try:
                    print(line, flush=True)
                except BrokenPipeError:  # the reader went away (listen ... | head -1)
                    _stop_writing_stdout()
                    tg.cancel_scope.cancel()
                    break
    return 0


def _stop_writing_stdout() -> None:
    """Point stdout at /dev/null, so that nothing more is written to a pipe nobody reads,
    not even the interpreter's last flush (which would report the broken pipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


async def _publish_or_send(args: argparse.Namespace) -> int:
    """Publish or send, and say what happened in one line: acknowledged (or replied to),
    refused by the gateway (status 1), or sent with no ack in time, which is what an app
    with acks off gives (status 0, unless ``--ack`` asks for the ack)."""
    target = f"to {args.topic!r}" if args.command == "publish" else "to the backend services"
    receipt: Receipt | None = None
    # One message to deliver: try again soon, rather than in the long run.
    policy = ReconnectPolicy(initial_delay=0.2, max_delay=2.0, max_attempts=args.attempts or None)
    try:
        async with _client(args, policy) as client:
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
            sent = f"sent {target} (id {receipt.id})"
            if args.reply_timeout is not None:  # a reply is an ack, and more
                try:
                    reply = await receipt.wait_for_reply(timeout=args.reply_timeout)
                except ReplyTimeout:
                    raise CommandFailed(
                        f"{sent}, but no reply within {args.reply_timeout:g} s"
                    ) from None
                _status(args, f"{sent}: replied")
                print(_json({"status": reply.status, "data": reply.data}), flush=True)
                return 0
            try:
                await receipt.wait_for_ack(timeout=args.ack_timeout)
            except AckTimeout:
                late = f"no ack within {args.ack_timeout:g} s (the app may have acks off)"
                if args.ack:
                    raise CommandFailed(f"{sent}, but {late}") from None
                _status(args, f"{sent}; {late}")
            else:
                done = "published" if args.command == "publish" else "sent"
                _status(args, f"{done} {target} (id {receipt.id}): acknowledged")
    except (ConnectionClosed, Forbidden) as exc:
        if receipt is None:
            raise
        raise CommandFailed(_undelivered(args.command, target, exc.code, exc.reason)) from exc
    return 0


def _undelivered(command: str, target: str, code: int, reason: str) -> str:
    """What to say when the connection closed under a message waiting for its ack."""
    closed = f"{code}: {reason}" if reason else str(code)
    if code in REFUSAL_CLOSE_CODES:
        return f"{command} {target} refused: the gateway closed the connection ({closed})"
    return (
        f"{command} {target} failed: the connection closed ({closed}) before the gateway "
        "acknowledged it; it may not have been delivered"
    )


def _status(args: argparse.Namespace, text: str) -> None:
    """A line on stderr saying how things go, unless ``--quiet``."""
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.certfile is None:
        if args.keyfile is not None:
            raise UsageError("--keyfile needs --certfile")
        return None
    for option, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path is not None and not os.path.isfile(path):
            raise CommandFailed(f"{option} {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        files = args.certfile + (f" and --keyfile {args.keyfile}" if args.keyfile else "")
        reason = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(exc))  # OpenSSL's source line
        raise CommandFailed(
            f"--certfile {files}: not a PEM certificate with its private key ({reason})"
        ) from exc
    return context


def _read_apps(args: argparse.Namespace) -> dict[str, gateway_module.AppConfig] | None:
    if args.app_config is None:
        return None
    try:
        return load_app_config(args.app_config)
    except OSError as exc:
        raise CommandFailed(f"--app-config {args.app_config}: {os_reason(exc)}") from exc


#: What to try when the gateway cannot listen, by the operating system's error number.
_LISTEN_ADVICE = {
    errno.EADDRINUSE: "is a gateway running there already? Stop it, or pick another --port; "
    "--port 0 takes any free one",
    errno.EADDRNOTAVAIL: "--host must be an address of this machine: 127.0.0.1 for this "
    "machine alone, 0.0.0.0 for every network",
    errno.EACCES: "ports below 1024 need privileges: pick another --port",
}


def _cannot_listen(failure: BaseException, args: argparse.Namespace) -> CommandFailed | None:
    """The one-line failure for a gateway that cannot listen where ``args`` say (the
    gateway raises it from inside its task group), or None if ``failure`` is another."""
    found: OSError | None = find_error(failure, OSError)
    if found is None:
        return None
    if isinstance(found, socket.gaierror):
        advice = "--host must be an address of this machine, or its name"
    else:
        advice = _LISTEN_ADVICE.get(found.errno or 0, "")
    return CommandFailed(
        f"cannot listen on {args.host}:{args.port}: {os_reason(found)}"
        + (f" ({advice})" if advice else "")
    )


async def _run_gateway(args: argparse.Namespace) -> int:
    if args.secret is not None:
        _warn_if_short(args.secret, "HS256")
    apps = _read_apps(args)
    if apps is not None and args.app_id is not None and args.app_id not in apps:
        raise UsageError(
            f"--app-id {args.app_id} is not an app of --app-config {args.app_config} "
            f"({', '.join(apps)})"
        )
    ssl_context = _ssl_context(args)
    async with AsyncExitStack() as stack:
        try:
            gateway = await stack.enter_async_context(
                gateway_module.serve(
                    args.host,
                    args.port,
                    secret=args.secret,
                    apps=apps,
                    app_id=args.app_id,
                    acks=not args.no_acks,
                    max_message_size=args.max_message_size,
                    max_send_buffer=args.max_send_buffer,
                    write_timeout=args.write_timeout,
                    ssl_context=ssl_context,
                )
            )
        except (OSError, BaseExceptionGroup) as exc:
            failure = _cannot_listen(exc, args)
            if failure is None:
                raise
            raise failure from exc
        app = args.app_id or "<app-id>"
        template = gateway.url("TOKEN", app_id=app).replace("TOKEN", "<token>")
        template = template.replace("%3Capp-id%3E", "<app-id>")
        print(f"{PROG} gateway listening on {gateway.host}:{gateway.port}", flush=True)
        print(f"connect to: {template}", flush=True)
        if apps is not None:
            print(f"serving apps: {', '.join(apps)}", flush=True)
            hint = " --secret <authKey secret> | --private-key <file> --algorithm <alg>"
        else:
            hint = " --secret <secret>" if args.secret else ""
        print(f"get a token with: {PROG} token{hint}", flush=True)
        print(f"admin API (HTTP): {gateway.http_url}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        await anyio.sleep_forever()
    return 0


def _token(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        # PyJWT's warning is a paragraph and a source line: _signing_key says it in one.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        if args.admin or args.role or args.allowed_topic:
            return _admin_token(args)
        return _client_token(args)


def _client_token(args: argparse.Namespace) -> int:
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
    algorithm = args.algorithm or ("RS256" if args.private_key else "HS256")
    symmetric = algorithm in HMAC_ALGORITHMS
    if args.private_key is not None:
        if symmetric:
            raise UsageError(f"--algorithm {algorithm} signs with --secret, not --private-key")
        try:
            with open(args.private_key, "rb") as file:
                return file.read(), algorithm
        except OSError as exc:
            raise CommandFailed(f"--private-key {args.private_key}: {os_reason(exc)}") from exc
    if not symmetric:
        instead = ", not --secret" if args.secret is not None else ""
        raise UsageError(f"--algorithm {algorithm} signs with --private-key FILE{instead}")
    if args.secret is None:
        return DEVELOPMENT_SECRET, algorithm
    _warn_if_short(args.secret, algorithm)
    return args.secret, algorithm


#: The shortest secret each HMAC algorithm should have: its hash's size (RFC 7518, 3.2).
_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _warn_if_short(secret: str, algorithm: str) -> None:
    """One line of warning for a ``--secret`` shorter than ``algorithm`` wants."""
    wanted = _SECRET_BYTES.get(algorithm, 0)
    size = len(secret.encode())
    if size < wanted:
        warning(
            f"--secret is {size} bytes long; {algorithm} wants at least {wanted}, or tokens "
            "signed with it can be forged by guessing it"
        )


async def _demo(args: argparse.Namespace) -> int:
    from ._demo import DemoFailed, run_demo

    try:
        await run_demo(args.backend)
    except DemoFailed as exc:
        raise CommandFailed(f"the demo failed: {exc}") from exc
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
                    stopped()
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
        raise UsageError(f"no {name.replace('_', ' ')}: pass {option} or set {variable}")
    return value


async def _admin(args: argparse.Namespace) -> int:
    """``realtime-pubsub admin ...``: one request, one line."""
    if args.operation == "terminate" and (args.all == (args.connection_id is not None)):
        raise UsageError("terminate takes a CONNECTION_ID or --all (one of the two)")
    app_id = _admin_setting(args, "app_id", APP_ID_VARIABLE)
    token = _admin_setting(args, "token", ADMIN_TOKEN_VARIABLE)
    api_url = _api_url(args)
    from .admin import AsyncAdminClient  # httpx, for this command alone

    # The local gateway serves the admin API too.
    with advice_for(api_url, ConnectError):
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


def _api_url(args: argparse.Namespace) -> str:
    """The admin API's base URL: bad usage unless it is an http:// or https:// one."""
    url: str = args.api_url or os.environ.get(API_URL_VARIABLE) or DEFAULT_API_URL
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        source = "--api-url" if args.api_url else API_URL_VARIABLE
        raise UsageError(
            f"{source}: the admin API's URL must start with http:// or https://: {mask_url(url)!r}"
        )
    return url


_ASYNC_COMMANDS = {
    "listen": _listen,
    "publish": _publish_or_send,
    "send": _publish_or_send,
    "gateway": _run_gateway,
    "demo": _demo,
    "admin": _admin,
}


#: The commands that connect to a gateway as a client.
_CLIENT_COMMANDS = ("listen", "publish", "send")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _check_backend(backend: str) -> None:
    """Fail in one line, saying what to install, if ``backend`` is not installed."""
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        raise CommandFailed(
            "trio is not installed: pip install 'realtime-pubsub[trio]', or use --backend asyncio"
        )


def _run(args: argparse.Namespace) -> int:
    if args.command == "token":
        return _token(args)
    if args.command in _CLIENT_COMMANDS:
        args.url = _url(args)  # bad usage is reported before anything connects
    _check_backend(args.backend)
    status: int = anyio.run(
        _until_interrupted, _ASYNC_COMMANDS[args.command], args, backend=args.backend
    )
    return status


def _configure_logging(args: argparse.Namespace) -> None:
    """``--debug``: every log record, on stderr. Else failures are reported as one line at
    the end; the client's progress shows as status lines (unless ``--quiet``), and the
    gateway alone keeps its warnings (development mode)."""
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format=_LOG_FORMAT)
        return
    quiet = logging.WARNING if args.command == "gateway" else logging.CRITICAL
    logging.basicConfig(level=quiet, format=_LOG_FORMAT)
    if args.command in _CLIENT_COMMANDS and not args.quiet:
        logger = logging.getLogger("realtime_pubsub")
        logger.handlers = [StatusLines(max_attempts=args.attempts or None)]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok or stopped by Ctrl-C, 1 failure,
    2 bad usage)."""
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        return _run(args)
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as failure:
        if interrupted(failure):
            stopped()
            return 0
        found = leaves(failure)
        # Ctrl-C and the cancellations it caused are how the command stopped, not why.
        reported = [e for e in found if isinstance(e, Exception)] or found
        usage = [e for e in reported if isinstance(e, UsageError)]
        if usage:
            error(describe(usage[0]))
            return 2
        if args.debug:
            raise
        error(describe(reported[0]))
        return 1
