"""The injectable clock: the real one in production, a settable one in tests and simulations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from kumkm_catalog.domain.calendar import jakarta_date


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


def today(clock: Clock) -> date:
    """The business date (Asia/Jakarta) on ``clock``."""
    return jakarta_date(clock.now())
