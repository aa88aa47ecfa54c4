"""Events in; contacts, deliveries and inbox messages out, in the consuming transaction.

A notification event becomes one delivery row per (event, recipient, channel) under a unique key, so a
redelivered event adds nothing. Rows for email, webhook, sms and whatsapp are sent later by the
dispatcher; the inbox is written here, so it is delivered exactly once with the event.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from kumkm_notifications import repository as repo
from kumkm_notifications.domain.contacts import Contact, route
from kumkm_notifications.domain.delivery import Status
from kumkm_notifications.domain.subscriptions import (
    BorrowerOfLoan,
    Party,
    about,
    recipients_of,
    subscription_for,
)
from kumkm_shared import Retry
from kumkm_shared.contracts import (
    Channel,
    ContactUpserted,
    NotificationDelivered,
    caused_by,
    validate_event_payload,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kumkm_notifications.rendering import Rendered, TemplateCatalog
    from kumkm_notifications.settings import NotificationsSettings
    from kumkm_shared import EventContext
    from kumkm_shared.contracts import Category, Envelope, EventData
    from kumkm_shared.db import Conn

DELIVERY_NAMESPACE = uuid.UUID("5d3a3f4e-6b1c-4c1e-9a53-4b554d4b4d01")

Emit = Callable[["EventData"], Awaitable["Envelope"]]
EmitIn = Callable[..., Awaitable["Envelope"]]  # ServiceRuntime.emit: (conn, data, **make_event arguments)


class Origin(Protocol):
    """Where deliveries are written from: the consuming transaction, or an operator's reroute."""

    @property
    def conn(self) -> Conn: ...
    @property
    def envelope(self) -> Envelope: ...
    @property
    def emit(self) -> Emit: ...


@dataclass(frozen=True, slots=True)
class _Origin:
    conn: Conn
    envelope: Envelope
    emit: Emit


