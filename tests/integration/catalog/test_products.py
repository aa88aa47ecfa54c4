"""Products on real Postgres and NATS: pre-check outcomes, revisions, stock updates and delisting."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kumkm_shared.testing.harness import ServiceHarness, dead_letters, stream_events
from tests.integration.catalog import samples
from tests.integration.catalog.conftest import publish, settled

if TYPE_CHECKING:
    import httpx
    from nats.aio.client import Client

    from kumkm_shared import ServiceRuntime

pytestmark = pytest.mark.integration

Service = tuple["ServiceRuntime", "httpx.AsyncClient"]


async def test_failed_prechecks_publish_a_curation_decision_with_codes(service: Service, nc: Client) -> None:
    runtime, client = service
    low_tkdn = samples.ev("product.submitted", samples.product("PRD-TKDN", tkdn_pct="20"))
    too_cheap = samples.ev("product.submitted", samples.product("PRD-BAND", unit_price="1000.00", stock=5))
    await publish(nc, low_tkdn)
    await publish(nc, too_cheap)
    await settled(runtime, nc)
    curated = {
        e["data"]["product_id"]: e["data"]
        for e in await stream_events(nc, "kumkm.catalog.product.curated.v1")
    }
    assert curated["PRD-TKDN"]["decision"] == "rejected"
    assert curated["PRD-TKDN"]["curator"] == "policy"
    assert [i["item"] for i in curated["PRD-TKDN"]["checklist"] if not i["passed"]] == ["tkdn_minimum"]
    assert "tkdn_below_minimum" in curated["PRD-TKDN"]["notes"]
    assert curated["PRD-BAND"]["decision"] == "revision_requested"
    assert [i["item"] for i in curated["PRD-BAND"]["checklist"] if not i["passed"]] == [
        "price_in_band",
        "stock_covers_min_order",
    ]
    assert (await client.get("/products/PRD-BAND")).json()["status"] == "revision_requested"
    # The seller fixes the offer in revision 2; it passes and waits for a curator.
    fixed = samples.product("PRD-BAND", revision=2, unit_price="450000.00", stock=50)
    assert (await client.post("/products", json=fixed)).json()["status"] == "pending_curation"


async def test_revisions_go_back_to_curation_and_late_old_revisions_are_ignored(
    service: Service, nc: Client
) -> None:
    runtime, client = service
    await client.post("/products", json=samples.product("PRD-REV"))
    await client.post("/products/PRD-REV/curation", json={"decision": "approved", "tier": "national"})
    revised = samples.product("PRD-REV", revision=2, unit_price="475000.00", name="Kursi siswa jati v2")
    await publish(nc, samples.ev("product.submitted", revised))
    await settled(runtime, nc)
    product = (await client.get("/products/PRD-REV")).json()
    assert (product["revision"], product["status"], product["listed_price"]) == (2, "pending_curation", None)
    # Revision 1 arrives late (an integrator's retry): ignored, the product stays at revision 2.
    await publish(nc, samples.ev("product.submitted", samples.product("PRD-REV")))
    await settled(runtime, nc)
    assert (await client.get("/products/PRD-REV")).json()["revision"] == 2
    assert await dead_letters(nc) == []
    # A curator deciding on the superseded revision is told so.
    response = await client.post(
        "/products/PRD-REV/curation",
        json={"decision": "approved", "tier": "local", "revision": 1},
    )
    assert response.status_code == 409
    assert response.json()["error"] == "stale_revision"
    response = await client.post(
        "/products/PRD-REV/curation",
        json={"decision": "approved", "tier": "local", "revision": 2},
    )
    assert response.json()["listed_price"] == "475000.00"
    # Over the API an old revision is refused outright.
    response = await client.post("/products", json=samples.product("PRD-REV"))
    assert response.status_code == 409
    assert response.json()["error"] == "revision_older"


async def test_curation_rules(service: Service, nc: Client) -> None:
    _, client = service
    await client.post("/products", json=samples.product("PRD-CUR"))
    response = await client.post("/products/PRD-CUR/curation", json={"decision": "approved"})
    assert response.status_code == 409
    assert response.json()["error"] == "tier_required"
    response = await client.post(
        "/products/PRD-CUR/curation",
        json={"decision": "revision_requested", "notes": "foto kurang"},
    )
    assert response.json()["decision"] == "revision_requested"
    again = await client.post("/products/PRD-CUR/curation", json={"decision": "rejected"})
    assert again.status_code == 409
    assert again.json()["error"] == "not_pending_curation"
    assert (await client.post("/products/NOPE/curation", json={"decision": "rejected"})).status_code == 404


async def test_stock_updates_and_delisting(service: Service, nc: Client) -> None:
    runtime, client = service
    await client.post("/products", json=samples.product("PRD-STK"))
    await client.post("/products/PRD-STK/curation", json={"decision": "approved", "tier": "local"})
    newer = {
        "product_id": "PRD-STK",
        "seller": {"nib": samples.FURNITURE_MAKER["nib"]},
        "stock": 300,
        "as_of": "2024-09-12T05:00:00Z",
    }
    older = newer | {"stock": 7, "as_of": "2024-09-12T04:00:00Z"}
    await publish(nc, samples.ev("product.stock_updated", newer))
    await settled(runtime, nc)
    await publish(nc, samples.ev("product.stock_updated", older))
    await settled(runtime, nc)
    assert (await client.get("/products/PRD-STK")).json()["stock_available"] == 300, (
        "the older count is ignored"
    )
    wrong_seller = newer | {"seller": {"nib": "8120009876543"}, "as_of": "2024-09-12T06:00:00Z"}
    await publish(nc, samples.ev("product.stock_updated", wrong_seller))
    await settled(runtime, nc)
    assert [x.reason_code for x in await dead_letters(nc)] == ["seller_mismatch"]
    response = await client.post("/products/PRD-STK/stock", json={"stock": 42})
    assert response.status_code == 409, "the clock says 03:00; a count as of 05:00 is already recorded"
    assert response.json()["error"] == "stale_stock_update"
    response = await client.post(
        "/products/PRD-STK/stock", json={"stock": 42, "as_of": "2024-09-12T07:00:00Z"}
    )
    assert response.json()["stock_available"] == 42
    response = await client.post(
        "/products/PRD-STK/delist", json={"reason": "withdrawn", "note": "ganti model"}
    )
    assert response.json()["reason"] == "withdrawn"
    assert (await client.get("/products/PRD-STK")).json()["status"] == "delisted"
    assert (await client.get("/products", params={"q": "kursi"})).json()["items"] == []
    body = (await client.post("/orders", json=samples.order("PRD-STK", qty=10))).json()
    assert body["reason_codes"] == ["product_not_listed"]
    again = await client.post("/products/PRD-STK/delist", json={"reason": "withdrawn"})
    assert again.status_code == 409
    assert (await client.post("/products/NOPE/delist", json={"reason": "withdrawn"})).status_code == 404
    await settled(runtime, nc)
    delisted = await stream_events(nc, "kumkm.catalog.product.delisted.v1")
    assert [e["data"]["product_id"] for e in delisted] == ["PRD-STK"]


async def test_invalid_input_gets_422_with_the_field(service: Service, nc: Client) -> None:
    _, client = service
    bad = samples.product("PRD-BAD", seller=samples.FURNITURE_MAKER | {"nib": "123"})
    response = await client.post("/products", json=bad)
    assert response.status_code == 422
    assert any(e["field"] == "seller.nib" for e in response.json()["errors"])


async def test_command_bodies_are_checked_as_the_event_would_be_422_naming_the_field(
    service: Service, nc: Client
) -> None:
    # A body field that becomes an event field is refused as the event would refuse it: a 422 naming the
    # field (before: the event failed to build and the caller got a 500).
    _, client = service
    await client.post("/products", json=samples.product("PRD-BODY"))
    await client.post("/products/PRD-BODY/curation", json={"decision": "approved", "tier": "local"})
    naive = await client.post("/products/PRD-BODY/stock", json={"stock": 5, "as_of": "2024-09-12T10:00:00"})
    assert naive.status_code == 422, naive.text
    assert [e["field"] for e in naive.json()["errors"]] == ["as_of"]
    order = (await client.post("/orders", json=samples.order("PRD-BODY", qty=10))).json()
    assert order["status"] == "accepted", order
    for path, body, field in (
        ("pay", {"payment_reference": "SP2D-1", "amount": "0"}, "amount"),
        ("deliver", {"bast_number": "BAST-1", "delivered_on": "12-09-2024"}, "delivered_on"),
    ):
        response = await client.post(f"/orders/{order['order_id']}/{path}", json=body)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await client.get(f"/orders/{order['order_id']}")).json()["status"] == "accepted"


async def test_a_sanctioned_product_comes_back_only_when_two_curators_lift_the_sanction(
    catalog: ServiceHarness, service: Service, nc: Client
) -> None:
    runtime, client = service  # it-all: every role
    await client.post("/products", json=samples.product("PRD-SANK"))
    approve = {"decision": "approved", "tier": "local"}
    assert (await client.post("/products/PRD-SANK/curation", json=approve)).status_code == 200
    delisted = await client.post(
        "/products/PRD-SANK/delist", json={"reason": "sanctioned", "note": "LKPP: dokumen TKDN palsu"}
    )
    assert delisted.status_code == 200, delisted.text

    # The seller resubmits a new revision: it passes the pre-checks and waits for a curator, marked.
    resubmitted = samples.ev("product.submitted", samples.product("PRD-SANK", revision=2))
    await publish(nc, resubmitted)
    await settled(runtime, nc)
    [queued] = (await client.get("/curation/queue")).json()["items"]
    assert (queued["product_id"], queued["revision"]) == ("PRD-SANK", 2)
    assert queued["sanction"]["note"] == "LKPP: dokumen TKDN palsu"

    refused = await client.post("/products/PRD-SANK/curation", json=approve)
    assert refused.status_code == 409
    assert refused.json()["error"] == "sanctioned"
    assert "LKPP: dokumen TKDN palsu" in refused.json()["message"]
    no_note = await client.post("/products/PRD-SANK/curation", json=approve | {"lift_sanction": True})
    assert no_note.json()["error"] == "note_required"
    assert (await client.get("/products/PRD-SANK")).json()["status"] == "pending_curation"

    lift = approve | {"lift_sanction": True, "notes": "Sanksi dicabut: surat LKPP 12/2024"}
    first = await client.post("/products/PRD-SANK/curation", json=lift)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "awaiting_second_curator"
    second = await catalog.client("curator.national").post("/products/PRD-SANK/curation", json=lift)
    assert second.status_code == 200, second.text
    product = (await client.get("/products/PRD-SANK")).json()
    assert (product["status"], product["sanction"], product["sanction_lift"]) == ("listed", None, None)
    await settled(runtime, nc)
    decisions = [
        e["data"]
        for e in await stream_events(nc, "kumkm.catalog.product.curated.v1")
        if e["data"]["revision"] == 2
    ]
    assert [d["decision"] for d in decisions] == ["approved"]
    assert decisions[0]["sanction_lift"]["second_curator"] == decisions[0]["curator"]
    assert decisions[0]["sanction_lift"]["first_curator"] != decisions[0]["curator"]
    assert {
        "item": "sanction_lifted",
        "passed": True,
        "note": "Sanksi dicabut: surat LKPP 12/2024",
    } in decisions[0]["checklist"]
    # Lifting what is not there is refused too.
    await client.post("/products", json=samples.product("PRD-CLEAN"))
    clean = await client.post(
        "/products/PRD-CLEAN/curation", json=approve | {"lift_sanction": True, "notes": "x"}
    )
    assert clean.json()["error"] == "not_sanctioned"


async def test_a_source_string_claiming_the_http_path_changes_nothing_on_the_stream(
    service: Service, nc: Client
) -> None:
    # ``source`` is free text any integrator sets. From the stream, an older stock count is ignored whatever
    # the source says; only a command (the runtime's origin) is strict and answers 409.
    runtime, client = service
    await client.post("/products", json=samples.product("PRD-SRC"))
    newer = {
        "product_id": "PRD-SRC",
        "seller": {"nib": samples.FURNITURE_MAKER["nib"]},
        "stock": 300,
        "as_of": "2024-09-12T05:00:00Z",
    }
    await publish(nc, samples.ev("product.stock_updated", newer))
    await settled(runtime, nc)
    spoofed = samples.ev("product.stock_updated", newer | {"stock": 7, "as_of": "2024-09-12T04:00:00Z"})
    spoofed["source"] = "kumkm/catalog/http"
    await publish(nc, spoofed)
    await settled(runtime, nc)
    assert await dead_letters(nc) == [], "a stale count from the stream is ignored, not refused"
    assert (await client.get("/products/PRD-SRC")).json()["stock_available"] == 300


def _names(response: httpx.Response, field: str) -> None:
    """A 422 in the project's error shape, naming ``field``."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    assert field in [e["field"] for e in body["errors"]], body


