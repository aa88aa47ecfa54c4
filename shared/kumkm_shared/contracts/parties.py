"""Events of the registry context: the cooperatives and UMKM of a region, and the city's activity survey
(stream KUMKM_REGISTRY).

A registry organisation (a city's cooperative and UMKM office, the ministry's registry) publishes them under
its own NATS identity, for the parties its mandate covers. The party is the aggregate: the 16-digit
cooperative number or the 13-digit NIB. `registered` is the first fact about a party, `updated` replaces it
with a later one; both carry the whole record, so a consumer keeps the one with the latest `as_of`.
"""

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator

from kumkm_shared.contracts.base import EventData
from kumkm_shared.contracts.types import (
    BusinessDate,
    CooperativeNumber,
    Identifier,
    Name,
    Nib,
    Region,
    Whole,
    validate_cooperative_number,
    validate_nib,
)

__all__ = [
    "ActivityReported",
    "BusinessScale",
    "BusinessStatus",
    "CooperativeRegistered",
    "CooperativeStatus",
    "CooperativeType",
    "CooperativeUpdated",
    "RegisteredPartyKind",
    "RevenueBand",
    "UmkmRegistered",
    "UmkmUpdated",
]


class CooperativeType(StrEnum):
    """The cooperative's type (jenis koperasi)."""

    SAVINGS_AND_LOAN = "savings_and_loan"  # simpan pinjam
    CONSUMER = "consumer"  # konsumen
    PRODUCER = "producer"  # produsen
    MARKETING = "marketing"  # pemasaran
    SERVICES = "services"  # jasa
    MULTIPURPOSE = "multipurpose"  # serba usaha
    MARKET_TRADERS = "market_traders"  # pedagang pasar (KOPPAS)
    OTHER = "other"


class CooperativeStatus(StrEnum):
    ACTIVE = "active"
    DISSOLVED = "dissolved"


class BusinessScale(StrEnum):
    """The business's scale by PP 7/2021: micro, small and medium are UMKM; large is not."""

    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class BusinessStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class RegisteredPartyKind(StrEnum):
    COOPERATIVE = "cooperative"
    UMKM = "umkm"


class RevenueBand(StrEnum):
    """Annual sales, in the bands of PP 7/2021 (micro up to Rp2 billion, small up to Rp15 billion, medium up
    to Rp50 billion), with the micro band split at Rp300 million as surveys report it."""

    NONE = "none"
    UP_TO_300M = "up_to_300m"
    FROM_300M_TO_2B = "300m_to_2b"
    FROM_2B_TO_15B = "2b_to_15b"
    FROM_15B_TO_50B = "15b_to_50b"
    OVER_50B = "over_50b"


_AS_OF = Field(description="The registry's date of this record (Asia/Jakarta business day)")


class _Cooperative(EventData):
    aggregate_field = "cooperative_number"

    cooperative_number: CooperativeNumber
    name: Name
    cooperative_type: CooperativeType
    status: CooperativeStatus = CooperativeStatus.ACTIVE
    member_count: Annotated[int, Field(ge=0, le=10_000_000, strict=True), Whole]
    region: Region
    as_of: Annotated[BusinessDate, _AS_OF]


class CooperativeRegistered(_Cooperative):
    """A cooperative entered the registry: its number, name, type, status, members and region."""

    event_type = "kumkm.registry.cooperative.registered.v1"


class CooperativeUpdated(_Cooperative):
    """A cooperative's record changed (for example dissolved, or members counted again); the whole record."""

    event_type = "kumkm.registry.cooperative.updated.v1"


KbliCode = Annotated[
    str,
    Field(
        pattern=r"^\d{5}$",
        description="The main business sector as a 5-digit KBLI 2020 code",
        examples=["10792"],
    ),
]


class _Umkm(EventData):
    aggregate_field = "nib"

    nib: Nib
    name: Name
    scale: BusinessScale
    kbli: KbliCode
    status: BusinessStatus = BusinessStatus.ACTIVE
    region: Region
    as_of: Annotated[BusinessDate, _AS_OF]


class UmkmRegistered(_Umkm):
    """A micro, small or medium business entered the registry: NIB, name, scale, sector and region."""

    event_type = "kumkm.registry.umkm.registered.v1"


class UmkmUpdated(_Umkm):
    """A business's record changed (scale, sector, status or region); the whole record."""

    event_type = "kumkm.registry.umkm.updated.v1"


class ActivityReported(EventData):
    """The city's periodic survey found a cooperative or UMKM operating or not, with its revenue band.

    The latest report by `as_of` is the party's activity signal in the recovery monitor.
    """

    event_type = "kumkm.registry.activity.reported.v1"
    aggregate_field = "party_id"

    party_kind: RegisteredPartyKind
    party_id: Annotated[
        str,
        Field(
            json_schema_extra={"pattern": r"^(\d{13}|\d{16})$"},
            description="Cooperative number (16 digits) or NIB (13 digits), by party_kind",
        ),
    ]
    operating: bool
    revenue_band: RevenueBand
    as_of: Annotated[BusinessDate, Field(description="The survey's date for this party")]
    survey: Annotated[Identifier | None, Field(examples=["BEKASI-2021-Q1"])] = None

    @field_validator("party_id", mode="before")
    @classmethod
    def _id_matches_kind(cls, value: Any, info: ValidationInfo) -> str:
        kind = info.data.get("party_kind")
        if kind == RegisteredPartyKind.COOPERATIVE:
            return validate_cooperative_number(value)
        if kind == RegisteredPartyKind.UMKM:
            return validate_nib(value)
        if not isinstance(value, str):
            msg = "party_id must be a string"
            raise TypeError(msg)
        return value
