"""GET /stats counts committed orders only: rejected, buyer-cancelled and timed-out orders count nowhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.integration.catalog import samples

if TYPE_CHECKING:
    import httpx

    from kumkm_shared import ServiceRuntime

pytestmark = pytest.mark.integration

Service = tuple["ServiceRuntime", "httpx.AsyncClient"]


async def place(client: httpx.AsyncClient, product_id: str, qty: int, unit_price: str = "450000.00") -> str:
    response = await client.post("/orders", json=samples.order(product_id, qty=qty, unit_price=unit_price))
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


async def test_only_committed_orders_count(service: Service) -> None:
    runtime, client = service
    await samples.listed_product(client, "PRD-STAT-MICRO")  # the Kranggan furniture maker: micro
    await samples.listed_product(client, "PRD-STAT-MEDIUM", seller=samples.MEDIUM_SELLER)
    confirmed_micro = await place(client, "PRD-STAT-MICRO", qty=20)  # 20 x 450,000 = 9,000,000
    confirmed_medium = await place(client, "PRD-STAT-MEDIUM", qty=10)  # 10 x 450,000 = 4,500,000
    rejected = await place(client, "PRD-STAT-MICRO", qty=40, unit_price="400000.00")  # price mismatch
    cancelled = await place(client, "PRD-STAT-MICRO", qty=30)
    timed_out = await place(client, "PRD-STAT-MEDIUM", qty=50)
    for order_id in (confirmed_micro, confirmed_medium):
        response = await client.post(f"/orders/{order_id}/confirm", json={})
        assert response.status_code == 200, response.text
    response = await client.post(f"/orders/{cancelled}/cancel", json={"reason": "budget revised"})
    assert response.status_code == 200, response.text
    # Accepted Thursday 12 Sep 2024, confirmation due Wednesday 18: the 19th cancels the unconfirmed one.
    assert (await client.post("/tick", json={"date": "2024-09-19"})).json()["cancelled"] == [timed_out]

    statuses = dict(await runtime.pool.fetch("SELECT order_id, status FROM catalog.orders"))
    assert statuses == {
        confirmed_micro: "confirmed",
        confirmed_medium: "confirmed",
        rejected: "rejected",
        cancelled: "cancelled",
        timed_out: "cancelled",
    }
    stats = (await client.get("/stats")).json()
    # 9,000,000 micro of 13,500,000 committed: 66.67%.
    expected = {
        "total_value": "13500000.00",
        "micro_small_value": "9000000.00",
        "medium_value": "4500000.00",
        "large_value": "0.00",
        "unknown_scale_value": "0.00",
        "paid_value": "0.00",
        "umkm_share_pct": "66.67",
        "meets_target": True,
    }
    assert stats["overall"] == expected
    assert stats["by_region"] == [{"province": "Jawa Barat", "city": "Kota Bekasi", **expected}]
    assert stats["by_category"] == [{"category": "furniture", **expected}]
