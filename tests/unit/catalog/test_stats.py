"""The UMKM share of committed purchase value: scales, the target, and value whose seller scale is unknown.

Every expected figure is worked out by hand from the facts in the test.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from kumkm_catalog.domain.stats import PurchaseFact, summarize

pytestmark = pytest.mark.unit

TARGET = Decimal(40)
BEKASI = ("Jawa Barat", "Kota Bekasi")
JAKTIM = ("DKI Jakarta", "Jakarta Timur")


def fact(
    scale: str | None,
    value: str,
    *,
    region: tuple[str, str] = BEKASI,
    category: str = "furniture",
    paid: bool = False,
) -> PurchaseFact:
    return PurchaseFact(
        province=region[0], city=region[1], category=category, scale=scale, paid=paid, value=Decimal(value)
    )


def test_mixed_scales_below_target() -> None:
    facts = [
        fact("micro", "1000000.00"),
        fact("small", "2000000.00", paid=True),
        fact("medium", "3000000.00"),
        fact("large", "4000000.00", paid=True),
    ]
    overall = summarize(facts, TARGET)["overall"]
    # micro + small = 3,000,000 of 10,000,000: 30% < 40%.
    assert overall == {
        "total_value": "10000000.00",
        "micro_small_value": "3000000.00",
        "medium_value": "3000000.00",
        "large_value": "4000000.00",
        "unknown_scale_value": "0.00",
        "paid_value": "6000000.00",
        "umkm_share_pct": "30.00",
        "meets_target": False,
    }


def test_a_large_seller_is_neither_medium_nor_umkm() -> None:
    overall = summarize([fact("micro", "100.00"), fact("large", "300.00")], TARGET)["overall"]
    assert overall["medium_value"] == "0.00"
    assert overall["large_value"] == "300.00"
    assert overall["umkm_share_pct"] == "25.00"


def test_exactly_on_target_meets_it_and_just_below_does_not() -> None:
    on = summarize([fact("small", "40.00"), fact("medium", "60.00")], TARGET)["overall"]
    assert (on["umkm_share_pct"], on["meets_target"]) == ("40.00", True)
    below = summarize([fact("small", "39.99"), fact("medium", "60.01")], TARGET)["overall"]
    assert (below["umkm_share_pct"], below["meets_target"]) == ("39.99", False)


def test_share_is_rounded_to_hundredths() -> None:
    overall = summarize([fact("micro", "1.00"), fact("medium", "2.00")], TARGET)["overall"]
    assert overall["umkm_share_pct"] == "33.33"  # 100 / 3


@pytest.mark.parametrize("scale", [None, "", "unknown", "menengah"])
def test_unknown_scale_is_counted_apart_not_as_medium_or_umkm(scale: str | None) -> None:
    facts = [fact("micro", "300.00"), fact("small", "100.00"), fact(scale, "600.00")]
    overall = summarize(facts, TARGET)["overall"]
    assert overall["medium_value"] == "0.00"
    assert overall["micro_small_value"] == "400.00"
    assert overall["unknown_scale_value"] == "600.00"
    # The denominator is all committed value, the unknown part included: 400 / 1,000, not 400 / 400.
    assert overall["total_value"] == "1000.00"
    assert overall["umkm_share_pct"] == "40.00"
    assert overall["meets_target"] is True


def test_only_unknown_scale_value_has_a_zero_share() -> None:
    overall = summarize([fact(None, "500.00")], TARGET)["overall"]
    assert overall["total_value"] == "500.00"
    assert overall["unknown_scale_value"] == "500.00"
    assert overall["umkm_share_pct"] == "0.00"
    assert overall["meets_target"] is False


def test_the_definition_says_how_unknown_scales_count() -> None:
    definition = summarize([], TARGET)["definition"]
    assert "unknown" in definition["denominator"]
    assert "unknown" in definition["unknown_scale"]


def test_no_purchases_has_no_share() -> None:
    result = summarize([], TARGET)
    assert result["target_pct"] == "40"
    assert result["overall"]["total_value"] == "0.00"
    assert result["overall"]["umkm_share_pct"] is None
    assert result["overall"]["meets_target"] is None
    assert result["by_region"] == result["by_category"] == result["by_region_category"] == []


def test_breakdowns_by_region_and_category() -> None:
    facts = [
        fact("micro", "500.00", region=BEKASI, category="furniture", paid=True),
        fact("medium", "500.00", region=BEKASI, category="stationery"),
        fact("medium", "900.00", region=JAKTIM, category="stationery"),
        fact(None, "100.00", region=JAKTIM, category="furniture"),
    ]
    result = summarize(facts, TARGET)
    assert result["overall"]["total_value"] == "2000.00"
    assert result["overall"]["umkm_share_pct"] == "25.00"  # 500 / 2,000
    regions = {(r["province"], r["city"]): r for r in result["by_region"]}
    assert [(r["province"], r["city"]) for r in result["by_region"]] == sorted([BEKASI, JAKTIM])
    assert regions[BEKASI]["total_value"] == "1000.00"
    assert regions[BEKASI]["umkm_share_pct"] == "50.00"
    assert regions[BEKASI]["meets_target"] is True
    assert regions[BEKASI]["paid_value"] == "500.00"
    assert regions[JAKTIM]["total_value"] == "1000.00"
    assert regions[JAKTIM]["medium_value"] == "900.00"
    assert regions[JAKTIM]["unknown_scale_value"] == "100.00"
    assert regions[JAKTIM]["umkm_share_pct"] == "0.00"
    assert regions[JAKTIM]["meets_target"] is False
    categories = {c["category"]: c for c in result["by_category"]}
    assert list(categories) == ["furniture", "stationery"]
    assert categories["furniture"]["total_value"] == "600.00"
    assert categories["furniture"]["unknown_scale_value"] == "100.00"
    assert categories["furniture"]["umkm_share_pct"] == "83.33"  # 500 / 600
    assert categories["stationery"]["total_value"] == "1400.00"
    assert categories["stationery"]["umkm_share_pct"] == "0.00"
    cells = {(c["city"], c["category"]): c["total_value"] for c in result["by_region_category"]}
    assert cells == {
        ("Kota Bekasi", "furniture"): "500.00",
        ("Kota Bekasi", "stationery"): "500.00",
        ("Jakarta Timur", "furniture"): "100.00",
        ("Jakarta Timur", "stationery"): "900.00",
    }
