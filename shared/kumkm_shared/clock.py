"""The one injectable clock: the system's in production, a settable one in tests and simulations.

Handlers and commands never call ``datetime.now``; they ask the service's ``Clock``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

__all__ = ["JAKARTA", "Clock", "FixedClock", "SystemClock", "business_date"]

JAKARTA = ZoneInfo("Asia/Jakarta")  # the programmes' business time zone (WIB, UTC+7, no DST)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that stands still until moved."""

    moment: datetime = field(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)

    def set(self, moment: datetime) -> None:
        self.moment = moment


def business_date(clock: Clock, tz: ZoneInfo = JAKARTA) -> date:
    """Today's date in the business time zone, on ``clock``."""
    return clock.now().astimezone(tz).date()
