"""Every async test runs on trio and on asyncio; the gateway fixture comes from our own pytest
plugin (realtime_pubsub.testing, registered through its entry point)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
