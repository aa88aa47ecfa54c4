import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import jsonschema
import pytest
from pydantic import ValidationError

from kumkm_shared.contracts import (
    EVENTS,
    Channel,
    ContactUpserted,
    EventData,
    GraceOn,
    GracePeriod,
    LoanDisbursed,
    ProductCurated,
    RestructuringApproved,
    RestructuringRequested,
    TenorExtension,
    decode_event,
    make_event,
    spec_for,
)
from kumkm_shared.contracts.schemas import event_schema
from tests.support.samples import SAMPLES

pytestmark = pytest.mark.unit

ALL_TYPES = list(EVENTS)


def sample(event_type: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(SAMPLES[event_type])
    data.update(changes)
    return data


def build(event_type: str, **changes: Any) -> EventData:
    return spec_for(event_type).model.model_validate(sample(event_type, **changes))


def messages(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENTS)


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_model_declares_type_and_aggregate(event_type: str) -> None:
    model = spec_for(event_type).model
    assert model.event_type == event_type
    assert model.aggregate_field in model.model_fields
    data = build(event_type)
    assert data.aggregate_id() == SAMPLES[event_type][model.aggregate_field]
    assert model.__doc__, "the docstring becomes the catalog description"


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_round_trip_through_the_envelope(event_type: str) -> None:
    data = build(event_type)
    envelope = make_event(
        data, source="kumkm/test", causationid="c-1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    )
    raw = envelope.to_json_bytes()
    decoded = decode_event(raw)
    assert decoded.data == data
    assert type(decoded.data) is type(data)
    assert decoded.envelope == envelope
    assert decoded.spec is EVENTS[event_type]
    assert decoded.envelope.subject == data.aggregate_id()
    body = json.loads(raw)
    assert body["type"] == event_type
    assert body["dataschema"] == f"https://schemas.kumkm.go.id/events/{event_type}.json"
    # a second encode is byte-identical: the JSON form is stable
    assert (
        make_event(
            decoded.data,
            source="kumkm/test",
            event_id=envelope.id,
            time=envelope.time,
            causationid="c-1",
            traceparent=envelope.traceparent,
        ).to_json_bytes()
        == raw
    )


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_money_is_never_a_json_number(event_type: str) -> None:
    def walk(value: Any) -> None:
        assert not isinstance(value, float), value
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(make_event(build(event_type), source="kumkm/test").to_json_bytes()))


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_unknown_fields_are_ignored(event_type: str) -> None:
    data = sample(event_type, added_in_a_later_minor_change={"x": 1})
    model = spec_for(event_type).model
    assert model.model_validate(data) == build(event_type)


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_sample_validates_against_the_exported_json_schema(event_type: str) -> None:
    schema = event_schema(EVENTS[event_type])
    jsonschema.Draft202012Validator.check_schema(schema)
    dumped = build(event_type).model_dump(mode="json")
    jsonschema.Draft202012Validator(schema).validate(dumped)


def test_models_are_frozen() -> None:
    data = build("kumkm.loans.loan.disbursed.v1")
    with pytest.raises(ValidationError):
        data.loan_id = "other"  # type: ignore[misc]


def test_python_values_are_typed() -> None:
    loan = build("kumkm.loans.loan.disbursed.v1")
    assert isinstance(loan, LoanDisbursed)
    assert loan.principal == Decimal("2000000000.00")
    assert loan.annual_rate == Decimal("0.06")
    assert loan.disbursed_on == date(2019, 6, 3)
    approved = build("kumkm.loans.restructuring.approved.v1")
    assert isinstance(approved, RestructuringApproved)
    assert approved.decided_at == datetime(2020, 4, 15, 3, tzinfo=UTC)
    assert approved.terms == [TenorExtension(extra_months=12), GracePeriod(months=6, on=GraceOn.PRINCIPAL)]


def test_models_can_be_built_in_python() -> None:
    request = RestructuringRequested(
        request_id="RR-1",
        loan_id="LN-1",
        requested_on=date(2020, 4, 1),
        reason="covid19_indirect",  # type: ignore[arg-type]
        impact={"revenue_drop_pct": Decimal(30)},  # type: ignore[arg-type]
        proposal=[TenorExtension(extra_months=6)],
        reschedule_from=date(2020, 5, 1),
    )
    assert make_event(request, source="kumkm/test").subject == "RR-1"


# ---------------------------------------------------------------------------------------------- loans rules


def test_borrower_id_must_match_its_kind() -> None:
    borrower = sample("kumkm.loans.loan.disbursed.v1")["borrower"]
    with pytest.raises(ValidationError) as info:
        build("kumkm.loans.loan.disbursed.v1", borrower={**borrower, "id": "9120001234567"})
    assert messages(info.value) == [
        "borrower.id: Cooperative number (NIK koperasi) must be exactly 16 digits, got 13"
    ]
    with pytest.raises(ValidationError) as info:
        build("kumkm.loans.loan.disbursed.v1", borrower={**borrower, "kind": "umkm"})
    assert messages(info.value) == ["borrower.id: NIB must be exactly 13 digits, got 16"]


def test_first_due_must_follow_disbursement() -> None:
    with pytest.raises(ValidationError, match=r"first_due_on .* must be after disbursed_on"):
        build("kumkm.loans.loan.disbursed.v1", first_due_on="2019-06-03")


@pytest.mark.parametrize(
    ("scheme", "loc", "fragment"),
    [
        ({"scheme": "tenor_extension", "extra_months": 0}, "extra_months", "greater than or equal to 1"),
        ({"scheme": "tenor_extension", "extra_months": "6"}, "extra_months", "valid integer"),
        (
            {"scheme": "grace_period", "months": 3, "on": "interest"},
            "on",
            "'principal' or 'principal_and_interest'",
        ),
        ({"scheme": "rate_reduction", "new_annual_rate": "1.5"}, "new_annual_rate", "between 0 and 1"),
        ({"scheme": "principal_arrears_reduction", "amount": "0"}, "amount", "greater than 0"),
        ({"scheme": "interest_arrears_reduction"}, "amount", "Field required"),
    ],
)
def test_scheme_validation(scheme: dict[str, Any], loc: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        build("kumkm.loans.restructuring.requested.v1", proposal=[scheme])
    (error,) = info.value.errors()
    assert error["loc"][-1] == loc
    assert fragment in error["msg"]


def test_proposal_must_name_a_known_scheme_and_not_be_empty() -> None:
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        build("kumkm.loans.restructuring.requested.v1", proposal=[{"scheme": "debt_forgiveness"}])
    with pytest.raises(ValidationError, match="Unable to extract tag using discriminator 'scheme'"):
        build("kumkm.loans.restructuring.requested.v1", proposal=[{"extra_months": 3}])
    with pytest.raises(ValidationError, match="at least 1 item"):
        build("kumkm.loans.restructuring.requested.v1", proposal=[])


def test_proposal_names_each_scheme_once() -> None:
    twice = [
        {"scheme": "tenor_extension", "extra_months": 3},
        {"scheme": "tenor_extension", "extra_months": 6},
    ]
    with pytest.raises(ValidationError, match="'tenor_extension' appears twice"):
        build("kumkm.loans.restructuring.requested.v1", proposal=twice)


def test_reason_codes_and_reasons_must_agree() -> None:
    with pytest.raises(ValidationError, match="codes without a reason text: other_code"):
        build(
            "kumkm.loans.restructuring.rejected.v1",
            reason_codes=["collectibility_before_pandemic", "other_code"],
        )
    with pytest.raises(ValidationError, match="at least 1 item"):
        build("kumkm.loans.restructuring.referred.v1", reason_codes=[], reasons=[])


def test_collectibility_bounds_and_change() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 5"):
        build("kumkm.loans.loan.collectibility_changed.v1", current=6)
    with pytest.raises(ValidationError, match="must differ from previous"):
        build("kumkm.loans.loan.collectibility_changed.v1", current=1)


# ---------------------------------------------------------------------------------------------- catalog rules


def test_approved_product_needs_price_and_tier() -> None:
    with pytest.raises(ValidationError, match="approved product needs listed_price and tier"):
        build("kumkm.catalog.product.curated.v1", listed_price=None, tier=None)
    revision = build(
        "kumkm.catalog.product.curated.v1", decision="revision_requested", listed_price=None, tier=None
    )
    assert isinstance(revision, ProductCurated)
    with pytest.raises(ValidationError, match="only set when the decision is approved"):
        build("kumkm.catalog.product.curated.v1", decision="rejected")


def test_seller_identifiers_are_validated() -> None:
    seller = sample("kumkm.catalog.product.submitted.v1")["seller"]
    with pytest.raises(ValidationError) as info:
        build("kumkm.catalog.product.submitted.v1", seller={**seller, "nib": "123", "scale": "large"})
    assert sorted(messages(info.value)) == [
        "seller.nib: NIB must be exactly 13 digits, got 3",
        "seller.scale: Input should be 'micro', 'small' or 'medium'",
    ]
    submitted = build("kumkm.catalog.product.submitted.v1")
    assert submitted.model_dump()["seller"]["npwp"] == "012345678901000"


def test_delivered_requires_bast_number() -> None:
    data = sample("kumkm.catalog.order.delivered.v1")
    del data["bast_number"]
    with pytest.raises(ValidationError, match="bast_number"):
        spec_for("kumkm.catalog.order.delivered.v1").model.model_validate(data)


def test_accepted_total_must_match_lines() -> None:
    with pytest.raises(ValidationError, match=r"total \(7400001.00\) must equal the sum of line_total"):
        build("kumkm.catalog.order.accepted.v1", total="7400001.00")


def test_order_quantities_are_whole_numbers() -> None:
    line = {"product_id": "PRD-0001", "qty": 1.5, "unit_price": "1850000.00"}
    with pytest.raises(ValidationError, match="valid integer"):
        build("kumkm.catalog.order.placed.v1", lines=[line])


def test_cancelled_by_is_a_closed_set() -> None:
    with pytest.raises(ValidationError, match="'buyer', 'seller_timeout' or 'system'"):
        build("kumkm.catalog.order.cancelled.v1", by="seller")


# ---------------------------------------------------------------------------------------------- notifications


def test_contact_is_normalised() -> None:
    contact = build("kumkm.notifications.contact.upserted.v1", channels=["email", "email", "inbox"])
    assert isinstance(contact, ContactUpserted)
    assert contact.phone == "+6281234567890"
    assert contact.channels == [Channel.EMAIL, Channel.INBOX]


def test_contact_defaults() -> None:
    contact = ContactUpserted.model_validate(
        {"party_id": "KEMENKOPUKM", "name": "Biro Umum", "updated_at": "2020-04-01T00:00:00Z"}
    )
    assert contact.locale == "id_ID"
    assert contact.channels == [Channel.INBOX]
    assert contact.opt_outs == []


def test_contact_channels_need_addresses() -> None:
    with pytest.raises(ValidationError, match="sms needs phone; webhook needs webhook_url"):
        build(
            "kumkm.notifications.contact.upserted.v1",
            phone=None,
            webhook_url=None,
            channels=["sms", "webhook"],
        )
    with pytest.raises(ValidationError, match="email must look like"):
        build("kumkm.notifications.contact.upserted.v1", email="not-an-email")
    with pytest.raises(ValidationError, match="absolute http"):
        build("kumkm.notifications.contact.upserted.v1", webhook_url="ftp://example.co.id")
    with pytest.raises(ValidationError, match="'id_ID' or 'en_US'"):
        build("kumkm.notifications.contact.upserted.v1", locale="fr_FR")


def test_notification_receipt_keeps_source_event() -> None:
    receipt = build("kumkm.notifications.notification.delivered.v1")
    assert receipt.model_dump()["event_id"] == UUID("0b7f2d6e-4a59-4d8b-9f51-6c0e2f7a9b10")
    assert receipt.aggregate_id() == "NTF-0001"


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_integrator_payload_validates_against_the_exported_json_schema(event_type: str) -> None:
    jsonschema.Draft202012Validator(event_schema(EVENTS[event_type])).validate(SAMPLES[event_type])
