"""The whole e-purchasing story on real NATS and Postgres: a Bekasi furniture maker sells 40 school chairs
to Dinas Pendidikan Kota Bekasi."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest

from kumkm_shared.testing.harness import dead_letters, stream_events
from tests.integration.catalog import samples
from tests.integration.catalog.conftest import publish, settled

if TYPE_CHECKING:
    import httpx
    from nats.aio.client import Client

    from kumkm_shared import ServiceRuntime

pytestmark = pytest.mark.integration


async def test_bekasi_furniture_from_submission_to_payment(  # noqa: PLR0915 - one story, told in order
    service: tuple[ServiceRuntime, httpx.AsyncClient], nc: Client
) -> None:
    runtime, client = service
    # 1. The furniture maker, a member of the Kranggan market cooperative, submits a product.
    product = samples.product("PRD-BKS-KURSI-01")
    response = await client.post("/products", json=product)
    assert response.status_code == 201, response.text
    listed = response.json()
    # 2. It passes every pre-check and waits for a curator ...
    assert listed["status"] == "pending_curation"
    assert listed["seller"]["cooperative_id"] == samples.KRANGGAN_COOPERATIVE_ID
    assert all(item["passed"] for item in listed["precheck"])
    queue = (await client.get("/curation/queue")).json()["items"]
    assert [p["product_id"] for p in queue] == ["PRD-BKS-KURSI-01"]
    # ... who approves it for the local catalog.
    response = await client.post(
        "/products/PRD-BKS-KURSI-01/curation",
        json={
            "decision": "approved",
            "tier": "local",
            "notes": "SNI sesuai",
            "revision": 1,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["listed_price"] == "450000.00"
    await settled(runtime, nc)
    found = (await client.get("/products", params={"region": "kota bekasi", "q": "kursi jati"})).json()
    assert [p["product_id"] for p in found["items"]] == ["PRD-BKS-KURSI-01"]

    # 3. Dinas Pendidikan Kota Bekasi orders 40 chairs through its integration.
    placed = samples.ev("order.placed", samples.order("PRD-BKS-KURSI-01", qty=40))
    order_id = placed["data"]["order_id"]
    await publish(nc, placed)
    await settled(runtime, nc)
    order = (await client.get(f"/orders/{order_id}")).json()
    # 4. Accepted, with the stock reserved and a confirmation deadline three working days away:
    # Fri 13, (weekend, Monday 16 is Maulid Nabi), Tue 17, Wed 18.
    assert order["status"] == "accepted", order
    assert order["total"] == "18000000.00"
    assert order["confirm_deadline"] == "2024-09-18"
    stock = (await client.get("/products/PRD-BKS-KURSI-01")).json()
    assert (stock["stock_available"], stock["stock_reserved"]) == (80, 40)

    # ... confirmed by the seller (API), shipped (integrator), delivered with a BAST (API), paid (integrator).
    assert (await client.post(f"/orders/{order_id}/confirm", json={})).json()["status"] == "confirmed"
    await settled(runtime, nc)
    await publish(nc, samples.shipped(order_id))
    await settled(runtime, nc)
    response = await client.post(f"/orders/{order_id}/deliver", json={"bast_number": "BAST/DISDIK/2024/0917"})
    assert response.json()["status"] == "delivered", response.text
    await settled(runtime, nc)
    await publish(nc, samples.paid(order_id))
    await settled(runtime, nc)
    order = (await client.get(f"/orders/{order_id}")).json()
    assert order["status"] == "paid"
    assert order["bast_number"] == "BAST/DISDIK/2024/0917"
    assert [h["status"] for h in order["history"]] == [
        "accepted",
        "confirmed",
        "shipped",
        "delivered",
        "paid",
    ]
    stock = (await client.get("/products/PRD-BKS-KURSI-01")).json()
    assert (stock["stock_available"], stock["stock_reserved"]) == (80, 0), "shipped goods left the warehouse"

    # 5. Every event is on the stream, in order ...
    events = await stream_events(nc, "kumkm.catalog.>")
    assert [e["type"].split(".")[2] + "." + e["type"].split(".")[3] for e in events] == [
        "product.submitted",
        "product.curated",
        "order.placed",
        "order.accepted",
        "order.confirmed",
        "order.status_changed",
        "order.shipped",
        "order.status_changed",
        "order.delivered",
        "order.status_changed",
        "order.paid",
        "order.status_changed",
    ]
    # Each step is followed by the catalog's record that it took effect.
    for step, change in itertools.pairwise(events[4:]):
        if change["type"].endswith("status_changed.v1"):
            assert change["data"]["applied_event_id"] == step["id"]
            assert step["type"] == f"kumkm.catalog.order.{change['data']['status']}.v1"
    accepted = events[3]
    assert accepted["causationid"] == placed["id"]
    assert accepted["correlationid"] == placed["id"]
    assert accepted["data"]["seller"]["region"]["city"] == "Kota Bekasi"
    assert await dead_letters(nc) == []
    # ... and the statistics count the sale for Kota Bekasi, furniture, 100% micro and small.
    stats = (await client.get("/stats")).json()
    assert stats["overall"]["total_value"] == "18000000.00"
    assert stats["overall"]["paid_value"] == "18000000.00"
    assert stats["overall"]["umkm_share_pct"] == "100.00"
    assert stats["overall"]["meets_target"] is True
    assert stats["by_region"] == [
        {
            "province": "Jawa Barat",
            "city": "Kota Bekasi",
            "total_value": "18000000.00",
            "micro_small_value": "18000000.00",
            "medium_value": "0.00",
            "large_value": "0.00",
            "unknown_scale_value": "0.00",
            "paid_value": "18000000.00",
            "umkm_share_pct": "100.00",
            "meets_target": True,
        }
    ]
    assert [c["category"] for c in stats["by_category"]] == ["furniture"]
    assert "denominator" in stats["definition"]
