"""The registry's events and the Region's optional district and code."""

import pytest
from pydantic import ValidationError

from kumkm_shared.contracts import (
    KOTA_BEKASI_DISTRICTS,
    ActivityReported,
    CooperativeRegistered,
    Region,
    district_by_name,
)
from kumkm_shared.integrators import IntegratorRole, roles_for
from tests.support.samples import SAMPLES

pytestmark = pytest.mark.unit


def test_region_without_district_is_still_valid() -> None:
    region = Region.model_validate({"province": "Jawa Barat", "city": "Kota Bekasi"})
    assert region.district is None
    assert region.code is None


def test_region_code_must_name_the_most_specific_level() -> None:
    Region(province="Jawa Barat", city="Kota Bekasi", code="32.75")
    Region(province="Jawa Barat", city="Kota Bekasi", district="Jatisampurna", code="32.75.10")
    with pytest.raises(ValidationError, match="code of a district"):
        Region(province="Jawa Barat", city="Kota Bekasi", district="Jatisampurna", code="32.75")
    with pytest.raises(ValidationError, match="code of a city"):
        Region(province="Jawa Barat", city="Kota Bekasi", code="32.75.10")
    with pytest.raises(ValidationError, match="code"):
        Region(province="Jawa Barat", city="Kota Bekasi", code="32-75")


def test_kota_bekasi_has_twelve_districts_with_unique_codes() -> None:
    assert len(KOTA_BEKASI_DISTRICTS) == 12
    assert len({d.code for d in KOTA_BEKASI_DISTRICTS}) == 12
    assert all(d.code.startswith("32.75.") for d in KOTA_BEKASI_DISTRICTS)
    found = district_by_name("Kecamatan JATISAMPURNA")
    assert found is not None
    assert found.code == "32.75.10"
    assert district_by_name("Menteng") is None


def test_activity_party_id_must_match_its_kind() -> None:
    data = dict(SAMPLES["kumkm.registry.activity.reported.v1"])
    ActivityReported.model_validate(data)
    with pytest.raises(ValidationError, match="16 digits"):
        ActivityReported.model_validate({**data, "party_kind": "cooperative"})


def test_member_count_is_a_non_negative_integer() -> None:
    data = dict(SAMPLES["kumkm.registry.cooperative.registered.v1"])
    with pytest.raises(ValidationError, match="member_count"):
        CooperativeRegistered.model_validate({**data, "member_count": -1})
    with pytest.raises(ValidationError, match="member_count"):
        CooperativeRegistered.model_validate({**data, "member_count": "12"})


@pytest.mark.parametrize("event_type", [t for t in SAMPLES if t.startswith("kumkm.registry.")])
def test_only_registry_organisations_publish_the_registry(event_type: str) -> None:
    assert roles_for(event_type) == {IntegratorRole.REGISTRY}
