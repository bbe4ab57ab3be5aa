"""A backend worker in plain Python: answers the ``quote`` requests sent with
``client.send(...)`` with an ordinary blocking function, as a worker that queries a database
would. Its token needs ``realtime:subscriber:read:topic:secure/inbound``::

    TOKEN=$(realtime-pubsub token --subject worker \\
        --permission 'realtime:subscriber:read:topic:secure/inbound' \\
        --permission 'realtime:publisher:write:topic:*')
    python examples/sync_worker.py --url "ws://127.0.0.1:8765/apps/demo?access_token=$TOKEN"

``examples/flask_app.py`` asks it for quotes. Stop it with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from _common import parser

import realtime_pubsub.blocking
from realtime_pubsub.blocking import BlockingClient, BlockingMessage

PRICES = {"ACME": 12.5, "GLOBEX": 40.25, "INITECH": 3.0}


def lookup(symbol: str) -> float | None:
    time.sleep(0.05)  # stands for a database query: blocking here holds up nothing else
    return PRICES.get(symbol)


def answer_quote(request: BlockingMessage, reply: Any) -> None:
    """``handler(message, reply)``: runs on the worker's handler thread, one request at a
    time, in order; ``reply`` is a plain function."""
    symbol = request.payload.get("symbol") if isinstance(request.payload, dict) else None
    price = lookup(symbol) if isinstance(symbol, str) else None
    if price is None:
        reply(f"no price for {symbol!r}", status="error")
    else:
        reply({"symbol": symbol, "price": price})


def serve(client: BlockingClient) -> None:
    """Start answering on ``client``."""
    client.subscribe("secure/inbound")
    # One handler per request type; each has a thread of its own, so a slow lookup of one
    # type never delays another type.
    client.on("secure/inbound.quote", answer_quote)


def main() -> None:
    args = parser(__doc__.splitlines()[0])
    args.set_defaults(backend="asyncio")
    options = args.parse_args()
    with realtime_pubsub.blocking.connect(options.url, backend=options.backend) as client:
        serve(client)
        print(f"worker ready as {client.connection.id}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()  # the handlers do the work, until Ctrl-C


if __name__ == "__main__":
    main()
