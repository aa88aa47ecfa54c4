"""Events of the catalog context: product curation and e-purchasing orders (stream KUMKM_CATALOG)."""

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from kumkm_shared.contracts.base import EventData, Reason, check_reason_codes
from kumkm_shared.contracts.types import (
    BusinessDate,
    CooperativeNumber,
    Identifier,
    Money,
    Name,
    Nib,
    Npwp,
    Percent,
    PositiveMoney,
    ReasonCode,
    Region,
    RequiredText,
    Text,
    UtcDateTime,
    Whole,
    validate_text,
)

__all__ = [
    "Budget",
    "BuyerKind",
    "BuyerRef",
    "CancelledBy",
    "CatalogTier",
    "ChecklistItem",
    "CurationDecision",
    "DelistReason",
    "Delivery",
    "GovernmentBuyer",
    "OrderAccepted",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderDelivered",
    "OrderLine",
    "OrderPaid",
    "OrderPlaced",
    "OrderRejected",
    "OrderShipped",
    "OrderStatusChanged",
    "OrderStep",
    "OrderStepRefused",
    "PricedLine",
    "ProductCurated",
    "ProductDelisted",
    "ProductStockUpdated",
    "ProductSubmitted",
    "SanctionLift",
    "Seller",
    "SellerRef",
    "SellerScale",
    "SellerSummary",
    "StepStatus",
]

_MODEL = ConfigDict(extra="ignore", frozen=True)

COUNT_MAX = 2_147_483_647  # the largest quantity, stock or revision the catalog stores (32-bit)
Quantity = Annotated[int, Field(ge=1, le=COUNT_MAX, strict=True), Whole]
Stock = Annotated[int, Field(ge=0, le=COUNT_MAX, strict=True), Whole]
Category = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Product category code (snake_case)",
        examples=["office_supplies", "furniture", "meeting_catering"],
    ),
]
Certification = Annotated[
    str,
    Field(min_length=1, max_length=40, description="Certification name", examples=["halal", "sni", "pirt"]),
    AfterValidator(validate_text),
]
Revision = Annotated[
    int,
    Field(ge=1, le=COUNT_MAX, strict=True, description="Product revision, 1 for the first submission"),
    Whole,
]


class SellerScale(StrEnum):
    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"


class BuyerKind(StrEnum):
    MINISTRY = "ministry"
    AGENCY = "agency"
    LOCAL_GOVERNMENT = "local_government"
    BUMN = "bumn"


class CurationDecision(StrEnum):
    APPROVED = "approved"
    REVISION_REQUESTED = "revision_requested"
    REJECTED = "rejected"


class CatalogTier(StrEnum):
    NATIONAL = "national"
    SECTORAL = "sectoral"
    LOCAL = "local"


class DelistReason(StrEnum):
    WITHDRAWN = "withdrawn"
    OUT_OF_STOCK = "out_of_stock"
    SANCTIONED = "sanctioned"


class CancelledBy(StrEnum):
    BUYER = "buyer"
    SELLER_TIMEOUT = "seller_timeout"
    SYSTEM = "system"


# ----------------------------------------------------------------------------------------------------------
# parties


class Seller(BaseModel):
    """A UMKM seller as it submits a product."""

    model_config = _MODEL
    nib: Nib
    name: Name
    scale: SellerScale
    cooperative_id: CooperativeNumber | None = None
    npwp: Npwp | None = None
    region: Region


class SellerSummary(BaseModel):
    """The seller, as owner-published catalog events carry it."""

    model_config = _MODEL
    nib: Nib
    name: Name
    region: Region


class SellerRef(BaseModel):
    """The seller, as integrator-published events name it."""

    model_config = _MODEL
    nib: Nib
    name: Name | None = None


class GovernmentBuyer(BaseModel):
    """A government buyer: a ministry, an agency, a local government or a BUMN."""

    model_config = _MODEL
    id: Identifier
    name: Name
    kind: BuyerKind
    work_unit: Annotated[Name, Field(description="Satuan kerja (work unit) placing the order")]
    commitment_official: Annotated[Name, Field(description="Pejabat Pembuat Komitmen (PPK) responsible")]
    region: Region | None = None


