"""Region scopes: what part of the country a signed-in person sees and decides.

A token's regions claim lists scopes: ``national``, a province (``Jawa Barat``) or a city within its province
(``Jawa Barat/Kota Bekasi``), by the names the events' ``Region`` carries, compared without regard to case or
repeated spaces. No scope at all sees no regional data: a missing claim fails closed.
Rules: ``docs/rules/access.md``, section "Regions".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["NATIONAL", "NATIONAL_SCOPE", "NO_REGION", "RegionScope", "normalise"]

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
