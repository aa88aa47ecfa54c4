"""The confirmation deadline: one rule for the accepted order's deadline, a late confirmation and the tick."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from kumkm_catalog.domain.calendar import BusinessCalendar
from kumkm_catalog.domain.deadline import (
    Deadline,
    confirmation_deadline,
    is_confirmation_late,
    last_missed_deadline,
)

pytestmark = pytest.mark.unit

CAL = BusinessCalendar()
# Thursday 12 September 2024, 10:00 in Jakarta. Monday 16 September is a public holiday (Maulid Nabi).
THURSDAY = datetime(2024, 9, 12, 3, 0, tzinfo=UTC)
WEDNESDAY_18 = Deadline(date(2024, 9, 18), datetime(2024, 9, 18, 17, 0, tzinfo=UTC))


def test_three_working_days_after_the_business_date_of_acceptance() -> None:
    assert confirmation_deadline(THURSDAY, CAL, 3) == WEDNESDAY_18


def test_the_acceptance_day_is_the_business_date_in_jakarta() -> None:
    # 18:30 UTC on Thursday is 01:30 on Friday in Jakarta: counting starts on Saturday.
    late_thursday = datetime(2024, 9, 12, 18, 30, tzinfo=UTC)
    assert confirmation_deadline(late_thursday, CAL, 3).date == date(2024, 9, 19)


def test_the_window_is_configurable() -> None:
    assert confirmation_deadline(THURSDAY, CAL, 1).date == date(2024, 9, 13)
    assert confirmation_deadline(THURSDAY, BusinessCalendar(national=False), 3).date == date(2024, 9, 17)


def test_a_confirmation_is_late_from_the_first_instant_after_the_deadline_date_in_jakarta() -> None:
    assert not is_confirmation_late(WEDNESDAY_18, datetime(2024, 9, 12, 4, 0, tzinfo=UTC))
    assert not is_confirmation_late(WEDNESDAY_18, WEDNESDAY_18.confirm_by - timedelta(microseconds=1))
    assert is_confirmation_late(WEDNESDAY_18, WEDNESDAY_18.confirm_by)
    assert is_confirmation_late(WEDNESDAY_18, datetime(2024, 9, 19, 2, 0, tzinfo=UTC))


def test_an_order_is_overdue_from_the_business_date_after_its_deadline() -> None:
    assert last_missed_deadline(date(2024, 9, 18)) < WEDNESDAY_18.date
    assert last_missed_deadline(date(2024, 9, 19)) == WEDNESDAY_18.date


@pytest.mark.parametrize("day", [date(2024, 9, d) for d in range(12, 24)])
def test_overdue_on_a_day_exactly_when_a_confirmation_that_day_is_late(day: date) -> None:
    noon_in_jakarta = datetime(day.year, day.month, day.day, 5, 0, tzinfo=UTC)
    overdue = WEDNESDAY_18.date <= last_missed_deadline(day)
    assert overdue == is_confirmation_late(WEDNESDAY_18, noon_in_jakarta)
