"""The committed AsyncAPI document is the one FastStream generates from the service definition."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kumkm_loans.app import build
from kumkm_shared import InfraSettings, ServiceRuntime

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "asyncapi" / "loans.yaml"


def test_committed_asyncapi_matches_the_generated_one() -> None:
    generated = ServiceRuntime(build(), InfraSettings()).asyncapi().to_specification().to_yaml()
    # FastStream's channel order is not stable between runs, so compare documents, not text.
    assert yaml.safe_load(COMMITTED.read_text(encoding="utf-8")) == yaml.safe_load(generated), (
        "docs/asyncapi/loans.yaml is stale: "
        "run `python -m kumkm_loans asyncapi --out docs/asyncapi/loans.yaml`"
    )


def test_the_document_names_every_event_the_service_consumes_and_publishes() -> None:
    document = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {
        "kumkm.loans.>",
        "kumkm.loans.restructuring.approved.v1",
        "kumkm.loans.restructuring.rejected.v1",
        "kumkm.loans.restructuring.referred.v1",
        "kumkm.loans.installment.overdue.v1",
        "kumkm.loans.loan.collectibility_changed.v1",
    } <= addresses
