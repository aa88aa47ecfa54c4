# The outbox relay's publish of one window: every wait bounded, a stalled window never hangs the relay.
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

import nats.js.errors
import pytest
from nats.js import api

from kumkm_shared.messaging.outbox import OutboxRelay

if TYPE_CHECKING:
    import asyncpg
    from nats.js import JetStreamContext

pytestmark = pytest.mark.unit


class SilentStream:
    """publish_async futures nobody answers (a stream leader lost); the window holds ``window`` of them."""

    def __init__(self, window: int, answered: int = 0) -> None:
        self.window = window
        self.answered = answered
        self.futures: list[asyncio.Future[api.PubAck]] = []
        self.stall_waits: list[float | None] = []

    async def publish_async(self, *_: object, **kwargs: Any) -> asyncio.Future[api.PubAck]:
        self.stall_waits.append(kwargs.get("wait_stall"))
        if sum(1 for f in self.futures if not f.done()) >= self.window:
            await asyncio.sleep(kwargs.get("wait_stall") or 3600)
            raise nats.js.errors.TooManyStalledMsgsError
        future: asyncio.Future[api.PubAck] = asyncio.get_running_loop().create_future()
        if len(self.futures) < self.answered:
            future.set_result(api.PubAck(stream="S", seq=len(self.futures) + 1))
        self.futures.append(future)
        return future


def relay(timeout: float) -> OutboxRelay:
    return OutboxRelay(cast("asyncpg.Pool", None), lambda: cast("Any", None), "toy", publish_timeout=timeout)


def rows(count: int) -> list[Any]:
    return [{"subject": "toy.x", "payload": b"{}", "headers": {"Nats-Msg-Id": str(n)}} for n in range(count)]


async def test_unanswered_publishes_time_out_and_free_their_window() -> None:
    stream = SilentStream(window=10, answered=2)
    acks = await asyncio.wait_for(relay(0.05)._publish_all(cast("JetStreamContext", stream), rows(5)), 5)
    assert [a.seq for a in acks[:2] if isinstance(a, api.PubAck)] == [1, 2]
    assert all(isinstance(a, TimeoutError) for a in acks[2:])
    assert all(f.done() for f in stream.futures)  # cancelled: their window slots are free again


async def test_a_full_window_of_unanswered_publishes_fails_the_rest_instead_of_hanging() -> None:
    stream = SilentStream(window=3)
    acks = await asyncio.wait_for(relay(0.05)._publish_all(cast("JetStreamContext", stream), rows(6)), 5)
    assert len(acks) == 6
    assert all(isinstance(a, TimeoutError) for a in acks[:3])
    assert all(isinstance(a, nats.js.errors.TooManyStalledMsgsError) for a in acks[3:])
    assert set(stream.stall_waits) == {0.05}
