"""The Kota Bekasi sample of `kumkm up --demo` (kumkm_shared.cli.seed): deterministic, the brief's counts
over the 12 kecamatan, every event valid against its contract and of its sender's role."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest

from kumkm_shared.cli import seed
from kumkm_shared.cli.demo import INTEGRATOR_ORG, SELLER, demo_mandates
from kumkm_shared.contracts import validate_event_payload
from kumkm_shared.contracts.regions import KOTA_BEKASI_DISTRICTS
from kumkm_shared.integrators import IntegratorRole, roles_for

pytestmark = pytest.mark.unit

TODAY = date(2026, 12, 2)
# The expected split of the sample over the kecamatan (largest remainder over seed.DISTRICT_WEIGHTS).
COOPERATIVES_PER_DISTRICT = {
    "Bekasi Timur": 65,
    "Bekasi Barat": 69,
    "Bekasi Utara": 93,
    "Bekasi Selatan": 55,
    "Rawalumbu": 55,
    "Medan Satria": 45,
    "Bantar Gebang": 28,
    "Pondok Gede": 62,
    "Jatiasih": 62,
    "Jatisampurna": 31,
    "Mustika Jaya": 48,
    "Pondok Melati": 34,
}
UMKM_PER_DISTRICT = {
    "Bekasi Timur": 303,
    "Bekasi Barat": 319,
    "Bekasi Utara": 431,
    "Bekasi Selatan": 255,
    "Rawalumbu": 255,
    "Medan Satria": 208,
    "Bantar Gebang": 128,
    "Pondok Gede": 287,
    "Jatiasih": 287,
    "Jatisampurna": 144,
    "Mustika Jaya": 223,
    "Pondok Melati": 160,
}


@pytest.fixture(scope="module")
def sample() -> seed.Sample:
    return seed.generate(TODAY)


def test_the_sample_has_the_deputy_mayors_647_cooperatives_and_3000_umkm_in_12_kecamatan(
    sample: seed.Sample,
) -> None:
    assert len(sample.cooperatives) == 647
    assert len(sample.umkm) == 3_000
    assert sample.counts_by_district("cooperative") == COOPERATIVES_PER_DISTRICT
    assert sample.counts_by_district("umkm") == UMKM_PER_DISTRICT
    assert {d.name for d in seed.districts()} == COOPERATIVES_PER_DISTRICT.keys()
    assert seed.districts() == KOTA_BEKASI_DISTRICTS
    assert len({p.id for p in sample.parties}) == len(sample.parties), "party ids are unique"
    for party in sample.parties:
        district = party.region
        assert district["code"] == party.district.code
        assert district["code"].startswith("32.75.")


def test_the_same_sample_every_time(sample: seed.Sample) -> None:
    again = seed.generate(TODAY)
    assert again == sample
    assert [e["id"] for e in again.registry_events()] == [e["id"] for e in sample.registry_events()]
    assert [e["id"] for e in again.loan_events()] == [e["id"] for e in sample.loan_events()]
    # Another month: the same registry (parties, ids, names), new survey rounds.
    later = seed.generate(TODAY + timedelta(days=40))
    assert later.parties == sample.parties
    assert later.sellers() == sample.sellers()
    assert later.reports != sample.reports
    # Another seed: another city sample with the same counts.
    other = seed.generate(TODAY, seed=7)
    assert other.counts_by_district("umkm") == UMKM_PER_DISTRICT
    assert [p.name for p in other.parties] != [p.name for p in sample.parties]


def test_the_split_adds_up_and_follows_the_weights() -> None:
    assert seed.split(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert sum(seed.split(647, seed.DISTRICT_WEIGHTS).values()) == 647
    assert seed.split(0, {"a": 1}) == {"a": 0}


def test_the_kranggan_story_parties_are_registered_in_jatisampurna(sample: seed.Sample) -> None:
    by_id = {p.id: p for p in sample.parties}
    for number, name, _ in seed.STORY_COOPERATIVES:
        assert by_id[number].name == name
        assert by_id[number].district.name == "Jatisampurna"
    assert by_id[SELLER["nib"]].district.code == "32.75.10"


def test_every_event_is_valid_and_the_registry_claims_only_registry_types(sample: seed.Sample) -> None:
    registry = sample.registry_events()
    kinds = Counter(e["type"] for e in registry)
    assert kinds[seed.COOPERATIVE_REGISTERED] == 647
    assert kinds[seed.UMKM_REGISTERED] == 3_000
    closed = [p for p in sample.parties if p.closed_on is not None]
    assert 0 < len(closed) < len(sample.parties) // 10
    assert kinds[seed.COOPERATIVE_UPDATED] + kinds[seed.UMKM_UPDATED] == len(closed)
    assert kinds[seed.ACTIVITY_REPORTED] == len(sample.reports)
    for event in registry:
        decoded = validate_event_payload(event)
        assert IntegratorRole.REGISTRY in roles_for(decoded.envelope.type)
    for event in sample.loan_events():
        decoded = validate_event_payload(event)
        assert IntegratorRole.LENDER in roles_for(decoded.envelope.type)
    assert len({e["id"] for e in registry}) == len(registry), "event ids are unique"


def test_the_survey_is_a_realistic_mix_below_the_65_percent_target(sample: seed.Sample) -> None:
    latest: dict[str, bool] = {}
    for report in sorted(sample.reports, key=lambda r: r.as_of):
        latest[report.party.id] = report.operating
        assert report.as_of < TODAY
        assert (report.revenue_band == "none") == (not report.operating)
    for kind in ("cooperative", "umkm"):
        active = [p for p in sample.parties if p.kind == kind and p.closed_on is None]
        share = Decimal(sum(latest.get(p.id, False) for p in active)) / len(active)
        assert Decimal("0.45") < share < Decimal("0.65"), (kind, share)
    rounds = Counter(r.survey for r in sample.reports)
    assert sorted(rounds) == ["BEKASI-2026-02", "BEKASI-2026-08", "BEKASI-2026-11"]


def test_the_loans_repay_on_schedule_and_a_few_stopped(sample: seed.Sample) -> None:
    assert len(sample.loans) == seed.LOANS
    recent = TODAY - timedelta(days=90)
    stopped = [loan for loan in sample.loans if max(loan.repayments) < recent]
    assert len(stopped) == seed.STOPPED_PAYING
    for loan in sample.loans:
        assert loan.party.closed_on is None
        assert loan.first_due_on > loan.disbursed_on
        assert all(day <= TODAY for day in loan.repayments)
        assert loan.installment * loan.tenor_months > loan.principal
    assert seed.annuity(Decimal(1_200_000), Decimal("0.12"), 12) == Decimal(106_619)


def test_the_sales_are_by_active_umkm_the_demo_integrator_may_sell_for(sample: seed.Sample) -> None:
    assert len(sample.sales) == seed.SALES
    (integrator,) = [m for m in demo_mandates() if m.organisation == INTEGRATOR_ORG]
    grant = integrator.grant(IntegratorRole.SELLER)
    assert grant is not None
    for sale in sample.sales:
        assert sale.party.kind == "umkm"
        assert sale.party.closed_on is None
        assert sale.party.id in grant.parties
        body = seed.product_body(sale)
        assert body["seller"]["nib"] == sale.party.id
        assert body["seller"]["region"]["district"] == sale.party.district.name
    assert seed.sample_sellers() == sample.sellers()


def test_kumkm_seed_dry_run_validates_the_sample_offline() -> None:
    from typer.testing import CliRunner

    from kumkm_shared.cli.main import app

    result = CliRunner().invoke(app, ["seed", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "valid: " in result.output
    assert "647 cooperatives, 3000 UMKM" in result.output
    assert "24 loans, 8 sales" in result.output
