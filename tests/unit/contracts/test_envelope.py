import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from kumkm_shared.contracts import (
    DEFAULT_MAX_BYTES,
    ERROR_CODES,
    ContractError,
    DecodedEvent,
    Envelope,
    FieldError,
    LoanDisbursed,
    RepaymentReceived,
    decode_event,
    make_event,
    spec_for,
    validate_event_payload,
)
from tests.support.samples import SAMPLES

pytestmark = pytest.mark.unit

REQUESTED = "kumkm.loans.restructuring.requested.v1"
EVENT_ID = UUID("5f1c2b1e-8f2e-4a5d-9d55-0a1b2c3d4e5f")
NOW = datetime(2020, 4, 15, 3, 0, tzinfo=UTC)


def envelope_dict(event_type: str = REQUESTED, **changes: Any) -> dict[str, Any]:
    data = spec_for(event_type).model.model_validate(SAMPLES[event_type])
    body: dict[str, Any] = json.loads(
        make_event(data, source="urn:integrator:bank", event_id=EVENT_ID, time=NOW).to_json_bytes()
    )
    body.update(changes)
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def contract_error(raw: bytes, **kwargs: Any) -> ContractError:
    with pytest.raises(ContractError) as info:
        decode_event(raw, **kwargs)
    assert info.value.code in ERROR_CODES
    return info.value


# ---------------------------------------------------------------------------------------------- make_event


def test_make_event_derives_attributes_from_the_model() -> None:
    data = LoanDisbursed.model_validate(SAMPLES["kumkm.loans.loan.disbursed.v1"])
    envelope = make_event(data, source="kumkm/loans")
    assert envelope.specversion == "1.0"
    assert envelope.type == "kumkm.loans.loan.disbursed.v1"
    assert envelope.subject == "LN-2019-0001"
    assert envelope.dataschema == "https://schemas.kumkm.go.id/events/kumkm.loans.loan.disbursed.v1.json"
    assert envelope.datacontenttype == "application/json"
    assert envelope.correlationid == str(envelope.id)  # a new flow starts with this event
    assert envelope.causationid is None
    assert envelope.msg_id == str(envelope.id)
    assert envelope.time.tzinfo is not None
    assert abs((datetime.now(UTC) - envelope.time).total_seconds()) < 60
    assert envelope.data["principal"] == "2000000000.00"


def test_make_event_keeps_given_ids() -> None:
    data = LoanDisbursed.model_validate(SAMPLES["kumkm.loans.loan.disbursed.v1"])
    cause = uuid4()
    envelope = make_event(
        data, source="kumkm/loans", correlationid="flow-1", causationid=cause, event_id=EVENT_ID, time=NOW
    )
    assert envelope.id == EVENT_ID
    assert envelope.correlationid == "flow-1"
    assert envelope.causationid == str(cause)
    assert envelope.time == NOW


def test_make_event_refuses_naive_time() -> None:
    data = LoanDisbursed.model_validate(SAMPLES["kumkm.loans.loan.disbursed.v1"])
    with pytest.raises(ContractError) as info:
        make_event(data, source="kumkm/loans", time=datetime(2020, 4, 15, 3))  # noqa: DTZ001
    assert info.value.code == "invalid_envelope"
    assert info.value.errors[0].field == "time"
    assert "naive" in info.value.errors[0].message


def test_to_json_bytes_is_a_structured_cloudevent() -> None:
    body = json.loads(
        make_event(
            RepaymentReceived.model_validate(SAMPLES["kumkm.loans.repayment.received.v1"]),
            source="kumkm/loans",
            event_id=EVENT_ID,
            time=NOW,
        ).to_json_bytes()
    )
    assert body == {
        "specversion": "1.0",
        "id": str(EVENT_ID),
        "source": "kumkm/loans",
        "type": "kumkm.loans.repayment.received.v1",
        "time": "2020-04-15T03:00:00Z",
        "datacontenttype": "application/json",
        "subject": "LN-2019-0001",
        "dataschema": "https://schemas.kumkm.go.id/events/kumkm.loans.repayment.received.v1.json",
        "correlationid": str(EVENT_ID),
        "data": SAMPLES["kumkm.loans.repayment.received.v1"],
    }


# ---------------------------------------------------------------------------------------------- decoding


def test_decode_returns_envelope_and_typed_data() -> None:
    decoded = decode_event(encode(envelope_dict()))
    assert isinstance(decoded, DecodedEvent)
    assert isinstance(decoded.envelope, Envelope)
    request = decoded.data_as(spec_for(REQUESTED).model)
    assert request.aggregate_id() == "RR-2020-0001"
    with pytest.raises(TypeError, match=r"expected kumkm\.loans\.loan\.disbursed\.v1"):
        decoded.data_as(LoanDisbursed)


def test_unknown_envelope_attributes_are_ignored() -> None:
    decoded = decode_event(encode(envelope_dict(partitionkey="p-1", sequence="7")))
    assert decoded.envelope.id == EVENT_ID


def test_time_with_offset_is_normalised() -> None:
    decoded = decode_event(encode(envelope_dict(time="2020-04-15T10:00:00+07:00")))
    assert decoded.envelope.time == NOW


