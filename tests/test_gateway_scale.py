"""The gateway holds 1,000 concurrent connections and fans one message out to all of them.
(The time it takes is reported by benchmarks/gateway_fanout.py, not asserted here.)"""

from __future__ import annotations

import pytest

from benchmarks.gateway_fanout import fan_out

pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_one_message_reaches_a_thousand_connections() -> None:
    result = await fan_out(connections=1000, messages=1)
    assert result.received == 1000
