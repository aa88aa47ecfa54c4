"""Regions: what a signed-in actor sees and decides in the catalog, by the region scope of their token.

Rules: ``docs/rules/catalog.md``, section "Who may do what". A product is in the region of its seller, an
order in its purchase region (the buyer's, else the delivery's, else the seller's). Lists filter by the
scope in SQL; a single product or order outside the scope is refused here, ``outside_region``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kumkm_shared.errors import Forbidden

if TYPE_CHECKING:
    from kumkm_shared.auth.scope import RegionScope

OUTSIDE_REGION = "outside_region"
REGION_REQUIRED = "region_required"


def check_in_scope(
    scope: RegionScope, permission: str, what: str, province: str | None, city: str | None
) -> None:
    """``Forbidden`` (403, ``outside_region``) unless a record in this province and city is in the scope."""
    if not scope.allows(province, city):
        where = f"{province}/{city}" if province else "no region"
        raise Forbidden(
            permission,
            f"the {what} is in {where}, outside your regions ({scope.describe()})",
            code=OUTSIDE_REGION,
        )


@dataclass(frozen=True)
class StatsRegion:
    """The region statistics are computed for: a province, or a city within it."""

    province: str
    city: str | None = None


def stats_region(
    scope: RegionScope, permission: str, province: str | None, city: str | None
) -> StatsRegion | None:
    """The region a statistics request covers, ``None`` for the whole country.

    A national scope sees any region, or all of them. A regional one sees only a region inside its scope;
    asking for none gets its own region when the scope is exactly one province or one city, else it must
    choose (403 ``region_required``). A region outside the scope is 403 ``outside_region``.
    """
    if province is not None:
        check_in_scope(scope, permission, "region asked for", province, city)
        return StatsRegion(province, city)
    if scope.national:
        return None
    if len(scope.provinces) == 1 and not scope.cities:
        return StatsRegion(next(iter(scope.provinces)))
    if len(scope.cities) == 1 and not scope.provinces:
        own_province, own_city = next(iter(scope.cities))
        return StatsRegion(own_province, own_city)
    raise Forbidden(
        permission,
        f"name the region (province, and city) to see: your regions are {scope.describe()}",
        code=REGION_REQUIRED,
    )
