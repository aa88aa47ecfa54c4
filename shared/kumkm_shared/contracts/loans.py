"""Events of the loans context (owner: the loans service; stream KUMKM_LOANS)."""

from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from kumkm_shared.contracts.base import EventData, Reason, check_reason_codes
from kumkm_shared.contracts.types import (
    AnnualRate,
    BusinessDate,
    Collectibility,
    Identifier,
    Money,
    Name,
    Percent,
    PositiveMoney,
    ReasonCode,
    Region,
    Text,
    UtcDateTime,
    Whole,
    validate_cooperative_number,
    validate_nib,
)

__all__ = [
    "ArrearsCapitalization",
    "Borrower",
    "BorrowerKind",
    "CollectibilityChangeCause",
    "GraceOn",
    "GracePeriod",
    "Impact",
    "InstallmentOverdue",
    "InterestArrearsReduction",
    "LoanCollectibilityChanged",
    "LoanDisbursed",
    "PrincipalArrearsReduction",
    "RateReduction",
    "RepaymentMethod",
    "RepaymentReceived",
    "RestructuringApproved",
    "RestructuringReason",
    "RestructuringReferred",
    "RestructuringRejected",
    "RestructuringRequested",
    "ScheduleSummary",
    "Scheme",
    "TenorExtension",
]

_MODEL = ConfigDict(extra="ignore", frozen=True)

DecidedBy = Annotated[
    Identifier,
    Field(
        description='"policy" when the rules decided automatically, otherwise the signed-in person who '
        "decided (the subject of their verified token); after a first approval, the checker.",
        examples=["policy"],
    ),
]


class BorrowerKind(StrEnum):
    COOPERATIVE = "cooperative"
    UMKM = "umkm"


class RepaymentMethod(StrEnum):
    ANNUITY = "annuity"
    FLAT = "flat"
    DECLINING = "declining"


class RestructuringReason(StrEnum):
    COVID19_DIRECT = "covid19_direct"
    COVID19_INDIRECT = "covid19_indirect"
    OTHER = "other"


class GraceOn(StrEnum):
    PRINCIPAL = "principal"
    PRINCIPAL_AND_INTEREST = "principal_and_interest"


class CollectibilityChangeCause(StrEnum):
    DAYS_PAST_DUE = "days_past_due"
    RESTRUCTURING = "restructuring"


class Borrower(BaseModel):
    """The borrower: a cooperative (id = 16-digit cooperative number) or a UMKM (id = 13-digit NIB)."""

    model_config = _MODEL

    kind: BorrowerKind
    id: Annotated[
        str,
        WithJsonSchema(
            {
                "type": "string",
                "pattern": r"^(\d{13}|\d{16})$",
                "description": "Cooperative number (16 digits) for a cooperative, NIB (13 digits) for a UMKM",
            }
        ),
    ]
    name: Name
    region: Region

    @field_validator("id", mode="before")
    @classmethod
    def _id_matches_kind(cls, value: Any, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind == BorrowerKind.COOPERATIVE:
            return validate_cooperative_number(value)
        if kind == BorrowerKind.UMKM:
            return validate_nib(value)
        if not isinstance(value, str):
            msg = "borrower id must be a string"
            raise TypeError(msg)
        return value


# ----------------------------------------------------------------------------------------------------------
# restructuring schemes (a discriminated union on "scheme")


def _scheme_is_required(schema: dict[str, Any]) -> None:
    """In JSON the `scheme` tag is required even though the Python models default it."""
    required = schema.setdefault("required", [])
    if isinstance(required, list) and "scheme" not in required:
        required.insert(0, "scheme")
    properties = schema.get("properties")
    if isinstance(properties, dict) and isinstance(properties.get("scheme"), dict):
        properties["scheme"].pop("default", None)


_SCHEME_MODEL = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_scheme_is_required)


class TenorExtension(BaseModel):
    """Extend the tenor by `extra_months`."""

    model_config = _SCHEME_MODEL
    scheme: Literal["tenor_extension"] = "tenor_extension"
    extra_months: Annotated[int, Field(ge=1, strict=True), Whole]


class GracePeriod(BaseModel):
    """A grace period of `months` on principal only, or on principal and interest."""

    model_config = _SCHEME_MODEL
    scheme: Literal["grace_period"] = "grace_period"
    months: Annotated[int, Field(ge=1, strict=True), Whole]
    on: GraceOn


