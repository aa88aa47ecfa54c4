"""Restructuring terms and the new schedule they give (``docs/rules/loans.md``, "Schedule mathematics").

The new schedule starts at ``reschedule_from`` and is built from:

- the outstanding principal (which includes principal arrears), minus any principal arrears waived;
- plus the interest arrears (minus any waiver) when arrears capitalisation is asked;
- then the grace months, interest-only or with the interest capitalised;
- then the remaining tenor (installments due on or after ``reschedule_from``) plus the extra months,
  at the new rate.

Interest arrears that are neither waived nor capitalised stay owed: they are added to the first
installment of the new schedule that asks for a payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kumkm_loans.domain.schedule import ZERO, Schedule, build_schedule
from kumkm_shared.contracts.loans import (
    ArrearsCapitalization,
    GraceOn,
    GracePeriod,
    InterestArrearsReduction,
    PrincipalArrearsReduction,
    RateReduction,
    Scheme,
    TenorExtension,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date
    from decimal import Decimal

    from kumkm_loans.domain.loan import Loan

__all__ = ["LoanPosition", "RestructuringPlan", "Terms", "plan_restructuring", "position_at"]


@dataclass(frozen=True, slots=True)
class Terms:
    """A proposal, flattened: what each scheme asks for (0 or None when the scheme is absent)."""

    extra_months: int = 0
    grace_months: int = 0
    grace_on: GraceOn = GraceOn.PRINCIPAL
    new_annual_rate: Decimal | None = None
    capitalise_arrears: bool = False
    principal_waiver: Decimal = ZERO
    interest_waiver: Decimal = ZERO

    @classmethod
    def from_schemes(cls, schemes: Iterable[Scheme]) -> Terms:
        values: dict[str, object] = {}
        for scheme in schemes:
            match scheme:
                case TenorExtension():
                    values["extra_months"] = scheme.extra_months
                case GracePeriod():
                    values["grace_months"] = scheme.months
                    values["grace_on"] = scheme.on
                case RateReduction():
                    values["new_annual_rate"] = scheme.new_annual_rate
                case ArrearsCapitalization():
                    values["capitalise_arrears"] = True
                case PrincipalArrearsReduction():
                    values["principal_waiver"] = scheme.amount
                case InterestArrearsReduction():
                    values["interest_waiver"] = scheme.amount
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class LoanPosition:
    """The loan as seen from ``reschedule_from``: what is owed, what is in arrears, what remains."""

    outstanding_principal: Decimal
    principal_arrears: Decimal
    interest_arrears: Decimal
    remaining_installments: int  # installments due on or after reschedule_from
    unpaid_interest: Decimal  # interest still to pay under the current schedule from here on
    first_due_on: date
    maturity_on: date


def position_at(loan: Loan, reschedule_from: date) -> LoanPosition:
    arrears = loan.arrears(reschedule_from)
    replaced = [i for i in loan.installments if i.due_on >= reschedule_from or not i.is_paid]
    return LoanPosition(
        outstanding_principal=loan.outstanding_principal,
        principal_arrears=arrears.principal,
        interest_arrears=arrears.interest,
        remaining_installments=sum(1 for i in loan.installments if i.due_on >= reschedule_from),
        unpaid_interest=sum((i.unpaid_interest for i in replaced), ZERO),
        first_due_on=loan.installments[0].due_on,
        maturity_on=loan.maturity_on,
    )


@dataclass(frozen=True, slots=True)
class RestructuringPlan:
    schedule: Schedule
    kept: int  # installments of the current schedule that stay (paid before reschedule_from)
    base_principal: Decimal  # what the new schedule amortises, before capitalised grace interest
    carried_interest: Decimal  # interest arrears added to the first paying installment
    total_interest_before: Decimal
    total_interest_after: Decimal


def plan_restructuring(loan: Loan, terms: Terms, reschedule_from: date) -> RestructuringPlan:
    """The new schedule for ``terms``; the caller checks eligibility and limits first (the policy)."""
    pos = position_at(loan, reschedule_from)
    if pos.remaining_installments < 1:
        raise ValueError(
            f"reschedule_from {reschedule_from} is after the last installment ({pos.maturity_on})"
        )
    principal_waiver = min(terms.principal_waiver, pos.principal_arrears)
    interest_left = pos.interest_arrears - min(terms.interest_waiver, pos.interest_arrears)
    base = pos.outstanding_principal - principal_waiver
    carried = ZERO
    if terms.capitalise_arrears:
        base += interest_left
    else:
        carried = interest_left
    rate = terms.new_annual_rate if terms.new_annual_rate is not None else loan.annual_rate
    kept = sum(1 for i in loan.installments if i.due_on < reschedule_from and i.is_paid)
    schedule = build_schedule(
        base,
        rate,
        pos.remaining_installments + terms.extra_months,
        loan.method,
        reschedule_from,
        grace_months=terms.grace_months,
        grace_on=terms.grace_on,
        first_no=kept + 1,
    )
    if carried > 0:
        first_paying = next(
            (i for i in schedule.installments if not (i.grace and i.capitalised_interest > 0)),
            schedule.installments[-1],
        )
        first_paying.interest += carried
    return RestructuringPlan(
        schedule=schedule,
        kept=kept,
        base_principal=base,
        carried_interest=carried,
        total_interest_before=pos.unpaid_interest,
        total_interest_after=schedule.total_interest,
    )
