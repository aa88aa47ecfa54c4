"""The monitoring service's wiring: its AsyncAPI document, region filters, permissions and settings."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from kumkm_monitoring.app import build
from kumkm_monitoring.domain import Signal, check_in_scope, permissions, region_filter
from kumkm_monitoring.handlers import DURABLES
from kumkm_monitoring.settings import MonitoringSettings
from kumkm_shared import InfraSettings, ServiceRuntime
from kumkm_shared.auth.scope import RegionScope
from kumkm_shared.errors import Forbidden
from kumkm_shared.messaging.topology import consumers_of
from kumkm_shared.natsauth.permissions import PLATFORM_USERS

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "asyncapi" / "monitoring.yaml"
BEKASI = RegionScope.parse(["Jawa Barat/Kota Bekasi"])


def test_committed_asyncapi_matches_the_generated_one() -> None:
    generated = ServiceRuntime(build(), InfraSettings()).asyncapi().to_specification().to_yaml()
    assert yaml.safe_load(COMMITTED.read_text(encoding="utf-8")) == yaml.safe_load(generated), (
        "docs/asyncapi/monitoring.yaml is stale: "
        "run `python -m kumkm_monitoring asyncapi --out docs/asyncapi/monitoring.yaml`"
    )


def test_the_durables_are_declared_and_the_nats_user_may_only_pull_them_and_dead_letter() -> None:
    assert {d.name for d in consumers_of("monitoring")} == set(DURABLES)
    assert set(build().consumers) == set(DURABLES)
    pub = PLATFORM_USERS["monitoring"][1]["pub"]["allow"]
    assert "kumkm.dlq.monitoring" in pub
    assert not [s for s in pub if s.startswith("kumkm.") and s != "kumkm.dlq.monitoring"]
    assert all(f"$JS.API.CONSUMER.MSG.NEXT.{d.stream}.{d.name}" in pub for d in consumers_of("monitoring"))


def test_region_filters() -> None:
    # Asking for nothing: the one city of the scope.
    assert region_filter(BEKASI, permissions.READ, None, None) == ("jawa barat", "kota bekasi")
    assert region_filter(BEKASI, permissions.READ, "Jawa Barat", "Kota Bekasi") == (
        "Jawa Barat",
        "Kota Bekasi",
    )
    for province, city in (("Jawa Barat", None), ("Jawa Timur", "Kota Surabaya"), (None, "Kota Bekasi")):
        with pytest.raises(Forbidden) as refused:
            region_filter(BEKASI, permissions.READ, province, city)
        assert refused.value.code == "outside_region"
    with pytest.raises(Forbidden):
        region_filter(RegionScope(), permissions.READ, None, None)
    two = RegionScope.parse(["Jawa Barat/Kota Bekasi", "Jawa Timur"])
    with pytest.raises(Forbidden) as refused:
        region_filter(two, permissions.READ, None, None)
    assert refused.value.code == "choose_region"
    assert region_filter(RegionScope(national=True), permissions.READ, None, None) == (None, None)
    with pytest.raises(Forbidden):
        check_in_scope(BEKASI, permissions.READ, "party '1'", "Jawa Timur", "Kota Surabaya")
    check_in_scope(BEKASI, permissions.READ, "party '1'", "Jawa Barat", "Kota Bekasi")


def test_permissions_and_their_roles() -> None:
    assert permissions.PERMISSIONS[permissions.READ] == {
        "monitoring-viewer",
        "loans-supervisor",
        "operator",
        "auditor",
    }
    assert permissions.PERMISSIONS[permissions.OUTREACH] == {"monitoring-viewer", "operator"}
    assert build().permissions == permissions.PERMISSIONS


def test_settings_from_the_environment_and_a_targets_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = MonitoringSettings()
    assert default.rules().window_days == 90
    target = default.target_table().find("Jawa Barat", "Kota Bekasi", "umkm")
    assert target is not None
    assert (target.share, target.population) == (Decimal("0.65"), 203_000)
    assert default.procurement_target_share == Decimal("0.40")
    monkeypatch.setenv("KUMKM_MONITORING_WINDOW_DAYS", "60")
    monkeypatch.setenv("KUMKM_MONITORING_SIGNALS", '["loan", "activity"]')
    targets = tmp_path / "targets.json"
    targets.write_text(
        json.dumps([{"province": "Jawa Timur", "city": "Kota Surabaya", "kind": "umkm", "share": "0.7"}])
    )
    monkeypatch.setenv("KUMKM_MONITORING_TARGETS_FILE", str(targets))
    settings = MonitoringSettings()
    assert settings.rules().window_days == 60
    assert settings.rules().enabled == (Signal.LOAN, Signal.ACTIVITY)
    table = settings.target_table()
    assert table.find("Jawa Barat", "Kota Bekasi", "umkm") is None
    assert table.share_for("Jawa Timur", "Kota Surabaya", "umkm") == Decimal("0.7")
