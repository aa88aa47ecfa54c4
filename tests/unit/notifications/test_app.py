from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kumkm_notifications.app import build
from kumkm_notifications.rendering import MissingTemplateError, TemplateCatalog
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared import InfraSettings, ServiceRuntime
from kumkm_shared.messaging.topology import consumers_of

pytestmark = pytest.mark.unit

ASYNCAPI = Path(__file__).parents[3] / "docs" / "asyncapi" / "notifications.yaml"


def test_a_missing_template_stops_the_service_at_build(tmp_path: Path) -> None:
    with pytest.raises(
        MissingTemplateError, match=r"id_ID/kumkm\.loans\.restructuring\.approved\.v1\.j2: missing"
    ):
        build(templates=TemplateCatalog(tmp_path))


def test_every_declared_durable_has_a_handler_for_each_of_its_subjects() -> None:
    definition = build()
    decls = {d.name: d for d in consumers_of("notifications")}
    assert set(definition.consumers) == set(decls)
    for name, handlers in definition.consumers.items():
        assert set(handlers) == set(decls[name].filter_subjects), name


def test_the_committed_asyncapi_document_is_the_generated_one() -> None:
    # Regenerate with: python -m kumkm_notifications asyncapi --out docs/asyncapi/notifications.yaml
    generated = ServiceRuntime(build(), InfraSettings()).asyncapi().to_specification().to_yaml()
    # FastStream orders channels by hash seed, so compare the documents, not their key order.
    assert yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8")) == yaml.safe_load(generated)


def test_settings_read_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMKM_NOTIFICATIONS_SMTP_HOST", "mailpit")
    monkeypatch.setenv("KUMKM_NOTIFICATIONS_SMTP_PORT", "1025")
    monkeypatch.setenv("KUMKM_NOTIFICATIONS_SMTP_STARTTLS", "true")
    monkeypatch.setenv("KUMKM_NOTIFICATIONS_OFFICERS_PARTY_ID", "OFFICERS-LPDB")
    monkeypatch.setenv("KUMKM_NOTIFICATIONS_GATEWAY_URL", "https://gateway.example/send")
    monkeypatch.setenv("KUMKM_NOTIFICATIONS_MAX_ATTEMPTS", "5")
    settings = NotificationsSettings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == ("mailpit", 1025, True)
    assert settings.officers_party_id == "OFFICERS-LPDB"
    assert settings.gateway_url == "https://gateway.example/send"
    assert settings.max_attempts == 5
