"""The event catalog: every event type, its model, stream and whether integrators may publish it."""

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, get_args

from kumkm_shared.contracts import catalog, loans, notifications, parties
from kumkm_shared.contracts.base import EventData
from kumkm_shared.contracts.errors import ContractError

__all__ = [
    "CONTEXTS",
    "DLQ_STREAM",
    "EVENTS",
    "SCHEMA_BASE_URI",
    "STREAMS",
    "Context",
    "EventSpec",
    "dlq_subject",
    "events_for",
    "external_types",
    "schema_uri",
    "spec_for",
    "stream_for",
]

Context = Literal["loans", "catalog", "notifications", "registry"]
CONTEXTS: Final[tuple[Context, ...]] = get_args(Context)

SCHEMA_BASE_URI: Final = "https://schemas.kumkm.go.id/events/"
"""Base of the ``dataschema`` URI and of the JSON Schemas' ``$id``; the file name is ``<type>.json``."""

DLQ_STREAM: Final = "KUMKM_DLQ"

STREAMS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "KUMKM_LOANS": "kumkm.loans.>",
        "KUMKM_CATALOG": "kumkm.catalog.>",
        "KUMKM_NOTIFICATIONS": "kumkm.notifications.>",
        "KUMKM_REGISTRY": "kumkm.registry.>",
        DLQ_STREAM: "kumkm.dlq.>",
    }
)


def stream_for(context: Context) -> str:
    """The stream that holds a context's events, e.g. ``KUMKM_LOANS``."""
    _check_context(context)
    return f"KUMKM_{context.upper()}"


def dlq_subject(context: Context) -> str:
    """The dead-letter subject of a context, e.g. ``kumkm.dlq.loans``."""
    _check_context(context)
    return f"kumkm.dlq.{context}"


def schema_uri(event_type: str) -> str:
    """The ``dataschema`` URI of an event type (also the ``$id`` of its exported JSON Schema)."""
    return f"{SCHEMA_BASE_URI}{event_type}.json"


def _check_context(context: str) -> None:
    if context not in CONTEXTS:
        msg = f"unknown context {context!r}; expected one of {', '.join(CONTEXTS)}"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Everything the platform knows about one event type."""

    type: str
    model: builtins.type[EventData]
    context: Context
    subject: str
    stream: str
    external: bool
    owner: Context

    @property
    def name(self) -> str:
        """The type without its version, e.g. ``kumkm.loans.loan.disbursed``."""
        return self.type.rsplit(".", 1)[0]

    @property
    def version(self) -> int:
        """The major version, e.g. 1."""
        return int(self.type.rsplit(".v", 1)[1])

    @property
    def dataschema(self) -> str:
        """The JSON Schema URI of the data."""
        return schema_uri(self.type)

    @property
    def description(self) -> str:
        """The first paragraph of the model's docstring, on one line."""
        doc = (self.model.__doc__ or "").strip().split("\n\n", 1)[0]
        return " ".join(doc.split())


# (model, ext) in the order of the design handbook's catalog
_CATALOG: Final[tuple[tuple[Context, tuple[tuple[type[EventData], bool], ...]], ...]] = (
    (
        "loans",
        (
            (loans.LoanDisbursed, True),
            (loans.RepaymentReceived, True),
            (loans.InstallmentOverdue, False),
            (loans.LoanCollectibilityChanged, False),
            (loans.RestructuringRequested, True),
            (loans.RestructuringApproved, False),
            (loans.RestructuringRejected, False),
            (loans.RestructuringReferred, False),
        ),
    ),
    (
        "catalog",
        (
            (catalog.ProductSubmitted, True),
            (catalog.ProductCurated, False),
            (catalog.ProductDelisted, False),
            (catalog.ProductStockUpdated, True),
            (catalog.OrderPlaced, True),
            (catalog.OrderAccepted, False),
            (catalog.OrderRejected, False),
            (catalog.OrderConfirmed, True),
            (catalog.OrderShipped, True),
            (catalog.OrderDelivered, True),
            (catalog.OrderPaid, True),
            (catalog.OrderStatusChanged, False),
            (catalog.OrderStepRefused, False),
            (catalog.OrderCancelled, False),
        ),
    ),
    (
        "notifications",
        (
            (notifications.ContactUpserted, True),
            (notifications.NotificationDelivered, False),
            (notifications.NotificationFailed, False),
        ),
    ),
    (
        "registry",
        (
            (parties.CooperativeRegistered, True),
            (parties.CooperativeUpdated, True),
            (parties.UmkmRegistered, True),
            (parties.UmkmUpdated, True),
            (parties.ActivityReported, True),
        ),
    ),
)


def _build() -> dict[str, EventSpec]:
    specs: dict[str, EventSpec] = {}
    for context, models in _CATALOG:
        for model, external in models:
            event_type = model.event_type
            if not event_type.startswith(f"kumkm.{context}."):  # pragma: no cover - guards the table above
                msg = f"{model.__name__}.event_type {event_type!r} is not in context {context!r}"
                raise RuntimeError(msg)
            if model.aggregate_field not in model.model_fields:  # pragma: no cover
                msg = f"{model.__name__}.aggregate_field {model.aggregate_field!r} is not a field"
                raise RuntimeError(msg)
            specs[event_type] = EventSpec(
                type=event_type,
                model=model,
                context=context,
                subject=event_type,
                stream=stream_for(context),
                external=external,
                owner=context,
            )
    return specs


EVENTS: Final[Mapping[str, EventSpec]] = MappingProxyType(_build())
"""Every event type, in catalog order."""

_BY_NAME: Final[Mapping[str, tuple[int, ...]]] = MappingProxyType(
    {
        name: tuple(sorted(spec.version for spec in EVENTS.values() if spec.name == name))
        for name in {spec.name for spec in EVENTS.values()}
    }
)


def spec_for(event_type: str) -> EventSpec:
    """The spec of an event type; raises ``ContractError`` (``unknown_type`` or ``unsupported_version``)."""
    spec = EVENTS.get(event_type)
    if spec is not None:
        return spec
    name, dot_v, version = event_type.rpartition(".v")
    if dot_v and version.isdigit() and name in _BY_NAME:
        known = ", ".join(f"v{v}" for v in _BY_NAME[name])
        raise ContractError(
            "unsupported_version",
            f"event type {event_type!r} has an unsupported major version; this build knows {name} {known}",
            event_type=event_type,
        )
    raise ContractError("unknown_type", f"unknown event type {event_type!r}", event_type=event_type)


def events_for(context: Context | None = None) -> tuple[EventSpec, ...]:
    """The specs of one context (or of all), in catalog order."""
    if context is not None:
        _check_context(context)
    return tuple(spec for spec in EVENTS.values() if context is None or spec.context == context)


def external_types(context: Context | None = None) -> tuple[str, ...]:
    """The event types integrators may publish ("ext"), optionally of one context, in catalog order."""
    return tuple(spec.type for spec in events_for(context) if spec.external)
