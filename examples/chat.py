"""A terminal chat room: every line you type is published to the room; everything said in the
room is printed. Run two of them against ``realtime-pubsub gateway``::

    TOKEN=$(realtime-pubsub token)
    export REALTIME_PUBSUB_URL="ws://127.0.0.1:8765/apps/demo?access_token=$TOKEN"
    python examples/chat.py --name alice
    python examples/chat.py --name bob

End with Ctrl-D (end of input) or Ctrl-C.
"""

from __future__ import annotations

import sys

import anyio
from _common import parser, run

import realtime_pubsub


async def read_line() -> str:
    """The next line typed ("" at the end of input). Ctrl-C does not wait for one: the
    thread stuck reading is left behind."""
    return await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


async def chat(url: str, name: str, room: str) -> None:
    async with realtime_pubsub.connect(url) as client:
        await client.subscribe(room)

        async def show() -> None:
            async with client.listen(f"{room}.chat-message") as messages:
                async for message in messages:
                    said = message.payload
                    if said.get("name") != name:
                        print(f"{said.get('name')}: {said.get('text')}", flush=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(show)
            print(f"joined {room} as {name}", flush=True)
            while line := await read_line():
                text = line.rstrip("\n")
                if text:
                    receipt = await client.publish(
                        room, {"name": name, "text": text}, message_type="chat-message"
                    )
                    await receipt.wait_for_ack(timeout=5)
            await anyio.sleep(0.5)  # let the last messages of the others arrive
            tg.cancel_scope.cancel()


def main() -> None:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--name", required=True)
    args.add_argument("--room", default="lobby")
    options = args.parse_args()
    run(chat, options.url, options.name, options.room, backend=options.backend)


if __name__ == "__main__":
    main()
