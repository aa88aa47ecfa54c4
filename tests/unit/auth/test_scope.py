"""Region scopes from a token's regions claim: parsing, matching, and the SQL filter's parameters."""

from __future__ import annotations

import pytest

from kumkm_shared.auth.scope import NATIONAL_SCOPE, NO_REGION, RegionScope


def test_national_sees_everything_even_records_without_a_region() -> None:
    scope = RegionScope.parse(["national"])
    assert scope.national
    assert scope.allows("Jawa Timur", "Kota Surabaya")
    assert scope.allows(None, None)
    assert scope.sql("province", "city", 1) == ("TRUE", [])


def test_a_city_scope_sees_that_city_only() -> None:
    scope = RegionScope.parse(["Jawa Barat/Kota Bekasi"])
    assert scope.allows("Jawa Barat", "Kota Bekasi")
    assert scope.allows("  jawa   barat ", "KOTA BEKASI")  # case and spacing do not matter
    assert not scope.allows("Jawa Barat", "Kota Bogor")
    assert not scope.allows("Jawa Barat", None)  # the whole province is more than the city
    assert not scope.allows(None, None)  # a record with no region: national only


def test_a_province_scope_sees_every_city_in_it() -> None:
    scope = RegionScope.parse(["Jawa Barat"])
    assert scope.allows("Jawa Barat", "Kota Bogor")
    assert scope.allows("Jawa Barat", None)
    assert not scope.allows("Jawa Tengah", "Kota Semarang")


def test_no_claim_sees_nothing() -> None:
    assert RegionScope.parse([]) == NO_REGION
    assert NO_REGION.empty
    assert not NO_REGION.allows("Jawa Barat", "Kota Bekasi")
    assert NO_REGION.sql("province", "city", 1) == ("FALSE", [])


def test_sql_parameters_are_normalised_and_numbered_from_the_first_given() -> None:
    scope = RegionScope.parse(["Jawa Barat/Kota Bekasi", "DKI Jakarta"])
    fragment, params = scope.sql("l.province", "l.city", 3)
    assert "$3" in fragment
    assert "$5" in fragment
    assert "$6" not in fragment
    assert params == [["dki jakarta"], ["jawa barat"], ["kota bekasi"]]


@pytest.mark.parametrize("value", ["/Kota Bekasi", "Jawa Barat/", "A/B/C"])
def test_malformed_scopes_are_refused_naming_the_value(value: str) -> None:
    with pytest.raises(ValueError, match="region scope"):
        RegionScope.parse([value])


def test_a_scope_that_is_not_text_is_refused() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        RegionScope.parse([32])


def test_describe_names_the_scope() -> None:
    assert NATIONAL_SCOPE.describe() == "national"
    assert RegionScope.parse(["Jawa Barat/Kota Bekasi"]).describe() == "jawa barat/kota bekasi"