class RateReduction(BaseModel):
    """Lower the annual rate to `new_annual_rate`."""

    model_config = _SCHEME_MODEL
    scheme: Literal["rate_reduction"] = "rate_reduction"
    new_annual_rate: AnnualRate


class ArrearsCapitalization(BaseModel):
    """Add the arrears to the outstanding principal."""

    model_config = _SCHEME_MODEL
    scheme: Literal["arrears_capitalization"] = "arrears_capitalization"


class PrincipalArrearsReduction(BaseModel):
    """Waive `amount` of principal arrears."""

    model_config = _SCHEME_MODEL
    scheme: Literal["principal_arrears_reduction"] = "principal_arrears_reduction"
    amount: PositiveMoney


class InterestArrearsReduction(BaseModel):
    """Waive `amount` of interest arrears."""

    model_config = _SCHEME_MODEL
    scheme: Literal["interest_arrears_reduction"] = "interest_arrears_reduction"
    amount: PositiveMoney


Scheme = Annotated[
    TenorExtension
    | GracePeriod
    | RateReduction
    | ArrearsCapitalization
    | PrincipalArrearsReduction
    | InterestArrearsReduction,
    Field(discriminator="scheme"),
]
"""One restructuring scheme; the `scheme` field says which."""

SCHEME_NAMES: tuple[str, ...] = (
    "tenor_extension",
    "grace_period",
    "rate_reduction",
    "arrears_capitalization",
    "principal_arrears_reduction",
    "interest_arrears_reduction",
)

# Each scheme at most once (``_check_unique_schemes``), said in the schema too: JSON Schema 2020-12 counts the
# items naming each scheme with ``contains`` and ``maxContains``.
_AT_MOST_ONCE: dict[str, Any] = {
    "allOf": [
        {
            "contains": {"type": "object", "properties": {"scheme": {"const": name}}, "required": ["scheme"]},
            "minContains": 0,
            "maxContains": 1,
        }
        for name in SCHEME_NAMES
    ]
}
Proposal = Annotated[
    list[Scheme], Field(min_length=1, max_length=len(SCHEME_NAMES), json_schema_extra=_AT_MOST_ONCE)
]


def _check_unique_schemes(schemes: list[Scheme], field: str) -> None:
    seen: set[str] = set()
    for item in schemes:
        if item.scheme in seen:
            msg = f"{field} may name each scheme at most once; {item.scheme!r} appears twice"
            raise ValueError(msg)
        seen.add(item.scheme)


class Impact(BaseModel):
    """How the pandemic hit the borrower."""

    model_config = _MODEL
    revenue_drop_pct: Percent
    note: Text = ""


class ScheduleSummary(BaseModel):
    """A summary of the new schedule after restructuring."""

    model_config = _MODEL
    installments: Annotated[
        int, Field(ge=1, strict=True, description="Number of installments in the new schedule"), Whole
    ]
    regular_installment: Money
    grace_months: Annotated[int, Field(ge=0, strict=True), Whole]
    annual_rate: AnnualRate
    first_due_on: BusinessDate
    maturity_on: BusinessDate
    outstanding_principal: Money
    total_interest_before: Money
    total_interest_after: Money

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.maturity_on < self.first_due_on:
            msg = f"maturity_on ({self.maturity_on}) must not be before first_due_on ({self.first_due_on})"
            raise ValueError(msg)
        return self


# ----------------------------------------------------------------------------------------------------------
# events


class LoanDisbursed(EventData):
    """A loan was paid out to a cooperative or a UMKM."""

    event_type = "kumkm.loans.loan.disbursed.v1"
    aggregate_field = "loan_id"

    loan_id: Identifier
    lender: Annotated[Name, Field(examples=["LPDB-KUMKM"])]
    borrower: Borrower
    principal: PositiveMoney
    annual_rate: AnnualRate
    tenor_months: Annotated[int, Field(ge=1, le=360, strict=True), Whole]
    method: RepaymentMethod
    disbursed_on: BusinessDate
    first_due_on: BusinessDate

    @model_validator(mode="after")
    def _first_due_after_disbursement(self) -> Self:
        if self.first_due_on <= self.disbursed_on:
            msg = f"first_due_on ({self.first_due_on}) must be after disbursed_on ({self.disbursed_on})"
            raise ValueError(msg)
        return self


class RepaymentReceived(EventData):
    """A payment towards a loan arrived."""

    event_type = "kumkm.loans.repayment.received.v1"
    aggregate_field = "loan_id"

    payment_id: Identifier
    loan_id: Identifier
    amount: PositiveMoney
    paid_on: BusinessDate
    channel: Annotated[Name, Field(examples=["bank_transfer", "virtual_account", "cash"])]
    reference: Name


