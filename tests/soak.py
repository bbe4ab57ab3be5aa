"""Soak: publish with acks for a while, injecting a fault every few seconds (drops, gateway
restarts, half-open connections), and count what arrived.

    python -m tests.soak [--seconds 60] [--backend asyncio|trio]   (or: nox -s soak)

The claim checked: every message the gateway acknowledged while the subscriber was
connected and subscribed is received exactly once. "Connected and subscribed" is the time
from the subscriber's ``session.started`` (plus the time the gateway takes to process the
restored subscription) to the moment a fault hits the subscriber's connection; the
publisher's publish and the ack must both fall inside one such window. Messages outside
the windows may be lost (the service does not replay them) and are only counted.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any

import anyio
import attrs

import realtime_pubsub
from realtime_pubsub.gateway import Gateway, serve
from realtime_pubsub.testing import ALL_PERMISSIONS

#: After a subscriber's session starts, its restored subscription reaches the gateway
#: within this margin (frames of one connection are processed in order, so the next
#: publish is safe once the gateway has seen the subscribe; we measure it).
MARGIN = 0.05
FAULTS = ("drop-subscriber", "drop-publisher", "restart", "half-open-subscriber")


@attrs.define
class Counts:
    published: int = 0
    acked: int = 0
    received: int = 0
    eligible: int = 0
    lost: int = 0
    duplicated: int = 0
    faults: dict[str, int] = attrs.Factory(dict)

    def line(self) -> str:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items()))
        return (
            f"published={self.published} acked={self.acked} received={self.received} "
            f"eligible={self.eligible} lost={self.lost} duplicated={self.duplicated} "
            f"faults: {faults}"
        )


async def soak(seconds: float, *, seed: int | None = None) -> Counts:
    rng = random.Random(seed)
    counts = Counts()
    received: dict[int, int] = {}
    acked_at: dict[int, tuple[float, float]] = {}  # seq -> (published, acked)
    windows: list[list[float]] = []  # [start, end] of the subscriber's live windows
    policy = realtime_pubsub.ReconnectPolicy(initial_delay=0.05, max_delay=0.5)
    deadline = time.monotonic() + seconds

    async with serve() as gateway:
        url = gateway.url(gateway.mint_token(permissions=ALL_PERMISSIONS))
        options: dict[str, Any] = {
            "reconnect": policy,
            "heartbeat_interval": 0.5,
            "heartbeat_timeout": 0.5,
        }
        async with (
            realtime_pubsub.connect(url, **options) as subscriber,
            realtime_pubsub.connect(url, **options) as publisher,
        ):
            await subscriber.subscribe("soak")
            await gateway.wait_for_subscribers("soak")
            windows.append([time.monotonic(), float("inf")])

            def on_session(info: realtime_pubsub.ConnectionInfo) -> None:
                windows.append([time.monotonic() + MARGIN, float("inf")])

            def end_window() -> None:
                if windows and windows[-1][1] == float("inf"):
                    windows[-1][1] = time.monotonic()

            subscriber.on("session.started", on_session)

            async def receive() -> None:
                async with subscriber.listen("soak.*", max_buffer=100_000) as messages:
                    async for message in messages:
                        seq = message.payload
                        received[seq] = received.get(seq, 0) + 1

            async def publish_one(seq: int) -> None:
                published = time.monotonic()
                try:
                    receipt = await publisher.publish("soak", seq)
                except realtime_pubsub.ConnectionClosed:
                    return  # broke during the write: it may or may not have gone out
                counts.published += 1
                try:
                    await receipt.wait_for_ack(timeout=5)
                except (realtime_pubsub.ConnectionClosed, realtime_pubsub.AckTimeout):
                    return
                counts.acked += 1
                acked_at[seq] = (published, time.monotonic())

            async def publish() -> None:
                seq = 0
                async with anyio.create_task_group() as tg:
                    while time.monotonic() < deadline:
                        tg.start_soon(publish_one, seq)
                        seq += 1
                        await anyio.sleep(0.001)

            async def inject(gw: Gateway) -> None:
                while time.monotonic() < deadline - 3:
                    await anyio.sleep(rng.uniform(2.0, 4.0))
                    fault = rng.choice(FAULTS)
                    counts.faults[fault] = counts.faults.get(fault, 0) + 1
                    try:
                        if fault == "drop-subscriber":
                            end_window()
                            gw.drop_connection(subscriber.connection.id)
                        elif fault == "drop-publisher":
                            gw.drop_connection(publisher.connection.id)
                        elif fault == "half-open-subscriber":
                            end_window()
                            gw.pause_connection(subscriber.connection.id)
                        else:
                            end_window()
                            await gw.restart(downtime=rng.uniform(0.1, 0.5))
                    except KeyError:
                        pass  # that connection was between sessions already

            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                tg.start_soon(inject, gateway)
                await publish()
                await anyio.sleep(1.0)  # let the last deliveries land
                tg.cancel_scope.cancel()

    counts.received = sum(received.values())
    counts.duplicated = sum(n - 1 for n in received.values() if n > 1)
    for seq, (published, acked) in acked_at.items():
        if any(start <= published and acked <= end for start, end in windows):
            counts.eligible += 1
            if seq not in received:
                counts.lost += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    counts = anyio.run(lambda: soak(args.seconds, seed=args.seed), backend=args.backend)
    print(f"soak ({args.backend}, {args.seconds:.0f} s): {counts.line()}")
    ok = counts.lost == 0 and counts.duplicated == 0 and counts.eligible > 0
    print("OK" if ok else "FAILED: acknowledged messages were lost or duplicated")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