def test_oversized() -> None:
    raw = encode(envelope_dict())
    error = contract_error(raw, max_bytes=len(raw) - 1)
    assert error.code == "oversized"
    assert f"{len(raw)} bytes" in error.message
    assert DEFAULT_MAX_BYTES == 1_048_576


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b'"text"', "must be a JSON object, got a string"),
        (b"null", "must be a JSON object, got null"),
    ],
)
def test_undecodable(raw: bytes, fragment: str) -> None:
    error = contract_error(raw)
    assert error.code == "undecodable"
    assert fragment in error.message


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"specversion": "0.3"}, "specversion", "'1.0'"),
        ({"id": "not-a-uuid"}, "id", "UUID"),
        ({"time": "2020-04-15T03:00:00"}, "time", "naive"),
        ({"datacontenttype": "text/xml"}, "datacontenttype", "'application/json'"),
        ({"data": "x"}, "data", "valid dictionary"),
        ({"source": ""}, "source", "at least 1 character"),
    ],
)
def test_invalid_envelope_names_the_field(changes: dict[str, Any], field: str, fragment: str) -> None:
    error = contract_error(encode(envelope_dict(**changes)))
    assert error.code == "invalid_envelope"
    assert [e.field for e in error.errors] == [field]
    assert fragment in error.errors[0].message
    assert error.event_type == REQUESTED


@pytest.mark.parametrize(
    "missing", ["specversion", "id", "source", "type", "time", "datacontenttype", "data"]
)
def test_required_envelope_attributes(missing: str) -> None:
    body = envelope_dict()
    del body[missing]
    error = contract_error(encode(body))
    assert error.code == "invalid_envelope"
    assert error.errors == [FieldError(missing, "Field required")]


def test_missing_subject_is_filled_from_the_aggregate_id() -> None:
    body = envelope_dict()
    del body["subject"]
    decoded = decode_event(encode(body))
    assert decoded.envelope.subject == "RR-2020-0001"


def test_subject_must_carry_the_aggregate_id() -> None:
    error = contract_error(encode(envelope_dict(subject="LN-2019-0001")))
    assert error.code == "invalid_envelope"
    assert error.errors[0].field == "subject"
    assert "data.request_id ('RR-2020-0001')" in error.errors[0].message


def test_unknown_type() -> None:
    error = contract_error(encode(envelope_dict(type="kumkm.loans.loan.exploded.v1")))
    assert error.code == "unknown_type"
    assert error.errors[0].field == "type"
    assert "kumkm.loans.loan.exploded.v1" in str(error)
    assert error.event_id == str(EVENT_ID)


def test_unsupported_version() -> None:
    error = contract_error(encode(envelope_dict(type="kumkm.loans.restructuring.requested.v2")))
    assert error.code == "unsupported_version"
    assert error.errors[0].field == "type"
    assert "knows kumkm.loans.restructuring.requested v1" in error.message


def test_schema_violation_names_each_field_with_a_dotted_path() -> None:
    body = envelope_dict()
    body["data"]["proposal"][0]["extra_months"] = 0
    body["data"]["impact"]["revenue_drop_pct"] = 45.5
    body["data"]["reason"] = "flood"
    del body["data"]["loan_id"]
    error = contract_error(encode(body))
    assert error.code == "schema_violation"
    assert error.event_type == REQUESTED
    assert error.event_id == str(EVENT_ID)
    by_field = {e.field: e.message for e in error.errors}
    assert set(by_field) == {
        "data.proposal.0.extra_months",
        "data.impact.revenue_drop_pct",
        "data.reason",
        "data.loan_id",
    }
    assert by_field["data.proposal.0.extra_months"] == "Input should be greater than or equal to 1"
    assert "must not be a float" in by_field["data.impact.revenue_drop_pct"]
    assert by_field["data.loan_id"] == "Field required"
    text = str(error)
    assert (
        text.splitlines()[0] == f"schema_violation: data does not match the schema of {REQUESTED} (4 errors)"
    )
    assert "  - data.proposal.0.extra_months: Input should be greater than or equal to 1" in text.splitlines()


def test_model_validator_errors_read_cleanly() -> None:
    body = envelope_dict("kumkm.loans.loan.disbursed.v1", subject="LN-2019-0001")
    body["data"]["first_due_on"] = body["data"]["disbursed_on"]
    error = contract_error(encode(body))
    assert error.code == "schema_violation"
    assert error.errors == [
        FieldError("data", "first_due_on (2019-06-03) must be after disbursed_on (2019-06-03)")
    ]


def test_money_float_in_payload_is_a_schema_violation() -> None:
    body = envelope_dict("kumkm.loans.repayment.received.v1", subject="LN-2019-0001")
    body["data"]["amount"] = 60844000.0
    error = contract_error(encode(body))
    assert error.code == "schema_violation"
    assert error.errors[0].field == "data.amount"
    assert "Money must not be a float" in error.errors[0].message


def test_validate_event_payload_accepts_parsed_json() -> None:
    decoded = validate_event_payload(envelope_dict())
    assert decoded.envelope.id == EVENT_ID
    with pytest.raises(ContractError) as info:
        validate_event_payload([envelope_dict()])
    assert info.value.code == "undecodable"


def test_contract_error_as_dict_and_repr() -> None:
    error = contract_error(encode(envelope_dict(type="kumkm.nope.thing.happened.v1")))
    assert error.as_dict() == {
        "code": "unknown_type",
        "message": "unknown event type 'kumkm.nope.thing.happened.v1'",
        "errors": [{"field": "type", "message": "unknown event type 'kumkm.nope.thing.happened.v1'"}],
        "event_type": "kumkm.nope.thing.happened.v1",
        "event_id": str(EVENT_ID),
    }
    assert repr(error).startswith("ContractError('unknown_type'")
