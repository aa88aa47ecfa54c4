"""Who may do what in the catalog, signed in as the demo users through the real OpenID provider: the curator
comes from the token, two different curators lift a sanction, and regions bound what a curator or a viewer
sees and decides. Integrators act with their service account's token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt
import pytest

from kumkm_shared.testing.harness import ServiceHarness, stream_events
from kumkm_shared.testing.identity import identity
from tests.integration.catalog import samples
from tests.integration.catalog.conftest import settled

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.integration

APPROVE = {"decision": "approved", "tier": "local"}
LIFT = APPROVE | {"lift_sanction": True, "notes": "Sanksi dicabut: surat LKPP 12/2024"}
JAKARTA = {"province": "DKI Jakarta", "city": "Jakarta Timur"}
JAKARTA_BUYER = samples.DINAS_PENDIDIKAN_BEKASI | {"id": "PEMPROV-DKI-DISDIK", "region": JAKARTA}


def subject(username: str) -> str:
    """The ``sub`` of a demo user's access token (read, not verified: the service verified it already)."""
    claims: dict[str, Any] = jwt.decode(identity().token(username), options={"verify_signature": False})
    return str(claims["sub"])


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code, response.text


async def _sanctioned(integrator: httpx.AsyncClient, curator: httpx.AsyncClient, product_id: str) -> None:
    """A Bekasi product listed, delisted as sanctioned, and resubmitted as revision 2: awaiting a lift."""
    assert (await integrator.post("/products", json=samples.product(product_id))).status_code == 201
    assert (await curator.post(f"/products/{product_id}/curation", json=APPROVE)).status_code == 200
    delisted = await curator.post(
        f"/products/{product_id}/delist", json={"reason": "sanctioned", "note": "dokumen TKDN palsu"}
    )
    assert delisted.status_code == 200, delisted.text
    resubmitted = await integrator.post("/products", json=samples.product(product_id, revision=2))
    assert resubmitted.json()["status"] == "pending_curation", resubmitted.text


async def test_two_different_curators_lift_a_sanction_and_the_event_names_both(
    catalog: ServiceHarness,
) -> None:
    integrator = catalog.service_client("integrator-demo")
    bekasi, national = catalog.client("curator.bekasi"), catalog.client("curator.national")
    await _sanctioned(integrator, national, "PRD-LIFT")
    [delisted] = [e["data"] for e in await stream_events(catalog.nc, "kumkm.catalog.product.delisted.v1")]
    assert delisted["delisted_by"] == subject("curator.national"), "the delisting curator, from the token"

    first = await bekasi.post("/products/PRD-LIFT/curation", json=LIFT)
    assert first.status_code == 202, first.text
    waiting = first.json()
    assert waiting["status"] == "awaiting_second_curator"
    assert waiting["sanction_lift"]["curator"] == subject("curator.bekasi")
    assert waiting["sanction"] is not None, "the sanction stands until the second curator agrees"
    queue = (await national.get("/curation/queue")).json()["items"]
    assert [(p["product_id"], p["status"]) for p in queue] == [("PRD-LIFT", "awaiting_second_curator")]

    # The same curator again is refused, whatever they decide.
    for body in (LIFT, {"decision": "rejected"}):
        _error(await bekasi.post("/products/PRD-LIFT/curation", json=body), 403, "maker_is_checker")

    second = await national.post("/products/PRD-LIFT/curation", json=LIFT | {"notes": "Setuju, surat sah"})
    assert second.status_code == 200, second.text
    event = second.json()
    assert (event["decision"], event["curator"]) == ("approved", subject("curator.national"))
    assert event["sanction_lift"]["first_curator"] == subject("curator.bekasi")
    assert event["sanction_lift"]["first_notes"] == LIFT["notes"]
    assert event["sanction_lift"]["second_curator"] == subject("curator.national")
    product = (await national.get("/products/PRD-LIFT")).json()
    assert (product["status"], product["sanction"], product["sanction_lift"]) == ("listed", None, None)
    await settled(catalog.runtime, catalog.nc)
    [published] = [
        e["data"]
        for e in await stream_events(catalog.nc, "kumkm.catalog.product.curated.v1")
        if e["data"]["revision"] == 2
    ]
    assert published["sanction_lift"] == event["sanction_lift"]


