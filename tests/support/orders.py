"""An order the catalog has accepted, made over its HTTP API: a listed product, then an order for it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tests.support.samples import SAMPLES

if TYPE_CHECKING:
    import httpx


async def accepted_order(http: httpx.AsyncClient) -> tuple[str, str]:
    """Submit a product that passes the pre-checks, approve it, order it; returns (product_id, order_id).

    Assumes the catalog's clock is on a business day before the sample's delivery date (2024-10-15).
    """
    product_id = f"PRD-{uuid.uuid4().hex[:10]}"
    product = {**SAMPLES["kumkm.catalog.product.submitted.v1"], "product_id": product_id}
    response = await http.post("/products", json=product)
    assert response.json()["status"] == "pending_curation", response.text
    response = await http.post(
        f"/products/{product_id}/curation", json={"decision": "approved", "tier": "local"}
    )
    assert response.status_code == 200, response.text
    placed = SAMPLES["kumkm.catalog.order.placed.v1"]
    order = {
        **placed,
        "order_id": f"ORD-{uuid.uuid4().hex[:10]}",
        "budget": {"rup_code": "RUP-2024-0042", "fiscal_year": 2024},
        "lines": [{**placed["lines"][0], "product_id": product_id}],
        "delivery": {**placed["delivery"], "needed_by": "2024-10-15"},
    }
    response = await http.post("/orders", json=order)
    assert response.json()["status"] == "accepted", response.text
    return product_id, str(order["order_id"])
