"""A process that dies after sending but before recording must not send the email a second time."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_shared.contracts import Channel
from kumkm_shared.testing import wait_for
from tests.integration.notifications.conftest import publish
from tests.integration.notifications.test_delivery import SECRET, feed, put_contact, settled
from tests.support.notifications import KRANGGAN_ID, sample

if TYPE_CHECKING:
    import nats

    from kumkm_notifications.channels import OutgoingMessage, Sender
    from kumkm_notifications.domain.delivery import Outcome
    from tests.integration.notifications.sinks import SmtpSink, WebhookSink

pytestmark = pytest.mark.acceptance

APPROVED = "kumkm.loans.restructuring.approved.v1"


class DiesAfterSending:
    """Sends for real, then never returns: the process is killed before it can record the outcome."""

    def __init__(self, real: Sender) -> None:
        self.real = real
        self.sent = asyncio.Event()

    async def send(self, message: OutgoingMessage) -> Outcome:
        await self.real.send(message)
        self.sent.set()
        await asyncio.Event().wait()  # frozen until the process is stopped
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.real.close()


async def _crash_during_send(
    start: Any, nc: nats.aio.client.Client, channel: Channel, **contact: Any
) -> None:
    async with start() as (runtime, http):
        dispatcher = runtime.definition.state["dispatcher"]
        await wait_for(lambda: bool(dispatcher.senders), timeout=5)
        dying = DiesAfterSending(dispatcher.senders[channel])
        dispatcher.senders[channel] = dying
        await put_contact(http, **contact)
        await publish(nc, sample(APPROVED))
        await asyncio.wait_for(dying.sent.wait(), 10)
        [row] = await feed(http, party_id=KRANGGAN_ID)
        assert row["status"] == "sending"
        assert row["attempt_log"][0]["outcome"] == "sending"  # the attempt was on record before the send
    # stopped: the in-flight send was cancelled without recording anything, like a killed process


async def test_email_sent_before_a_crash_is_not_sent_again_after_restart(
    start: Any, smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    await _crash_during_send(start, nc, Channel.EMAIL)
    assert len(smtp.messages) == 1
    async with start() as (_, http):
        [row] = await settled(http, 1, party_id=KRANGGAN_ID)
        assert row["status"] == "unknown"
        assert row["attempts"] == 1
        assert row["attempt_log"][0]["outcome"] == "unknown"
        assert "may or may not have been sent" in row["last_error"]
        # Settled by reconcile, not queued again: still one attempt and nothing due, so no second send.
        assert row["next_attempt_at"] is None
        assert len(smtp.messages) == 1, "the reconcile step must not resend an email blindly"

        # An operator who checked the mailbox decides to send again.
        response = await http.post(f"/notifications/{row['id']}/resend")
        assert response.status_code == 200, response.text
        [row] = await settled(http, 1, party_id=KRANGGAN_ID)
        assert (row["status"], row["attempts"]) == ("delivered", 2)
        assert len(smtp.messages) == 2
        again = await http.post(f"/notifications/{row['id']}/resend")
        assert again.status_code == 409


async def test_webhook_sent_before_a_crash_is_resent_and_the_receiver_deduplicates(
    start: Any, webhook: WebhookSink, nc: nats.aio.client.Client
) -> None:
    await _crash_during_send(
        start,
        nc,
        Channel.WEBHOOK,
        webhook_url=f"{webhook.url}/h",
        webhook_secret=SECRET,
        channels=["webhook"],
    )
    assert len(webhook.received) == 1
    async with start() as (_, http):
        [row] = await settled(http, 1, party_id=KRANGGAN_ID)
        assert (row["status"], row["attempts"]) == ("delivered", 2)
        assert [a["outcome"] for a in row["attempt_log"]] == ["unknown", "delivered"]
        assert len(webhook.received) == 2
        assert (
            webhook.received[0].headers["idempotency-key"] == webhook.received[1].headers["idempotency-key"]
        )
        assert len(webhook.accepted()) == 1
