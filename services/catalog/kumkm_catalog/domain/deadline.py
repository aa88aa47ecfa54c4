"""The seller's confirmation deadline: the one definition that placement, confirmation and the tick use.

Rules: ``docs/rules/catalog.md``, section "Confirmation deadline". An accepted order must be confirmed by the
seller by the end (Asia/Jakarta) of the ``working_days``-th working day after the business date of its
acceptance (the acceptance day itself never counts; weekends and holidays are skipped, see
``BusinessCalendar``). A confirmation dated on a later business date is late, and from the next business
date on the order is overdue: the tick cancels it for seller timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from kumkm_catalog.domain.calendar import end_of_business_date, jakarta_date

if TYPE_CHECKING:
    from kumkm_catalog.domain.calendar import BusinessCalendar

__all__ = ["Deadline", "confirmation_deadline", "is_confirmation_late", "last_missed_deadline"]


@dataclass(frozen=True)
class Deadline:
    """When the seller must have confirmed an accepted order."""

    date: date  # the last business date (Asia/Jakarta) on which the seller may confirm
    confirm_by: datetime  # the first instant after that date, in UTC (what an accepted order announces)


def confirmation_deadline(accepted_at: datetime, calendar: BusinessCalendar, working_days: int) -> Deadline:
    """The deadline of an order accepted at ``accepted_at``."""
    day = calendar.add_working_days(jakarta_date(accepted_at), working_days)
    return Deadline(day, end_of_business_date(day))


def last_missed_deadline(today: date) -> date:
    """The latest deadline date already missed on business date ``today``: every accepted order whose deadline
    is on or before it is overdue (the tick's query takes this date)."""
    return today - timedelta(days=1)


def is_confirmation_late(deadline: Deadline, confirmed_at: datetime) -> bool:
    """A confirmation is late when its business date has already missed the deadline."""
    return deadline.date <= last_missed_deadline(jakarta_date(confirmed_at))