async def test_the_same_curator_twice_is_refused_even_with_every_role(catalog: ServiceHarness) -> None:
    everyone = catalog.http  # it-all: every role, national
    await _sanctioned(everyone, everyone, "PRD-SELF")
    assert (await everyone.post("/products/PRD-SELF/curation", json=LIFT)).status_code == 202
    refused = await everyone.post("/products/PRD-SELF/curation", json=LIFT)
    _error(refused, 403, "maker_is_checker")
    assert refused.json()["permission"] == "catalog.products.curate"
    # A second curator may refuse the lift instead of completing it; the product leaves the queue.
    second = catalog.client("curator.second")
    rejected = await second.post(
        "/products/PRD-SELF/curation", json={"decision": "rejected", "notes": "tidak"}
    )
    assert rejected.status_code == 200, rejected.text
    product = (await second.get("/products/PRD-SELF")).json()
    assert (product["status"], product["sanction_lift"]) == ("rejected", None)
    assert product["sanction"] is not None


async def test_the_curator_is_never_in_the_body(catalog: ServiceHarness) -> None:
    integrator = catalog.service_client("integrator-demo")
    assert (await integrator.post("/products", json=samples.product("PRD-BODY-CUR"))).status_code == 201
    curator = catalog.client("curator.second")
    named = await curator.post("/products/PRD-BODY-CUR/curation", json=APPROVE | {"curator": "someone-else"})
    assert named.status_code == 422, named.text
    assert [e["field"] for e in named.json()["errors"]] == ["curator"]
    delist = {"reason": "withdrawn", "delisted_by": "someone-else"}
    assert (await curator.post("/products/PRD-BODY-CUR/curation", json=APPROVE)).json()["curator"] == subject(
        "curator.second"
    )
    assert (await curator.post("/products/PRD-BODY-CUR/delist", json=delist)).status_code == 422


async def test_a_regional_curator_sees_and_decides_only_their_region(catalog: ServiceHarness) -> None:
    integrator = catalog.service_client("integrator-demo")
    bekasi, national = catalog.client("curator.bekasi"), catalog.client("curator.national")
    for product_id, seller in (("PRD-BKS", samples.FURNITURE_MAKER), ("PRD-JKT", samples.MEDIUM_SELLER)):
        submitted = await integrator.post("/products", json=samples.product(product_id, seller=seller))
        assert submitted.status_code == 201, submitted.text

    assert [p["product_id"] for p in (await bekasi.get("/curation/queue")).json()["items"]] == ["PRD-BKS"]
    national_queue = (await national.get("/curation/queue")).json()["items"]
    assert [p["product_id"] for p in national_queue] == ["PRD-BKS", "PRD-JKT"]
    _error(await bekasi.get("/products/PRD-JKT"), 403, "outside_region")
    _error(await bekasi.post("/products/PRD-JKT/curation", json=APPROVE), 403, "outside_region")
    assert (await bekasi.post("/products/PRD-BKS/curation", json=APPROVE)).status_code == 200
    assert (await national.post("/products/PRD-JKT/curation", json=APPROVE)).status_code == 200
    _error(await bekasi.post("/products/PRD-JKT/delist", json={"reason": "withdrawn"}), 403, "outside_region")

    found = (await bekasi.get("/products")).json()["items"]
    assert [p["product_id"] for p in found] == ["PRD-BKS"]
    assert [p["product_id"] for p in (await national.get("/products")).json()["items"]] == [
        "PRD-BKS",
        "PRD-JKT",
    ]
    assert (await bekasi.get("/products", params={"region": "jakarta timur"})).json()["items"] == []


