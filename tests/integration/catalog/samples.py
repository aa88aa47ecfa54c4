"""Catalog events as integrators send them: the Bekasi furniture maker and the Bekasi education office."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.support.events import envelope

if TYPE_CHECKING:
    import httpx

KRANGGAN_COOPERATIVE_ID = "3275010203040001"
BEKASI = {"province": "Jawa Barat", "city": "Kota Bekasi"}
FURNITURE_MAKER = {
    "nib": "9120001234567",
    "name": "Mebel Jati Kranggan",
    "scale": "micro",
    "cooperative_id": KRANGGAN_COOPERATIVE_ID,
    "region": BEKASI,
}
MEDIUM_SELLER = {
    "nib": "8120009876543",
    "name": "CV Sinar Kertas",
    "scale": "medium",
    "region": {"province": "DKI Jakarta", "city": "Jakarta Timur"},
}
DINAS_PENDIDIKAN_BEKASI = {
    "id": "PEMKOT-BEKASI-DISDIK",
    "name": "Dinas Pendidikan Kota Bekasi",
    "kind": "local_government",
    "work_unit": "Bidang Sarana dan Prasarana",
    "commitment_official": "Drs. Ahmad Fauzi",
    "region": BEKASI,
}


def product(product_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "product_id": product_id or f"PRD-{uuid.uuid4().hex[:10]}",
        "revision": 1,
        "seller": FURNITURE_MAKER,
        "name": "Kursi siswa kayu jati",
        "category": "furniture",
        "unit": "pcs",
        "unit_price": "450000.00",
        "min_order_qty": 10,
        "stock": 120,
        "tkdn_pct": "62.5",
        "certifications": ["sni"],
        "description": "Kursi belajar siswa SD/SMP dari kayu jati, finishing melamin",
    }
    data.update(overrides)
    return data


def order(product_id: str, qty: int = 40, unit_price: str = "450000.00", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": f"ORD-{uuid.uuid4().hex[:10]}",
        "buyer": DINAS_PENDIDIKAN_BEKASI,
        "budget": {"rup_code": "RUP-2024-3275-0042", "fiscal_year": 2024},
        "lines": [{"product_id": product_id, "qty": qty, "unit_price": unit_price}],
        "delivery": {"address": "Jl. Lapan No. 1, Bekasi Timur", "needed_by": "2024-10-15", "region": BEKASI},
    }
    data.update(overrides)
    return data


def parties(order_id: str, seller_nib: str = FURNITURE_MAKER["nib"]) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "buyer": {"id": DINAS_PENDIDIKAN_BEKASI["id"]},
        "seller": {"nib": seller_nib},
    }


def now() -> str:
    return datetime.now(UTC).isoformat()


def ev(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return envelope(f"kumkm.catalog.{kind}.v1", data)


def confirmed(order_id: str, at: str = "2024-09-13T02:00:00Z") -> dict[str, Any]:
    return ev("order.confirmed", {**parties(order_id), "confirmed_at": at})


def shipped(order_id: str) -> dict[str, Any]:
    return ev("order.shipped", {**parties(order_id), "shipped_at": "2024-09-16T02:00:00Z", "carrier": "JNE"})


def delivered(order_id: str, bast: str = "BAST/DISDIK/2024/0917") -> dict[str, Any]:
    return ev("order.delivered", {**parties(order_id), "bast_number": bast, "delivered_on": "2024-09-20"})


def paid(order_id: str, amount: str = "18000000.00") -> dict[str, Any]:
    return ev(
        "order.paid",
        {
            **parties(order_id),
            "amount": amount,
            "paid_on": "2024-10-01",
            "payment_reference": "SP2D-2024-0915",
        },
    )


async def listed_product(
    client: httpx.AsyncClient, product_id: str, *, curator: httpx.AsyncClient | None = None, **overrides: Any
) -> None:
    """Submit ``product(product_id, **overrides)`` and have a curator (``curator``, else the same client)
    approve it: listed, ready to order."""
    response = await client.post("/products", json=product(product_id, **overrides))
    assert response.json()["status"] == "pending_curation", response.text
    response = await (curator or client).post(
        f"/products/{product_id}/curation", json={"decision": "approved", "tier": "local"}
    )
    assert response.status_code == 200, response.text
