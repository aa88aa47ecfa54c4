"""Delivery channels: each turns one outgoing message into an ``Outcome``, never an exception."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from uuid import UUID

    from kumkm_notifications.domain.delivery import Outcome
    from kumkm_shared.contracts import Channel


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    id: UUID  # the delivery id: Message-ID, Idempotency-Key
    channel: Channel
    party_id: str
    name: str  # the recipient's display name
    address: str = field(repr=False)  # personal data: never in a repr, so never in a log line
    event_type: str
    subject: str
    text: str
    html: str
    payload: bytes = field(repr=False)  # the webhook body, identical on every attempt
    attempt: int
    secret: str | None = field(default=None, repr=False)  # webhook signing secret


class Sender(Protocol):
    async def send(self, message: OutgoingMessage) -> Outcome: ...

    async def close(self) -> None: ...
