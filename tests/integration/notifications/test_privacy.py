"""Secrets and personal data over the real API: a webhook secret is in one answer only and in no log line;
e-mail addresses and phone numbers show on the contact routes only (operators), masked everywhere else;
a contact PUT writes its secret, the contact and its event in one transaction."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
import pytest_asyncio
import structlog

from kumkm_notifications.app import build
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import ServiceHarness, stream_events
from tests.integration.notifications.conftest import settings_for
from tests.integration.notifications.test_delivery import put_contact, receipts, settled
from tests.support.notifications import KRANGGAN_ID, sample

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import httpx

    from kumkm_shared.contracts import EventData
    from tests.integration.notifications.sinks import SmtpSink, WebhookSink

pytestmark = pytest.mark.integration

EMAIL = "pengurus@kranggan.coop.id"
PHONE = "+6281234561234"
GIVEN_SECRET = "kranggan-webhook-secret-2020"  # the webhook sink verifies signatures with it
REJECTED = "kumkm.loans.restructuring.rejected.v1"


def _rejection_quoting_the_addresses() -> EventData:
    """A rejection whose reason (free text a person typed) quotes the cooperative's e-mail and phone."""
    quoted = f"hubungi {EMAIL} atau {PHONE}"
    return sample(
        REJECTED,
        reason_codes=["incomplete_documents"],
        reasons=[{"code": "incomplete_documents", "text_id": quoted, "text_en": quoted}],
    )


@pytest_asyncio.fixture
async def harness(nats_url: str, database_url: str, smtp: SmtpSink) -> AsyncIterator[ServiceHarness]:
    definition = build(settings=settings_for(smtp))
    async with ServiceHarness.start(
        definition, nats_url, database_url, consumer_batch=16, drain_timeout=2.0
    ) as started:
        yield started


SINK_LOGGERS = ("mail.log",)  # the test's SMTP server (aiosmtpd) logs what it receives: not the service


class Logged:
    """Every log line the service wrote so far at the level it runs at (INFO), structlog's and the
    standard library's (uvicorn, faststream, asyncpg, httpx, aiosmtplib)."""

    def __init__(self, events: list[Any], caplog: pytest.LogCaptureFixture) -> None:
        self.events = events
        self.caplog = caplog

    def lines(self) -> list[str]:
        return [repr(e) for e in self.events] + [
            f"{r.getMessage()} {r.exc_text or ''} {r.__dict__}"
            for r in self.caplog.records
            if not r.name.startswith(SINK_LOGGERS)
        ]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Logged]:
    caplog.set_level(logging.INFO)
    with structlog.testing.capture_logs() as events:
        yield Logged(events, caplog)


