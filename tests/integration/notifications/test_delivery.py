"""Delivery against a real SMTP server and a real webhook server, on real NATS and Postgres."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_shared import FixedClock
from kumkm_shared.contracts import ContactUpserted
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import consumer_idle, stream_events
from tests.integration.notifications.conftest import publish, republish
from tests.support.notifications import BUYER_ID, KRANGGAN_ID, SELLER_NIB, recorded, sample

if TYPE_CHECKING:
    import httpx
    import nats

    from kumkm_shared import ServiceRuntime
    from tests.integration.notifications.sinks import SmtpSink, WebhookSink

pytestmark = pytest.mark.integration

APPROVED = "kumkm.loans.restructuring.approved.v1"
SECRET = "kranggan-webhook-secret-2020"


async def put_contact(http: httpx.AsyncClient, party_id: str = KRANGGAN_ID, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Koperasi Pedagang Pasar Kranggan",
        "party_kind": "cooperative",
        "email": "pengurus@kranggan.coop.id",
        "channels": ["email"],
    }
    body.update(fields)
    response = await http.put(f"/contacts/{party_id}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def feed(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await http.get("/notifications", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def settled(http: httpx.AsyncClient, count: int, **params: Any) -> list[dict[str, Any]]:
    """Wait until ``count`` notifications match and none is still pending or sending."""
    rows: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal rows
        rows = await feed(http, **params)
        return len(rows) >= count and all(r["status"] not in {"pending", "sending"} for r in rows)

    await wait_for(done, timeout=15, message=f"{count} settled notifications for {params}")
    return rows


def subject(mail: Any) -> str:
    # A long subject is folded right after "Subject:"; Python's parser keeps the fold's space, clients don't.
    return str(mail["Subject"]).strip()


async def receipts(nc: nats.aio.client.Client, kind: str) -> list[dict[str, Any]]:
    return await stream_events(nc, f"kumkm.notifications.notification.{kind}.v1", timeout=0.3)


async def test_kranggan_approval_reaches_the_cooperative_by_email_and_signed_webhook(
    service: tuple[ServiceRuntime, httpx.AsyncClient],
    smtp: SmtpSink,
    webhook: WebhookSink,
    nc: nats.aio.client.Client,
) -> None:
    _, http = service
    contact = await put_contact(
        http,
        webhook_url=f"{webhook.url}/hooks/kumkm",
        webhook_secret=SECRET,
        channels=["email", "webhook", "inbox"],
    )
    assert contact["webhook_secret_set"] is True
    assert "webhook_secret" not in contact
    envelope = await publish(nc, sample(APPROVED))
    rows = await settled(http, 3, party_id=KRANGGAN_ID)
    assert {r["channel"]: r["status"] for r in rows} == {
        "email": "delivered",
        "webhook": "delivered",
        "inbox": "delivered",
    }

    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["To"] == "Koperasi Pedagang Pasar Kranggan <pengurus@kranggan.coop.id>"
    assert subject(mail) == "Restrukturisasi pinjaman LN-2019-0001 disetujui: angsuran baru Rp48.330.000"
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    plain = text.get_content()
    assert "Yth. Koperasi Pedagang Pasar Kranggan" in plain
    assert "Pokok terutang: Rp2.500.000.000" in plain
    assert "Angsuran bulanan: Rp48.330.000" in plain
    assert "Jatuh tempo akhir: 26 November 2026" in plain
    assert "<td>Rp2.500.000.000</td>" in html.get_content()

    assert len(webhook.received) == 1
    hook = webhook.received[0]
    assert hook.verified, "the receiving server must verify X-KUMKM-Signature with its secret"
    assert hook.headers["x-kumkm-signature"].startswith("sha256=")
    body = json.loads(hook.body)
    email_row = next(r for r in rows if r["channel"] == "email")
    webhook_row = next(r for r in rows if r["channel"] == "webhook")
    assert hook.headers["idempotency-key"] == webhook_row["id"] == body["notification_id"]
    assert body["event"]["id"] == str(envelope.id)
    assert body["event"]["data"]["summary"]["outstanding_principal"] == "2500000000.00"
    assert body["subject"] == subject(mail)
    assert mail["Message-ID"] == f"<{email_row['id']}@notifications.kumkm>"

    assert email_row["attempt_log"][0]["response"].startswith("250")
    delivered = []

    async def three_receipts() -> bool:
        nonlocal delivered
        delivered = await receipts(nc, "delivered")
        return len(delivered) == 3

    await wait_for(three_receipts, timeout=10)
    assert {e["data"]["channel"] for e in delivered} == {"email", "webhook", "inbox"}
    assert all(e["causationid"] == str(envelope.id) for e in delivered)


async def test_receipts_and_a_contact_without_a_time_take_it_from_the_injected_clock(
    start: Any, webhook: WebhookSink, nc: nats.aio.client.Client
) -> None:
    clock = FixedClock(datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC))
    webhook.statuses = [400]  # the webhook fails for good: its receipt is a notification.failed
    async with start(clock=clock) as (_, http):
        contact = await put_contact(
            http,
            webhook_url=f"{webhook.url}/h",
            webhook_secret=SECRET,
            channels=["email", "webhook", "inbox"],
        )
        assert datetime.fromisoformat(contact["updated_at"]) == clock.moment
        envelope = await publish(nc, sample(APPROVED))
        await settled(http, 3, party_id=KRANGGAN_ID)
        delivered: list[dict[str, Any]] = []

        async def all_receipts() -> bool:
            nonlocal delivered
            delivered = await receipts(nc, "delivered")
            return len(delivered) == 2 and bool(await receipts(nc, "failed"))

        await wait_for(all_receipts, timeout=10)
        [failed] = await receipts(nc, "failed")
    # The inbox's receipt is written by the handler, the email's by the dispatcher.
    assert {e["data"]["channel"]: datetime.fromisoformat(e["data"]["delivered_at"]) for e in delivered} == {
        "email": clock.moment,
        "inbox": clock.moment,
    }
    assert (failed["data"]["channel"], datetime.fromisoformat(failed["data"]["failed_at"])) == (
        "webhook",
        clock.moment,
    )
    assert all(e["causationid"] == str(envelope.id) for e in [*delivered, failed])


async def test_smtp_refusing_twice_with_451_then_accepting_sends_one_email_after_three_attempts(
    service: tuple[ServiceRuntime, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    _, http = service
    smtp.handler.data_replies = ["451 4.7.1 greylisted, try again later", "451 4.3.0 queue full"]
    await put_contact(http)
    await publish(nc, sample(APPROVED))
    [row] = await settled(http, 1, party_id=KRANGGAN_ID)
    assert row["status"] == "delivered"
    assert row["attempts"] == 3
    assert [a["outcome"] for a in row["attempt_log"]] == ["transient", "transient", "delivered"]
    assert [a["code"] for a in row["attempt_log"]] == ["smtp_451", "smtp_451", "ok"]
    assert "greylisted" in row["attempt_log"][0]["response"]
    assert smtp.handler.data_commands == 3
    assert len(smtp.messages) == 1
    await wait_for(lambda: receipts(nc, "delivered"), timeout=10)
    [receipt] = await receipts(nc, "delivered")
    assert receipt["data"]["attempts"] == 3


async def test_smtp_permanent_refusal_fails_at_once(
    service: tuple[ServiceRuntime, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    _, http = service
    smtp.handler.data_replies = ["550 5.1.1 mailbox unavailable"]
    await put_contact(http)
    await publish(nc, sample(APPROVED))
    [row] = await settled(http, 1, party_id=KRANGGAN_ID)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["next_attempt_at"] is None  # final, nothing scheduled: no further claim, so no further send
    assert smtp.handler.data_commands == 1
    await wait_for(lambda: receipts(nc, "failed"), timeout=10)
    [failed] = await receipts(nc, "failed")
    assert failed["data"]["reason_code"] == "smtp_550"


async def test_webhook_answering_500_then_200_is_retried(
    service: tuple[ServiceRuntime, httpx.AsyncClient], webhook: WebhookSink, nc: nats.aio.client.Client
) -> None:
    _, http = service
    webhook.statuses = [500]
    await put_contact(http, webhook_url=f"{webhook.url}/h", webhook_secret=SECRET, channels=["webhook"])
    await publish(nc, sample(APPROVED))
    [row] = await settled(http, 1, party_id=KRANGGAN_ID)
    assert (row["status"], row["attempts"]) == ("delivered", 2)
    assert [a["code"] for a in row["attempt_log"]] == ["http_500", "ok"]
    assert len(webhook.received) == 2
    assert all(r.verified for r in webhook.received)
    # The same body, signature and idempotency key on every attempt.
    assert webhook.received[0].body == webhook.received[1].body
    assert webhook.received[0].headers["idempotency-key"] == webhook.received[1].headers["idempotency-key"]
    assert webhook.received[1].headers["x-kumkm-attempt"] == "2"


async def test_webhook_answering_400_fails_at_once_and_publishes_notification_failed(
    service: tuple[ServiceRuntime, httpx.AsyncClient], webhook: WebhookSink, nc: nats.aio.client.Client
) -> None:
    _, http = service
    webhook.statuses = [400, 200, 200]
    await put_contact(http, webhook_url=f"{webhook.url}/h", webhook_secret=SECRET, channels=["webhook"])
    envelope = await publish(nc, sample(APPROVED))
    [row] = await settled(http, 1, party_id=KRANGGAN_ID)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 1, None)
    assert row["attempt_log"][0]["outcome"] == "permanent"
    assert row["attempt_log"][0]["response"].startswith("HTTP 400")
    await wait_for(lambda: receipts(nc, "failed"), timeout=10)
    [failed] = await receipts(nc, "failed")
    assert failed["data"]["reason_code"] == "http_400"
    assert failed["data"]["notification_id"] == row["id"]
    assert failed["data"]["event_id"] == str(envelope.id)
    assert failed["data"]["attempts"] == 1
    # A send needs a claim, and a claim counts an attempt: final after one, nothing more was or will be sent.
    assert len(webhook.received) == 1
    [row] = await feed(http, party_id=KRANGGAN_ID)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 1, None)


async def test_webhook_429_honours_the_retry_and_timeouts_are_transient(
    start: Any, webhook: WebhookSink, nc: nats.aio.client.Client
) -> None:
    webhook.statuses = [429]
    webhook.delay = 0.0
    async with start(webhook_timeout=0.3) as (_, http):
        await put_contact(http, webhook_url=f"{webhook.url}/h", webhook_secret=SECRET, channels=["webhook"])
        await publish(nc, sample(APPROVED))
        [row] = await settled(http, 1, party_id=KRANGGAN_ID)
        assert [a["code"] for a in row["attempt_log"]] == ["http_429", "ok"]
        webhook.delay = 0.6  # slower than the timeout, then fast again
        await publish(nc, sample(APPROVED, request_id="RR-2020-0009"))

        async def timed_out_once() -> bool:
            rows = await feed(http, party_id=KRANGGAN_ID)
            return any(a["code"] == "timeout" for r in rows for a in r["attempt_log"])

        await wait_for(timed_out_once, timeout=10)
        webhook.delay = 0.0
        rows = await settled(http, 2, party_id=KRANGGAN_ID)
        assert all(r["status"] == "delivered" for r in rows)


async def test_retries_exhausted_fail_with_the_last_response(
    start: Any, smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    smtp.handler.data_replies = ["421 4.3.2 service not available"] * 3
    async with start(max_attempts=3) as (_, http):
        await put_contact(http)
        await publish(nc, sample(APPROVED))
        [row] = await settled(http, 1, party_id=KRANGGAN_ID)
        assert (row["status"], row["attempts"]) == ("failed", 3)
        await wait_for(lambda: receipts(nc, "failed"), timeout=10)
        [failed] = await receipts(nc, "failed")
        assert failed["data"]["reason_code"] == "retries_exhausted"
        assert "421" in failed["data"]["provider_response"]
        assert smtp.messages == []


async def test_smtp_server_down_is_transient(start: Any, smtp: SmtpSink, nc: nats.aio.client.Client) -> None:
    from kumkm_shared.testing import free_port

    async with start(smtp_port=free_port(), max_attempts=2) as (_, http):
        await put_contact(http)
        await publish(nc, sample(APPROVED))
        [row] = await settled(http, 1, party_id=KRANGGAN_ID)
        assert row["status"] == "failed"
        assert [a["outcome"] for a in row["attempt_log"]] == ["transient", "transient"]
        assert row["attempt_log"][0]["code"] in {"connection_refused", "smtp_connection"}


async def test_the_same_event_delivered_twice_by_nats_sends_one_email(
    service: tuple[ServiceRuntime, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    _, http = service
    await put_contact(http)
    envelope = await publish(nc, sample(APPROVED), msg_id="first-publish")
    # A different Nats-Msg-Id defeats the broker's de-duplication: the stream now holds the event twice.
    await republish(nc, envelope, msg_id="second-publish")
    await wait_for(lambda: consumer_idle(nc, "KUMKM_LOANS", "notifications-loans"), timeout=10)
    [row] = await settled(http, 1, party_id=KRANGGAN_ID)
    # Both copies were handled (the consumer is idle), into one row sent once (one attempt, nothing due).
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("delivered", 1, None)
    assert len(smtp.messages) == 1
    assert len(await feed(http, event_id=str(envelope.id))) == 1


async def test_opted_out_category_is_suppressed_and_unknown_party_is_no_contact(
    service: tuple[ServiceRuntime, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    _, http = service
    await put_contact(http, opt_outs=["repayment"])
    await publish(nc, sample("kumkm.loans.installment.overdue.v1"))
    await publish(nc, recorded("kumkm.catalog.order.paid.v1"))  # the seller has no contact
    await publish(nc, sample(APPROVED))  # not opted out: delivered
    [suppressed] = await settled(http, 1, status="suppressed")
    assert suppressed["party_id"] == KRANGGAN_ID
    assert suppressed["channel"] is None
    assert "repayment" in suppressed["detail"]
    [no_contact] = await settled(http, 1, status="no_contact")
    assert no_contact["party_id"] == SELLER_NIB
    assert no_contact["event_type"] == "kumkm.catalog.order.status_changed.v1"
    await settled(http, 1, status="delivered")
    # Every event handled, and these three rows are all there is: one email row, sent once.
    await wait_for(lambda: consumer_idle(nc, "KUMKM_LOANS", "notifications-loans"), timeout=10)
    await wait_for(lambda: consumer_idle(nc, "KUMKM_CATALOG", "notifications-catalog"), timeout=10)
    rows = await settled(http, 3)
    assert sorted((r["channel"], r["status"], r["attempts"]) for r in rows if r["channel"]) == [
        ("email", "delivered", 1)
    ]
    assert len(rows) == 3
    assert [subject(m) for m in smtp.messages] == [
        "Restrukturisasi pinjaman LN-2019-0001 disetujui: angsuran baru Rp48.330.000"
    ]


async def test_contacts_arrive_as_events_and_older_updates_are_ignored(
    service: tuple[ServiceRuntime, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    _, http = service
    newer = ContactUpserted.model_validate(
        {
            "party_id": SELLER_NIB,
            "name": "CV Meubel Jati Bekasi",
            "email": "toko@meubeljati.co.id",
            "locale": "en_US",
            "channels": ["email", "inbox"],
            "updated_at": "2022-08-02T00:00:00Z",
        }
    )
    older = newer.model_copy(
        update={"email": "old@meubeljati.co.id", "updated_at": newer.updated_at.replace(day=1)}
    )
    await publish(nc, newer)
    await publish(nc, older)
    await wait_for(lambda: consumer_idle(nc, "KUMKM_NOTIFICATIONS", "notifications-contacts"), timeout=10)
    contact = (await http.get(f"/contacts/{SELLER_NIB}")).json()
    assert contact["email"] == "toko@meubeljati.co.id"
    assert contact["locale"] == "en_US"
    await publish(nc, sample("kumkm.catalog.order.accepted.v1"))
    await settled(http, 2, party_id=SELLER_NIB)
    [mail] = smtp.messages
    assert subject(mail) == "New order ORD-0001 from Kementerian Koperasi dan UKM: Rp10,000,000"
    assert mail["To"].addresses[0].addr_spec == "toko@meubeljati.co.id"


async def test_the_receipt_of_a_request_finds_the_borrower_through_the_loan(
    service: tuple[ServiceRuntime, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    from kumkm_shared.contracts import LoanDisbursed
    from tests.support.notifications import KRANGGAN, LOAN_ID

    _, http = service
    await put_contact(http)
    disbursed = LoanDisbursed.model_validate(
        {
            "loan_id": LOAN_ID,
            "lender": "LPDB-KUMKM",
            "borrower": KRANGGAN,
            "principal": "2500000000.00",
            "annual_rate": "0.06",
            "tenor_months": 60,
            "method": "annuity",
            "disbursed_on": "2019-06-15",
            "first_due_on": "2019-07-15",
        }
    )
    await publish(nc, disbursed)
    await publish(nc, sample("kumkm.loans.restructuring.requested.v1"))
    [row] = await settled(http, 1, party_id=KRANGGAN_ID)
    assert row["status"] == "delivered"
    assert subject(smtp.messages[0]) == "Permohonan restrukturisasi RR-2020-0001 telah kami terima"


async def test_referred_requests_reach_the_officers_group(
    start: Any, smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    async with start(officers_party_id="OFFICERS-LPDB") as (_, http):
        await put_contact(
            http, "OFFICERS-LPDB", name="Petugas LPDB", email="petugas@lpdb.id", party_kind="officer"
        )
        await publish(nc, sample("kumkm.loans.restructuring.referred.v1"))
        [row] = await settled(http, 1, party_id="OFFICERS-LPDB")
        assert row["status"] == "delivered"
        assert subject(smtp.messages[0]).startswith("Perlu ditinjau: restrukturisasi RR-2020-0003")


async def test_the_seller_hears_of_payment_only_when_the_catalog_recorded_it(
    service: tuple[ServiceRuntime, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    """An integrator's order.paid is a claim the catalog may refuse (paid before delivered): the seller
    is told of the payment from the catalog's order.status_changed, and of nothing else."""
    _, http = service
    await put_contact(http, SELLER_NIB, party_kind="umkm", name="CV Mebel Jati Bekasi", email="cv@mebel.id")
    claim = await publish(nc, sample("kumkm.catalog.order.paid.v1"))  # on the stream, never consumed here
    shipped = await publish(nc, recorded("kumkm.catalog.order.shipped.v1"))  # for the buyer, not the seller
    change = await publish(nc, recorded("kumkm.catalog.order.paid.v1"))
    [row] = await settled(http, 1, status="delivered")
    assert row["event_id"] == str(change.id)
    assert row["party_id"] == SELLER_NIB
    await wait_for(lambda: consumer_idle(nc, "KUMKM_CATALOG", "notifications-catalog"), timeout=10)
    assert await feed(http, event_id=str(claim.id)) == []
    [to_buyer] = await feed(http, event_id=str(shipped.id))
    assert (to_buyer["party_id"], to_buyer["status"]) == (BUYER_ID, "no_contact")
    assert len(await feed(http)) == 2
    assert [subject(m) for m in smtp.messages] == [
        "Pembayaran Rp10.000.000 untuk pesanan ORD-0001 telah diterima"
    ]
