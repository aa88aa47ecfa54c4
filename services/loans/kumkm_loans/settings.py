"""The loans service's domain settings (env prefix ``KUMKM_LOANS_``); every policy threshold is here.

The thresholds' defaults are defined once, by the domain (``PolicyLimits``, and ``SECOND_APPROVAL_ABOVE``
for maker-checker); the settings only let the environment override them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kumkm_loans.domain import SECOND_APPROVAL_ABOVE, PolicyLimits

_DEFAULTS = PolicyLimits()


class LoansSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUMKM_LOANS_", extra="ignore")

    auto_approval_limit: Decimal = Field(
        default=_DEFAULTS.auto_approval_limit,
        gt=0,
        description="highest outstanding principal approved without an officer",
    )
    second_approval_above: Decimal = Field(
        default=SECOND_APPROVAL_ABOVE,
        ge=0,
        description="an officer's approval of a referred request with an outstanding principal above this "
        "waits for a second person with the supervisor role (maker-checker)",
    )
    policy_window_start: date = Field(
        default=_DEFAULTS.window_start, description="first request date (POJK 11/2020)"
    )
    policy_window_end: date = Field(
        default=_DEFAULTS.window_end, description="last request date (POJK 48/2020)"
    )
    collectibility_cutoff: date = Field(
        default=_DEFAULTS.collectibility_cutoff, description="the pre-pandemic grading date"
    )
    max_grade_at_cutoff: int = Field(
        default=_DEFAULTS.max_grade_at_cutoff, ge=1, le=5, description="worst eligible grade at the cut-off"
    )
    max_grace_months: int = Field(default=_DEFAULTS.max_grace_months, ge=0)
    max_extension_months: int = Field(default=_DEFAULTS.max_extension_months, ge=0)
    max_prior_restructurings: int = Field(default=_DEFAULTS.max_prior_restructurings, ge=0)
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
