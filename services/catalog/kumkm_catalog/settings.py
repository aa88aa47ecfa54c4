"""The catalog's domain settings (env prefix ``KUMKM_CATALOG_``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kumkm_catalog.domain.calendar import BusinessCalendar
from kumkm_catalog.domain.curation import CurationRules, PriceBand
from kumkm_catalog.domain.placement import OrderRules


class Band(BaseModel):
    model_config = ConfigDict(frozen=True)
    low: Decimal = Field(gt=0)
    high: Decimal = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.low > self.high:
            raise ValueError(f"price band low ({self.low}) is above high ({self.high})")
        return self


class CatalogSettings(BaseSettings):
    """Every catalog rule an operator may tune (``docs/rules/catalog.md``; the confirmation window is the
    ``working_days`` of ``domain.deadline.confirmation_deadline``).

    Complex values are JSON, e.g.
    ``KUMKM_CATALOG_PRICE_BANDS='{"furniture": {"low": "50000", "high": "25000000"}}'`` and
    ``KUMKM_CATALOG_EXTRA_HOLIDAYS='["2025-04-02", "2025-04-03"]'``.
    """

    model_config = SettingsConfigDict(env_prefix="KUMKM_CATALOG_", extra="ignore")

    package_ceiling: Decimal = Field(
        default=Decimal(2_500_000_000), gt=0, description="Small-business package ceiling per order (rupiah)"
    )
    tkdn_min_pct: Decimal = Field(
        default=Decimal(25), ge=0, le=100, description="Minimum local content (TKDN)"
    )
    confirmation_working_days: int = Field(default=3, ge=1, le=30, description="Seller confirmation window")
    price_bands: dict[str, Band] = Field(
        default_factory=dict, description="Reference unit-price band per category code"
    )
    national_holidays: bool = Field(default=True, description="Skip Indonesian public holidays")
    extra_holidays: list[date] = Field(
        default_factory=list, description="Extra non-working dates, e.g. cuti bersama"
    )
    tick_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often the worker runs the day's confirmation timeouts"
    )
    umkm_target_pct: Decimal = Field(
        default=Decimal(40), description="National target share (Perpres 12/2021)"
    )

    def curation_rules(self) -> CurationRules:
        return CurationRules(
            tkdn_min_pct=self.tkdn_min_pct,
            price_bands={cat: PriceBand(b.low, b.high) for cat, b in self.price_bands.items()},
        )

    def order_rules(self) -> OrderRules:
        return OrderRules(
            package_ceiling=self.package_ceiling,
            calendar=self.calendar(),
            confirmation_working_days=self.confirmation_working_days,
        )

    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            extra_holidays=frozenset(self.extra_holidays), national=self.national_holidays
        )
