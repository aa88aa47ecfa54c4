"""Events in; contacts, deliveries and inbox messages out, in the consuming transaction.

A notification event becomes one delivery row per (event, recipient, channel) under a unique key, so a
redelivered event adds nothing. Rows for email, webhook, sms and whatsapp are sent later by the
dispatcher; the inbox is written here, so it is delivered exactly once with the event.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
from kumkm_shared.contracts import Channel, ContactUpserted, NotificationDelivered

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kumkm_notifications.rendering import Rendered, TemplateCatalog
    from kumkm_notifications.settings import NotificationsSettings
    from kumkm_shared import EventContext
    from kumkm_shared.contracts import Category, Envelope, EventData

DELIVERY_NAMESPACE = uuid.UUID("5d3a3f4e-6b1c-4c1e-9a53-4b554d4b4d01")


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
                    ),
                )
                continue
            rendered = self.templates.render(
                topic,
                contact.locale,
                {"event": data, "recipient": contact.name, "envelope": envelope},
            )
            pending |= await self._deliver(ctx, contact, routing.channels, subscription.category, rendered)
        if pending:
            await repo.wake_dispatcher(ctx.conn)

    async def _deliver(
        self,
        ctx: EventContext,
        contact: Contact,
        channels: Iterable[Channel],
        category: Category,
        rendered: Rendered,
    ) -> bool:
        """One row per channel, inserted together; True when a row waits for the dispatcher."""
        envelope = ctx.envelope
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
        inserted = await repo.insert_deliveries(ctx.conn, rows)
        pending = False
        for row in rows:
            if row.id not in inserted:
                continue
            if row.channel is not Channel.INBOX:
                pending = True
                continue
            await repo.record_inbox_message(ctx.conn, row)
            await ctx.emit(
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
        return pending

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
