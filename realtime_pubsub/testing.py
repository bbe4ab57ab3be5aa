"""Test helpers for applications built on ``realtime_pubsub``: a pytest plugin (registered
automatically through the ``pytest11`` entry point) whose fixtures start a local gateway on
a free port for one test.

.. code-block:: python

    import pytest

    @pytest.mark.anyio
    async def test_my_service(realtime_pubsub_gateway):
        url = realtime_pubsub_gateway.url(
            realtime_pubsub_gateway.mint_token(subject="svc", permissions=[...])
        )
        ...

The fixtures are async, so they need anyio's pytest plugin (installed with anyio) and an
``anyio_backend`` fixture; the test picks the backend as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .gateway import Gateway, serve
from .tokens import can_publish, can_read

__all__ = ["ALL_PERMISSIONS", "realtime_pubsub_gateway", "realtime_pubsub_url"]

#: Publish anywhere and read every secure topic.
ALL_PERMISSIONS = (can_publish("*"), can_read("*"))


@pytest.fixture
async def realtime_pubsub_gateway() -> AsyncIterator[Gateway]:
    """A local gateway on 127.0.0.1 and a free port, acks on, no secret, for one test."""
    async with serve("127.0.0.1", 0) as gateway:
        yield gateway


@pytest.fixture
def realtime_pubsub_url(realtime_pubsub_gateway: Gateway) -> str:
    """A URL for :func:`realtime_pubsub_gateway` whose token has :data:`ALL_PERMISSIONS`."""
    return realtime_pubsub_gateway.url(
        realtime_pubsub_gateway.mint_token(subject="test", permissions=ALL_PERMISSIONS)
    )