class BuyerRef(BaseModel):
    """The buyer, as integrator-published events name it."""

    model_config = _MODEL
    id: Identifier
    name: Name | None = None


# ----------------------------------------------------------------------------------------------------------
# products


class ProductSubmitted(EventData):
    """A UMKM submits a product, or a new revision of it, for curation."""

    event_type = "kumkm.catalog.product.submitted.v1"
    aggregate_field = "product_id"

    product_id: Identifier
    revision: Revision
    seller: Seller
    name: Name
    category: Category
    unit: Annotated[Name, Field(examples=["pcs", "box", "pax", "rim"])]
    unit_price: Money
    min_order_qty: Quantity
    stock: Stock
    tkdn_pct: Annotated[Percent, Field(description="Local content (TKDN) percentage")]
    certifications: list[Certification] = Field(default_factory=list)
    description: Text = ""


class ChecklistItem(BaseModel):
    """One line of the curation checklist."""

    model_config = _MODEL
    item: Annotated[str, Field(min_length=1, max_length=64, examples=["valid_nib", "tkdn_min", "price_band"])]
    passed: bool
    note: Text = ""


class SanctionLift(BaseModel):
    """A sanction lifted by two different curators: the first asked for it, the second agreed and listed the
    product (the second is the event's ``curator``)."""

    model_config = _MODEL
    first_curator: Annotated[Identifier, Field(description="Subject of the curator who lifted it first")]
    first_notes: Annotated[Text, Field(description="Why the first curator lifted it")] = ""
    first_decided_at: UtcDateTime
    second_curator: Annotated[Identifier, Field(description="Subject of the curator who completed the lift")]

    @model_validator(mode="after")
    def _two_curators(self) -> Self:
        if self.first_curator == self.second_curator:
            msg = "a sanction is lifted by two different curators"
            raise ValueError(msg)
        return self


class ProductCurated(EventData):
    """The curator's decision on a product revision: approved (listed at a price and tier), revision
    requested, or rejected, with the checklist results and notes."""

    event_type = "kumkm.catalog.product.curated.v1"
    aggregate_field = "product_id"

    product_id: Identifier
    revision: Revision
    seller: SellerSummary
    name: Name
    category: Category
    decision: CurationDecision
    checklist: list[ChecklistItem] = Field(default_factory=list)
    notes: Text = ""
    listed_price: Annotated[Money | None, Field(description="Required when approved")] = None
    tier: Annotated[CatalogTier | None, Field(description="Required when approved")] = None
    curator: Annotated[
        Identifier,
        Field(
            description="The curator's subject (from their sign-in), or 'policy' for an automatic decision"
        ),
    ]
    decided_at: UtcDateTime
    sanction_lift: Annotated[
        SanctionLift | None,
        Field(description="Both curators, when this approval lifts a sanction; absent otherwise"),
    ] = None

    @model_validator(mode="after")
    def _approval_has_listing(self) -> Self:
        if self.decision is CurationDecision.APPROVED:
            missing = [name for name in ("listed_price", "tier") if getattr(self, name) is None]
            if missing:
                msg = f"an approved product needs {' and '.join(missing)}"
                raise ValueError(msg)
        elif self.listed_price is not None or self.tier is not None:
            msg = (
                f"listed_price and tier are only set when the decision is approved, not {self.decision.value}"
            )
            raise ValueError(msg)
        if self.sanction_lift is not None and (
            self.decision is not CurationDecision.APPROVED
            or self.sanction_lift.second_curator != self.curator
        ):
            msg = "sanction_lift comes only with an approval, and its second_curator is the event's curator"
            raise ValueError(msg)
        return self


class ProductDelisted(EventData):
    """A product left the catalog: withdrawn by the seller, out of stock for good, or sanctioned."""

    event_type = "kumkm.catalog.product.delisted.v1"
    aggregate_field = "product_id"

    product_id: Identifier
    seller: SellerSummary
    reason: DelistReason
    note: Text = ""
    delisted_at: UtcDateTime
    delisted_by: Annotated[
        Identifier | None, Field(description="The delisting curator's subject (from their sign-in)")
    ] = None


