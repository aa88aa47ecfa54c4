"""What a durable's ``num_redelivered`` means once a message has used up ``max_deliver`` (our nats-server).

The fault suite's heal wait once counted ``num_redelivered`` as work in flight, and a run never healed: the
durable ``notifications-loans`` kept ``num_redelivered=2`` with nothing pending and nothing awaiting an
ack. This pins down the server's behaviour the wait relies on now: a message that reached ``max_deliver``
without an ack (a process that died holding its last delivery; the max-deliveries advisory dead-letters it)
stays counted in ``num_redelivered`` for good, while ``num_pending`` and ``num_ack_pending`` are 0. So
``num_redelivered`` counts messages that were given up, not messages in flight; the wait looks only at the
other two, and the DLQ holds one ``max_deliveries`` entry per such message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from kumkm_shared.testing import wait_for

if TYPE_CHECKING:
    from nats.aio.msg import Msg

pytestmark = pytest.mark.integration


async def test_a_message_past_max_deliver_stays_in_num_redelivered_with_nothing_in_flight(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="REDELIVERED", subjects=["redelivered.>"]))
        await js.add_consumer(
            "REDELIVERED",
            ConsumerConfig(
                durable_name="given-up", ack_policy=AckPolicy.EXPLICIT, ack_wait=0.5, max_deliver=2
            ),
        )
        advisories: list[bytes] = []

        async def on_advisory(msg: Msg) -> None:
            advisories.append(msg.data)

        sub_adv = await nc.subscribe(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.REDELIVERED.given-up",
            cb=on_advisory,
        )
        await js.publish("redelivered.one", b"never acknowledged")
        await js.publish("redelivered.two", b"acknowledged at its second delivery")
        sub = await js.pull_subscribe_bind("given-up", "REDELIVERED")
        for delivery in (1, 2):
            msgs = await sub.fetch(2, timeout=5)
            assert {m.metadata.num_delivered for m in msgs} == {delivery}
            if delivery == 2:
                await next(m for m in msgs if m.subject == "redelivered.two").ack_sync()
            await asyncio.sleep(0.8)  # past ack_wait: the unacknowledged ones come back
        # The server gives the message up when it would deliver it a third time: to a waiting pull.
        with pytest.raises(nats.errors.TimeoutError):
            await sub.fetch(1, timeout=1.5)  # and it is never delivered again
        await wait_for(lambda: bool(advisories), timeout=10, message="no max-deliveries advisory")
        info = await js.consumer_info("REDELIVERED", "given-up")
        assert (info.num_pending, info.num_ack_pending) == (0, 0), "nothing is in flight"
        assert info.num_redelivered == 1, "the given-up message stays counted"
        await sub_adv.unsubscribe()
    finally:
        await nc.close()
