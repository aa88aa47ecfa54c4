"""Repayment allocation, arrears, days past due and collectibility."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from kumkm_loans.domain import grade_for
from tests.unit.loans.factories import KRANGGAN_PRINCIPAL, kranggan_loan

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("days", "grade"),
    [(0, 1), (1, 2), (90, 2), (91, 3), (120, 3), (121, 4), (180, 4), (181, 5), (1000, 5)],
)
def test_ojk_grade_bands(days: int, grade: int) -> None:
    assert grade_for(days) == grade


def test_installment_payments_settle_installments_in_order() -> None:
    loan = kranggan_loan(paid=7)
    assert [i.is_paid for i in loan.installments[:8]] == [True] * 7 + [False]
    assert loan.outstanding_principal == KRANGGAN_PRINCIPAL - sum(i.principal for i in loan.installments[:7])


def test_interest_is_paid_before_principal_and_the_oldest_first() -> None:
    loan = kranggan_loan(paid=0)
    first, second = loan.installments[:2]
    allocation = loan.apply_repayment(Decimal(20_000_000), date(2019, 8, 20))
    assert first.paid_interest == first.interest
    assert first.paid_principal == Decimal(20_000_000) - first.interest
    assert second.paid_interest == 0
    assert allocation.prepaid_principal == 0
    # The rest of the first, then the second: interest first.
    loan.apply_repayment(first.unpaid + Decimal(1_000_000), date(2019, 8, 21))
    assert first.is_paid
    assert second.paid_interest == Decimal(1_000_000)
    assert second.paid_principal == 0


def test_days_past_due_and_grade_follow_the_oldest_unpaid_installment() -> None:
    loan = kranggan_loan(paid=7)  # installment 8 falls due on 2020-02-15
    assert loan.days_past_due(date(2020, 2, 15)) == 0
    assert loan.days_past_due(date(2020, 2, 29)) == 14
    assert loan.grade(date(2020, 2, 29)) == 2
    assert loan.days_past_due(date(2020, 6, 14)) == 120
    assert loan.grade(date(2020, 6, 14)) == 3  # kurang lancar ends at 120 days
    assert loan.grade(date(2020, 6, 15)) == 4
    arrears = loan.arrears(date(2020, 4, 20))
    assert arrears.installments == 3
    assert arrears.interest == sum(i.interest for i in loan.installments[7:10])


def test_an_overpayment_prepays_principal_and_lowers_later_installments() -> None:
    loan = kranggan_loan(paid=0)
    regular = loan.installments[1].amount
    allocation = loan.apply_repayment(loan.installments[0].amount + Decimal(100_000_000), date(2019, 7, 15))
    assert allocation.prepaid_principal == Decimal(100_000_000)
    assert allocation.touched == [0]
    assert loan.installments[0].is_paid
    assert len(loan.installments) == 60  # the tenor stays, the installment falls
    assert loan.installments[1].amount < regular
    assert loan.outstanding_principal == KRANGGAN_PRINCIPAL - loan.installments[0].principal - Decimal(
        100_000_000
    )
    assert sum(i.principal for i in loan.installments) == KRANGGAN_PRINCIPAL - Decimal(100_000_000)


def test_an_early_payment_covers_the_next_installment() -> None:
    loan = kranggan_loan(paid=1)
    allocation = loan.apply_repayment(loan.installments[1].amount, date(2019, 8, 10))
    assert allocation.touched == [1]
    assert loan.installments[1].is_paid
    assert allocation.prepaid_principal == 0


def test_paying_everything_closes_the_loan_and_keeps_the_excess_as_credit() -> None:
    loan = kranggan_loan(paid=0)
    allocation = loan.apply_repayment(KRANGGAN_PRINCIPAL + Decimal(50_000_000), date(2019, 7, 15))
    assert loan.closed
    assert loan.outstanding_principal == 0
    assert allocation.unapplied == Decimal(50_000_000) - loan.installments[0].interest
    assert allocation.principal + allocation.prepaid_principal == KRANGGAN_PRINCIPAL
