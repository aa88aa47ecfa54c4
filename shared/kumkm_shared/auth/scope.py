"""Region scopes: what part of the country a signed-in person sees and decides.

A token's regions claim lists scopes: ``national``, a province (``Jawa Barat``) or a city within its province
(``Jawa Barat/Kota Bekasi``), by the names the events' ``Region`` carries, compared without regard to case or
repeated spaces. No scope at all sees no regional data: a missing claim fails closed.
Rules: ``docs/rules/access.md``, section "Regions".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumkm_shared.errors import Forbidden

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "NATIONAL",
    "NATIONAL_SCOPE",
    "NO_REGION",
    "RegionScope",
    "asked_region",
    "check_in_scope",
    "normalise",
]

NATIONAL = "national"


def normalise(name: str) -> str:
    """The form region names are compared in: case-folded, single spaces, trimmed."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True, slots=True)
class RegionScope:
    national: bool = False
    provinces: frozenset[str] = frozenset()  # normalised province names
    cities: frozenset[tuple[str, str]] = frozenset()  # normalised (province, city)

    @classmethod
    def parse(cls, values: Iterable[Any]) -> RegionScope:
        """Scopes from a claim's values. Raises ``ValueError`` naming a value that is not a scope."""
        national = False
        provinces: set[str] = set()
        cities: set[tuple[str, str]] = set()
        for value in values:
            if not isinstance(value, str):
                raise TypeError(f"a region scope must be a string, not {type(value).__name__}")
            text = value.strip()
            if not text:
                continue
            if normalise(text) == NATIONAL:
                national = True
                continue
            province, sep, city = text.partition("/")
            if not normalise(province) or (sep and not normalise(city)) or "/" in city:
                raise ValueError(f"region scope {value!r} is not 'national', 'Province' or 'Province/City'")
            if sep:
                cities.add((normalise(province), normalise(city)))
            else:
                provinces.add(normalise(province))
        return cls(national, frozenset(provinces), frozenset(cities))

    @property
    def empty(self) -> bool:
        return not (self.national or self.provinces or self.cities)

    def allows(self, province: str | None, city: str | None = None) -> bool:
        """True when a record in this province and city is inside the scope, or, for a figure asked for a
        region (a province with no city: the whole province), when all of it is. A record with no region is
        visible nationally only."""
        if self.national:
            return True
        if not province:
            return False
        p = normalise(province)
        if p in self.provinces:
            return True
        return city is not None and (p, normalise(city)) in self.cities

    def sql(self, province_col: str, city_col: str, first_param: int) -> tuple[str, list[Any]]:
        """A WHERE fragment keeping rows inside the scope, and its parameters ($first_param onwards).

        The column names are the caller's own SQL identifiers, never input.
        """
        if self.national:
            return "TRUE", []
        if self.empty:
            return "FALSE", []
        n = first_param
        city_provinces = [p for p, _ in sorted(self.cities)]
        city_names = [c for _, c in sorted(self.cities)]
        fragment = (
            f"(lower({province_col}) = ANY(${n}::text[]) OR (lower({province_col}), lower({city_col})) IN "
            f"(SELECT * FROM unnest(${n + 1}::text[], ${n + 2}::text[])))"
        )
        return fragment, [sorted(self.provinces), city_provinces, city_names]

    def describe(self) -> str:
        if self.national:
            return NATIONAL
        if self.empty:
            return "no region"
        return ", ".join(sorted(self.provinces) + [f"{p}/{c}" for p, c in sorted(self.cities)])


NATIONAL_SCOPE = RegionScope(national=True)
NO_REGION = RegionScope()


# -- the one check of a region asked for, shared by every service's domain ---------------------------------


def _region_name(province: str | None, city: str | None) -> str:
    if not province:
        return "no region"
    return f"{province}/{city}" if city else province


def check_in_scope(
    scope: RegionScope, permission: str, what: str, province: str | None, city: str | None
) -> None:
    """Refuse (403 ``outside_region``) ``what`` (``loan 'LN-1'``), in ``province``/``city``, outside
    ``scope``."""
    if not scope.allows(province, city):
        raise Forbidden(
            permission,
            f"{what} is in {_region_name(province, city)}, outside your regions ({scope.describe()})",
            code="outside_region",
        )


def asked_region(
    scope: RegionScope, permission: str, province: str | None, city: str | None
) -> tuple[str | None, str | None]:
    """The region a report is asked for, checked against ``scope``.

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