async def test_orders_and_figures_by_region(catalog: ServiceHarness) -> None:
    integrator = catalog.service_client("integrator-demo")
    national = catalog.client("curator.national")
    await samples.listed_product(integrator, "PRD-ORD-BKS", curator=national)
    await samples.listed_product(integrator, "PRD-ORD-JKT", curator=national, seller=samples.MEDIUM_SELLER)
    # The integrator's service account places orders and reports stock (national: anywhere).
    stock = await integrator.post("/products/PRD-ORD-JKT/stock", json={"stock": 500})
    assert stock.status_code == 200, stock.text
    in_bekasi = (await integrator.post("/orders", json=samples.order("PRD-ORD-BKS"))).json()
    jakarta = samples.order(
        "PRD-ORD-JKT",
        buyer=JAKARTA_BUYER,
        delivery={"address": "Jl. Pemuda No. 1", "needed_by": "2024-10-15", "region": JAKARTA},
    )
    in_jakarta = (await integrator.post("/orders", json=jakarta)).json()
    assert (in_bekasi["status"], in_jakarta["status"]) == ("accepted", "accepted"), (in_bekasi, in_jakarta)

    bekasi = catalog.client("curator.bekasi")
    listed = (await bekasi.get("/orders")).json()["items"]
    assert [o["order_id"] for o in listed] == [in_bekasi["order_id"]]
    assert {o["order_id"] for o in (await national.get("/orders")).json()["items"]} == {
        in_bekasi["order_id"],
        in_jakarta["order_id"],
    }
    assert (await bekasi.get(f"/orders/{in_bekasi['order_id']}")).status_code == 200
    _error(await bekasi.get(f"/orders/{in_jakarta['order_id']}"), 403, "outside_region")

    # A city's viewer gets their own city's figures; the ministry the whole country, or any region.
    city = catalog.client("city.bekasi")
    own = (await city.get("/stats")).json()
    assert own["region"] == {"province": "jawa barat", "city": "kota bekasi"}
    assert [(r["province"], r["city"]) for r in own["by_region"]] == [("Jawa Barat", "Kota Bekasi")]
    assert own["overall"]["total_value"] == in_bekasi["total"]
    same = (await city.get("/stats", params={"province": "JAWA BARAT", "city": "Kota Bekasi"})).json()
    assert same["overall"] == own["overall"]
    _error(await city.get("/stats", params={"province": "Jawa Barat"}), 403, "outside_region")
    _error(
        await city.get("/stats", params={"province": "DKI Jakarta", "city": "Jakarta Timur"}),
        403,
        "outside_region",
    )
    no_province = await city.get("/stats", params={"city": "Kota Bekasi"})
    assert no_province.status_code == 422
    assert [e["field"] for e in no_province.json()["errors"]] == ["province"]

    ministry = catalog.client("ministry")
    everything = (await ministry.get("/stats")).json()
    assert everything["region"] is None
    assert len(everything["by_region"]) == 2
    dki = (await ministry.get("/stats", params={"province": "DKI Jakarta"})).json()
    assert [(r["province"], r["city"]) for r in dki["by_region"]] == [("DKI Jakarta", "Jakarta Timur")]


async def test_a_regional_integrator_cannot_take_another_regions_product_by_a_revision(
    catalog: ServiceHarness,
) -> None:
    """The region check of a submission looks at the product as stored too, not only at the body: a
    revision claiming the integrator's own region for another region's product is refused and changes
    nothing."""
    product_id = "PRD-REGION-MOVE"
    national = catalog.service_client("integrator-demo")
    assert (await national.post("/products", json=samples.product(product_id))).status_code == 201
    surabaya = catalog.service_client("it-integrator-sby")
    seller = samples.FURNITURE_MAKER | {"region": {"province": "Jawa Timur", "city": "Kota Surabaya"}}
    moved = await surabaya.post(
        "/products", json=samples.product(product_id, revision=2, seller=seller, name="Diambil alih")
    )
    _error(moved, 403, "outside_region")
    stored = (await catalog.http.get(f"/products/{product_id}")).json()
    assert stored["revision"] == 1
    assert stored["seller"]["region"]["city"] == "Kota Bekasi"
    # Its own region's products it submits as before.
    own = await surabaya.post("/products", json=samples.product("PRD-SBY-OWN", seller=seller))
    assert own.status_code == 201, own.text
