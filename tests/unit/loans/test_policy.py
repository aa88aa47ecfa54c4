"""The restructuring policy, one case per rule, each with its reason code."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from kumkm_loans.domain import (
    LoanPosition,
    Outcome,
    PolicyLimits,
    RequestFacts,
    RestructuringPolicy,
    Terms,
)
from kumkm_shared.contracts.loans import RestructuringReason

pytestmark = pytest.mark.unit

POSITION = LoanPosition(
    outstanding_principal=Decimal(2_250_000_000),
    principal_arrears=Decimal(110_000_000),
    interest_arrears=Decimal(34_000_000),
    remaining_installments=50,
    unpaid_interest=Decimal(300_000_000),
    first_due_on=date(2019, 7, 15),
    maturity_on=date(2024, 6, 15),
)
ELIGIBLE = RequestFacts(
    loan_active=True,
    reason=RestructuringReason.COVID19_DIRECT,
    requested_on=date(2020, 4, 20),
    reschedule_from=date(2020, 5, 15),
    grade_at_cutoff=2,
    open_requests=0,
    prior_restructurings=0,
    current_rate=Decimal("0.06"),
    position=POSITION,
    terms=Terms(grace_months=6, extra_months=12),
)

CASES = [
    ("eligible", {}, Outcome.APPROVED, []),
    ("covid19_indirect", {"reason": RestructuringReason.COVID19_INDIRECT}, Outcome.APPROVED, []),
    ("grade_3_at_cutoff", {"grade_at_cutoff": 3}, Outcome.APPROVED, []),
    ("twice_before", {"prior_restructurings": 2}, Outcome.APPROVED, []),
    ("limits_exactly", {"terms": Terms(grace_months=12, extra_months=24)}, Outcome.APPROVED, []),
    ("same_rate", {"terms": Terms(new_annual_rate=Decimal("0.06"))}, Outcome.APPROVED, []),
    ("window_first_day", {"requested_on": date(2020, 3, 16)}, Outcome.APPROVED, []),
    (
        "window_last_day",
        {"requested_on": date(2022, 3, 31), "reschedule_from": date(2022, 4, 15)},
        Outcome.APPROVED,
        [],
    ),
    ("loan_not_active", {"loan_active": False}, Outcome.REJECTED, ["loan_not_active"]),
    ("before_window", {"requested_on": date(2020, 3, 15)}, Outcome.REJECTED, ["outside_policy_window"]),
    (
        "after_window",
        {"requested_on": date(2022, 4, 1), "reschedule_from": date(2022, 4, 15)},
        Outcome.REJECTED,
        ["outside_policy_window"],
    ),
    ("grade_4_at_cutoff", {"grade_at_cutoff": 4}, Outcome.REJECTED, ["collectibility_at_cutoff"]),
    ("grade_5_at_cutoff", {"grade_at_cutoff": 5}, Outcome.REJECTED, ["collectibility_at_cutoff"]),
    ("open_request", {"open_requests": 1}, Outcome.REJECTED, ["open_request_exists"]),
    ("three_before", {"prior_restructurings": 3}, Outcome.REJECTED, ["too_many_restructurings"]),
    ("grace_13", {"terms": Terms(grace_months=13)}, Outcome.REJECTED, ["grace_too_long"]),
    ("extension_25", {"terms": Terms(extra_months=25)}, Outcome.REJECTED, ["extension_too_long"]),
    (
        "higher_rate",
        {"terms": Terms(new_annual_rate=Decimal("0.07"))},
        Outcome.REJECTED,
        ["rate_above_current"],
    ),
    (
        "reschedule_before_request",
        {"reschedule_from": date(2020, 4, 15)},
        Outcome.REJECTED,
        ["reschedule_from_invalid"],
    ),
    (
        "reschedule_after_maturity",
        {"reschedule_from": date(2024, 7, 15)},
        Outcome.REJECTED,
        ["reschedule_from_invalid"],
    ),
    (
        "principal_waiver_too_big",
        {"terms": Terms(principal_waiver=Decimal(110_000_001))},
        Outcome.REJECTED,
        ["principal_waiver_exceeds_arrears"],
    ),
    (
        "interest_waiver_too_big",
        {"terms": Terms(interest_waiver=Decimal(34_000_001))},
        Outcome.REJECTED,
        ["interest_waiver_exceeds_arrears"],
    ),
    ("other_reason", {"reason": RestructuringReason.OTHER}, Outcome.REFERRED, ["reason_not_covid19"]),
    (
        "above_limit",
        {"position": replace(POSITION, outstanding_principal=Decimal(10_000_000_001))},
        Outcome.REFERRED,
        ["above_auto_approval_limit"],
    ),
    (
        "at_limit",
        {"position": replace(POSITION, outstanding_principal=Decimal(10_000_000_000))},
        Outcome.APPROVED,
        [],
    ),
    (
        "rejection_beats_referral",
        {"reason": RestructuringReason.OTHER, "grade_at_cutoff": 5},
        Outcome.REJECTED,
        ["collectibility_at_cutoff"],
    ),
    (
        "every_rejection_is_listed",
        {"loan_active": False, "open_requests": 1},
        Outcome.REJECTED,
        ["loan_not_active", "open_request_exists"],
    ),
]


@pytest.mark.parametrize(("case", "changes", "outcome", "codes"), CASES, ids=[c[0] for c in CASES])
def test_policy_rule(case: str, changes: dict[str, object], outcome: Outcome, codes: list[str]) -> None:
    assessment = RestructuringPolicy().assess(replace(ELIGIBLE, **changes))  # type: ignore[arg-type]
    assert assessment.outcome == outcome, case
    assert assessment.codes == codes
    for reason in assessment.reasons:
        assert len(reason.text_id) <= 200  # the contract's Reason texts are at most 200 characters
        assert len(reason.text_en) <= 200
        assert reason.text_id
        assert reason.text_en
        assert reason.text_id != reason.text_en


def test_every_threshold_comes_from_the_limits() -> None:
    strict = PolicyLimits(
        auto_approval_limit=Decimal(1_000_000_000),
        max_grace_months=3,
        max_extension_months=6,
        max_prior_restructurings=0,
        max_grade_at_cutoff=1,
        window_start=date(2020, 5, 1),
    )
    assessment = RestructuringPolicy(strict).assess(replace(ELIGIBLE, prior_restructurings=1))
    assert assessment.codes == [
        "outside_policy_window",
        "collectibility_at_cutoff",
        "too_many_restructurings",
        "grace_too_long",
        "extension_too_long",
    ]
    referred = RestructuringPolicy(strict).assess(
        replace(ELIGIBLE, grade_at_cutoff=1, terms=Terms(), requested_on=date(2020, 5, 2))
    )
    assert referred.outcome == Outcome.REFERRED
    assert referred.codes == ["above_auto_approval_limit"]


def test_reason_texts_show_rupiah_with_the_one_formatter_in_each_language() -> None:
    above = RestructuringPolicy().assess(
        replace(ELIGIBLE, position=replace(POSITION, outstanding_principal=Decimal("12000000000.50")))
    )
    [reason] = above.reasons
    assert reason.text_id.startswith("Sisa pokok Rp12.000.000.000,50 melebihi")
    assert "otomatis Rp10.000.000.000;" in reason.text_id
    assert "principal of Rp12,000,000,000.50 is above the auto-approval limit of Rp10,000,000,000;" in (
        reason.text_en
    )
