"""Schedule mathematics: annuity, flat and declining repayment, with optional grace months.

Rules: ``docs/rules/loans.md``, section "Schedule mathematics".

Amounts are ``Decimal`` rupiah. Every installment is rounded to whole rupiah and the last one absorbs
what rounding left over, so the principal parts always sum exactly to the principal.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from kumkm_shared.contracts.loans import GraceOn, RepaymentMethod

__all__ = [
    "ZERO",
    "Installment",
    "Schedule",
    "add_months",
    "build_schedule",
    "floor_rupiah",
    "monthly_rate",
    "round_rupiah",
]

ZERO = Decimal(0)
_WHOLE = Decimal(1)
_MONTHS_A_YEAR = 12


def round_rupiah(amount: Decimal) -> Decimal:
    """``amount`` rounded half up to whole rupiah (for arithmetic; display uses ``format_rupiah``)."""
    return amount.quantize(_WHOLE, rounding=ROUND_HALF_UP)


def floor_rupiah(amount: Decimal) -> Decimal:
    """``amount`` rounded down to whole rupiah: n-1 equal principal parts never exceed the principal."""
    return amount.quantize(_WHOLE, rounding=ROUND_FLOOR)


def monthly_rate(annual_rate: Decimal) -> Decimal:
    return annual_rate / _MONTHS_A_YEAR


def add_months(anchor: date, months: int) -> date:
    """``anchor`` moved by ``months``, keeping its day of the month (clamped to the month's last day)."""
    index = anchor.year * 12 + anchor.month - 1 + months
    year, month = divmod(index, 12)
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return date(year, month + 1, day)


@dataclass
class Installment:
    """One line of a schedule, and what has been paid against it."""

    no: int
    due_on: date
    principal: Decimal
    interest: Decimal
    balance: Decimal  # principal still owed after this installment is paid
    capitalised_interest: Decimal = ZERO  # interest added to the balance (grace on principal and interest)
    grace: bool = False
    paid_principal: Decimal = ZERO
    paid_interest: Decimal = ZERO
    overdue_announced: bool = False
    version: int = 0  # the schedule version the line belongs to

    @property
    def amount(self) -> Decimal:
        return self.principal + self.interest

    @property
    def unpaid_principal(self) -> Decimal:
        return self.principal - self.paid_principal

    @property
    def unpaid_interest(self) -> Decimal:
        return self.interest - self.paid_interest

    @property
    def unpaid(self) -> Decimal:
        return self.unpaid_principal + self.unpaid_interest

    @property
    def is_paid(self) -> bool:
        return self.unpaid <= 0

    @property
    def is_untouched(self) -> bool:
        return self.paid_principal == 0 and self.paid_interest == 0


@dataclass
class Schedule:
    installments: list[Installment]
    annual_rate: Decimal
    grace_months: int = 0
    regular_installment: Decimal = ZERO  # the amount of a regular (post-grace) installment
    principal: Decimal = ZERO  # what the schedule amortises, before any capitalised interest

    @property
    def total_interest(self) -> Decimal:
        return sum((i.interest for i in self.installments), ZERO)

    @property
    def total_principal(self) -> Decimal:
        return sum((i.principal for i in self.installments), ZERO)

    @property
    def capitalised_interest(self) -> Decimal:
        return sum((i.capitalised_interest for i in self.installments), ZERO)

    @property
    def first_due_on(self) -> date:
        return self.installments[0].due_on

    @property
    def maturity_on(self) -> date:
        return self.installments[-1].due_on


def _annuity_payment(balance: Decimal, rate: Decimal, months: int) -> Decimal:
    if rate == 0:
        return balance / months
    growth = (1 + rate) ** months
    return balance * rate * growth / (growth - 1)


def build_schedule(
    principal: Decimal,
    annual_rate: Decimal,
    months: int,
    method: RepaymentMethod,
    first_due_on: date,
    *,
    grace_months: int = 0,
    grace_on: GraceOn = GraceOn.PRINCIPAL,
    first_no: int = 1,
) -> Schedule:
    """A schedule of ``grace_months`` grace installments, then ``months`` amortising installments.

    - annuity: A = P·i(1+i)^n / ((1+i)^n - 1), rounded; interest on the balance, principal the rest;
    - flat: P/n principal (rounded down) plus P·i interest each month;
    - declining: P/n principal (rounded down) plus interest on the balance.

    Grace on principal pays interest only; grace on principal and interest pays nothing and capitalises
    the month's interest into the balance.
    """
    if months < 1:
        raise ValueError(f"a schedule needs at least one amortising installment, got {months}")
    if principal < 0:
        raise ValueError(f"principal must not be negative, got {principal}")
    rate = monthly_rate(annual_rate)
    rows: list[Installment] = []
    balance = principal
    for k in range(grace_months):
        interest = round_rupiah(balance * rate)
        due_on = add_months(first_due_on, k)
        if grace_on == GraceOn.PRINCIPAL_AND_INTEREST:
            balance += interest
            rows.append(Installment(first_no + k, due_on, ZERO, ZERO, balance, interest, grace=True))
        else:
            rows.append(Installment(first_no + k, due_on, ZERO, interest, balance, grace=True))
    amortised = balance
    regular = _regular_amount(amortised, rate, months, method)
    for k in range(months):
        due_on = add_months(first_due_on, grace_months + k)
        interest = round_rupiah((amortised if method == RepaymentMethod.FLAT else balance) * rate)
        if k == months - 1:
            part = balance
        elif method == RepaymentMethod.ANNUITY:
            part = min(max(regular - interest, ZERO), balance)
        else:
            part = min(floor_rupiah(amortised / months), balance)
        balance -= part
        rows.append(Installment(first_no + grace_months + k, due_on, part, interest, balance))
    first_regular = rows[grace_months]
    return Schedule(
        installments=rows,
        annual_rate=annual_rate,
        grace_months=grace_months,
        regular_installment=regular if months > 1 else first_regular.amount,
        principal=principal,
    )


def _regular_amount(balance: Decimal, rate: Decimal, months: int, method: RepaymentMethod) -> Decimal:
    if method == RepaymentMethod.ANNUITY:
        return round_rupiah(_annuity_payment(balance, rate, months))
    part = floor_rupiah(balance / months)
    return part + round_rupiah(balance * rate)
