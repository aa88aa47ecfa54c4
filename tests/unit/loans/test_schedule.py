"""Schedule mathematics: hypothesis properties for every method and grace kind, and a checked example."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kumkm_loans.domain import add_months, build_schedule, floor_rupiah, round_rupiah
from kumkm_shared.contracts.loans import GraceOn, RepaymentMethod

pytestmark = pytest.mark.unit

METHODS = list(RepaymentMethod)
principals = st.decimals(min_value=Decimal(1), max_value=Decimal(10**13), places=2)
rates = st.decimals(min_value=Decimal(0), max_value=Decimal("0.36"), places=4)
tenors = st.integers(min_value=1, max_value=360)
graces = st.integers(min_value=0, max_value=12)
grace_kinds = st.sampled_from(list(GraceOn))
first_dues = st.dates(min_value=date(2015, 1, 1), max_value=date(2030, 12, 31))


def _check_invariants(schedule, principal: Decimal) -> None:
    rows = schedule.installments
    assert sum(r.principal for r in rows) == principal + schedule.capitalised_interest
    assert all(r.balance >= 0 for r in rows)
    assert all(r.principal >= 0 and r.interest >= 0 for r in rows)
    assert rows[-1].balance == 0
    assert [r.no for r in rows] == list(range(1, len(rows) + 1))
    assert all(a.due_on < b.due_on for a, b in itertools.pairwise(rows))


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=150, deadline=None)
@given(principal=principals, rate=rates, months=tenors, first_due_on=first_dues)
def test_plain_schedule_invariants(method, principal, rate, months, first_due_on) -> None:
    schedule = build_schedule(principal, rate, months, method, first_due_on)
    _check_invariants(schedule, principal)
    assert len(schedule.installments) == months
    assert schedule.maturity_on == add_months(first_due_on, months - 1)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("grace_on", list(GraceOn))
@settings(max_examples=80, deadline=None)
@given(principal=principals, rate=rates, months=tenors, grace=graces)
def test_schedule_with_grace_invariants(method, grace_on, principal, rate, months, grace) -> None:
    schedule = build_schedule(
        principal, rate, months, method, date(2020, 5, 15), grace_months=grace, grace_on=grace_on
    )
    _check_invariants(schedule, principal)
    grace_rows = schedule.installments[:grace]
    assert all(r.principal == 0 for r in grace_rows)
    if grace_on == GraceOn.PRINCIPAL:
        assert schedule.capitalised_interest == 0
    else:
        assert all(r.amount == 0 for r in grace_rows)


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=60, deadline=None)
@given(principal=principals, months=tenors, grace=graces, grace_on=grace_kinds)
def test_zero_rate_means_zero_interest(method, principal, months, grace, grace_on) -> None:
    schedule = build_schedule(
        principal, Decimal(0), months, method, date(2020, 1, 31), grace_months=grace, grace_on=grace_on
    )
    assert schedule.total_interest == 0
    assert schedule.capitalised_interest == 0
    assert schedule.total_principal == principal


def _independent_annuity(principal: int, annual_rate: Fraction, months: int) -> Decimal:
    i = annual_rate / 12
    exact = Fraction(principal) * i * (1 + i) ** months / ((1 + i) ** months - 1)
    return (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(Decimal(1), ROUND_HALF_UP)


def test_annuity_example_matches_an_independent_formula() -> None:
    # The Kranggan loan: Rp2.5 bn over 60 months at 6% a year.
    schedule = build_schedule(
        Decimal(2500000000), Decimal("0.06"), 60, RepaymentMethod.ANNUITY, date(2019, 7, 15)
    )
    expected = _independent_annuity(2_500_000_000, Fraction(6, 100), 60)
    assert expected == Decimal(48_332_004)  # PMT(0.5%, 60, -2.5e9) = 48,332,003.65
    assert schedule.regular_installment == expected
    rows = schedule.installments
    assert all(r.amount == expected for r in rows[:-1])
    assert abs(rows[-1].amount - expected) <= 60  # the last absorbs at most n half-rupiah roundings
    assert rows[0].interest == Decimal(12_500_000)
    assert rows[0].principal == Decimal(35_832_004)
    assert schedule.total_interest == sum(r.amount for r in rows) - Decimal(2_500_000_000)


def test_flat_and_declining_examples() -> None:
    flat = build_schedule(Decimal(1_200_000), Decimal("0.12"), 12, RepaymentMethod.FLAT, date(2021, 1, 10))
    assert {r.amount for r in flat.installments} == {Decimal(112_000)}
    assert flat.total_interest == Decimal(144_000)
    declining = build_schedule(
        Decimal(1_200_000), Decimal("0.12"), 12, RepaymentMethod.DECLINING, date(2021, 1, 10)
    )
    assert [r.interest for r in declining.installments[:3]] == [
        Decimal(12_000),
        Decimal(11_000),
        Decimal(10_000),
    ]
    assert declining.total_interest == Decimal(78_000)


def test_remainder_goes_to_the_last_installment() -> None:
    schedule = build_schedule(Decimal(1000), Decimal(0), 3, RepaymentMethod.DECLINING, date(2021, 1, 10))
    assert [r.principal for r in schedule.installments] == [Decimal(333), Decimal(333), Decimal(334)]


def test_grace_on_principal_and_interest_capitalises() -> None:
    schedule = build_schedule(
        Decimal(1_000_000),
        Decimal("0.12"),
        2,
        RepaymentMethod.ANNUITY,
        date(2021, 1, 10),
        grace_months=2,
        grace_on=GraceOn.PRINCIPAL_AND_INTEREST,
    )
    first, second = schedule.installments[:2]
    assert (first.capitalised_interest, first.balance) == (Decimal(10_000), Decimal(1_010_000))
    assert (second.capitalised_interest, second.balance) == (Decimal(10_100), Decimal(1_020_100))
    assert schedule.total_principal == Decimal(1_020_100)


def test_due_dates_keep_the_day_of_month() -> None:
    assert add_months(date(2020, 1, 31), 1) == date(2020, 2, 29)
    assert add_months(date(2020, 1, 31), 2) == date(2020, 3, 31)
    assert add_months(date(2020, 11, 15), 3) == date(2021, 2, 15)


def test_rupiah_rounding_for_arithmetic() -> None:
    assert round_rupiah(Decimal("2.5")) == Decimal(3)
    assert round_rupiah(Decimal("-2.5")) == Decimal(-3)
    assert round_rupiah(Decimal("2.49")) == Decimal(2)
    assert floor_rupiah(Decimal("2.99")) == Decimal(2)
