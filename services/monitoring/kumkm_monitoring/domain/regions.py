"""Regions: a caller sees the figures, lists and parties of their scope only (``docs/rules/monitoring.md``,
"Regions"; the scope is the verified token's, ``kumkm_shared.auth.scope.RegionScope``).

A filter naming a region outside the scope is refused with 403 ``outside_region``; lists are filtered in SQL
by the same scope. A caller asking for no region gets their own when it is one province or one city.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumkm_shared.errors import Forbidden

if TYPE_CHECKING:
    from kumkm_shared.auth.scope import RegionScope

__all__ = ["check_in_scope", "region_filter"]


def _region_name(province: str | None, city: str | None) -> str:
    if not province:
        return "no region"
    return f"{province}/{city}" if city else province


def check_in_scope(
    scope: RegionScope, permission: str, what: str, province: str | None, city: str | None
) -> None:
    """Refuse (403 ``outside_region``) ``what`` in ``province``/``city`` outside ``scope``."""
    if not scope.allows(province, city):
        raise Forbidden(
            permission,
            f"{what} is in {_region_name(province, city)}, outside your regions ({scope.describe()})",
            code="outside_region",
        )


def region_filter(
    scope: RegionScope, permission: str, province: str | None, city: str | None
) -> tuple[str | None, str | None]:
    """The region asked for, checked against ``scope``.

    No province means the whole country, for a national scope only; a city names a city of the province
    given. A regional scope that asks for nothing gets its own region when it is exactly one province or
    one city; with more than one the choice is the caller's (403 ``choose_region``).
    """
    if province is None and city is None and not scope.national:
        only = [(p, None) for p in scope.provinces] + [(p, c) for p, c in scope.cities]
        if len(only) == 1:
            return only[0]
        if not only:
            raise Forbidden(permission, "your token carries no region: you see no regional data")
        raise Forbidden(
            permission,
            f"your regions are {scope.describe()}: choose one with province (and city)",
            code="choose_region",
        )
    if province is None and not scope.national:
        raise Forbidden(
            permission,
            f"give the province of city {city!r}: only a national scope sees a city by its name alone",
            code="outside_region",
        )
    if not scope.allows(province, city):
        raise Forbidden(
            permission,
            f"{_region_name(province, city) if province else 'the whole country'} is outside your "
            f"regions ({scope.describe()})",
            code="outside_region",
        )
    return province, city