class InstallmentOverdue(EventData):
    """An installment passed its due date unpaid; carries days past due and the collectibility grade."""

    event_type = "kumkm.loans.installment.overdue.v1"
    aggregate_field = "loan_id"

    loan_id: Identifier
    borrower: Borrower
    installment_no: Annotated[int, Field(ge=1, strict=True), Whole]
    due_on: BusinessDate
    amount_due: PositiveMoney
    days_past_due: Annotated[int, Field(ge=1, strict=True), Whole]
    collectibility: Collectibility
    as_of: BusinessDate


class LoanCollectibilityChanged(EventData):
    """The OJK collectibility grade changed.

    Grades: 1 lancar (0 days past due), 2 DPK (1-90), 3 kurang lancar (91-120), 4 diragukan (121-180),
    5 macet (>180). An approved restructuring resets the grade to 1.
    """

    event_type = "kumkm.loans.loan.collectibility_changed.v1"
    aggregate_field = "loan_id"

    loan_id: Identifier
    borrower: Borrower
    previous: Collectibility
    current: Collectibility
    days_past_due: Annotated[int, Field(ge=0, strict=True), Whole]
    as_of: BusinessDate
    cause: CollectibilityChangeCause = CollectibilityChangeCause.DAYS_PAST_DUE

    @model_validator(mode="after")
    def _grade_changed(self) -> Self:
        if self.previous == self.current:
            msg = f"current must differ from previous (both are {self.current})"
            raise ValueError(msg)
        return self


class RestructuringRequested(EventData):
    """A borrower asks for relief: the reason, the impact and one or more proposed schemes."""

    event_type = "kumkm.loans.restructuring.requested.v1"
    aggregate_field = "request_id"

    request_id: Identifier
    loan_id: Identifier
    requested_on: BusinessDate
    reason: RestructuringReason
    impact: Impact
    proposal: Proposal
    reschedule_from: BusinessDate

    @model_validator(mode="after")
    def _unique_schemes(self) -> Self:
        _check_unique_schemes(self.proposal, "proposal")
        return self


class _RestructuringOutcome(EventData):
    """The request an outcome is about: its id, the loan and the borrower."""

    aggregate_field = "request_id"

    request_id: Identifier
    loan_id: Identifier
    borrower: Borrower


class _RestructuringDecision(_RestructuringOutcome):
    """An outcome that decides the request, and who decided it when."""

    decided_by: DecidedBy
    decided_at: UtcDateTime
    # Added optional fields in v1 (maker-checker): absent when one person decided.
    first_approved_by: Identifier | None = Field(
        default=None,
        description="The maker: the person whose first approval this decision completes or rejects "
        "(maker-checker, above the second-approval threshold); absent when one person decided.",
    )
    first_approved_at: UtcDateTime | None = Field(
        default=None, description="When the maker approved first; absent when one person decided."
    )


class RestructuringApproved(_RestructuringDecision):
    """A restructuring was approved: the approved terms and a summary of the new schedule."""

    event_type = "kumkm.loans.restructuring.approved.v1"

    reason_codes: list[ReasonCode] = Field(default_factory=list)
    terms: Proposal
    reschedule_from: BusinessDate
    summary: ScheduleSummary
    note: Text = ""

    @model_validator(mode="after")
    def _unique_schemes(self) -> Self:
        _check_unique_schemes(self.terms, "terms")
        return self


class RestructuringRejected(_RestructuringDecision):
    """A restructuring was rejected, with machine-readable reason codes and human text."""

    event_type = "kumkm.loans.restructuring.rejected.v1"

    reason_codes: Annotated[list[ReasonCode], Field(min_length=1)]
    reasons: Annotated[list[Reason], Field(min_length=1)]

    @model_validator(mode="after")
    def _codes_match(self) -> Self:
        check_reason_codes(self.reason_codes, self.reasons)
        return self


class RestructuringReferred(_RestructuringOutcome):
    """A restructuring request needs an officer's review; carries the reasons."""

    event_type = "kumkm.loans.restructuring.referred.v1"

    referred_at: UtcDateTime
    reason_codes: Annotated[list[ReasonCode], Field(min_length=1)]
    reasons: Annotated[list[Reason], Field(min_length=1)]

    @model_validator(mode="after")
    def _codes_match(self) -> Self:
        check_reason_codes(self.reason_codes, self.reasons)
        return self
