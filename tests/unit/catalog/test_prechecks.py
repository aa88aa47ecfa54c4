"""Every curation pre-check, and which automatic decision each failure leads to."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from kumkm_catalog.domain.curation import (
    Check,
    CurationRefusal,
    CurationRules,
    PrecheckFailure,
    PriceBand,
    ProductStatus,
    RevisionVerdict,
    Submission,
    check_can_curate,
    check_can_delist,
    check_sanction,
    classify_revision,
    run_prechecks,
)
from kumkm_shared.contracts import CurationDecision

pytestmark = pytest.mark.unit

GOOD = Submission(
    nib="9120001234567",
    scale="micro",
    category="furniture",
    unit_price=Decimal("1450000.00"),
    min_order_qty=10,
    stock=120,
    tkdn_pct=Decimal("62.5"),
)
RULES = CurationRules(price_bands={"furniture": PriceBand(Decimal(100_000), Decimal(25_000_000))})


def test_a_good_submission_passes_every_check_and_waits_for_a_curator() -> None:
    outcome = run_prechecks(GOOD, RULES)
    assert outcome.passed
    assert outcome.failures == []
    assert outcome.decision is None
    assert [r.check for r in outcome.results] == list(Check)


@pytest.mark.parametrize(
    ("change", "failure", "decision"),
    [
        ({"nib": "12345"}, PrecheckFailure.INVALID_NIB, CurationDecision.REJECTED),
        ({"nib": "0000000000000"}, PrecheckFailure.INVALID_NIB, CurationDecision.REJECTED),
        ({"nib": "91200012345AB"}, PrecheckFailure.INVALID_NIB, CurationDecision.REJECTED),
        ({"scale": "large"}, PrecheckFailure.SCALE_NOT_ELIGIBLE, CurationDecision.REJECTED),
        ({"tkdn_pct": Decimal("24.99")}, PrecheckFailure.TKDN_BELOW_MINIMUM, CurationDecision.REJECTED),
        (
            {"unit_price": Decimal("0.00")},
            PrecheckFailure.PRICE_NOT_POSITIVE,
            CurationDecision.REVISION_REQUESTED,
        ),
        (
            {"unit_price": Decimal("99999.99")},
            PrecheckFailure.PRICE_OUTSIDE_BAND,
            CurationDecision.REVISION_REQUESTED,
        ),
        (
            {"unit_price": Decimal("25000000.01")},
            PrecheckFailure.PRICE_OUTSIDE_BAND,
            CurationDecision.REVISION_REQUESTED,
        ),
        ({"stock": 9}, PrecheckFailure.STOCK_BELOW_MIN_ORDER, CurationDecision.REVISION_REQUESTED),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_failing_check(
    change: dict[str, object], failure: PrecheckFailure, decision: CurationDecision
) -> None:
    outcome = run_prechecks(replace(GOOD, **change), RULES)  # type: ignore[arg-type]
    assert outcome.failures == [failure]
    assert outcome.decision is decision
    failed = [r for r in outcome.results if not r.passed]
    assert len(failed) == 1
    assert failed[0].note, "the seller is told why"
    assert failure.value in outcome.summary()


@pytest.mark.parametrize("scale", ["micro", "small", "medium"])
def test_every_umkm_scale_is_eligible(scale: str) -> None:
    assert run_prechecks(replace(GOOD, scale=scale), RULES).passed


def test_boundaries_are_inclusive() -> None:
    assert run_prechecks(replace(GOOD, tkdn_pct=Decimal(25)), RULES).passed
    assert run_prechecks(replace(GOOD, unit_price=Decimal(100_000)), RULES).passed
    assert run_prechecks(replace(GOOD, unit_price=Decimal(25_000_000)), RULES).passed
    assert run_prechecks(replace(GOOD, stock=10), RULES).passed


def test_a_category_without_a_band_accepts_any_positive_price() -> None:
    outcome = run_prechecks(replace(GOOD, category="meeting_catering", unit_price=Decimal(1)), RULES)
    assert outcome.passed


def test_every_failure_is_reported_at_once_and_rejection_wins_over_revision() -> None:
    bad = replace(GOOD, tkdn_pct=Decimal(10), stock=1, unit_price=Decimal(50))
    outcome = run_prechecks(bad, RULES)
    assert outcome.failures == [
        PrecheckFailure.TKDN_BELOW_MINIMUM,
        PrecheckFailure.PRICE_OUTSIDE_BAND,
        PrecheckFailure.STOCK_BELOW_MIN_ORDER,
    ]
    assert outcome.decision is CurationDecision.REJECTED


def test_configured_tkdn_minimum_applies() -> None:
    assert not run_prechecks(
        replace(GOOD, tkdn_pct=Decimal(30)), CurationRules(tkdn_min_pct=Decimal(40))
    ).passed


def test_price_band_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        PriceBand(Decimal(10), Decimal(5))


@pytest.mark.parametrize(
    ("current", "incoming", "verdict"),
    [
        (None, 1, RevisionVerdict.NEW),
        (1, 2, RevisionVerdict.NEW),
        (2, 2, RevisionVerdict.SAME),
        (3, 2, RevisionVerdict.OLDER),
    ],
)
def test_revision_classification(current: int | None, incoming: int, verdict: RevisionVerdict) -> None:
    assert classify_revision(current, incoming) is verdict


def test_only_a_pending_current_revision_can_be_curated() -> None:
    check_can_curate(ProductStatus.PENDING_CURATION, 2, None)
    check_can_curate(ProductStatus.PENDING_CURATION, 2, 2)
    with pytest.raises(CurationRefusal, match="stale_revision"):
        check_can_curate(ProductStatus.PENDING_CURATION, 2, 1)
    check_can_curate(ProductStatus.AWAITING_SECOND_CURATOR, 2, 2)
    for status in set(ProductStatus) - {
        ProductStatus.PENDING_CURATION,
        ProductStatus.AWAITING_SECOND_CURATOR,
    }:
        with pytest.raises(CurationRefusal, match="not_pending_curation"):
            check_can_curate(status, 1, None)


def test_only_a_listed_product_can_be_delisted() -> None:
    check_can_delist(ProductStatus.LISTED)
    for status in set(ProductStatus) - {ProductStatus.LISTED}:
        with pytest.raises(CurationRefusal, match="not_listed"):
            check_can_delist(status)


SANCTION = {"at": "2024-09-12T03:00:00+00:00", "note": "LKPP: dokumen TKDN palsu", "revision": 1}


@pytest.mark.parametrize(
    ("sanction", "approved", "lift", "notes", "code"),
    [
        (SANCTION, True, False, "", "sanctioned"),
        (SANCTION, True, True, "", "note_required"),
        (SANCTION, True, True, "  ", "note_required"),
        (SANCTION, False, True, "alasan", "lift_needs_approval"),
        (None, True, True, "alasan", "not_sanctioned"),
        (None, False, True, "alasan", "not_sanctioned"),
    ],
)
def test_a_sanction_is_lifted_only_explicitly_on_approval_with_a_note(
    sanction: dict[str, object] | None, approved: bool, lift: bool, notes: str, code: str
) -> None:
    with pytest.raises(CurationRefusal) as refused:
        check_sanction(sanction, approved=approved, lift=lift, notes=notes)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("sanction", "approved", "lift", "notes"),
    [
        (SANCTION, True, True, "sanksi dicabut, surat LKPP 12/2024"),
        (SANCTION, False, False, ""),  # rejecting a sanctioned product needs no lifting
        (None, True, False, ""),
        (None, False, False, ""),
    ],
)
def test_decisions_that_need_no_lifting_pass(
    sanction: dict[str, object] | None, approved: bool, lift: bool, notes: str
) -> None:
    check_sanction(sanction, approved=approved, lift=lift, notes=notes)


def test_the_refusal_names_when_and_why_the_product_was_sanctioned() -> None:
    with pytest.raises(CurationRefusal, match=r"sanctioned on 2024-09-12 \(LKPP: dokumen TKDN palsu\)"):
        check_sanction(SANCTION, approved=True, lift=False, notes="")
