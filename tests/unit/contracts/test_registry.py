import pytest

from kumkm_shared.contracts import (
    DLQ_STREAM,
    EVENTS,
    STREAMS,
    ContractError,
    dlq_subject,
    events_for,
    external_types,
    spec_for,
    stream_for,
)

pytestmark = pytest.mark.unit

# Every event type in catalog order, with its "ext" flag (docs/rules/messaging.md, "Who publishes what").
EXPECTED: list[tuple[str, bool]] = [
    ("kumkm.loans.loan.disbursed.v1", True),
    ("kumkm.loans.repayment.received.v1", True),
    ("kumkm.loans.installment.overdue.v1", False),
    ("kumkm.loans.loan.collectibility_changed.v1", False),
    ("kumkm.loans.restructuring.requested.v1", True),
    ("kumkm.loans.restructuring.approved.v1", False),
    ("kumkm.loans.restructuring.rejected.v1", False),
    ("kumkm.loans.restructuring.referred.v1", False),
    ("kumkm.catalog.product.submitted.v1", True),
    ("kumkm.catalog.product.curated.v1", False),
    ("kumkm.catalog.product.delisted.v1", False),
    ("kumkm.catalog.product.stock_updated.v1", True),
    ("kumkm.catalog.order.placed.v1", True),
    ("kumkm.catalog.order.accepted.v1", False),
    ("kumkm.catalog.order.rejected.v1", False),
    ("kumkm.catalog.order.confirmed.v1", True),
    ("kumkm.catalog.order.shipped.v1", True),
    ("kumkm.catalog.order.delivered.v1", True),
    ("kumkm.catalog.order.paid.v1", True),
    # The catalog's own records that an integrator's step took effect, or was refused.
    ("kumkm.catalog.order.status_changed.v1", False),
    ("kumkm.catalog.order.step_refused.v1", False),
    ("kumkm.catalog.order.cancelled.v1", False),
    ("kumkm.notifications.contact.upserted.v1", True),
    ("kumkm.notifications.notification.delivered.v1", False),
    ("kumkm.notifications.notification.failed.v1", False),
    # The party registry: published by registry organisations only.
    ("kumkm.registry.cooperative.registered.v1", True),
    ("kumkm.registry.cooperative.updated.v1", True),
    ("kumkm.registry.umkm.registered.v1", True),
    ("kumkm.registry.umkm.updated.v1", True),
    ("kumkm.registry.activity.reported.v1", True),
]
EXPECTED_AGGREGATES = {
    "loans.loan": "loan_id",
    "loans.repayment": "loan_id",
    "loans.installment": "loan_id",
    "loans.restructuring": "request_id",
    "catalog.product": "product_id",
    "catalog.order": "order_id",
    "notifications.contact": "party_id",
    "notifications.notification": "notification_id",
    "registry.cooperative": "cooperative_number",
    "registry.umkm": "nib",
    "registry.activity": "party_id",
}


def test_registry_matches_the_design_catalog() -> None:
    assert [(spec.type, spec.external) for spec in EVENTS.values()] == EXPECTED
    assert len(EVENTS) == 30  # 8 loans + 14 catalog + 3 notifications + 5 registry


@pytest.mark.parametrize(("event_type", "external"), EXPECTED)
def test_spec_fields(event_type: str, external: bool) -> None:
    spec = spec_for(event_type)
    context = event_type.split(".")[1]
    assert spec.type == spec.subject == spec.model.event_type == event_type
    assert spec.context == spec.owner == context
    assert spec.stream == f"KUMKM_{context.upper()}"
    assert spec.external is external
    assert spec.version == 1
    assert spec.name == event_type.removesuffix(".v1")
    assert spec.description
    aggregate = ".".join(event_type.split(".")[1:3])
    assert spec.model.aggregate_field == EXPECTED_AGGREGATES[aggregate]


def test_streams() -> None:
    assert dict(STREAMS) == {
        "KUMKM_LOANS": "kumkm.loans.>",
        "KUMKM_CATALOG": "kumkm.catalog.>",
        "KUMKM_NOTIFICATIONS": "kumkm.notifications.>",
        "KUMKM_REGISTRY": "kumkm.registry.>",
        "KUMKM_DLQ": "kumkm.dlq.>",
    }
    assert DLQ_STREAM == "KUMKM_DLQ"
    assert stream_for("loans") == "KUMKM_LOANS"
    for spec in EVENTS.values():
        assert spec.type.startswith(STREAMS[spec.stream].removesuffix(">"))


def test_dlq_subject() -> None:
    assert dlq_subject("loans") == "kumkm.dlq.loans"
    assert dlq_subject("notifications") == "kumkm.dlq.notifications"
    with pytest.raises(ValueError, match="unknown context 'dlq'"):
        dlq_subject("dlq")  # type: ignore[arg-type]


def test_external_types() -> None:
    assert external_types() == tuple(t for t, ext in EXPECTED if ext)
    assert external_types("loans") == (
        "kumkm.loans.loan.disbursed.v1",
        "kumkm.loans.repayment.received.v1",
        "kumkm.loans.restructuring.requested.v1",
    )
    assert external_types("notifications") == ("kumkm.notifications.contact.upserted.v1",)
    assert len(events_for("catalog")) == 14
    assert len(external_types("registry")) == 5


def test_spec_for_unknown() -> None:
    with pytest.raises(ContractError) as info:
        spec_for("kumkm.loans.loan.vanished.v1")
    assert info.value.code == "unknown_type"
    with pytest.raises(ContractError) as info:
        spec_for("kumkm.loans.loan.disbursed.v3")
    assert info.value.code == "unsupported_version"
    with pytest.raises(ContractError) as info:
        spec_for("kumkm.loans.loan.disbursed")
    assert info.value.code == "unknown_type"
