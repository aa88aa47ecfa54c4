"""The notifications service: events in (contacts, deliveries and inbox messages out, in the consuming
transaction), and an operator's commands, each in the transaction the runtime opens for it.

A notification event becomes one delivery row per (event, recipient, channel) under a unique key, so a
redelivered event adds nothing. Rows for email, webhook, sms and whatsapp are sent later by the
dispatcher; the inbox is written here, so it is delivered exactly once with the event. Rules:
``docs/rules/notifications.md``, sections "Who is notified" and "Delivery and retries".
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from kumkm_notifications import repository as repo
from kumkm_notifications.domain.contacts import Contact, route
from kumkm_notifications.domain.delivery import UNROUTED, NotReroutable, NotResendable, Status
from kumkm_notifications.domain.subscriptions import (
    BorrowerOfLoan,
    Party,
    about,
    recipients_of,
    subscription_for,
)
from kumkm_shared import NotFound, Retry
from kumkm_shared.contracts import (
    Channel,
    ContactUpserted,
    LoanDisbursed,
    NotificationDelivered,
    RestructuringRequested,
    validate_event_payload,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from datetime import datetime

    from kumkm_notifications.rendering import Rendered, TemplateCatalog
    from kumkm_notifications.settings import NotificationsSettings
    from kumkm_shared import Begin, Clock, CommandContext, EventContext, Work
    from kumkm_shared.contracts import Category, Envelope, EventData


# Marks an event as handled by one of the service's durables, in the caller's transaction.
Claim: TypeAlias = "Callable[[Envelope], Awaitable[object]]"

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


@dataclass(frozen=True, slots=True)
class Resent:
    """What an operator's resend did: queued the notification again, or routed an unrouted one."""

    previous_status: str
    routed: list[repo.NewDelivery] | None = None  # None: queued again for the dispatcher


@dataclass(frozen=True, slots=True)
class PartyRerouted:
    """A party's unrouted notifications after a reroute: those routed (with their new rows), and those
    that still cannot be, with the refusal saying why."""

    rerouted: list[tuple[uuid.UUID, list[repo.NewDelivery]]]
    skipped: list[tuple[uuid.UUID, NotReroutable]]


