"""The business-day calendar: weekends, Indonesian public holidays and configured extra dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kumkm_catalog.domain.calendar import BusinessCalendar, end_of_business_date, jakarta_date

pytestmark = pytest.mark.unit

CAL = BusinessCalendar()


def test_weekends_are_not_working_days() -> None:
    assert CAL.is_working_day(date(2024, 9, 13))  # Friday
    assert not CAL.is_working_day(date(2024, 9, 14))  # Saturday
    assert not CAL.is_working_day(date(2024, 9, 15))  # Sunday


def test_indonesian_public_holidays_are_not_working_days() -> None:
    assert not CAL.is_working_day(date(2024, 9, 16))  # Maulid Nabi (Prophet's birthday), a Monday
    assert not CAL.is_working_day(date(2024, 12, 25))  # Christmas, a Wednesday
    assert not CAL.is_working_day(date(2025, 3, 31))  # Idul Fitri


def test_three_working_days_across_a_weekend_and_a_holiday() -> None:
    # Accepted Thursday 12 Sep 2024: Fri 13, (Sat, Sun, Mon 16 Maulid Nabi), Tue 17, Wed 18.
    assert CAL.add_working_days(date(2024, 9, 12), 3) == date(2024, 9, 18)


def test_counting_starts_the_day_after_even_on_a_weekend() -> None:
    assert CAL.add_working_days(date(2024, 9, 14), 3) == date(2024, 9, 19)  # Saturday -> Mon is a holiday
    assert CAL.add_working_days(date(2024, 9, 10), 0) == date(2024, 9, 10)


def test_extra_holidays_such_as_cuti_bersama_are_skipped() -> None:
    cal = BusinessCalendar(extra_holidays=frozenset({date(2024, 9, 17)}))
    assert not cal.is_working_day(date(2024, 9, 17))
    assert cal.add_working_days(date(2024, 9, 12), 3) == date(2024, 9, 19)


def test_national_holidays_can_be_switched_off() -> None:
    cal = BusinessCalendar(national=False)
    assert cal.is_working_day(date(2024, 9, 16))
    assert cal.add_working_days(date(2024, 9, 12), 3) == date(2024, 9, 17)


def test_negative_days_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        CAL.add_working_days(date(2024, 9, 12), -1)


def test_business_dates_are_in_jakarta_time() -> None:
    # 18:30 UTC is 01:30 the next day in Jakarta (UTC+7).
    assert jakarta_date(datetime(2024, 9, 12, 18, 30, tzinfo=UTC)) == date(2024, 9, 13)
    assert end_of_business_date(date(2024, 9, 18)) == datetime(2024, 9, 18, 17, 0, tzinfo=UTC)
