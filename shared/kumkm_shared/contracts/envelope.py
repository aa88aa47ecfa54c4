"""The CloudEvents 1.0 envelope (structured JSON mode), and encoding, decoding and validating events."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypedDict, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kumkm_shared.contracts.base import EventData
from kumkm_shared.contracts.errors import ContractError, FieldError, field_errors
from kumkm_shared.contracts.loans import SCHEME_NAMES
from kumkm_shared.contracts.registry import EventSpec, spec_for
from kumkm_shared.contracts.types import UtcDateTime

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DecodedEvent",
    "Envelope",
    "caused_by",
    "decode_event",
    "make_event",
    "validate_event_payload",
]

DEFAULT_MAX_BYTES: Final = 1_048_576
_DISCRIMINATOR_TAGS: Final = frozenset(SCHEME_NAMES)

_Attr = Annotated[str, Field(min_length=1, max_length=512)]

E = TypeVar("E", bound=EventData)


class Envelope(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode.

    `type` is the NATS subject, or its prefix when an integrator organisation sends it
    (`<type>.<organisation>`); `subject` carries the aggregate id, `id` doubles as the JetStream
    `Nats-Msg-Id`. The extensions `correlationid` (the business flow), `causationid` (the id of the
    event that caused this one) and `traceparent` (W3C trace context) are optional. Unknown attributes
    are ignored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"]
    id: UUID
    source: Annotated[_Attr, Field(examples=["kumkm/loans", "urn:integrator:bank-bjb"])]
    type: Annotated[_Attr, Field(examples=["kumkm.loans.restructuring.requested.v1"])]
    time: UtcDateTime
    datacontenttype: Literal["application/json"]
    # Optional in CloudEvents; when an integrator leaves it out it is filled in from the aggregate id.
    subject: _Attr | None = None
    dataschema: _Attr | None = None
    correlationid: _Attr | None = None
    causationid: _Attr | None = None
    traceparent: _Attr | None = None
    data: dict[str, Any]

    @property
    def msg_id(self) -> str:
        """The JetStream `Nats-Msg-Id` header value (the event id)."""
        return str(self.id)

    def to_json_bytes(self) -> bytes:
        """The structured-mode JSON body (UTF-8); absent optional attributes are left out."""
        return self.model_dump_json(exclude_none=True).encode()


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """A validated event: the envelope and its typed data."""

    envelope: Envelope
    data: EventData

    @property
    def spec(self) -> EventSpec:
        """The catalog entry of the event's type."""
        return spec_for(self.envelope.type)

    def data_as(self, model: type[E]) -> E:
        """The data as `model`; raises `TypeError` when the event is of another type."""
        if not isinstance(self.data, model):
            msg = f"expected {model.event_type}, got {self.envelope.type}"
            raise TypeError(msg)
        return self.data


class Causation(TypedDict):
    causationid: str
    correlationid: str


def caused_by(event_id: UUID | str, correlationid: str | None) -> Causation:
    """``make_event``'s arguments for an event caused by ``event_id``: it joins the cause's flow."""
    return {"causationid": str(event_id), "correlationid": correlationid or str(event_id)}


def make_event(
    data: EventData,
    *,
    source: str,
    correlationid: str | UUID | None = None,
    causationid: str | UUID | None = None,
    traceparent: str | None = None,
    event_id: UUID | None = None,
    time: datetime | None = None,
) -> Envelope:
    """Wrap `data` in an envelope: `type`, `subject` and `dataschema` come from the model.

    `correlationid` defaults to the new event's id (the event starts a flow); `time` defaults to now (UTC)
    and must be timezone-aware.
    """
    spec = spec_for(data.event_type)
    if not isinstance(data, spec.model):
        msg = f"{type(data).__name__} is not the registered model of {spec.type} ({spec.model.__name__})"
        raise TypeError(msg)
    identifier = event_id or uuid4()
    try:
        return Envelope(
            specversion="1.0",
            id=identifier,
            source=source,
            type=spec.type,
            time=time or datetime.now(UTC),
            datacontenttype="application/json",
            subject=data.aggregate_id(),
            dataschema=spec.dataschema,
            correlationid=str(correlationid or identifier),
            causationid=None if causationid is None else str(causationid),
            traceparent=traceparent,
            data=data.model_dump(mode="json"),
        )
    except ValidationError as exc:
        errors = field_errors(exc)
        raise ContractError(
            "invalid_envelope",
            f"cannot build an envelope for {spec.type}",
            errors,
            event_type=spec.type,
            event_id=str(identifier),
        ) from exc


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def decode_event(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> DecodedEvent:
    """Parse and validate a structured-mode CloudEvent; raise `ContractError` on any failure."""
    if len(raw) > max_bytes:
        raise ContractError("oversized", f"event is {len(raw)} bytes, more than the limit of {max_bytes}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(
            "undecodable", f"event is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ContractError("undecodable", f"event is not valid JSON: {exc}") from exc
    return validate_event_payload(payload)


def _json_kind(value: object) -> str:
    kinds: dict[type, str] = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def validate_event_payload(obj: object) -> DecodedEvent:
    """Validate an already-parsed JSON event (a dict); raise `ContractError` on any failure."""
    if not isinstance(obj, dict):
        raise ContractError("undecodable", f"an event must be a JSON object, got {_json_kind(obj)}")
    raw_type = obj.get("type")
    raw_id = obj.get("id")
    event_type = raw_type if isinstance(raw_type, str) else None
    event_id = raw_id if isinstance(raw_id, str) else None
    try:
        envelope = Envelope.model_validate(obj)
    except ValidationError as exc:
        errors = field_errors(exc)
        raise ContractError(
            "invalid_envelope",
            f"the CloudEvents envelope is invalid ({_count(errors)})",
            errors,
            event_type=event_type,
            event_id=event_id,
        ) from exc
    event_id = str(envelope.id)
    try:
        spec = spec_for(envelope.type)
    except ContractError as exc:
        exc.event_id = event_id
        exc.errors = [FieldError("type", exc.message)]
        raise
    try:
        data = spec.model.model_validate(envelope.data)
    except ValidationError as exc:
        errors = field_errors(exc, prefix="data", skip_tags=_DISCRIMINATOR_TAGS)
        raise ContractError(
            "schema_violation",
            f"data does not match the schema of {spec.type} ({_count(errors)})",
            errors,
            event_type=spec.type,
            event_id=event_id,
        ) from exc
    aggregate_id = data.aggregate_id()
    if envelope.subject is None:
        envelope = envelope.model_copy(update={"subject": aggregate_id})
    if envelope.subject != aggregate_id:
        expected = f"data.{data.aggregate_field} ({aggregate_id!r})"
        raise ContractError(
            "invalid_envelope",
            "subject must carry the aggregate id",
            [
                FieldError(
                    "subject",
                    f"must equal {expected}, got {envelope.subject!r}",
                )
            ],
            event_type=spec.type,
            event_id=event_id,
        )
    return DecodedEvent(envelope=envelope, data=data)


def _count(errors: list[FieldError]) -> str:
    return "1 error" if len(errors) == 1 else f"{len(errors)} errors"
