"""Productive again: a party's population months and productive months from its measured signals (pure).

The rules and their reasoning are in ``docs/rules/monitoring.md``. In short, for a party (a cooperative or a
UMKM of the registry) and a month:

- it is in the month's population when its first registry record is dated on or before the month's end and
  it was not dissolved (closed) before the month's start;
- it is productive when one of its enabled signals overlaps the month (at some point during the month):
  - ``loan``: a repayment on day d of one of its loans opens ``[d, d + window)``, kept only while that loan
    is performing (OJK collectibility 1 or 2; a loan starts at 1 when disbursed);
  - ``sale``: an e-catalog order it sold, delivered or paid on day d, opens ``[d, d + window)``;
  - ``activity``: a survey report ``operating`` on ``as_of`` holds until the party's next report's ``as_of``
    (open-ended when it is the latest); a report not operating closes it.

Nothing here depends on today's date: a month's figure only rises as signals arrive, and a replay of the same
events gives the same months.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from kumkm_monitoring.domain.months import DayInterval, MonthRange, Months, month_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "PERFORMING_GRADES",
    "ActivityReport",
    "Contribution",
    "LoanFacts",
    "PartyFacts",
    "Signal",
    "SignalRules",
    "activity_intervals",
    "contribution",
    "loan_intervals",
    "population_months",
    "productive_months",
    "sale_intervals",
]

PERFORMING_GRADES = frozenset({1, 2})  # lancar, dalam perhatian khusus


class Signal(StrEnum):
    LOAN = "loan"
    SALE = "sale"
    ACTIVITY = "activity"


@dataclass(frozen=True, slots=True)
class SignalRules:
    """The configuration of the rule: the window of a repayment or a sale, and the signals that count."""

    window_days: int = 90
    signals: frozenset[Signal] = frozenset(Signal)

    def __post_init__(self) -> None:
        if self.window_days < 1:
            msg = f"window_days must be at least 1, not {self.window_days}"
            raise ValueError(msg)

    @property
    def enabled(self) -> tuple[Signal, ...]:
        """The enabled signals in their fixed order (loan, sale, activity)."""
        return tuple(s for s in Signal if s in self.signals)


@dataclass(frozen=True, slots=True)
class LoanFacts:
    """One loan of the party: when it was disbursed, its grade changes ``(as_of, grade)`` and its repayment
    days."""

    disbursed_on: date
    grades: Sequence[tuple[date, int]] = ()
    repayments: Sequence[date] = ()


@dataclass(frozen=True, slots=True)
class ActivityReport:
    as_of: date
    operating: bool


@dataclass(frozen=True, slots=True)
class PartyFacts:
    """What the monitor knows of a party: its registry dates and its signals."""

    first_as_of: date  # the earliest registry record
    closed_on: date | None  # the latest record's as_of when it says dissolved or closed
    loans: Sequence[LoanFacts] = ()
    sales: Sequence[date] = ()  # days an order of it was delivered or paid
    activity: Sequence[ActivityReport] = ()


def _windows(days: Iterable[date], window: int) -> list[DayInterval]:
    return [DayInterval(d, d + timedelta(days=window)) for d in sorted(set(days))]


def performing_intervals(loan: LoanFacts) -> list[DayInterval]:
    """The days the loan was performing: grade 1 from disbursement, then each change from its ``as_of``."""
    changes = sorted(loan.grades)
    out: list[DayInterval] = []
    start: date | None = loan.disbursed_on
    for as_of, grade in changes:
        if grade in PERFORMING_GRADES:
            if start is None:
                start = as_of
        elif start is not None:
            out.append(DayInterval(start, as_of))
            start = None
    if start is not None:
        out.append(DayInterval(start))
    return [i for i in out if not i.empty]


def loan_intervals(loan: LoanFacts, window: int) -> list[DayInterval]:
    """Each repayment's window, kept only while the loan is performing."""
    performing = performing_intervals(loan)
    out = []
    for paid in _windows(loan.repayments, window):
        for ok in performing:
            part = paid.intersect(ok)
            if not part.empty:
                out.append(part)
    return out


def sale_intervals(days: Iterable[date], window: int) -> list[DayInterval]:
    return _windows(days, window)


def activity_intervals(reports: Iterable[ActivityReport]) -> list[DayInterval]:
    """An operating report holds from its ``as_of`` until the next report's; the latest one is open-ended.

    Two reports of the same day: the one recorded last stands (the caller passes one per day).
    """
    ordered = sorted(reports, key=lambda r: r.as_of)
    out = []
    for i, report in enumerate(ordered):
        if not report.operating:
            continue
        until = ordered[i + 1].as_of if i + 1 < len(ordered) else None
        interval = DayInterval(report.as_of, until)
        if not interval.empty:
            out.append(interval)
    return out


def population_months(facts: PartyFacts) -> Months:
    end = None if facts.closed_on is None else month_of(facts.closed_on) + 1
    return Months.union([MonthRange(month_of(facts.first_as_of), end)])


def signal_months(facts: PartyFacts, rules: SignalRules) -> dict[Signal, Months]:
    """Each enabled signal's months, before the population is applied."""
    out: dict[Signal, Months] = {}
    if Signal.LOAN in rules.signals:
        intervals = [i for loan in facts.loans for i in loan_intervals(loan, rules.window_days)]
        out[Signal.LOAN] = Months.union(i.months() for i in intervals)
    if Signal.SALE in rules.signals:
        out[Signal.SALE] = Months.union(i.months() for i in sale_intervals(facts.sales, rules.window_days))
    if Signal.ACTIVITY in rules.signals:
        out[Signal.ACTIVITY] = Months.union(i.months() for i in activity_intervals(facts.activity))
    return out


def productive_months(facts: PartyFacts, rules: SignalRules) -> Months:
    """The months of the population in which at least one enabled signal holds."""
    signals = signal_months(facts, rules)
    every = Months.union(r for months in signals.values() for r in months.ranges)
    return every.intersect(population_months(facts))


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one party adds to the pre-aggregated counts: its key and its months."""

    key: tuple[str, str, str, str]  # province, city, district ('' when none), kind
    population: Months = field(default_factory=Months)
    productive: Months = field(default_factory=Months)


def contribution(key: tuple[str, str, str, str], facts: PartyFacts, rules: SignalRules) -> Contribution:
    return Contribution(key, population_months(facts), productive_months(facts, rules))


Delta = dict[tuple[tuple[str, str, str, str], int], tuple[int, int]]


def delta(before: Contribution | None, after: Contribution | None) -> Delta:
    """The change to the counts ``(key, month) -> (d_registered, d_productive)`` when a party's contribution
    goes from ``before`` to ``after`` (either may be None: no contribution). Zero entries are left out."""
    out: dict[tuple[tuple[str, str, str, str], int], list[int]] = {}

    def add(c: Contribution, sign: int) -> None:
        for month, d in c.population.deltas(sign).items():
            out.setdefault((c.key, month), [0, 0])[0] += d
        for month, d in c.productive.deltas(sign).items():
            out.setdefault((c.key, month), [0, 0])[1] += d

    if before is not None:
        add(before, -1)
    if after is not None:
        add(after, 1)
    return {k: (v[0], v[1]) for k, v in sorted(out.items()) if v[0] or v[1]}
