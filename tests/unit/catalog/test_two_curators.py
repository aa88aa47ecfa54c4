"""The two-curator rule for lifting a sanction, and the region rules of the catalog (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from kumkm_catalog.domain import permissions
from kumkm_catalog.domain.access import (
    OUTSIDE_REGION,
    REGION_REQUIRED,
    StatsRegion,
    check_in_scope,
    stats_region,
)
from kumkm_catalog.domain.curation import (
    MAKER_IS_CHECKER,
    CurationRefusal,
    CurationStep,
    ProductStatus,
    check_can_curate,
    curation_step,
    status_after_step,
)
from kumkm_shared.auth.scope import RegionScope
from kumkm_shared.contracts import CurationDecision, SanctionLift
from kumkm_shared.errors import Forbidden

pytestmark = pytest.mark.unit

SANCTION = {"at": "2024-09-01T03:00:00+00:00", "note": "harga tidak wajar", "revision": 1}


def step(
    curator: str, first: str | None, *, approved: bool = True, lift: bool = True, **kw: Any
) -> CurationStep:
    return curation_step(
        permissions.CURATE,
        curator=curator,
        first_lift_by=first,
        sanction=kw.get("sanction", SANCTION),
        approved=approved,
        lift=lift,
        notes=kw.get("notes", "sanksi dicabut"),
    )


def test_the_first_curators_lift_waits_for_a_second_curator() -> None:
    first = step("curator-a", None)
    assert first is CurationStep.FIRST_LIFT
    assert status_after_step(first, CurationDecision.APPROVED) is ProductStatus.AWAITING_SECOND_CURATOR
    second = step("curator-b", "curator-a")
    assert second is CurationStep.SECOND_LIFT
    assert status_after_step(second, CurationDecision.APPROVED) is ProductStatus.LISTED


@pytest.mark.parametrize("decision", list(CurationDecision))
def test_the_same_curator_twice_is_refused_whatever_they_decide(decision: CurationDecision) -> None:
    approved = decision is CurationDecision.APPROVED
    with pytest.raises(Forbidden) as refused:
        step("curator-a", "curator-a", approved=approved, lift=approved)
    assert refused.value.code == MAKER_IS_CHECKER
    assert refused.value.permission == permissions.CURATE


def test_a_second_curator_may_refuse_the_lift_instead() -> None:
    for decision in (CurationDecision.REJECTED, CurationDecision.REVISION_REQUESTED):
        outcome = step("curator-b", "curator-a", approved=False, lift=False)
        assert outcome is CurationStep.DECIDE
        assert status_after_step(outcome, decision).value == decision.value


def test_every_lift_still_follows_the_sanction_rules() -> None:
    with pytest.raises(CurationRefusal) as no_note:
        step("curator-a", None, notes=" ")
    assert no_note.value.code == "note_required"
    with pytest.raises(CurationRefusal) as not_lifted:
        step("curator-b", "curator-a", lift=False)
    assert not_lifted.value.code == "sanctioned"
    with pytest.raises(CurationRefusal) as nothing:
        step("curator-a", None, sanction=None)
    assert nothing.value.code == "not_sanctioned"
    assert step("curator-a", None, sanction=None, lift=False) is CurationStep.DECIDE


def test_a_product_awaiting_a_second_curator_is_decidable() -> None:
    check_can_curate(ProductStatus.AWAITING_SECOND_CURATOR, 2, 2)
    with pytest.raises(CurationRefusal):
        check_can_curate(ProductStatus.LISTED, 2, None)


def test_the_event_names_two_different_curators() -> None:
    at = datetime(2024, 9, 12, 3, tzinfo=UTC)
    lift = SanctionLift(first_curator="a", first_notes="ok", first_decided_at=at, second_curator="b")
    assert (lift.first_curator, lift.second_curator) == ("a", "b")
    with pytest.raises(ValidationError, match="two different curators"):
        SanctionLift(first_curator="a", first_decided_at=at, second_curator="a")


BEKASI = RegionScope.parse(["Jawa Barat/Kota Bekasi"])
JABAR = RegionScope.parse(["jawa  barat"])
TWO = RegionScope.parse(["Jawa Barat/Kota Bekasi", "Jawa Timur"])


def test_a_record_outside_the_scope_is_forbidden() -> None:
    check_in_scope(BEKASI, permissions.CURATE, "product", "JAWA BARAT", "kota bekasi")
    check_in_scope(JABAR, permissions.CURATE, "product", "Jawa Barat", "Kota Bogor")
    with pytest.raises(Forbidden) as outside:
        check_in_scope(BEKASI, permissions.CURATE, "product", "Jawa Barat", "Kota Bogor")
    assert outside.value.code == OUTSIDE_REGION
    with pytest.raises(Forbidden):
        check_in_scope(BEKASI, permissions.READ_ORDERS, "order", None, None)
    check_in_scope(RegionScope(national=True), permissions.READ_ORDERS, "order", None, None)
    with pytest.raises(Forbidden):
        check_in_scope(RegionScope(), permissions.READ_ORDERS, "order", "Jawa Barat", "Kota Bekasi")


def test_statistics_cover_a_region_inside_the_scope() -> None:
    national = RegionScope(national=True)
    assert stats_region(national, permissions.STATS, None, None) is None
    assert stats_region(national, permissions.STATS, "Bali", None) == StatsRegion("Bali")
    # a regional viewer asking for nothing gets their one region
    assert stats_region(BEKASI, permissions.STATS, None, None) == StatsRegion("jawa barat", "kota bekasi")
    assert stats_region(JABAR, permissions.STATS, None, None) == StatsRegion("jawa barat")
    assert stats_region(JABAR, permissions.STATS, "Jawa Barat", "Kota Depok") == StatsRegion(
        "Jawa Barat", "Kota Depok"
    )
    # a city's viewer cannot ask for the whole province, nor another region
    for province, city in (("Jawa Barat", None), ("Jawa Timur", "Kota Surabaya")):
        with pytest.raises(Forbidden) as outside:
            stats_region(BEKASI, permissions.STATS, province, city)
        assert outside.value.code == OUTSIDE_REGION
    # several regions, or none: the viewer must choose one (and with none there is nothing to choose)
    for scope in (TWO, RegionScope()):
        with pytest.raises(Forbidden) as choose:
            stats_region(scope, permissions.STATS, None, None)
        assert choose.value.code == REGION_REQUIRED
    assert stats_region(TWO, permissions.STATS, "Jawa Timur", None) == StatsRegion("Jawa Timur")
