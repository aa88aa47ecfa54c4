"""Who gets what on which channel: a contact's preferences applied to one notification. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kumkm_shared.contracts import Category, Channel, Locale

if TYPE_CHECKING:
    from datetime import datetime


@dataclass(frozen=True, slots=True)
class Contact:
    party_id: str
    name: str
    locale: Locale
    channels: tuple[Channel, ...]
    opt_outs: frozenset[Category] = field(default_factory=frozenset)
    email: str | None = None
    phone: str | None = None
    webhook_url: str | None = None
    party_kind: str | None = None
    updated_at: datetime | None = None

    def address(self, channel: Channel) -> str:
        """Where a message on ``channel`` goes (the inbox is addressed by the party id)."""
        value = {
            Channel.EMAIL: self.email,
            Channel.WEBHOOK: self.webhook_url,
            Channel.SMS: self.phone,
            Channel.WHATSAPP: self.phone,
            Channel.INBOX: self.party_id,
        }[channel]
        if value is None:  # the contract refuses a channel without its address; keep the rule visible
            raise ValueError(f"contact {self.party_id} enables {channel} without an address")
        return value


@dataclass(frozen=True, slots=True)
class Routing:
    """The decision for one recipient: deliver on these channels, or record why not."""

    channels: tuple[Channel, ...] = ()
    skipped: str | None = None  # "no_contact" or "suppressed"
    detail: str = ""


def route(contact: Contact | None, category: Category) -> Routing:
    if contact is None:
        return Routing(skipped="no_contact", detail="no contact is known for this party")
    if category in contact.opt_outs:
        return Routing(skipped="suppressed", detail=f"opted out of {category.value}")
    if not contact.channels:
        return Routing(skipped="suppressed", detail="no channel enabled")
    return Routing(channels=contact.channels)
