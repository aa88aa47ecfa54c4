"""A loan's repayment state: repayment allocation, arrears, and prepayment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kumkm_loans.domain.collectibility import days_past_due, grade_for
from kumkm_loans.domain.schedule import ZERO, Installment, build_schedule

if TYPE_CHECKING:
    from datetime import date
    from decimal import Decimal

    from kumkm_shared.contracts.loans import RepaymentMethod

__all__ = ["Arrears", "Loan", "RepaymentAllocation"]


@dataclass(frozen=True, slots=True)
class Arrears:
    principal: Decimal
    interest: Decimal
    installments: int

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest


@dataclass
class RepaymentAllocation:
    principal: Decimal = ZERO
    interest: Decimal = ZERO
    prepaid_principal: Decimal = ZERO
    unapplied: Decimal = ZERO
    touched: list[int] = field(default_factory=list)  # indexes into Loan.installments
    reamortised_from: int | None = None  # index of the first installment rebuilt by a prepayment


@dataclass
class Loan:
    """The current schedule of one loan; ``installments`` are in due order, superseded ones excluded."""

    loan_id: str
    annual_rate: Decimal
    method: RepaymentMethod
    installments: list[Installment]
    schedule_version: int = 0
    restructure_count: int = 0
    collectibility: int = 1
    closed: bool = False

    @property
    def outstanding_principal(self) -> Decimal:
        return sum((i.unpaid_principal for i in self.installments), ZERO)

    @property
    def maturity_on(self) -> date:
        return self.installments[-1].due_on

    def arrears(self, as_of: date) -> Arrears:
        """What fell due before ``as_of`` and is unpaid."""
        due = [i for i in self.installments if i.due_on < as_of and not i.is_paid]
        return Arrears(
            principal=sum((i.unpaid_principal for i in due), ZERO),
            interest=sum((i.unpaid_interest for i in due), ZERO),
            installments=len(due),
        )

    def days_past_due(self, as_of: date) -> int:
        return days_past_due(self.installments, as_of)

    def grade(self, as_of: date) -> int:
        return grade_for(self.days_past_due(as_of))

    def apply_repayment(self, amount: Decimal, paid_on: date) -> RepaymentAllocation:
        """Allocate ``amount`` to the oldest unpaid installments, interest before principal.

        The payment covers everything due by ``paid_on``; when nothing is due it covers the next
        installment (paying a few days early is normal). What is left prepays principal: the later
        installments are re-amortised over the same dates, so the installment falls and the tenor stays.
        Money beyond the whole principal is kept as unapplied credit.
        """
        result = RepaymentAllocation()
        left = amount
        for index, inst in enumerate(self.installments):
            if left <= 0:
                break
            if inst.is_paid:
                continue
            if inst.due_on > paid_on and result.touched:
                break  # an early payment covers the next installment only when nothing was due
            interest = min(left, inst.unpaid_interest)
            inst.paid_interest += interest
            left -= interest
            principal = min(left, inst.unpaid_principal)
            inst.paid_principal += principal
            left -= principal
            result.interest += interest
            result.principal += principal
            result.touched.append(index)
        if left > 0:
            self._prepay(left, result)
        self.closed = self.outstanding_principal == 0 and all(i.is_paid for i in self.installments)
        return result

    def _prepay(self, amount: Decimal, result: RepaymentAllocation) -> None:
        start = len(self.installments)
        while (
            start > 0
            and self.installments[start - 1].is_untouched
            and not self.installments[start - 1].is_paid
        ):
            start -= 1
        future = self.installments[start:]
        owed = sum((i.principal for i in future), ZERO)
        if not future or owed == 0:
            result.unapplied += amount
            return
        if amount >= owed:
            # Everything still scheduled is repaid: the loan ends with the last installment already touched.
            del self.installments[start:]
            result.prepaid_principal += owed
            result.unapplied += amount - owed
            result.reamortised_from = start
            return
        rebuilt = build_schedule(
            owed - amount, self.annual_rate, len(future), self.method, future[0].due_on, first_no=future[0].no
        )
        for old, new in zip(future, rebuilt.installments, strict=True):
            new.due_on = old.due_on  # keep the agreed dates (they may have been clamped differently)
        self.installments[start:] = rebuilt.installments
        result.prepaid_principal += amount
        result.reamortised_from = start