class ProductStockUpdated(EventData):
    """The seller sets the stock of a product (an absolute count, as of a moment)."""

    event_type = "kumkm.catalog.product.stock_updated.v1"
    aggregate_field = "product_id"

    product_id: Identifier
    seller: SellerRef
    stock: Stock
    as_of: Annotated[UtcDateTime, Field(description="When the count was taken; older updates are ignored")]


# ----------------------------------------------------------------------------------------------------------
# orders


class Budget(BaseModel):
    """Where the money comes from: the procurement plan (RUP) code and the fiscal year."""

    model_config = _MODEL
    rup_code: Annotated[Identifier, Field(description="Procurement-plan (Rencana Umum Pengadaan) code")]
    fiscal_year: Annotated[int, Field(ge=2000, le=2100, strict=True), Whole]


class OrderLine(BaseModel):
    """One ordered product line, at the listed price."""

    model_config = _MODEL
    product_id: Identifier
    qty: Quantity
    unit_price: PositiveMoney


class PricedLine(BaseModel):
    """An accepted order line with its product name and line total."""

    model_config = _MODEL
    product_id: Identifier
    name: Name
    qty: Quantity
    unit_price: PositiveMoney
    line_total: PositiveMoney


class Delivery(BaseModel):
    """Where and by when the goods must arrive."""

    model_config = _MODEL
    address: RequiredText
    needed_by: BusinessDate
    region: Region | None = None


class OrderPlaced(EventData):
    """A government buyer orders listed products directly (no tender)."""

    event_type = "kumkm.catalog.order.placed.v1"
    aggregate_field = "order_id"

    order_id: Identifier
    buyer: GovernmentBuyer
    budget: Budget
    lines: Annotated[list[OrderLine], Field(min_length=1)]
    delivery: Delivery
    note: Text = ""


class OrderAccepted(EventData):
    """The order is valid and its stock is reserved; the seller must confirm by `confirm_by`."""

    event_type = "kumkm.catalog.order.accepted.v1"
    aggregate_field = "order_id"

    order_id: Identifier
    buyer: GovernmentBuyer
    seller: SellerSummary
    lines: Annotated[list[PricedLine], Field(min_length=1)]
    total: PositiveMoney
    delivery: Delivery
    accepted_at: UtcDateTime
    confirm_by: Annotated[UtcDateTime, Field(description="Cancelled on seller timeout after this moment")]

    @model_validator(mode="after")
    def _total_matches_lines(self) -> Self:
        computed = sum((line.line_total for line in self.lines), start=Decimal(0))
        if computed != self.total:
            msg = f"total ({self.total}) must equal the sum of line_total ({computed})"
            raise ValueError(msg)
        return self


class OrderRejected(EventData):
    """The order was refused, with reason codes such as product_not_listed, price_mismatch,
    insufficient_stock, below_min_order, limit_exceeded or multiple_sellers."""

    event_type = "kumkm.catalog.order.rejected.v1"
    aggregate_field = "order_id"

    order_id: Identifier
    buyer: GovernmentBuyer
    seller: SellerSummary | None = None
    reason_codes: Annotated[
        list[ReasonCode],
        Field(
            min_length=1,
            examples=[["product_not_listed", "price_mismatch", "insufficient_stock", "below_min_order"]],
        ),
    ]
    reasons: Annotated[list[Reason], Field(min_length=1)]
    rejected_at: UtcDateTime

    @model_validator(mode="after")
    def _codes_match(self) -> Self:
        check_reason_codes(self.reason_codes, self.reasons)
        return self


class _StepParties(EventData):
    """The order a lifecycle step is about, and its parties as integrators name them."""

    aggregate_field = "order_id"

    order_id: Identifier
    buyer: BuyerRef
    seller: SellerRef


class OrderConfirmed(_StepParties):
    """The seller confirms the order (an order not confirmed in 3 working days is cancelled)."""

    event_type = "kumkm.catalog.order.confirmed.v1"

    confirmed_at: UtcDateTime
    expected_ship_on: BusinessDate | None = None


class OrderShipped(_StepParties):
    """The seller shipped the goods."""

    event_type = "kumkm.catalog.order.shipped.v1"

    shipped_at: UtcDateTime
    carrier: Name | None = None
    tracking_number: Name | None = None
    expected_delivery_on: BusinessDate | None = None


