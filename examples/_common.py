"""Shared command-line handling for the examples: the URL and the event loop."""

from __future__ import annotations

import argparse
import os


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--url`` (default ``$REALTIME_PUBSUB_URL``) and
    ``--backend``."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--url",
        default=os.environ.get("REALTIME_PUBSUB_URL"),
        help="wss://host/apps/<app>?access_token=<JWT> (default: $REALTIME_PUBSUB_URL)",
    )
    result.add_argument("--backend", choices=("asyncio", "trio"), default="trio")
    return result
