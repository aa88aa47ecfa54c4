"""Plain domain objects for the unit tests."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from kumkm_loans.domain import Loan, build_schedule
from kumkm_shared.contracts.loans import RepaymentMethod

KRANGGAN_PRINCIPAL = Decimal(2_500_000_000)


def kranggan_loan(method: RepaymentMethod = RepaymentMethod.ANNUITY, paid: int = 7) -> Loan:
    """Rp2.5 bn, 60 months at 6% from 2019-07-15; the first ``paid`` installments paid on their due date."""
    schedule = build_schedule(KRANGGAN_PRINCIPAL, Decimal("0.06"), 60, method, date(2019, 7, 15))
    loan = Loan("LN-KRANGGAN", Decimal("0.06"), method, schedule.installments)
    for inst in list(loan.installments[:paid]):
        loan.apply_repayment(inst.amount, inst.due_on)
    return loan
