"""A registry event the monitor cannot accept is dead-lettered with its reason while the valid ones flow;
an organisation's claim outside its mandate is refused (``not_authorised_for_party``) and counts nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_shared.integrators import IntegratorRole
from kumkm_shared.testing.harness import grant_mandate
from tests.integration.monitoring.conftest import Scenario, region
from tests.support.events import loan_disbursed, repayment_received

if TYPE_CHECKING:
    from tests.integration.monitoring.conftest import Monitoring

pytestmark = pytest.mark.integration

VIEWER = "it-viewer-bekasi"
REGISTRY_ORG = "disdagkop-bekasi"  # the city's registry: mandated for its two parties only
OWN, OTHERS = "3275100000000101", "3275100000000102"


async def _letters(monitoring: Monitoring, event_id: str) -> list[tuple[str, str]]:
    return [
        (d.reason_code, d.reason)
        for d in await monitoring.dead_letters()
        if d.consumer.startswith("monitoring") and json.loads(d.original)["id"] == event_id
    ]


def _registered(scenario: Scenario) -> dict[str, Any]:
    return scenario.events[-1]


async def test_a_bad_registry_event_is_dead_lettered_and_the_valid_ones_flow(monitoring: Monitoring) -> None:
    await grant_mandate(
        monitoring.nc, REGISTRY_ORG, IntegratorRole.REGISTRY, parties=(OWN, "3275100000000103")
    )
    s = Scenario()
    s.cooperative(OWN, "Koperasi Sendiri", region(district="Jatisampurna"), "2021-01-05")
    own = await monitoring.publish(_registered(s), sender=REGISTRY_ORG)
    s.cooperative(OTHERS, "Koperasi Orang Lain", region(district="Jatisampurna"), "2021-01-05")
    others = await monitoring.publish(_registered(s), sender=REGISTRY_ORG)  # outside its mandate
    bare = await monitoring.publish(_registered(s), sender=None)  # a bare subject names nobody
    s.cooperative("3275100000000103", "Koperasi Rusak", region(), "2021-01-05")
    broken = _registered(s)
    broken["data"]["member_count"] = -1
    bad = await monitoring.publish(broken, sender=REGISTRY_ORG)
    s.activity(OWN, "2021-01-06", operating=True)
    report = await monitoring.publish(_registered(s), sender=REGISTRY_ORG)
    await monitoring.settle()

    [(code, reason)] = await _letters(monitoring, bad["id"])
    assert code == "schema_violation"
    assert "member_count" in reason
    for refused in (others, bare):
        [(code, reason)] = await _letters(monitoring, refused["id"])
        assert code == "not_authorised_for_party", reason
    for applied in (own, report):
        assert await _letters(monitoring, applied["id"]) == []
    answer = await monitoring.get("/recovery", VIEWER, month="2021-01", level="district")
    assert [(r["district"], r["registered"], r["productive"]) for r in answer["rows"]] == [
        ("Jatisampurna", 1, 1)
    ]
    response = await monitoring.client(VIEWER).get(f"/parties/{OTHERS}")
    assert response.status_code == 404, response.text


async def test_a_repayment_before_its_loan_counts_only_from_the_lenders_side(monitoring: Monitoring) -> None:
    """Parked until the disbursement, then held to the loan's lender's mandate as loans does."""
    bank = "bank-bjb-monitoring"
    await grant_mandate(monitoring.nc, bank, IntegratorRole.LENDER, parties=("BANK BJB",))
    s = Scenario()
    s.cooperative(OWN, "Koperasi Sendiri", region(district="Jatisampurna"), "2021-01-05")
    await monitoring.publish(_registered(s))
    forged = await monitoring.publish(repayment_received("LN-PARKED", paid_on="2021-02-10"), sender=bank)
    borrower = {"kind": "cooperative", "id": OWN, "name": "Koperasi Sendiri", "region": region()}
    await monitoring.publish(
        loan_disbursed("LN-PARKED", borrower=borrower)
    )  # LPDB-KUMKM's, by the test lender
    await monitoring.settle()
    assert await _letters(monitoring, forged["id"]) == []  # parked, then dropped: never a signal
    party = await monitoring.get(f"/parties/{OWN}", VIEWER)
    assert party["productive"] == []
    assert party["signals"]["loans"][0]["last_repayment"] is None
    await monitoring.publish(repayment_received("LN-PARKED", paid_on="2021-02-10"))
    await monitoring.settle()
    party = await monitoring.get(f"/parties/{OWN}", VIEWER)
    assert party["productive"] == [{"from": "2021-02", "until": "2021-05"}]