class OrderDelivered(_StepParties):
    """The buyer checked the goods and signed the handover record (BAST)."""

    event_type = "kumkm.catalog.order.delivered.v1"

    bast_number: Annotated[
        Identifier, Field(description="Berita Acara Serah Terima (handover record) number")
    ]
    delivered_on: BusinessDate
    received_by: Name | None = None


class OrderPaid(_StepParties):
    """Payment for the order settled."""

    event_type = "kumkm.catalog.order.paid.v1"

    amount: PositiveMoney
    paid_on: BusinessDate
    payment_reference: Annotated[
        Name, Field(description="e.g. the SP2D number or the bank transfer reference")
    ]
    channel: Annotated[Name | None, Field(examples=["sp2d", "bank_transfer", "kkp"])] = None


class OrderCancelled(EventData):
    """The order was cancelled by the buyer, by seller timeout or by the system; its stock is released."""

    event_type = "kumkm.catalog.order.cancelled.v1"
    aggregate_field = "order_id"

    order_id: Identifier
    buyer: GovernmentBuyer
    seller: SellerSummary | None = None
    by: CancelledBy
    reason: RequiredText
    released: Annotated[
        list[OrderLine], Field(default_factory=list, description="Lines whose reserved stock was released")
    ]
    cancelled_at: UtcDateTime


OrderStep = OrderConfirmed | OrderShipped | OrderDelivered | OrderPaid
StepStatus = Literal["confirmed", "shipped", "delivered", "paid"]

_STEP_STATUS: dict[type[EventData], str] = {
    OrderConfirmed: "confirmed",
    OrderShipped: "shipped",
    OrderDelivered: "delivered",
    OrderPaid: "paid",
}


class OrderStatusChanged(_StepParties):
    """The catalog applied a lifecycle step (confirmed, shipped, delivered or paid) to an order.

    The step events themselves are published by integrators and the catalog may refuse them (an illegal
    transition, the wrong seller, a late confirmation): they are claims. This event is the catalog's record
    that the step took effect, with the step's own data in ``applied``; subscribers that act on a step (the
    seller's "payment settled" notification) follow this event, never the integrator's.
    """

    event_type = "kumkm.catalog.order.status_changed.v1"

    status: StepStatus
    previous_status: Annotated[Name, Field(examples=["accepted", "confirmed", "shipped", "delivered"])]
    version: Annotated[
        int, Field(ge=1, strict=True, description="The order's version after the change"), Whole
    ]
    applied_event_id: Annotated[
        UUID, Field(description="Id of the integrator's (or the HTTP API's) step event that was applied")
    ]
    applied: Annotated[OrderStep, Field(description="The applied step event's data")]
    changed_at: UtcDateTime

    @model_validator(mode="after")
    def _status_matches_step(self) -> Self:
        expected = _STEP_STATUS[type(self.applied)]
        if self.status != expected:
            msg = f"status {self.status!r} does not match the applied step, a {expected!r} event"
            raise ValueError(msg)
        if self.applied.order_id != self.order_id:
            msg = f"the applied step is for order {self.applied.order_id!r}, not {self.order_id!r}"
            raise ValueError(msg)
        return self


class OrderStepRefused(EventData):
    """The catalog refused an integrator's lifecycle step for good.

    An illegal transition (``shipped`` after ``cancelled``), a step naming another seller or buyer than the
    order's, a confirmation after the deadline, or a step still out of order when it was given up on. The
    step is also in the dead-letter queue with the same reason; this event tells the order's parties. A step
    for an order nobody placed has no parties to tell and only goes to the dead-letter queue.
    """

    event_type = "kumkm.catalog.order.step_refused.v1"
    aggregate_field = "order_id"

    order_id: Identifier
    buyer: Annotated[BuyerRef, Field(description="The order's buyer (not whoever the step named)")]
    seller: Annotated[SellerRef | None, Field(description="The order's seller; none for a rejected order")]
    step: StepStatus
    order_status: Annotated[Name, Field(examples=["accepted", "cancelled", "rejected"])]
    refused_event_id: Annotated[UUID, Field(description="Id of the integrator's step event that was refused")]
    reason_code: ReasonCode
    reason: RequiredText
    refused_at: UtcDateTime
