"""The ``realtime-pubsub`` command: run the local gateway and mint tokens for it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio

from . import gateway as gateway_module
from ._version import __version__
from .gateway._auth import mint_token

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-pubsub",
        description="Realtime Pub/Sub from the command line: a local gateway and its tokens.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="log what happens (to stderr)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "gateway",
        help="run the local gateway (development and tests) until Ctrl-C",
        description="Run a local Realtime Pub/Sub gateway until Ctrl-C. For development and "
        "tests; production traffic goes to the hosted service.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    serve.add_argument(
        "--secret", help="HS256 secret tokens must be signed with (none: verify nothing)"
    )
    serve.add_argument("--app-id", help="serve only this app id (default: any)")
    serve.add_argument("--no-acks", action="store_true", help="never acknowledge messages")
    serve.add_argument(
        "--max-message-size", type=int, default=65536, help="close frames above this (1009)"
    )
    serve.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help="event loop to run on"
    )

    token = commands.add_parser(
        "token", help="print a token (JWT) for the local gateway", description="Print a JWT."
    )
    token.add_argument("--secret", help="HS256 secret (the gateway's --secret)")
    token.add_argument("--subject", default="user", help="the sub claim (default: user)")
    token.add_argument(
        "--permission",
        action="append",
        default=None,
        metavar="P",
        help="a permission string, repeatable (default: realtime:publisher:write:topic:*)",
    )
    token.add_argument(
        "--ttl", type=float, default=3600.0, help="seconds until it expires (default 3600)"
    )
    return parser


async def _run_gateway(args: argparse.Namespace) -> None:
    async with gateway_module.serve(
        args.host,
        args.port,
        secret=args.secret,
        app_id=args.app_id,
        acks=not args.no_acks,
        max_message_size=args.max_message_size,
    ) as gateway:
        app = args.app_id or "<app-id>"
        template = gateway.url("<token>", app_id=app).replace("%3Ctoken%3E", "<token>")
        template = template.replace("%3Capp-id%3E", "<app-id>")
        print(f"realtime-pubsub gateway listening on {gateway.host}:{gateway.port}", flush=True)
        print(f"connect to: {template}", flush=True)
        print(
            "get a token with: realtime-pubsub token"
            + (" --secret <secret>" if args.secret else ""),
            flush=True,
        )
        print("press Ctrl-C to stop", flush=True)
        await anyio.sleep_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 failure, 2 bad usage)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "token":
            permissions = args.permission or ["realtime:publisher:write:topic:*"]
            print(
                mint_token(
                    secret=args.secret,
                    subject=args.subject,
                    permissions=permissions,
                    ttl=args.ttl,
                )
            )
            return 0
        if args.command == "gateway":
            anyio.run(_run_gateway, args, backend=args.backend)
            return 0
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0
    except OSError as exc:
        if args.debug:
            raise
        print(f"realtime-pubsub: error: {exc}", file=sys.stderr)
        return 1
    return 2
