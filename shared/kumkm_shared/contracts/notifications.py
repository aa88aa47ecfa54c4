"""Events of the notifications context: contacts and delivery receipts (stream KUMKM_NOTIFICATIONS)."""

from enum import StrEnum
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import Field, field_validator, model_validator

from kumkm_shared.contracts.base import EventData
from kumkm_shared.contracts.types import (
    Email,
    HttpsUrl,
    Identifier,
    Name,
    PhoneE164,
    ReasonCode,
    RequiredText,
    Text,
    UtcDateTime,
    Whole,
)

__all__ = [
    "Category",
    "Channel",
    "ContactUpserted",
    "Locale",
    "NotificationDelivered",
    "NotificationFailed",
    "PartyKind",
]

EventTypeName = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^kumkm\.[a-z0-9_.]+\.v[1-9][0-9]*$"),
]


class Locale(StrEnum):
    ID_ID = "id_ID"
    EN_US = "en_US"


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    INBOX = "inbox"


class Category(StrEnum):
    RESTRUCTURING = "restructuring"
    REPAYMENT = "repayment"
    CURATION = "curation"
    ORDERS = "orders"


class PartyKind(StrEnum):
    COOPERATIVE = "cooperative"
    UMKM = "umkm"
    BUYER = "buyer"
    OFFICER = "officer"


_CHANNEL_NEEDS = {
    Channel.EMAIL: "email",
    Channel.WEBHOOK: "webhook_url",
    Channel.SMS: "phone",
    Channel.WHATSAPP: "phone",
}


# ``_channels_have_addresses`` in the schema: a channel listed needs its address.
CHANNELS_HAVE_ADDRESSES: dict[str, Any] = {
    "allOf": [
        {
            "if": {
                "required": ["channels"],
                "properties": {"channels": {"contains": {"const": channel.value}}},
            },
            "then": {"required": [field], "properties": {field: {"not": {"type": "null"}}}},
        }
        for channel, field in _CHANNEL_NEEDS.items()
    ]
}


def _dedupe(values: Any) -> Any:
    """Drop repeated entries from a list, keeping the first occurrence."""
    if isinstance(values, list):
        seen: list[Any] = []
        for value in values:
            if value not in seen:
                seen.append(value)
        return seen
    return values


class ContactUpserted(EventData):
    """A party's contact details and preferences were created or replaced.

    `party_id` is the NIB, the cooperative number or the buyer id used in the other events. Every channel
    listed in `channels` needs its address (email, phone or webhook_url); `opt_outs` lists the
    notification categories the party does not want.
    """

    event_type = "kumkm.notifications.contact.upserted.v1"
    aggregate_field = "party_id"

    party_id: Identifier
    party_kind: PartyKind | None = None
    name: Name
    email: Email | None = None
    phone: PhoneE164 | None = None
    webhook_url: HttpsUrl | None = None
    locale: Locale = Locale.ID_ID
    channels: Annotated[list[Channel], Field(default_factory=lambda: [Channel.INBOX])]
    opt_outs: list[Category] = Field(default_factory=list)
    updated_at: Annotated[
        UtcDateTime, Field(description="When the details changed; older upserts are ignored")
    ]

    @field_validator("channels", "opt_outs", mode="before")
    @classmethod
    def _unique(cls, value: Any) -> Any:
        return _dedupe(value)

    @model_validator(mode="after")
    def _channels_have_addresses(self) -> Self:
        missing = sorted(
            {
                f"{channel.value} needs {field}"
                for channel, field in _CHANNEL_NEEDS.items()
                if channel in self.channels and getattr(self, field) is None
            }
        )
        if missing:
            msg = "enabled channels lack an address: " + "; ".join(missing)
            raise ValueError(msg)
        return self


class _NotificationOutcome(EventData):
    """What both outcomes of a notification name first: the notification, the event that caused it, the
    recipient, the channel and category, and the attempts it took."""

    aggregate_field = "notification_id"

    notification_id: Identifier
    event_id: Annotated[UUID, Field(description="Id of the event that caused the notification")]
    source_event_type: EventTypeName
    party_id: Identifier
    channel: Channel
    category: Category
    attempts: Annotated[int, Field(ge=1, strict=True), Whole]


class NotificationDelivered(_NotificationOutcome):
    """A delivery receipt: one notification reached one recipient on one channel."""

    event_type = "kumkm.notifications.notification.delivered.v1"

    delivered_at: UtcDateTime
    provider_response: Text | None = None


class NotificationFailed(_NotificationOutcome):
    """A notification failed for good (a permanent error, or retries exhausted), with the reason."""

    event_type = "kumkm.notifications.notification.failed.v1"

    failed_at: UtcDateTime
    reason_code: Annotated[ReasonCode, Field(examples=["smtp_permanent", "http_4xx", "retries_exhausted"])]
    reason: RequiredText
    provider_response: Text | None = None
