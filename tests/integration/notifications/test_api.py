"""The HTTP API: contacts, inbox with unread flags, the activity feed, and validation errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import stream_events
from tests.integration.notifications.conftest import publish
from tests.integration.notifications.test_delivery import put_contact, settled
from tests.support.notifications import KRANGGAN_ID, sample

if TYPE_CHECKING:
    import httpx
    import nats

    from kumkm_shared import ServiceRuntime

pytestmark = pytest.mark.integration


async def test_inbox_lists_messages_with_an_unread_flag_and_marks_them_read(
    service: tuple[ServiceRuntime, httpx.AsyncClient], nc: nats.aio.client.Client
) -> None:
    _, http = service
    await put_contact(http, channels=["inbox"], email=None, locale="en_US")
    await publish(nc, sample("kumkm.loans.restructuring.approved.v1"))
    await publish(nc, sample("kumkm.loans.installment.overdue.v1"))
    await settled(http, 2, party_id=KRANGGAN_ID)
    box = (await http.get(f"/inbox/{KRANGGAN_ID}")).json()
    assert box["unread"] == 2
    assert {m["subject"] for m in box["messages"]} == {
        "Restructuring of loan LN-2019-0001 approved: new installment Rp48,330,000",
        "Installment 3 of loan LN-2019-0001 is 10 days overdue",
    }
    assert all(m["unread"] for m in box["messages"])
    first = box["messages"][0]["id"]
    read = await http.post(f"/inbox/{KRANGGAN_ID}/{first}/read")
    assert read.status_code == 200
    assert read.json()["unread"] is False
    box = (await http.get(f"/inbox/{KRANGGAN_ID}", params={"unread_only": True})).json()
    assert box["unread"] == 1
    assert [m["id"] for m in box["messages"]] != [first]
    assert (
        await http.post(f"/inbox/{KRANGGAN_ID}/00000000-0000-0000-0000-000000000000/read")
    ).status_code == 404
    assert (await http.post(f"/inbox/SOMEONE-ELSE/{first}/read")).status_code == 404


async def test_put_contact_is_published_as_contact_upserted_and_validates(
    service: tuple[ServiceRuntime, httpx.AsyncClient], nc: nats.aio.client.Client
) -> None:
    _, http = service
    await put_contact(http, phone="081234567890", channels=["email", "sms", "inbox"], opt_outs=["orders"])
    contact = (await http.get(f"/contacts/{KRANGGAN_ID}")).json()
    assert contact["phone"] == "+6281234567890"
    assert contact["opt_outs"] == ["orders"]
    events: list[dict[str, object]] = []

    async def published() -> bool:
        nonlocal events
        events = await stream_events(nc, "kumkm.notifications.contact.upserted.v1", timeout=0.3)
        return bool(events)

    await wait_for(published, timeout=10)
    assert events[0]["subject"] == KRANGGAN_ID
    bad = await http.put(f"/contacts/{KRANGGAN_ID}", json={"name": "X", "channels": ["webhook"]})
    assert bad.status_code == 422
    assert bad.json()["error"] == "validation_failed"
    assert "webhook" in bad.text
    bad_phone = await http.put(f"/contacts/{KRANGGAN_ID}", json={"name": "X", "phone": "12345"})
    assert bad_phone.status_code == 422
    assert (await http.get("/contacts/NOBODY")).status_code == 404
    listed = (await http.get("/contacts")).json()
    assert [c["party_id"] for c in listed] == [KRANGGAN_ID]


async def test_webhook_secret_is_generated_when_missing_and_can_be_rotated(
    service: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    _, http = service
    contact = await put_contact(http, webhook_url="https://kranggan.coop.id/hook", channels=["webhook"])
    assert contact["webhook_secret_set"] is True
    rotated = await http.post(f"/contacts/{KRANGGAN_ID}/webhook-secret")
    assert rotated.status_code == 200
    assert len(rotated.json()["webhook_secret"]) >= 32
    assert (await http.post("/contacts/NOBODY/webhook-secret")).status_code == 404


async def test_feed_filters_by_status_and_rejects_unknown_statuses(
    service: tuple[ServiceRuntime, httpx.AsyncClient], nc: nats.aio.client.Client
) -> None:
    _, http = service
    await publish(nc, sample("kumkm.catalog.order.rejected.v1"))
    [row] = await settled(http, 1, status="no_contact")
    assert row["party_id"] == "KEMENKOPUKM"
    assert (await http.get("/notifications", params={"status": "delivered"})).json() == []
    assert (await http.get("/notifications", params={"status": "lost"})).status_code == 422


async def test_sms_goes_through_the_configured_gateway(start: object, nc: nats.aio.client.Client) -> None:
    from tests.integration.notifications.sinks import webhook_sink

    async with (
        webhook_sink(require_signature=False) as gateway,
        start(gateway_url=f"{gateway.url}/sms") as (_, http),
    ):  # type: ignore[operator]
        await put_contact(http, phone="+6281234567890", channels=["sms", "whatsapp"], email=None)
        await publish(nc, sample("kumkm.loans.installment.overdue.v1"))
        rows = await settled(http, 2, party_id=KRANGGAN_ID)
        assert {r["channel"]: r["status"] for r in rows} == {"sms": "delivered", "whatsapp": "delivered"}
        import json

        bodies = sorted((json.loads(r.body) for r in gateway.received), key=lambda b: b["channel"])
        assert [b["channel"] for b in bodies] == ["sms", "whatsapp"]
        assert bodies[0]["to"] == "+6281234567890"
        assert bodies[0]["text"] == "Angsuran ke-3 pinjaman LN-2019-0001 terlambat 10 hari"


async def test_input_no_store_can_hold_is_a_422_naming_the_field(
    service: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    # Each of these once reached Postgres and answered 500: a NUL character (text refuses it), a lone
    # surrogate (no UTF-8 for it) in an address or a secret, an offset past bigint.
    _, http = service
    headers = {"content-type": "application/json"}
    for body, field in (
        ({"name": "Koperasi\x00Kranggan"}, "name"),
        ({"name": "Kranggan", "email": "pengurus\x00@kranggan.coop.id"}, "email"),
        ({"name": "Kranggan", "webhook_secret": "0123456789abcdef\x00"}, "webhook_secret"),
    ):
        response = await http.put(f"/contacts/{KRANGGAN_ID}", json=body)
        assert response.status_code == 422, response.text
        assert field in [e["field"] for e in response.json()["errors"]], response.text
    for raw, field in (
        (b'{"name": "Kranggan", "email": "pengurus\\udc00@kranggan.coop.id"}', "email"),
        (b'{"name": "Kranggan", "webhook_secret": "0123456789abcdef\\ud800"}', "webhook_secret"),
    ):
        response = await http.put(f"/contacts/{KRANGGAN_ID}", content=raw, headers=headers)
        assert response.status_code == 422, response.text
        assert field in [e["field"] for e in response.json()["errors"]], response.text
    for response, field in (
        (await http.get("/contacts", params={"offset": 2**64}), "offset"),
        (await http.get("/contacts/PARTY%00X"), "party_id"),
        (await http.get("/inbox/PARTY%00X"), "party_id"),
        (await http.post("/contacts/PARTY%00X/reroute"), "party_id"),
        (await http.post("/contacts/PARTY%00X/webhook-secret"), "party_id"),
        (await http.get("/notifications", params={"party_id": "PARTY\x00"}), "party_id"),
    ):
        assert response.status_code == 422, response.text
        assert field in [e["field"] for e in response.json()["errors"]], response.text
    assert (await http.get(f"/contacts/{KRANGGAN_ID}")).status_code == 404, "nothing was stored"
