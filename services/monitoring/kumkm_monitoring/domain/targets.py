"""Targets and figures: the share productive against a region's target (pure).

A target is configuration (``MonitoringSettings.targets``): per region (a province, or a city of a province)
and kind, the share to reach and the official population it applies to. Kota Bekasi's deputy mayor targets
65% of its 647 cooperatives and of its 203,000 UMKM. ``target_count`` is the number of parties that share of
the official population means: ``ceil(share * population)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from kumkm_shared.contracts.regions import JAWA_BARAT, KOTA_BEKASI

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "DEFAULT_TARGETS",
    "FOUR_PLACES",
    "Target",
    "Targets",
    "ratio",
    "share_text",
]

FOUR_PLACES = Decimal("0.0001")


def _norm(name: str | None) -> str:
    return " ".join((name or "").split()).casefold()


@dataclass(frozen=True, slots=True)
class Target:
    """``share`` of ``population`` parties of ``kind`` in ``province`` (and ``city``, when given)."""

    province: str
    city: str | None
    kind: str  # cooperative | umkm
    share: Decimal
    population: int | None = None

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.share <= Decimal(1):
            msg = f"a target share is between 0 and 1, not {self.share}"
            raise ValueError(msg)
        if self.population is not None and self.population < 0:
            msg = f"a target population is not negative, not {self.population}"
            raise ValueError(msg)

    @property
    def count(self) -> int | None:
        """How many parties the share of the official population is: ``ceil(share * population)``."""
        if self.population is None:
            return None
        return math.ceil(self.share * self.population)


DEFAULT_TARGETS: tuple[Target, ...] = (
    Target(JAWA_BARAT, KOTA_BEKASI, "cooperative", Decimal("0.65"), 647),
    Target(JAWA_BARAT, KOTA_BEKASI, "umkm", Decimal("0.65"), 203_000),
)


@dataclass(frozen=True, slots=True)
class Targets:
    """The configured targets, and the share that applies where none is configured."""

    targets: tuple[Target, ...] = DEFAULT_TARGETS
    default_share: Decimal = Decimal("0.65")

    @classmethod
    def of(cls, targets: Iterable[Target], default_share: Decimal) -> Targets:
        return cls(tuple(targets), default_share)

    def find(self, province: str | None, city: str | None, kind: str | None) -> Target | None:
        """The target configured exactly for this region (a city's, or a province's) and kind."""
        for t in self.targets:
            if (
                _norm(t.province) == _norm(province)
                and _norm(t.city) == _norm(city)
                and (kind is None or t.kind == kind)
            ):
                return t
        return None

    def share_for(self, province: str | None, city: str | None, kind: str | None) -> Decimal:
        """The target share of a region and kind: its own, else its city's or province's, else the default.

        With no kind (both kinds together) the region's targets must agree, else the default applies.
        """
        for p, c in ((province, city), (province, None)):
            if p is None:
                continue
            if kind is None:
                shares = {t.share for k in ("cooperative", "umkm") if (t := self.find(p, c, k)) is not None}
                if len(shares) == 1:
                    return shares.pop()
                continue
            target = self.find(p, c, kind)
            if target is not None:
                return target.share
        return self.default_share


def ratio(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """``part / whole`` rounded to four places (half even), or None when ``whole`` is 0."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(FOUR_PLACES, rounding=ROUND_HALF_EVEN)


def share_text(value: Decimal | None) -> str | None:
    """A share as the API writes it: a Decimal with four places, as a string."""
    return None if value is None else f"{value.quantize(FOUR_PLACES, rounding=ROUND_HALF_EVEN)}"
