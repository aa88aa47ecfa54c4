"""The daily tick waits, on the service's clock, for the next tick hour in the business time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kumkm_loans.app import seconds_until
from kumkm_loans.handlers import LoansService
from kumkm_loans.settings import LoansSettings
from kumkm_shared.clock import FixedClock

pytestmark = pytest.mark.unit


def service_at(moment: datetime) -> LoansService:
    return LoansService(LoansSettings(daily_tick_hour=1), FixedClock(moment))


def test_the_wait_is_until_the_next_tick_hour_in_jakarta() -> None:
    # 17:30 UTC is 00:30 in Jakarta: the 01:00 tick is half an hour away.
    assert seconds_until(service_at(datetime(2020, 5, 3, 17, 30, tzinfo=UTC)), 1) == 30 * 60
    # 18:30 UTC is 01:30 in Jakarta: today's tick has passed, the next is tomorrow.
    assert seconds_until(service_at(datetime(2020, 5, 3, 18, 30, tzinfo=UTC)), 1) == 23.5 * 3600
    # Exactly on the hour: the tick that just ran is not run again.
    assert seconds_until(service_at(datetime(2020, 5, 3, 18, 0, tzinfo=UTC)), 1) == 24 * 3600


def test_today_is_the_clocks_business_date() -> None:
    service = service_at(datetime(2020, 5, 3, 18, 30, tzinfo=UTC))
    assert service.today().isoformat() == "2020-05-04"
