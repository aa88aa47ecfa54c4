"""Order guarantees on real NATS and Postgres: no overselling, seller timeout, duplicates, ordering."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import dead_letters, record_outcomes, stream_events
from tests.integration.catalog import samples
from tests.integration.catalog.conftest import publish, settled

if TYPE_CHECKING:
    import httpx
    from nats.aio.client import Client

    from kumkm_shared import ServiceRuntime
    from kumkm_shared.clock import FixedClock

pytestmark = pytest.mark.integration

STATUS_CHANGED = "kumkm.catalog.order.status_changed.v1"

Service = tuple["ServiceRuntime", "httpx.AsyncClient"]


async def stock(client: httpx.AsyncClient, product_id: str) -> tuple[int, int]:
    body = (await client.get(f"/products/{product_id}")).json()
    return body["stock_available"], body["stock_reserved"]


async def test_fifty_concurrent_orders_for_stock_twenty_never_oversell(service: Service, nc: Client) -> None:
    runtime, client = service
    await samples.listed_product(client, "PRD-LAST-UNITS", stock=20, min_order_qty=1)
    orders = [samples.order("PRD-LAST-UNITS", qty=1) for _ in range(50)]
    # Half race in through the stream (handled concurrently from one pull batch), half through the API.
    for data in orders[:25]:
        await publish(nc, samples.ev("order.placed", data))
    responses = await asyncio.gather(*(client.post("/orders", json=data) for data in orders[25:]))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    await settled(runtime, nc, timeout=30)

    rows = await runtime.pool.fetch("SELECT status, reason_codes FROM catalog.orders")
    assert len(rows) == 50
    accepted = [r for r in rows if r["status"] == "accepted"]
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert len(accepted) == 20
    assert len(rejected) == 30
    assert all(r["reason_codes"] == ["insufficient_stock"] for r in rejected)
    assert await stock(client, "PRD-LAST-UNITS") == (0, 20)
    events = await stream_events(nc, "kumkm.catalog.order.*.v1")
    kinds = [e["type"] for e in events]
    assert kinds.count("kumkm.catalog.order.accepted.v1") == 20
    assert kinds.count("kumkm.catalog.order.rejected.v1") == 30


async def test_seller_timeout_after_three_business_days_across_weekend_and_holiday(
    service: Service, nc: Client, clock: FixedClock
) -> None:
    runtime, client = service
    await samples.listed_product(client, "PRD-TIMEOUT")
    response = await client.post("/orders", json=samples.order("PRD-TIMEOUT", qty=30))
    order = response.json()
    assert order["status"] == "accepted", order
    # Accepted Thursday 12 Sep 2024: Fri 13, Sat, Sun, Mon 16 (Maulid Nabi), Tue 17, Wed 18.
    assert order["confirm_deadline"] == "2024-09-18"
    assert await stock(client, "PRD-TIMEOUT") == (90, 30)
    for day in ("2024-09-13", "2024-09-16", "2024-09-17", "2024-09-18"):
        response = await client.post("/tick", json={"date": day})
        assert response.json() == {"date": day, "cancelled": []}, day
    response = await client.post("/tick", json={"date": "2024-09-19"})
    assert response.json() == {"date": "2024-09-19", "cancelled": [order["order_id"]]}
    assert (await client.post("/tick", json={"date": "2024-09-19"})).json()["cancelled"] == [], "idempotent"

    after = (await client.get(f"/orders/{order['order_id']}")).json()
    assert after["status"] == "cancelled"
    assert after["cancelled_by"] == "seller_timeout"
    assert await stock(client, "PRD-TIMEOUT") == (120, 0), "the reserved stock is released"
    await settled(runtime, nc)
    cancelled = [e for e in await stream_events(nc) if e["type"] == "kumkm.catalog.order.cancelled.v1"]
    assert len(cancelled) == 1
    assert cancelled[0]["data"]["by"] == "seller_timeout"
    assert cancelled[0]["data"]["released"] == [
        {"product_id": "PRD-TIMEOUT", "qty": 30, "unit_price": "450000.00"}
    ]
    assert "2024-09-18" in cancelled[0]["data"]["reason"]
    # A confirmation now is refused: the order is gone.
    response = await client.post(f"/orders/{order['order_id']}/confirm", json={})
    assert response.status_code == 409
    assert response.json()["error"] == "order_cancelled"


async def test_late_confirmation_from_an_integrator_is_refused(service: Service, nc: Client) -> None:
    runtime, client = service
    await samples.listed_product(client, "PRD-LATE")
    order = (await client.post("/orders", json=samples.order("PRD-LATE"))).json()
    await publish(nc, samples.confirmed(order["order_id"], at="2024-09-19T02:00:00Z"))
    await settled(runtime, nc)
    letters = await dead_letters(nc)
    assert [x.reason_code for x in letters] == ["confirmation_too_late"]
    assert (await client.get(f"/orders/{order['order_id']}")).json()["status"] == "accepted"


async def test_duplicates_have_one_effect(service: Service, nc: Client) -> None:
    runtime, client = service
    await samples.listed_product(client, "PRD-DUP")
    placed = samples.ev("order.placed", samples.order("PRD-DUP", qty=10))
    order_id = placed["data"]["order_id"]
    # The same event three times, under message ids that defeat the broker's de-duplication ...
    for msg_id in ("a", "b", "c"):
        await publish(nc, placed, msg_id=msg_id)
    # ... and the same order again under a new event id (an integrator's retry after a timeout).
    await publish(nc, samples.envelope(placed["type"], placed["data"]))
    await settled(runtime, nc)
    confirm = samples.confirmed(order_id)
    for msg_id in ("x", "y"):
        await publish(nc, confirm, msg_id=msg_id)
    await settled(runtime, nc)

    assert await stock(client, "PRD-DUP") == (110, 10), "stock reserved once"
    order = (await client.get(f"/orders/{order_id}")).json()
    assert order["status"] == "confirmed"
    assert [h["status"] for h in order["history"]] == ["accepted", "confirmed"]
    accepted = [e for e in await stream_events(nc) if e["type"] == "kumkm.catalog.order.accepted.v1"]
    assert len(accepted) == 1
    assert await dead_letters(nc) == []
    # Placing the same order id over the API is refused.
    response = await client.post("/orders", json=placed["data"])
    assert response.status_code == 409
    assert response.json()["error"] == "order_exists"


async def test_out_of_order_lifecycle_events_are_parked_until_they_apply(
    service: Service, nc: Client
) -> None:
    runtime, client = service
    await samples.listed_product(client, "PRD-OOO")
    order_id = (await client.post("/orders", json=samples.order("PRD-OOO"))).json()["order_id"]
    # Shipped and delivered arrive before confirmed: they are parked (redelivered later), not applied.
    early = [samples.delivered(order_id), samples.shipped(order_id)]
    with record_outcomes(runtime, "catalog") as outcomes:
        for event in early:
            await publish(nc, event)

        def both_handled() -> bool:
            return all(outcomes.get(e["id"]) for e in early)

        await wait_for(both_handled, timeout=10, message="the early steps handled once")
    assert [outcomes[e["id"]][0] for e in early] == ["retry", "retry"], outcomes
    assert (await client.get(f"/orders/{order_id}")).json()["status"] == "accepted"
    await publish(nc, samples.confirmed(order_id))

    async def delivered() -> bool:
        return (await client.get(f"/orders/{order_id}")).json()["status"] == "delivered"

    await wait_for(delivered, timeout=20)
    await settled(runtime, nc)
    order = (await client.get(f"/orders/{order_id}")).json()
    assert [h["status"] for h in order["history"]] == ["accepted", "confirmed", "shipped", "delivered"]
    assert await dead_letters(nc) == []
    # Each applied step is on the stream as the catalog's record, naming the integrator's event it applied.
    steps = {e["id"]: e for e in await stream_events(nc, "kumkm.catalog.order.*.v1")}
    changes = sorted(
        (e for e in steps.values() if e["type"] == STATUS_CHANGED), key=lambda e: e["data"]["version"]
    )
    assert [(c["data"]["previous_status"], c["data"]["status"]) for c in changes] == [
        ("accepted", "confirmed"),
        ("confirmed", "shipped"),
        ("shipped", "delivered"),
    ]
    for change in changes:
        applied = steps[change["data"]["applied_event_id"]]
        assert applied["type"] == f"kumkm.catalog.order.{change['data']['status']}.v1"
        assert change["data"]["applied"]["order_id"] == order_id
        assert change["causationid"] == applied["id"]
    # A stale copy of an earlier step is ignored, not dead-lettered, and records nothing.
    await publish(nc, samples.confirmed(order_id))
    await settled(runtime, nc)
    assert await dead_letters(nc) == []
    assert len(await stream_events(nc, STATUS_CHANGED)) == len(changes)
    assert changes[-1]["data"]["applied"]["bast_number"] == samples.delivered(order_id)["data"]["bast_number"]


async def test_a_step_that_never_becomes_legal_ends_in_the_dlq_with_its_reason(
    service: Service, nc: Client
) -> None:
    runtime, client = service
    await samples.listed_product(client, "PRD-ILLEGAL")
    waiting = (await client.post("/orders", json=samples.order("PRD-ILLEGAL"))).json()["order_id"]
    cancelled = (await client.post("/orders", json=samples.order("PRD-ILLEGAL"))).json()["order_id"]
    assert (
        await client.post(f"/orders/{cancelled}/cancel", json={"reason": "anggaran dialihkan"})
    ).status_code == 200
    # Paid before delivered: parked, then dead-lettered once max_deliver is used up.
    await publish(nc, samples.paid(waiting))
    # Shipped after cancelled: can never apply, refused at once.
    await publish(nc, samples.shipped(cancelled))
    # A lifecycle event for an order nobody placed: parked, then dead-lettered.
    await publish(nc, samples.confirmed("ORD-NOBODY"))

    async def three_letters() -> bool:
        return len(await dead_letters(nc)) == 3

    await wait_for(three_letters, timeout=30)
    letters = {x.reason_code: x for x in await dead_letters(nc)}
    assert set(letters) == {"out_of_order", "order_cancelled", "order_unknown"}
    assert "must be delivered before it can be paid" in letters["out_of_order"].reason
    assert letters["order_cancelled"].delivery_count == 1
    assert (await client.get(f"/orders/{waiting}")).json()["status"] == "accepted"
    assert (await client.get(f"/orders/{cancelled}")).json()["status"] == "cancelled"
    await settled(runtime, nc)
    # A refused step is not recorded as a change: subscribers (the seller's notifications) hear nothing.
    assert await stream_events(nc, STATUS_CHANGED) == []
    # The order's own parties are told of each refusal, once; nobody is told of a step for no order.
    refusals = await stream_events(nc, "kumkm.catalog.order.step_refused.v1")
    by_code = {r["data"]["reason_code"]: r["data"] for r in refusals}
    assert len(refusals) == 2
    assert set(by_code) == {"out_of_order", "order_cancelled"}
    assert by_code["out_of_order"]["step"] == "paid"
    assert by_code["out_of_order"]["order_id"] == waiting
    assert by_code["out_of_order"]["order_status"] == "accepted"
    assert "must be delivered before it can be paid" in by_code["out_of_order"]["reason"]
    assert by_code["order_cancelled"]["step"] == "shipped"
    assert by_code["order_cancelled"]["seller"]["nib"] == samples.FURNITURE_MAKER["nib"]
    assert by_code["order_cancelled"]["buyer"]["id"] == samples.DINAS_PENDIDIKAN_BEKASI["id"]
    refused_ids = {r["data"]["refused_event_id"] for r in refusals}
    letter_ids = {json.loads(letters[code].original)["id"] for code in ("out_of_order", "order_cancelled")}
    assert refused_ids == letter_ids


async def test_illegal_api_transitions_get_409_with_a_reason_and_publish_nothing(
    service: Service, nc: Client
) -> None:
    runtime, client = service
    await samples.listed_product(client, "PRD-409")
    order_id = (await client.post("/orders", json=samples.order("PRD-409"))).json()["order_id"]
    response = await client.post(f"/orders/{order_id}/pay", json={"payment_reference": "SP2D-1"})
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "illegal_transition"
    assert "must be delivered before it can be paid" in body["message"]
    response = await client.post(f"/orders/{order_id}/deliver", json={})
    assert response.status_code == 422, "the BAST number is required"
    assert (await client.post(f"/orders/{order_id}/confirm", json={})).status_code == 200
    again = await client.post(f"/orders/{order_id}/confirm", json={})
    assert again.status_code == 409
    assert again.json()["error"] == "already_confirmed"
    assert (await client.post(f"/orders/{order_id}/ship", json={})).status_code == 200
    response = await client.post(f"/orders/{order_id}/cancel", json={"reason": "salah pesan"})
    assert response.status_code == 409
    assert response.json()["error"] == "not_cancellable"
    assert (await client.post("/orders/ORD-NONE/confirm", json={})).status_code == 404
    await settled(runtime, nc)
    kinds = [e["type"].rsplit(".", 2)[-2] for e in await stream_events(nc, "kumkm.catalog.order.>")]
    steps = [k for k in kinds if k != "status_changed"]
    assert steps == ["placed", "accepted", "confirmed", "shipped"]
    changes = await stream_events(nc, STATUS_CHANGED)
    assert sorted(c["data"]["status"] for c in changes) == ["confirmed", "shipped"]


async def test_buyer_cancellation_releases_stock(service: Service, nc: Client) -> None:
    _, client = service
    await samples.listed_product(client, "PRD-CANCEL")
    order_id = (await client.post("/orders", json=samples.order("PRD-CANCEL", qty=25))).json()["order_id"]
    assert await stock(client, "PRD-CANCEL") == (95, 25)
    assert (await client.post(f"/orders/{order_id}/confirm", json={})).status_code == 200
    response = await client.post(f"/orders/{order_id}/cancel", json={"reason": "anggaran dialihkan"})
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelled_by"] == "buyer"
    assert await stock(client, "PRD-CANCEL") == (120, 0)


async def test_rejection_reasons_are_explained(service: Service, nc: Client) -> None:
    _, client = service
    await samples.listed_product(client, "PRD-RULES")
    await samples.listed_product(
        client, "PRD-OTHER", seller=samples.MEDIUM_SELLER, name="Kertas HVS", category="office_supplies"
    )
    cases = {
        "price_mismatch": samples.order("PRD-RULES", unit_price="400000.00"),
        "below_min_order": samples.order("PRD-RULES", qty=5),
        "insufficient_stock": samples.order("PRD-RULES", qty=500),
        "product_not_listed": samples.order("PRD-NOT-THERE"),
    }
    two_sellers = samples.order("PRD-RULES")
    two_sellers["lines"].append({"product_id": "PRD-OTHER", "qty": 10, "unit_price": "450000.00"})
    cases["multiple_sellers"] = two_sellers
    for code, data in cases.items():
        body = (await client.post("/orders", json=data)).json()
        assert body["status"] == "rejected", (code, body)
        assert body["reason_codes"] == [code], (code, body)
        assert body["reasons"][0]["text_en"]
        assert body["reasons"][0]["text_id"]
    # The small-business package ceiling (Rp2.5 bn): two school buses at Rp1.3 bn are one package too many.
    await samples.listed_product(
        client, "PRD-BUS", unit_price="1300000000.00", min_order_qty=1, category="vehicles"
    )
    body = (
        await client.post("/orders", json=samples.order("PRD-BUS", qty=2, unit_price="1300000000.00"))
    ).json()
    assert body["reason_codes"] == ["limit_exceeded"]
    assert await stock(client, "PRD-RULES") == (120, 0)


async def test_an_id_or_filter_no_store_can_hold_is_a_422_naming_it(service: Service) -> None:
    # A NUL character in the path or a filter once reached Postgres and answered 500.
    _, client = service
    for response, field in (
        (await client.get("/orders/ORD%00X"), "order_id"),
        (await client.post("/orders/ORD%00X/cancel", json={"reason": "batal"}), "order_id"),
        (await client.post("/orders/ORD%00X/confirm", json={}), "order_id"),
        (await client.get("/orders", params={"buyer": "DINAS\x00"}), "buyer"),
        (await client.get("/orders", params={"seller": "9120001234567\x00"}), "seller"),
    ):
        assert response.status_code == 422, response.text
        assert field in [e["field"] for e in response.json()["errors"]], response.text
