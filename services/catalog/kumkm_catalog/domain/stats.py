"""The UMKM share of purchase value: the figure behind the national 40% target (Perpres 12/2021).

Definitions (also returned with every answer, so nobody has to guess):

- **denominator**: the committed purchase value in the e-catalog, i.e. the sum of line totals of every order
  that was accepted and not cancelled (status accepted, confirmed, shipped, delivered or paid). Rejected and
  cancelled orders count nowhere. The catalog only sees e-catalog purchases, so this is the share *within*
  e-catalog spending, not of a buyer's whole procurement budget.
- **numerator**: the part of that value sold by micro and small enterprises (the Perpres 12/2021 target
  group). Medium sellers are UMKM too and are shown separately; large sellers are not UMKM.
- **unknown scale**: value whose seller's scale is missing or not one of micro, small, medium, large. It
  stays in the denominator (it was committed) but never in the numerator, and is reported on its own.
- **region**: where the purchase is made, i.e. the buyer's region (else the delivery region, else the
  seller's region).
- ``paid_value`` is the subset already paid, for those who only count realised spending.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

TARGET_SCALES = frozenset({"micro", "small"})
MEDIUM, LARGE = "medium", "large"
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class PurchaseFact:
    province: str
    city: str
    category: str
    scale: str | None  # micro, small, medium or large; anything else (None, "unknown", ...) is unknown
    paid: bool
    value: Decimal


@dataclass
class _Sum:
    total: Decimal = Decimal("0.00")
    micro_small: Decimal = Decimal("0.00")
    medium: Decimal = Decimal("0.00")
    large: Decimal = Decimal("0.00")
    unknown: Decimal = Decimal("0.00")
    paid: Decimal = Decimal("0.00")

    def add(self, fact: PurchaseFact) -> None:
        self.total += fact.value
        if fact.scale in TARGET_SCALES:
            self.micro_small += fact.value
        elif fact.scale == MEDIUM:
            self.medium += fact.value
        elif fact.scale == LARGE:
            self.large += fact.value
        else:
            self.unknown += fact.value
        if fact.paid:
            self.paid += fact.value

    def share(self) -> Decimal | None:
        if not self.total:
            return None
        return (self.micro_small * _HUNDRED / self.total).quantize(Decimal("0.01"))

    def as_dict(self, target: Decimal) -> dict[str, Any]:
        share = self.share()
        return {
            "total_value": f"{self.total:.2f}",
            "micro_small_value": f"{self.micro_small:.2f}",
            "medium_value": f"{self.medium:.2f}",
            "large_value": f"{self.large:.2f}",
            "unknown_scale_value": f"{self.unknown:.2f}",
            "paid_value": f"{self.paid:.2f}",
            "umkm_share_pct": None if share is None else str(share),
            "meets_target": None if share is None else share >= target,
        }


DEFINITION = {
    "denominator": "sum of line totals of committed e-catalog orders "
    "(accepted, confirmed, shipped, delivered, paid), whatever the seller's scale, unknown included; "
    "rejected and cancelled orders are excluded",
    "numerator": "the part of the denominator sold by micro and small enterprises (Perpres 12/2021)",
    "unknown_scale": "value whose seller's scale is unknown: in the denominator, never in the numerator "
    "(so it can only lower the share), and reported as unknown_scale_value",
    "region": "the buyer's region, else the delivery region, else the seller's region",
}


def summarize(facts: list[PurchaseFact], target_pct: Decimal) -> dict[str, Any]:
    """The UMKM share of committed purchase value, overall, by region, by category and by both.

    ``facts`` are committed purchases only: the caller selects them (accepted, confirmed, shipped,
    delivered or paid orders; rejected and cancelled ones never reach this function).

    Each figure splits its ``total_value`` (the denominator) by seller scale: ``micro_small_value`` (the
    numerator), ``medium_value``, ``large_value`` and ``unknown_scale_value``; the four add up to the total.
    A purchase whose seller's scale is unknown (missing, ``"unknown"`` or not a scale we know) is never
    counted as medium or as UMKM. It stays in the denominator, because the money was committed whoever sold
    it, so the share is the part of all committed value *known* to come from micro and small sellers: a
    lower bound, never inflated by unverified sellers. Readers who want the share among known scales have
    every part to compute it. ``umkm_share_pct`` and ``meets_target`` are ``None`` when there is no value.
    """
    overall = _Sum()
    by_region: dict[tuple[str, str], _Sum] = defaultdict(_Sum)
    by_category: dict[str, _Sum] = defaultdict(_Sum)
    by_region_category: dict[tuple[str, str, str], _Sum] = defaultdict(_Sum)
    for fact in facts:
        overall.add(fact)
        by_region[fact.province, fact.city].add(fact)
        by_category[fact.category].add(fact)
        by_region_category[fact.province, fact.city, fact.category].add(fact)
    return {
        "target_pct": str(target_pct),
        "definition": DEFINITION,
        "overall": overall.as_dict(target_pct),
        "by_region": [
            {"province": p, "city": c, **s.as_dict(target_pct)} for (p, c), s in sorted(by_region.items())
        ],
        "by_category": [{"category": k, **s.as_dict(target_pct)} for k, s in sorted(by_category.items())],
        "by_region_category": [
            {"province": p, "city": c, "category": k, **s.as_dict(target_pct)}
            for (p, c, k), s in sorted(by_region_category.items())
        ],
    }
