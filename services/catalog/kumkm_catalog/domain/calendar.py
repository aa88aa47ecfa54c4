"""The business-day calendar: weekends and Indonesian public holidays are not working days.

Rules: ``docs/rules/catalog.md``, section "Confirmation deadline" (which days count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

import holidays

from kumkm_shared.clock import JAKARTA

__all__ = [
    "JAKARTA",
    "BusinessCalendar",
    "end_of_business_date",
    "jakarta_date",
    "moment_on",
    "start_of_business_date",
]

SATURDAY = 5


@lru_cache(maxsize=64)
def _national_holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days in Asia/Jakarta: Monday to Friday, minus national and configured extra holidays.

    ``extra_holidays`` carries what the ``holidays`` package does not know, such as cuti bersama (collective
    leave days) decreed each year.
    """

    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    national: bool = True
    country: str = "ID"

    def load(self, *years: int) -> None:
        """Read these years' national holidays now: the ``holidays`` package imports its country data on
        first use, which held the first order placed after a start for about a second."""
        if self.national:
            for year in years:
                _national_holidays(self.country, year)

    def is_holiday(self, day: date) -> bool:
        if day in self.extra_holidays:
            return True
        return self.national and day in _national_holidays(self.country, day.year)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < SATURDAY and not self.is_holiday(day)

    def add_working_days(self, start: date, days: int) -> date:
        """The date of the ``days``-th working day after ``start`` (``start`` itself never counts)."""
        if days < 0:
            raise ValueError("days must not be negative")
        day, counted = start, 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return day


def jakarta_date(moment: datetime) -> date:
    """The business date (Asia/Jakarta) of a UTC moment."""
    return moment.astimezone(JAKARTA).date()


def end_of_business_date(day: date) -> datetime:
    """The first instant after ``day`` in Asia/Jakarta, in UTC: a deadline "by the end of ``day``"."""
    return datetime.combine(day + timedelta(days=1), time(0), JAKARTA).astimezone(UTC)


def start_of_business_date(day: date) -> datetime:
    """The first instant of ``day`` in Asia/Jakarta, in UTC."""
    return datetime.combine(day, time(0), JAKARTA).astimezone(UTC)


def moment_on(day: date, now: datetime) -> datetime:
    """When something done "on business date ``day``" happens: ``now`` if it falls on ``day``, else the start
    of ``day`` (a catch-up run or a simulation of another day)."""
    return now if jakarta_date(now) == day else start_of_business_date(day)
