"""The monitoring service's settings (env prefix ``KUMKM_MONITORING_``): the rule's window and signals, the
targets, and the procurement target. Rules and reasoning: ``docs/rules/monitoring.md``.

Targets come from ``KUMKM_MONITORING_TARGETS`` (JSON list) or from the JSON file
``KUMKM_MONITORING_TARGETS_FILE`` (the file wins), each item
``{"province": "Jawa Barat", "city": "Kota Bekasi", "kind": "umkm", "share": "0.65", "population": 203000}``
(``city`` and ``population`` optional).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kumkm_monitoring.domain import DEFAULT_TARGETS, Signal, SignalRules, Target, Targets


class TargetSetting(BaseModel):
    """One configured target: a region (province, or a city of it), a kind, a share and its population."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    province: str = Field(min_length=1)
    city: str | None = None
    kind: Literal["cooperative", "umkm"]
    share: Decimal = Field(ge=0, le=1)
    population: int | None = Field(default=None, ge=0)

    def target(self) -> Target:
        return Target(self.province, self.city, self.kind, self.share, self.population)


_DEFAULT_TARGETS = [
    TargetSetting(province=t.province, city=t.city, kind=t.kind, share=t.share, population=t.population)
    for t in DEFAULT_TARGETS
]


class MonitoringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUMKM_MONITORING_", extra="ignore")

    window_days: int = Field(
        default=90,
        ge=1,
        le=3660,
        description="how long a repayment or a sale keeps its party productive, in days",
    )
    signals: frozenset[Signal] = Field(
        default=frozenset(Signal), description='the signals that count, e.g. ["loan", "sale", "activity"]'
    )
    targets: list[TargetSetting] = Field(
        default_factory=lambda: list(_DEFAULT_TARGETS),
        description="the targets per region and kind (JSON list)",
    )
    targets_file: Path | None = Field(default=None, description="a JSON file of targets; replaces `targets`")
    default_target_share: Decimal = Field(
        default=Decimal("0.65"), ge=0, le=1, description="the target share where no target is configured"
    )
    procurement_target_share: Decimal = Field(
        default=Decimal("0.40"),
        ge=0,
        le=1,
        description="the UMKM share of e-catalog procurement to reach (Perpres 12/2021: 40%)",
    )
    business_timezone: str = Field(default="Asia/Jakarta")

    def rules(self) -> SignalRules:
        return SignalRules(window_days=self.window_days, signals=frozenset(self.signals))

    def target_table(self) -> Targets:
        items = self.targets
        if self.targets_file is not None:
            raw = json.loads(self.targets_file.read_text(encoding="utf-8"))
            items = [TargetSetting.model_validate(item) for item in raw]
        return Targets.of((t.target() for t in items), self.default_target_share)
