"""Request bodies of the catalog's commands (integrator events are posted in their contract's shape).

A body field that becomes an event field has the contract's own type, so what the event would refuse is a
422 naming the body field, never a failure while building the event.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kumkm_shared.contracts import CatalogTier, ChecklistItem, CurationDecision, DelistReason
from kumkm_shared.contracts.catalog import Stock
from kumkm_shared.contracts.types import (
    BusinessDate,
    Identifier,
    Name,
    PositiveMoney,
    RequiredText,
    Text,
    UtcDateTime,
)

_BODY = ConfigDict(extra="forbid")


class CurationRequest(BaseModel):
    """A curator's decision. The curator is whoever signed in (the token's subject), never a body field."""

    model_config = _BODY
    decision: CurationDecision
    tier: CatalogTier | None = None
    notes: Text = ""
    listed_price: PositiveMoney | None = None
    checklist: list[ChecklistItem] = Field(default_factory=list)
    revision: int | None = Field(
        default=None, ge=1, description="The revision decided; refused if superseded"
    )
    lift_sanction: bool = Field(
        default=False,
        description="Approve a product once delisted as sanctioned, lifting the sanction (needs notes); "
        "the first curator's lift waits for a second, different curator's",
    )


class StockRequest(BaseModel):
    model_config = _BODY
    stock: Stock
    as_of: UtcDateTime | None = None


class DelistRequest(BaseModel):
    """Delisting; the curator who delists is whoever signed in (``delisted_by``)."""

    model_config = _BODY
    reason: DelistReason
    note: Text = ""


class ConfirmRequest(BaseModel):
    model_config = _BODY
    expected_ship_on: BusinessDate | None = None


class ShipRequest(BaseModel):
    model_config = _BODY
    carrier: Name | None = None
    tracking_number: Name | None = None
    expected_delivery_on: BusinessDate | None = None


class DeliverRequest(BaseModel):
    model_config = _BODY
    bast_number: Identifier = Field(description="The handover record (BAST) number; required")
    delivered_on: BusinessDate | None = None
    received_by: Name | None = None


class PayRequest(BaseModel):
    model_config = _BODY
    payment_reference: Name
    amount: PositiveMoney | None = Field(default=None, description="Defaults to the order total")
    paid_on: BusinessDate | None = None
    channel: Name | None = None


class CancelRequest(BaseModel):
    model_config = _BODY
    reason: RequiredText


class TickRequest(BaseModel):
    model_config = _BODY
    date: BusinessDate | None = Field(default=None, description="The business date to run; defaults to today")