class NotificationsService:
    def __init__(self, settings: NotificationsSettings, templates: TemplateCatalog, clock: Clock) -> None:
        self.settings = settings
        self.templates = templates
        self.clock = clock

    # -- events ---------------------------------------------------------------------------------------

    async def on_contact_upserted(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(ContactUpserted)
        await ctx.require_mandate(data.party_id)  # a registry keeps only its mandate's parties' contacts
        await self._store_contact(ctx, data, ctx.envelope.id)

    async def _store_contact(self, work: Work, data: ContactUpserted, event_id: uuid.UUID) -> None:
        if await repo.upsert_contact(work.conn, data, event_id) and Channel.WEBHOOK in data.channels:
            await repo.ensure_webhook_secret(work.conn, data.party_id)

    async def on_event(self, ctx: EventContext) -> None:
        envelope = ctx.envelope
        await self._require_sender_mandate(ctx)
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
            rows = await self._deliver(
                ctx, envelope, contact, routing.channels, subscription.category, topic, data
            )
            pending |= any(row.channel is not Channel.INBOX for row in rows)
        if pending:
            await repo.wake_dispatcher(ctx.conn)

    async def on_loan_disbursed(self, ctx: EventContext) -> None:
        await self._require_sender_mandate(ctx)
        await self._learn_borrower(ctx, ctx.event.data)

    async def _require_sender_mandate(self, ctx: EventContext) -> None:
        """An organisation's own event (``<type>.<org>``) is acted on only within its mandate, by the same
        rule as the owning service: loans refuses the rest, and a refused claim must not reach anyone
        (a receipt to another cooperative's borrower, a borrower rewritten by another lender)."""
        if ctx.sender is None:
            return  # a service's own event: loans' outcomes, or its copy of an HTTP command
        data = ctx.event.data
        if isinstance(data, LoanDisbursed):
            await ctx.require_mandate(data.lender)
        elif isinstance(data, RestructuringRequested):
            borrower = await repo.borrower_of(ctx.conn, data.loan_id)
            if borrower is None:
                raise Retry(
                    "borrower_unknown", f"no borrower is known yet for loan {data.loan_id}", delay=1.0
                )
            await ctx.require_mandate(borrower)

    # -- an operator's commands -------------------------------------------------------------------------
    async def resend(self, work: CommandContext, notification_id: uuid.UUID) -> Resent:
        """Send an 'unknown' or 'failed' notification again, or route a 'no_contact' or 'suppressed' one now
        that the party has a contact (or no longer opts out)."""
        previous = await repo.requeue(work.conn, notification_id)
        if previous is not None:
            await repo.wake_dispatcher(work.conn)
            return Resent(previous)
        status = await repo.status_of(work.conn, notification_id)
        if status is None:
            raise NotFound("notification", str(notification_id))
        if status not in UNROUTED:
            raise NotResendable(notification_id, status)
        return Resent(status, await self.reroute(work, notification_id))

    async def reroute(self, work: CommandContext, notification_id: uuid.UUID) -> list[repo.NewDelivery]:
        """Route a notification recorded without a channel now that its party has a contact (or no longer
        opts out): one row per enabled channel, sent like any other; the old row becomes ``rerouted``.
        The receipts it emits (the inbox's) are caused by the event the notification is about.

        Raises ``NotReroutable`` when the row is not a no_contact or suppressed one, when it was recorded
        without its event, or when the party still cannot be reached.
        """
        conn = work.conn
        row = await repo.unrouted(conn, notification_id)
        if row is None:
            raise NotReroutable(
                notification_id, "not_unrouted", "only no_contact and suppressed notifications are rerouted"
            )
        if row["event"] is None:
            raise NotReroutable(
                notification_id, "no_event", "the notification was recorded without its event"
            )
        event = validate_event_payload(row["event"])
        envelope = event.envelope
        notice = about(envelope.type, event.data)
        if notice is None:  # pragma: no cover - the row was written because the event notifies someone
            raise NotReroutable(notification_id, "not_notified", f"{envelope.type} notifies nobody")
        topic, data = notice
        category = subscription_for(topic).category
        party_id = row["party_id"]
        contact = await repo.get_contact(conn, party_id)
        routing = route(contact, category)
        if contact is None or routing.skipped:
            raise NotReroutable(
                notification_id, routing.skipped or "no_contact", f"party {party_id}: {routing.detail}"
            )
        work.cause = envelope  # known only now, from the locked row
        rows = await self._deliver(work, envelope, contact, routing.channels, category, topic, data)
        channels = ", ".join(c.value for c in routing.channels)
        await repo.mark_rerouted(conn, notification_id, f"rerouted by an operator to {channels}")
        if any(r.channel is not Channel.INBOX for r in rows):
            await repo.wake_dispatcher(conn)
        return rows

    async def reroute_party(self, begin: Begin, party_id: str) -> PartyRerouted:
        """``reroute`` every no_contact or suppressed notification of the party, each in its own transaction
        (``begin``), so one that still cannot be routed is listed and the others go ahead."""
        async with begin() as work:
            if await repo.get_contact(work.conn, party_id) is None:
                raise NotFound("contact", party_id)
            unrouted = await repo.unrouted_ids(work.conn, party_id)
        rerouted: list[tuple[uuid.UUID, list[repo.NewDelivery]]] = []
        skipped: list[tuple[uuid.UUID, NotReroutable]] = []
        for notification_id in unrouted:
            try:
                async with begin() as work:
                    rows = await self.reroute(work, notification_id)
            except NotReroutable as refusal:  # a result for this one, not an answer for the request
                skipped.append((notification_id, refusal))
                continue
            rerouted.append((notification_id, rows))
        return PartyRerouted(rerouted, skipped)

    async def put_contact(
        self, work: CommandContext, data: ContactUpserted, *, secret: str | None, claim: Claim
    ) -> Contact:
        """A contact written through the API, in the command's one transaction: the signing secret given
        (before the contact, so no webhook is ever signed with a generated one), the contact, and
        ``contact.upserted`` in the outbox for every other subscriber. ``claim`` records the event as
        handled by this service's own durable, so the copy that comes back from the stream is a duplicate.
        Returns the contact as stored (a newer one stays: an older update is ignored, and so is its secret:
        a back-dated update changes nothing)."""
        envelope = await work.emit(data)
        await claim(envelope)
        await self._store_contact(work, data, envelope.id)
        stored = await repo.get_contact(work.conn, data.party_id)
        if stored is None:  # pragma: no cover - written just above, in this transaction
            raise NotFound("contact", data.party_id)
        if secret is not None and stored.updated_at == data.updated_at:
            await repo.set_webhook_secret(work.conn, data.party_id, secret)
        return stored

    async def rotate_webhook_secret(self, work: Work, party_id: str) -> str:
        """A new signing secret for the party's webhooks, returned once."""
        if await repo.get_contact(work.conn, party_id) is None:
            raise NotFound("contact", party_id)
        secret = secrets.token_urlsafe(32)
        await repo.set_webhook_secret(work.conn, party_id, secret)
        return secret

    async def mark_read(self, work: Work, party_id: str, message_id: uuid.UUID) -> datetime:
        read_at = await repo.mark_read(work.conn, party_id, message_id)
        if read_at is None:
            raise NotFound("inbox message", f"{party_id}/{message_id}")
        return read_at

    # -- writing deliveries -----------------------------------------------------------------------------
    async def _deliver(
        self,
        work: Work,
        envelope: Envelope,
        contact: Contact,
        channels: Iterable[Channel],
        category: Category,
        topic: str,
        data: EventData,
    ) -> list[repo.NewDelivery]:
        """One row per channel, inserted together; returns the rows inserted (none for a redelivery).

        The inbox's rows are delivered here, each with its receipt emitted in ``work``.
        """
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
        inserted = await repo.insert_deliveries(work.conn, rows)
        for row in rows:
            if row.id in inserted and row.channel is Channel.INBOX:
                await repo.record_inbox_message(work.conn, row)
                await work.emit(
                    NotificationDelivered(
                        notification_id=str(row.id),
                        event_id=envelope.id,
                        source_event_type=envelope.type,
                        party_id=contact.party_id,
                        channel=Channel.INBOX,
                        category=category,
                        attempts=1,
                        delivered_at=self.clock.now(),
                        provider_response="stored in the inbox",
                    )
                )
        return [row for row in rows if row.id in inserted]

    async def _party_id(self, ctx: Work, recipient: Party | BorrowerOfLoan) -> str:
        if isinstance(recipient, Party):
            return recipient.party_id
        borrower = await repo.borrower_of(ctx.conn, recipient.loan_id)
        if borrower is None:
            # The loan's disbursement may be in the same pull batch, handled concurrently: not yet.
            raise Retry(
                "borrower_unknown", f"no borrower is known yet for loan {recipient.loan_id}", delay=1.0
            )
        return borrower

    async def _learn_borrower(self, ctx: Work, data: EventData) -> None:
        borrower: Any = getattr(data, "borrower", None)
        loan_id = getattr(data, "loan_id", None)
        if borrower is not None and loan_id is not None and hasattr(borrower, "kind"):
            await repo.remember_borrower(ctx.conn, str(loan_id), borrower.id, borrower.name)