async def _everything_readable(harness: ServiceHarness) -> str:
    """Every GET of the service, as the all-roles test user (an operator and an auditor): one text."""
    http = harness.http
    answers = [
        await http.get(f"/contacts/{KRANGGAN_ID}"),
        await http.get("/contacts"),
        await http.get("/notifications", params={"party_id": KRANGGAN_ID}),
        await http.get(f"/inbox/{KRANGGAN_ID}"),
        await http.get("/audit", params={"limit": 1000}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
    return "\n".join(a.text for a in answers)


async def test_a_webhook_secret_is_shown_once_and_never_logged(
    harness: ServiceHarness, webhook: WebhookSink, logged: Logged
) -> None:
    http = harness.http
    put = await http.put(
        f"/contacts/{KRANGGAN_ID}",
        json={
            "name": "Koperasi Pedagang Pasar Kranggan",
            "email": EMAIL,
            "webhook_url": webhook.url,
            "webhook_secret": GIVEN_SECRET,
            "channels": ["webhook", "inbox"],
        },
    )
    assert put.status_code == 200, put.text
    assert put.json()["webhook_secret_set"] is True
    assert "webhook_secret" not in put.json()
    assert GIVEN_SECRET not in put.text, "the secret given is never echoed"
    await harness.publish(sample("kumkm.loans.installment.overdue.v1"))
    rows = await settled(http, 2, party_id=KRANGGAN_ID)
    assert {r["channel"]: r["status"] for r in rows} == {"webhook": "delivered", "inbox": "delivered"}
    assert webhook.accepted, "signed with the secret given"

    rotated = await http.post(f"/contacts/{KRANGGAN_ID}/webhook-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["webhook_secret"]
    assert len(new_secret) >= 32

    readable = await _everything_readable(harness)
    assert GIVEN_SECRET not in readable
    assert new_secret not in readable, "shown once: the rotation's answer, never again"
    assert '"webhook_secret_set":true' in readable.replace(" ", "")
    events = json.dumps(await harness.events())
    assert GIVEN_SECRET not in events
    assert new_secret not in events, "secrets never travel in events"
    await harness.settle()
    for line in logged.lines():
        assert GIVEN_SECRET not in line
        assert new_secret not in line
        assert EMAIL not in line


async def test_addresses_show_on_the_contact_routes_only_and_masked_everywhere_else(
    harness: ServiceHarness, smtp: SmtpSink, logged: Logged
) -> None:
    http = harness.http
    smtp.handler.data_replies = [f"550 5.1.1 <{EMAIL}>: mailbox unavailable"]
    await put_contact(http, email=EMAIL, phone=PHONE, channels=["email", "inbox"])
    await harness.publish(_rejection_quoting_the_addresses())
    rows = await settled(http, 2, party_id=KRANGGAN_ID)

    # The contact routes (operators; each read audited) show the addresses.
    contact = (await http.get(f"/contacts/{KRANGGAN_ID}")).json()
    assert (contact["email"], contact["phone"]) == (EMAIL, PHONE)
    [listed] = (await http.get("/contacts")).json()
    assert (listed["email"], listed["phone"]) == (EMAIL, PHONE)
    audited = (await http.get("/audit", params={"command": "get_contact"})).json()["items"]
    assert audited, "a read of personal data is in the audit trail"

    # The activity feed masks the address and any address a provider's response quotes.
    by_channel = {r["channel"]: r for r in rows}
    email_row = by_channel["email"]
    assert email_row["status"] == "failed"
    assert email_row["address"] == "p***@kranggan.coop.id"
    assert "<p***@kranggan.coop.id>" in email_row["attempt_log"][0]["response"]
    assert "<p***@kranggan.coop.id>" in email_row["last_error"]
    assert by_channel["inbox"]["address"] == KRANGGAN_ID, "the inbox is addressed by the party id"

    # The inbox masks what a message quotes, for every reader.
    box = (await http.get(f"/inbox/{KRANGGAN_ID}")).json()
    [message] = box["messages"]
    for text in (message["body_text"], message["body_html"]):
        assert "p***@kranggan.coop.id" in text
        assert "+62***1234" in text

    # Receipts carry the provider's response masked.
    await wait_for(lambda: receipts(harness.nc, "failed"), timeout=10)
    [failed] = await receipts(harness.nc, "failed")
    assert "<p***@kranggan.coop.id>" in failed["data"]["provider_response"]

    everything = await _feed_inbox_receipts_text(harness)
    assert EMAIL not in everything
    assert PHONE not in everything
    await harness.settle()
    for line in logged.lines():
        assert EMAIL not in line, line[:300]
        assert PHONE not in line, line[:300]


async def _feed_inbox_receipts_text(harness: ServiceHarness) -> str:
    http = harness.http
    parts = [
        (await http.get("/notifications")).text,
        (await http.get(f"/inbox/{KRANGGAN_ID}")).text,
        json.dumps(await stream_events(harness.nc, "kumkm.notifications.notification.>", timeout=0.3)),
    ]
    return "\n".join(parts)


async def test_an_integrator_writes_no_contact_and_reads_no_inbox_without_a_mandate(
    harness: ServiceHarness,
) -> None:
    """Nothing yet binds an integrator to the parties it acts for: it could take over another party's
    webhook (and its signing secret) or read its messages, so it may do neither."""
    integrator: httpx.AsyncClient = harness.service_client("integrator-demo")
    put = await integrator.put(
        f"/contacts/{KRANGGAN_ID}",
        json={"name": "Koperasi Pedagang Pasar Kranggan", "email": EMAIL, "phone": PHONE},
    )
    assert put.status_code == 403, put.text
    assert put.json()["permission"] == "contacts.write"
    for path in (f"/inbox/{KRANGGAN_ID}", f"/contacts/{KRANGGAN_ID}", "/contacts", "/notifications"):
        refused = await integrator.get(path)
        assert refused.status_code == 403, path
        assert refused.json()["permission"] in {"inbox.read", "contacts.read", "notifications.read"}
    assert (await integrator.post(f"/contacts/{KRANGGAN_ID}/webhook-secret")).status_code == 403


async def test_a_back_dated_contact_changes_neither_the_contact_nor_its_secret(
    harness: ServiceHarness,
) -> None:
    http = harness.http
    hook = "https://hooks.kranggan.coop.id/kumkm?token=abc123"
    body = {"name": "Koperasi Pedagang Pasar Kranggan", "email": EMAIL, "channels": ["webhook"]}
    first = await http.put(
        f"/contacts/{KRANGGAN_ID}",
        json={**body, "webhook_url": hook, "webhook_secret": "the-first-secret-0123456789"},
    )
    assert first.status_code == 200, first.text
    assert first.json()["webhook_url"] == hook  # an operator sees the address it wrote
    stale = await http.put(
        f"/contacts/{KRANGGAN_ID}",
        json={
            **body,
            "webhook_url": "https://attacker.example/hook",
            "webhook_secret": "a-secret-chosen-by-someone-else",
            "updated_at": "1970-01-01T00:00:00Z",
        },
    )
    assert stale.status_code == 200, stale.text
    assert stale.json()["webhook_url"] == hook
    async with harness.runtime.pool.acquire() as conn:
        secret = await conn.fetchval("SELECT secret FROM webhook_secrets WHERE party_id = $1", KRANGGAN_ID)
    assert secret == "the-first-secret-0123456789"


async def test_a_contact_put_writes_its_secret_contact_and_event_in_one_transaction(
    harness: ServiceHarness, database_url: str
) -> None:
    http = harness.http
    # A contact the database refuses after the secret was written: neither may stay.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """
            CREATE FUNCTION notifications.refuse_broken() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
            CREATE TRIGGER refuse_broken BEFORE INSERT ON notifications.contacts
                FOR EACH ROW WHEN (NEW.party_id = 'BROKEN') EXECUTE FUNCTION notifications.refuse_broken();
            """
        )
        body = {
            "name": "Broken",
            "webhook_url": "https://broken.example.co.id/hook",
            "webhook_secret": GIVEN_SECRET,
            "channels": ["webhook"],
        }
        with pytest.raises(asyncpg.RaiseError):  # the in-process transport re-raises the 500's cause
            await http.put("/contacts/BROKEN", json=body)
        assert await conn.fetchval("SELECT count(*) FROM notifications.webhook_secrets") == 0
        assert await conn.fetchval("SELECT count(*) FROM notifications.contacts") == 0

        put = await http.put(f"/contacts/{KRANGGAN_ID}", json={**body, "name": "Kranggan"})
        assert put.status_code == 200, put.text
        secret = await conn.fetchval(
            "SELECT secret FROM notifications.webhook_secrets WHERE party_id = $1", KRANGGAN_ID
        )
        assert secret == GIVEN_SECRET, "the secret given, never a generated one"
        stored_event = await conn.fetchval(
            "SELECT event_id FROM notifications.contacts WHERE party_id = $1", KRANGGAN_ID
        )
    finally:
        await conn.close()
    await harness.settle()
    [event] = await harness.events("kumkm.notifications.contact.upserted.v1")
    assert event["id"] == str(stored_event), "the contact stored is the event published"
    assert "webhook_secret" not in event["data"]
    audit = (await http.get("/audit", params={"command": "put_contact"})).json()["items"]
    assert len([r for r in audit if KRANGGAN_ID in str(r)]) == 1, f"one command, one audit record: {audit}"
