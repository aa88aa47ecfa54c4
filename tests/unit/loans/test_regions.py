"""Regions: what a scope may see of loans and requests, and which progress report it may ask for."""

from __future__ import annotations

import pytest

from kumkm_loans.domain import check_in_scope, progress_region
from kumkm_loans.domain.permissions import PROGRESS, READ
from kumkm_shared.auth.scope import NATIONAL_SCOPE, NO_REGION, RegionScope
from kumkm_shared.errors import Forbidden

pytestmark = pytest.mark.unit

BEKASI = RegionScope.parse(["Jawa Barat/Kota Bekasi"])
JAWA_BARAT = RegionScope.parse(["Jawa Barat"])
TWO = RegionScope.parse(["Jawa Barat/Kota Bekasi", "Jawa Timur/Kota Surabaya"])


def test_a_record_inside_the_scope_passes() -> None:
    check_in_scope(BEKASI, READ, "loan 'LN-1'", "Jawa Barat", "Kota Bekasi")
    check_in_scope(BEKASI, READ, "loan 'LN-1'", "JAWA BARAT", "kota  bekasi")
    check_in_scope(JAWA_BARAT, READ, "loan 'LN-1'", "Jawa Barat", "Kota Bogor")
    check_in_scope(NATIONAL_SCOPE, READ, "loan 'LN-1'", "Jawa Timur", "Kota Surabaya")


@pytest.mark.parametrize(
    ("scope", "province", "city"),
    [
        (BEKASI, "Jawa Timur", "Kota Surabaya"),
        (BEKASI, "Jawa Barat", "Kota Bogor"),
        (JAWA_BARAT, "Jawa Timur", "Kota Surabaya"),
        (BEKASI, None, None),  # no region: national only
        (NO_REGION, "Jawa Barat", "Kota Bekasi"),
    ],
)
def test_a_record_outside_the_scope_is_403_naming_its_region(
    scope: RegionScope, province: str | None, city: str | None
) -> None:
    with pytest.raises(Forbidden) as refused:
        check_in_scope(scope, READ, "restructuring request 'RR-1'", province, city)
    assert refused.value.code == "outside_region"
    assert refused.value.permission == READ
    assert "restructuring request 'RR-1' is in" in refused.value.reason
    if province:
        assert f"{province}/{city}" in refused.value.reason


def test_progress_national_scope_asks_for_anything() -> None:
    assert progress_region(NATIONAL_SCOPE, PROGRESS, None, None) == (None, None)
    assert progress_region(NATIONAL_SCOPE, PROGRESS, "Jawa Barat", None) == ("Jawa Barat", None)
    assert progress_region(NATIONAL_SCOPE, PROGRESS, None, "Kota Bekasi") == (None, "Kota Bekasi")


def test_progress_a_single_region_is_the_default() -> None:
    assert progress_region(BEKASI, PROGRESS, None, None) == ("jawa barat", "kota bekasi")
    assert progress_region(JAWA_BARAT, PROGRESS, None, None) == ("jawa barat", None)
    assert progress_region(BEKASI, PROGRESS, "Jawa Barat", "Kota Bekasi") == ("Jawa Barat", "Kota Bekasi")
    assert progress_region(JAWA_BARAT, PROGRESS, "Jawa Barat", "Kota Bogor") == ("Jawa Barat", "Kota Bogor")


@pytest.mark.parametrize(
    ("scope", "province", "city", "code"),
    [
        (BEKASI, "Jawa Barat", None, "outside_region"),  # the whole province is more than the city
        (BEKASI, "Jawa Timur", "Kota Surabaya", "outside_region"),
        (BEKASI, None, "Kota Bekasi", "outside_region"),  # a city needs its province
        (JAWA_BARAT, "Jawa Tengah", None, "outside_region"),
        (TWO, None, None, "choose_region"),
        (NO_REGION, None, None, "forbidden"),
        (NO_REGION, "Jawa Barat", None, "outside_region"),
    ],
)
def test_progress_outside_the_scope_is_refused(
    scope: RegionScope, province: str | None, city: str | None, code: str
) -> None:
    with pytest.raises(Forbidden) as refused:
        progress_region(scope, PROGRESS, province, city)
    assert refused.value.code == code
    assert refused.value.permission == PROGRESS


def test_progress_with_two_regions_names_the_choice() -> None:
    with pytest.raises(Forbidden) as refused:
        progress_region(TWO, PROGRESS, None, None)
    assert "choose one with province (and city)" in refused.value.reason
    assert "jawa barat/kota bekasi" in refused.value.reason
    assert "jawa timur/kota surabaya" in refused.value.reason
