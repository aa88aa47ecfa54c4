"""An integrator's service account acts over HTTP only for the parties its organisation's mandate names, the
same mandate its NATS user has (docs/rules/access.md, "Integrator organisations")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kumkm_shared.integrators import IntegratorRole
from kumkm_shared.mandates import Grant, Mandate, MandateBook
from tests.integration.catalog import samples
from tests.integration.catalog.conftest import settled

if TYPE_CHECKING:
    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration

# The organisation of the it-integrator-sby service account (tests/support/realm-test.json).
ORG = "it-integrator-sby"
OWN = samples.FURNITURE_MAKER | {
    "nib": "3578010000001",
    "region": {"province": "Jawa Timur", "city": "Kota Surabaya"},
}
OTHER = OWN | {"nib": "3578010000002", "name": "UD Lain"}
BUYER = samples.DINAS_PENDIDIKAN_BEKASI | {"id": "PEMKOT-SBY-DISDIK", "region": OWN["region"]}


async def _mandate(catalog: ServiceHarness, *grants: Grant, status: str = "active") -> None:
    mandate = Mandate(organisation=ORG, grants=grants, status=status)  # type: ignore[arg-type]
    await MandateBook(catalog.nc.jetstream()).put(mandate)


async def test_a_seller_system_submits_only_for_its_mandates_nibs(catalog: ServiceHarness) -> None:
    await _mandate(catalog, Grant(role=IntegratorRole.SELLER, parties=(OWN["nib"],)))
    http = catalog.service_client(ORG)
    own = await http.post("/products", json=samples.product("PRD-MANDATE-OWN", seller=OWN))
    assert own.status_code == 201, own.text
    other = await http.post("/products", json=samples.product("PRD-MANDATE-OTHER", seller=OTHER))
    assert other.status_code == 403, other.text
    body = other.json()
    assert body["error"] == "not_authorised_for_party"
    assert OTHER["nib"] in body["message"]
    assert (await catalog.http.get("/products/PRD-MANDATE-OTHER")).status_code == 404  # nothing stored
    await settled(catalog.runtime, catalog.nc)
    submitted = [e["data"]["product_id"] for e in await catalog.events("kumkm.catalog.product.submitted.v1")]
    assert submitted == ["PRD-MANDATE-OWN"]
    # The refusal is in the audit trail, with the organisation.
    audit = await catalog.client("auditor").get("/audit", params={"outcome": "not_authorised_for_party"})
    assert audit.status_code == 200, audit.text
    [record] = audit.json()["items"]
    assert record["organisation"] == ORG
    assert record["status"] == 403


async def test_a_seller_cannot_place_orders_and_a_revoked_mandate_acts_for_nobody(
    catalog: ServiceHarness,
) -> None:
    await _mandate(catalog, Grant(role=IntegratorRole.SELLER, parties=(OWN["nib"],)))
    http = catalog.service_client(ORG)
    assert (
        await http.post("/products", json=samples.product("PRD-MANDATE-1", seller=OWN))
    ).status_code == 201
    # A seller system is not a buyer: placing an order, even as "its own" id, is refused by role.
    placed = await http.post("/orders", json=samples.order("PRD-MANDATE-1", buyer=BUYER))
    assert placed.status_code == 403, placed.text
    assert "may not send kumkm.catalog.order.placed.v1" in placed.json()["message"]

    await _mandate(catalog, Grant(role=IntegratorRole.SELLER, parties=(OWN["nib"],)), status="revoked")
    revoked = await http.post("/products", json=samples.product("PRD-MANDATE-2", seller=OWN))
    assert revoked.status_code == 403, revoked.text
    assert "revoked" in revoked.json()["message"]


async def test_an_integrator_cancels_only_the_orders_of_its_mandates_buyers(catalog: ServiceHarness) -> None:
    """Review 12, finding 2: cancelling is a command, not an event, and is held to the buyer mandate too."""
    await samples.listed_product(catalog.http, "PRD-MANDATE-CANCEL", seller=OWN)
    placed = await catalog.http.post("/orders", json=samples.order("PRD-MANDATE-CANCEL", buyer=BUYER))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    assert placed.json()["status"] == "accepted"
    http = catalog.service_client(ORG)
    cancel = {"reason": "anggaran dialihkan"}

    await _mandate(catalog, Grant(role=IntegratorRole.BUYER, parties=("PEMKOT-SBY-LAIN",)))
    refused = await http.post(f"/orders/{order_id}/cancel", json=cancel)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "not_authorised_for_party"
    assert refused.json()["permission"] == "mandate"
    assert BUYER["id"] in refused.json()["message"]
    # A seller's mandate for the order's seller is no buyer's mandate either.
    await _mandate(catalog, Grant(role=IntegratorRole.SELLER, parties=(OWN["nib"],)))
    assert (await http.post(f"/orders/{order_id}/cancel", json=cancel)).status_code == 403
    assert (await catalog.http.get(f"/orders/{order_id}")).json()["status"] == "accepted"
    audit = await catalog.client("auditor").get("/audit", params={"outcome": "not_authorised_for_party"})
    assert audit.status_code == 200, audit.text
    assert [r["organisation"] for r in audit.json()["items"]] == [ORG, ORG]

    await _mandate(catalog, Grant(role=IntegratorRole.BUYER, parties=(BUYER["id"],)))
    allowed = await http.post(f"/orders/{order_id}/cancel", json=cancel)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["status"] == "cancelled"
