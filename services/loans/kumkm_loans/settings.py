"""The loans service's domain settings (env prefix ``KUMKM_LOANS_``); every policy threshold is here."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kumkm_loans.domain import PolicyLimits


class LoansSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUMKM_LOANS_", extra="ignore")

    auto_approval_limit: Decimal = Field(
        default=Decimal(10_000_000_000),
        gt=0,
        description="highest outstanding principal approved without an officer",
    )
    policy_window_start: date = Field(
        default=date(2020, 3, 16), description="first request date (POJK 11/2020)"
    )
    policy_window_end: date = Field(default=date(2022, 3, 31), description="last request date (POJK 48/2020)")
    collectibility_cutoff: date = Field(
        default=date(2020, 2, 29), description="the pre-pandemic grading date"
    )
    max_grade_at_cutoff: int = Field(default=3, ge=1, le=5, description="worst eligible grade at the cut-off")
    max_grace_months: int = Field(default=12, ge=0)
    max_extension_months: int = Field(default=24, ge=0)
    max_prior_restructurings: int = Field(default=2, ge=0)
    daily_tick: bool = Field(default=True, description="run the collectibility tick every day")
    daily_tick_hour: int = Field(
        default=1, ge=0, le=23, description="hour of the daily tick, business time zone"
    )
    business_timezone: str = Field(default="Asia/Jakarta")

    def policy_limits(self) -> PolicyLimits:
        return PolicyLimits(
            auto_approval_limit=self.auto_approval_limit,
            window_start=self.policy_window_start,
            window_end=self.policy_window_end,
            collectibility_cutoff=self.collectibility_cutoff,
            max_grade_at_cutoff=self.max_grade_at_cutoff,
            max_grace_months=self.max_grace_months,
            max_extension_months=self.max_extension_months,
            max_prior_restructurings=self.max_prior_restructurings,
        )