class NotReroutable(Exception):  # noqa: N818 - a verdict for the operator, not a crash
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def delivery_id(event_id: uuid.UUID, party_id: str, channel: Channel | None) -> uuid.UUID:
    """Deterministic: the same (event, party, channel) always names the same notification."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}/{party_id}/{channel.value if channel else '-'}")


def webhook_body(
    envelope: Envelope,
    notification_id: uuid.UUID,
    party_id: str,
    category: Category,
    rendered: Rendered,
    locale: str,
) -> bytes:
    return json.dumps(
        {
            "notification_id": str(notification_id),
            "party_id": party_id,
            "category": category.value,
            "locale": locale,
            "subject": rendered.subject,
            "text": rendered.text,
            "event": {
                "id": str(envelope.id),
                "type": envelope.type,
                "time": envelope.time.isoformat(),
                "subject": envelope.subject,
                "data": envelope.data,
            },
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


class NotificationHandlers:
    def __init__(self, settings: NotificationsSettings, templates: TemplateCatalog) -> None:
        self.settings = settings
        self.templates = templates

    async def on_contact_upserted(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(ContactUpserted)
        if await repo.upsert_contact(ctx.conn, data, ctx.envelope.id) and Channel.WEBHOOK in data.channels:
            await repo.ensure_webhook_secret(ctx.conn, data.party_id)

    async def on_event(self, ctx: EventContext) -> None:
        envelope = ctx.envelope
        await self._learn_borrower(ctx, ctx.event.data)
        notice = about(envelope.type, ctx.event.data)
        if notice is None:
            return
        topic, data = notice
        subscription = subscription_for(topic)
        pending = False
        for recipient in recipients_of(topic, data, self.settings.officers_party_id):
            party_id = await self._party_id(ctx, recipient)
            contact = await repo.get_contact(ctx.conn, party_id)
            routing = route(contact, subscription.category)
            if contact is None or routing.skipped:
                await repo.insert_delivery(
                    ctx.conn,
                    repo.NewDelivery(
                        id=delivery_id(envelope.id, party_id, None),
                        event_id=envelope.id,
                        event_type=envelope.type,
                        correlation_id=envelope.correlationid,
                        party_id=party_id,
                        channel=None,
                        category=subscription.category,
                        status=Status(routing.skipped or "no_contact"),
                        detail=routing.detail,
                        event=envelope.model_dump(mode="json"),  # kept so an operator can reroute it
                    ),
                )
                continue
            rows = await self._deliver(ctx, contact, routing.channels, subscription.category, topic, data)
            pending |= any(row.channel is not Channel.INBOX for row in rows)
        if pending:
            await repo.wake_dispatcher(ctx.conn)

    async def reroute(
        self, conn: Conn, emit_in: EmitIn, notification_id: uuid.UUID
    ) -> list[repo.NewDelivery]:
        """Route a notification recorded without a channel now that its party has a contact (or no longer
        opts out): one row per enabled channel, sent like any other; the old row becomes ``rerouted``.

        Raises ``NotReroutable`` when the row is not a no_contact or suppressed one, when it was recorded
        without its event, or when the party still cannot be reached.
        """
        row = await repo.unrouted(conn, notification_id)
        if row is None:
            raise NotReroutable("not_unrouted", "only no_contact and suppressed notifications are rerouted")
        if row["event"] is None:
            raise NotReroutable("no_event", "the notification was recorded without its event")
        event = validate_event_payload(row["event"])
        notice = about(event.envelope.type, event.data)
        if notice is None:  # pragma: no cover - the row was written because the event notifies someone
            raise NotReroutable("not_notified", f"{event.envelope.type} notifies nobody")
        topic, data = notice
        category = subscription_for(topic).category
        party_id = row["party_id"]
        contact = await repo.get_contact(conn, party_id)
        routing = route(contact, category)
        if contact is None or routing.skipped:
            raise NotReroutable(routing.skipped or "no_contact", f"party {party_id}: {routing.detail}")
        envelope = event.envelope
        emit = functools.partial(emit_in, conn, **caused_by(envelope.id, envelope.correlationid))
        origin = _Origin(conn, envelope, emit)
        rows = await self._deliver(origin, contact, routing.channels, category, topic, data)
        channels = ", ".join(c.value for c in routing.channels)
        await repo.mark_rerouted(conn, notification_id, f"rerouted by an operator to {channels}")
        if any(r.channel is not Channel.INBOX for r in rows):
            await repo.wake_dispatcher(conn)
        return rows

    async def _deliver(
        self,
        origin: Origin,
        contact: Contact,
        channels: Iterable[Channel],
        category: Category,
        topic: str,
        data: EventData,
    ) -> list[repo.NewDelivery]:
        """One row per channel, inserted together; returns the rows inserted (none for a redelivery)."""
        envelope = origin.envelope
        rendered = self.templates.render(
            topic, contact.locale, {"event": data, "recipient": contact.name, "envelope": envelope}
        )
        rows = []
        for channel in channels:
            ident = delivery_id(envelope.id, contact.party_id, channel)
            rows.append(
                repo.NewDelivery(
                    id=ident,
                    event_id=envelope.id,
                    event_type=envelope.type,
                    correlation_id=envelope.correlationid,
                    party_id=contact.party_id,
                    channel=channel,
                    category=category,
                    status=Status.DELIVERED if channel is Channel.INBOX else Status.PENDING,
                    locale=contact.locale,
                    address=contact.address(channel),
                    subject=rendered.subject,
                    body_text=rendered.text,
                    body_html=rendered.html,
                    payload=webhook_body(
                        envelope, ident, contact.party_id, category, rendered, contact.locale.value
                    )
                    if channel is Channel.WEBHOOK
                    else None,
                )
            )
        # A row already there was made by the same event handled through another path: nothing to add.
        inserted = await repo.insert_deliveries(origin.conn, rows)
        for row in rows:
            if row.id in inserted and row.channel is Channel.INBOX:
                await repo.record_inbox_message(origin.conn, row)
                await origin.emit(
                    NotificationDelivered(
                        notification_id=str(row.id),
                        event_id=envelope.id,
                        source_event_type=envelope.type,
                        party_id=contact.party_id,
                        channel=Channel.INBOX,
                        category=category,
                        attempts=1,
                        delivered_at=datetime.now(UTC),
                        provider_response="stored in the inbox",
                    )
                )
        return [row for row in rows if row.id in inserted]

    async def _party_id(self, ctx: EventContext, recipient: Party | BorrowerOfLoan) -> str:
        if isinstance(recipient, Party):
            return recipient.party_id
        borrower = await repo.borrower_of(ctx.conn, recipient.loan_id)
        if borrower is None:
            # The loan's disbursement may be in the same pull batch, handled concurrently: not yet.
            raise Retry(
                "borrower_unknown", f"no borrower is known yet for loan {recipient.loan_id}", delay=1.0
            )
        return borrower

    async def _learn_borrower(self, ctx: EventContext, data: EventData) -> None:
        borrower: Any = getattr(data, "borrower", None)
        loan_id = getattr(data, "loan_id", None)
        if borrower is not None and loan_id is not None and hasattr(borrower, "kind"):
            await repo.remember_borrower(ctx.conn, str(loan_id), borrower.id, borrower.name)

    async def on_loan_disbursed(self, ctx: EventContext) -> None:
        await self._learn_borrower(ctx, ctx.event.data)
