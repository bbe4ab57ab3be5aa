"""Call the backend of ``rpc_backend.py`` and print its answer::

python examples/rpc_caller.py add 1 2 3
python examples/rpc_caller.py time
"""

from __future__ import annotations

import sys

import anyio
from _common import parser

import realtime_pubsub


async def call(url: str, request: str, numbers: list[float]) -> int:
    async with realtime_pubsub.connect(url) as client:
        receipt = await client.send(numbers, message_type=request)
        try:
            reply = await receipt.wait_for_reply(timeout=5)
        except realtime_pubsub.ReplyTimeout:
            print("no backend answered within 5 s", file=sys.stderr)
            return 1
        print(f"{reply.status}: {reply.data}")
        return 0 if reply.status == "ok" else 1


def main() -> None:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("request", help="add, time, ...")
    args.add_argument("numbers", nargs="*", type=float)
    options = args.parse_args()
    sys.exit(
        anyio.run(call, options.url, options.request, options.numbers, backend=options.backend)
    )


if __name__ == "__main__":
    main()