async def test_input_no_store_can_hold_is_a_422_naming_the_field(service: Service) -> None:
    # Each of these once reached Postgres and answered 500: a NUL character (text and jsonb refuse it) or
    # a count past the 32-bit columns.
    _, client = service
    _names(await client.post("/products", json=samples.product(name="Meja\x00jati")), "name")
    _names(await client.post("/products", json=samples.product(stock=2**40)), "stock")
    _names(await client.post("/products", json=samples.product(min_order_qty=2**31)), "min_order_qty")
    _names(await client.post("/products", json=samples.product(revision=2**40)), "revision")
    _names(
        await client.post("/products", json=samples.product(certifications=["halal\x00"])), "certifications.0"
    )
    listed = samples.product()
    assert (await client.post("/products", json=listed)).status_code == 201
    product = f"/products/{listed['product_id']}"
    # The stock body once took any int and failed building the event (a 500): it has the contract's type.
    _names(await client.post(f"{product}/stock", json={"stock": 2**40}), "stock")
    curation = {"decision": "approved", "tier": "local", "notes": "ok\x00"}
    _names(await client.post(f"{product}/curation", json=curation), "notes")
    _names(await client.get("/products/PRD%00X"), "product_id")
    _names(await client.post("/products/PRD%00X/delist", json={"reason": "sanctioned"}), "product_id")
    _names(await client.get("/products", params={"region": "Bekasi\x00"}), "region")
    _names(await client.get("/products", params={"category": "furniture\x00"}), "category")
    _names(await client.get("/products", params={"after": "PRD\x00"}), "after")
