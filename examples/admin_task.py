"""An async job on the HTTP admin API, as a task of an async service or a scheduled job runs
it: announce something on a topic, mute a user in the chat topics, or disconnect every
client (after rotating the app's authKey, say, so that all come back with new tokens).

    export REALTIME_PUBSUB_APP_ID=demo
    export REALTIME_PUBSUB_ADMIN_KEY=...    # the app's adminKey secret
    export REALTIME_PUBSUB_API_URL=http://127.0.0.1:8765   # default: the public cluster
    python examples/admin_task.py announce "Maintenance at 22:00"
    python examples/admin_task.py mute alice
    python examples/admin_task.py disconnect-all --backend trio
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio

import realtime_pubsub
from realtime_pubsub import tokens
from realtime_pubsub.admin import DEFAULT_BASE_URL, AsyncAdminClient

ROLES = ["Publisher", "SubscribersAdmin", "ConnectionsAdmin"]


async def announce(admin: AsyncAdminClient, text: str) -> str:
    await admin.publish("announcements", {"text": text})
    return "announced"


async def mute(admin: AsyncAdminClient, subject: str) -> str:
    # Their connections stop receiving the chat topics; their clients are not told, and
    # subscribe again when they reconnect: stop granting the topics in their tokens too.
    await admin.unsubscribe(subject, ["chat/*"])
    return f"muted {subject}"


async def disconnect_all(admin: AsyncAdminClient) -> str:
    await admin.terminate_connections()
    return "disconnected every client"


async def run(options: argparse.Namespace) -> int:
    admin_key = os.environ["REALTIME_PUBSUB_ADMIN_KEY"]

    def token() -> str:
        # Minted for each request: short-lived, as the service's own demos do.
        return tokens.admin_token(
            admin_key,
            subject="admin-task",
            roles=ROLES,
            allowed_topics=["announcements"],
            ttl=30,
        )

    async with AsyncAdminClient(
        os.environ["REALTIME_PUBSUB_APP_ID"],
        token,
        base_url=os.environ.get("REALTIME_PUBSUB_API_URL", DEFAULT_BASE_URL),
    ) as admin:
        try:
            if options.job == "announce":
                done = await announce(admin, options.argument)
            elif options.job == "mute":
                done = await mute(admin, options.argument)
            else:
                done = await disconnect_all(admin)
        except realtime_pubsub.RealtimePubSubError as exc:
            print(f"failed: {exc}", file=sys.stderr)
            return 1
    print(done)
    return 0


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("job", choices=("announce", "mute", "disconnect-all"))
    args.add_argument("argument", nargs="?", help="the text to announce, the user to mute")
    args.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    options = args.parse_args()
    if options.job != "disconnect-all" and not options.argument:
        args.error(f"{options.job} needs an argument")
    sys.exit(anyio.run(run, options, backend=options.backend))


if __name__ == "__main__":
    main()
