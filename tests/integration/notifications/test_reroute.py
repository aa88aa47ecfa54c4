"""Replay after a fix, for notifications: a contact added after a no_contact, an opt-out lifted.

A notification for a party without a contact is recorded as ``no_contact`` (``docs/rules/notifications.md``,
"Who is notified": not an error, so it never reaches the DLQ). Once the contact exists the operator routes
it, by id or for the whole party; it is then sent like any other, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import consumer_idle
from tests.integration.notifications.conftest import publish, republish
from tests.integration.notifications.test_delivery import (
    SECRET,
    feed,
    put_contact,
    receipts,
    settled,
    subject,
)
from tests.support.notifications import KRANGGAN_ID, sample

if TYPE_CHECKING:
    import httpx
    import nats

    from kumkm_shared import ServiceRuntime
    from tests.integration.notifications.sinks import SmtpSink, WebhookSink

pytestmark = pytest.mark.integration

APPROVED = "kumkm.loans.restructuring.approved.v1"
OVERDUE = "kumkm.loans.installment.overdue.v1"


async def test_a_contact_added_after_a_no_contact_gets_the_notification_once(
    service: tuple[ServiceRuntime, httpx.AsyncClient],
    smtp: SmtpSink,
    webhook: WebhookSink,
    nc: nats.aio.client.Client,
) -> None:
    _, http = service
    envelope = await publish(nc, sample(APPROVED))
    [row] = await settled(http, 1, status="no_contact")
    assert row["party_id"] == KRANGGAN_ID

    # Still nobody to send to: refused with the reason, nothing changes.
    early = await http.post(f"/notifications/{row['id']}/resend")
    assert early.status_code == 409, early.text
    assert early.json()["error"] == "no_contact"
    assert "no contact is known" in early.json()["message"]

    await put_contact(
        http,
        webhook_url=f"{webhook.url}/hooks/kumkm",
        webhook_secret=SECRET,
        channels=["email", "webhook", "inbox"],
    )
    response = await http.post(f"/notifications/{row['id']}/resend")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["previous_status"], body["status"]) == ("no_contact", "rerouted")
    assert sorted(r["channel"] for r in body["routed"]) == ["email", "inbox", "webhook"]

    delivered = await settled(http, 3, status="delivered")
    assert {r["channel"] for r in delivered} == {"email", "webhook", "inbox"}
    assert all(r["event_id"] == str(envelope.id) for r in delivered)
    await wait_for(lambda: len(smtp.messages) == 1 and len(webhook.received) == 1, timeout=10)
    assert subject(smtp.messages[0]).startswith("Restrukturisasi pinjaman LN-2019-0001 disetujui")
    inbox = (await http.get(f"/inbox/{KRANGGAN_ID}")).json()
    assert inbox["unread"] == 1

    async def three_receipts() -> bool:
        return len(await receipts(nc, "delivered")) == 3

    await wait_for(three_receipts, timeout=10)
    assert all(e["causationid"] == str(envelope.id) for e in await receipts(nc, "delivered"))
    [old] = await feed(http, status="rerouted")
    assert old["id"] == row["id"]
    assert "email, webhook, inbox" in old["detail"]

    # Once only: a second resend is refused, and the event redelivered by NATS adds nothing.
    again = await http.post(f"/notifications/{row['id']}/resend")
    assert again.status_code == 409
    assert again.json()["error"] == "not_resendable"
    await republish(nc, envelope, msg_id="same-event-again")
    await wait_for(lambda: consumer_idle(nc, "KUMKM_LOANS", "notifications-loans"), timeout=10)
    assert len(await feed(http, event_id=str(envelope.id))) == 4  # the rerouted row and its three


async def test_lifting_an_opt_out_reroutes_the_partys_suppressed_notifications(
    service: tuple[ServiceRuntime, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    _, http = service
    await put_contact(http, opt_outs=["repayment"])
    await publish(nc, sample(OVERDUE))
    await publish(nc, sample(OVERDUE, installment_no=4))
    suppressed = await settled(http, 2, status="suppressed")
    assert len(suppressed) == 2

    still = (await http.post(f"/contacts/{KRANGGAN_ID}/reroute")).json()
    assert still["rerouted"] == []
    assert {s["error"] for s in still["skipped"]} == {"suppressed"}

    await put_contact(http, opt_outs=[])
    result = (await http.post(f"/contacts/{KRANGGAN_ID}/reroute")).json()
    assert sorted(r["id"] for r in result["rerouted"]) == sorted(r["id"] for r in suppressed)
    assert result["skipped"] == []
    await settled(http, 2, status="delivered")
    await wait_for(lambda: len(smtp.messages) == 2, timeout=10)
    assert (await http.post(f"/contacts/{KRANGGAN_ID}/reroute")).json()["rerouted"] == []
    assert (await http.post("/contacts/NOBODY/reroute")).status_code == 404
