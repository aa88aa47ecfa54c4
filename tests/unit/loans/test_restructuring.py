"""Schedule recalculation for every scheme and combination, by property and by example."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kumkm_loans.domain import Terms, plan_restructuring, position_at
from kumkm_shared.contracts.loans import (
    ArrearsCapitalization,
    GraceOn,
    GracePeriod,
    InterestArrearsReduction,
    PrincipalArrearsReduction,
    RateReduction,
    RepaymentMethod,
    TenorExtension,
)
from tests.unit.loans.factories import kranggan_loan

pytestmark = pytest.mark.unit

RESCHEDULE_FROM = date(2020, 5, 15)  # installments 8-10 (Feb-Apr 2020) are in arrears


@st.composite
def terms(draw: st.DrawFn) -> Terms:
    return Terms(
        extra_months=draw(st.integers(0, 24)),
        grace_months=draw(st.integers(0, 12)),
        grace_on=draw(st.sampled_from(list(GraceOn))),
        new_annual_rate=draw(st.none() | st.decimals(Decimal(0), Decimal("0.06"), places=4)),
        capitalise_arrears=draw(st.booleans()),
        principal_waiver=draw(st.decimals(Decimal(0), Decimal(150_000_000), places=0)),
        interest_waiver=draw(st.decimals(Decimal(0), Decimal(50_000_000), places=0)),
    )


@pytest.mark.parametrize("method", list(RepaymentMethod))
@settings(max_examples=60, deadline=None)
@given(t=terms(), paid=st.integers(0, 20))
def test_restructured_schedule_invariants(method, t, paid) -> None:
    loan = kranggan_loan(method, paid=paid)
    pos = position_at(loan, RESCHEDULE_FROM)
    plan = plan_restructuring(loan, t, RESCHEDULE_FROM)
    rows = plan.schedule.installments
    waived = min(t.principal_waiver, pos.principal_arrears)
    interest_left = pos.interest_arrears - min(t.interest_waiver, pos.interest_arrears)
    expected_base = pos.outstanding_principal - waived + (interest_left if t.capitalise_arrears else 0)
    assert plan.base_principal == expected_base
    assert sum(r.principal for r in rows) == expected_base + plan.schedule.capitalised_interest
    assert all(r.balance >= 0 for r in rows)
    assert rows[-1].balance == 0
    assert len(rows) == t.grace_months + pos.remaining_installments + t.extra_months
    assert rows[0].due_on == RESCHEDULE_FROM
    assert plan.carried_interest == (0 if t.capitalise_arrears else interest_left)
    if t.new_annual_rate == 0 and plan.carried_interest == 0:
        assert plan.schedule.total_interest == 0


def test_kranggan_six_months_grace_on_principal_and_twelve_more_months() -> None:
    loan = kranggan_loan(paid=7)
    t = Terms.from_schemes([GracePeriod(months=6, on=GraceOn.PRINCIPAL), TenorExtension(extra_months=12)])
    pos = position_at(loan, RESCHEDULE_FROM)
    plan = plan_restructuring(loan, t, RESCHEDULE_FROM)
    rows = plan.schedule.installments
    assert pos.remaining_installments == 50  # May 2020 .. June 2024
    assert len(rows) == 6 + 50 + 12
    assert plan.kept == 7
    assert rows[0].no == 8
    assert rows[-1].due_on == date(2025, 12, 15)
    assert all(r.principal == 0 for r in rows[:6])
    # Interest arrears (Feb-Apr) are not capitalised: they are owed with the first installment.
    assert plan.carried_interest == pos.interest_arrears > 0
    assert (
        rows[0].interest
        == (plan.base_principal * Decimal("0.005")).quantize(Decimal(1)) + pos.interest_arrears
    )
    assert all(r.interest == (plan.base_principal * Decimal("0.005")).quantize(Decimal(1)) for r in rows[1:6])
    assert plan.base_principal == loan.outstanding_principal
    assert sum(r.principal for r in rows) == loan.outstanding_principal
    assert len({r.amount for r in rows[6:-1]}) == 1  # one regular annuity installment


def test_every_scheme_together() -> None:
    loan = kranggan_loan(paid=7)
    pos = position_at(loan, RESCHEDULE_FROM)
    t = Terms.from_schemes(
        [
            TenorExtension(extra_months=24),
            GracePeriod(months=12, on=GraceOn.PRINCIPAL_AND_INTEREST),
            RateReduction(new_annual_rate=Decimal("0.03")),
            ArrearsCapitalization(),
            PrincipalArrearsReduction(amount=Decimal(10_000_000)),
            InterestArrearsReduction(amount=Decimal(5_000_000)),
        ]
    )
    plan = plan_restructuring(loan, t, RESCHEDULE_FROM)
    assert plan.base_principal == pos.outstanding_principal - 10_000_000 + pos.interest_arrears - 5_000_000
    assert plan.carried_interest == 0
    assert plan.schedule.annual_rate == Decimal("0.03")
    assert len(plan.schedule.installments) == 12 + 50 + 24
    assert all(r.amount == 0 for r in plan.schedule.installments[:12])
    assert plan.schedule.total_principal == plan.base_principal + plan.schedule.capitalised_interest


def test_rate_reduction_alone_lowers_the_interest() -> None:
    loan = kranggan_loan(paid=7)
    plan = plan_restructuring(loan, Terms(new_annual_rate=Decimal("0.03")), RESCHEDULE_FROM)
    assert plan.total_interest_after < plan.total_interest_before
    assert len(plan.schedule.installments) == 50
