"""HTTP routes: the contact directory, the inbox, and the activity feed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID  # noqa: TC003 - FastAPI reads route annotations at runtime

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kumkm_notifications import repository as repo
from kumkm_notifications.domain.delivery import Status
from kumkm_notifications.handlers import NotReroutable
from kumkm_shared import NotFound, Refusal
from kumkm_shared.contracts import Category, Channel, ContactUpserted, Locale, PartyKind

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kumkm_notifications.domain.contacts import Contact
    from kumkm_notifications.handlers import NotificationHandlers
    from kumkm_shared import ServiceRuntime

CONTACTS_DURABLE = "notifications-contacts"


class ContactIn(BaseModel):
    """A party's contact details; the party id is in the path. Replaces what was stored."""

    model_config = ConfigDict(extra="forbid")

    party_kind: PartyKind | None = None
    name: str
    email: str | None = None
    phone: str | None = Field(default=None, description="E.164, e.g. +6281234567890")
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="HMAC-SHA256 key for X-KUMKM-Signature; generated when webhooks are on and none is set",
    )
    locale: Locale = Locale.ID_ID
    channels: list[Channel] = Field(default_factory=lambda: [Channel.INBOX])
    opt_outs: list[Category] = Field(default_factory=list)
    updated_at: datetime | None = Field(
        default=None, description="defaults to now; older updates are ignored"
    )


def contact_view(contact: Contact, *, secret_set: bool) -> dict[str, Any]:
    return {
        "party_id": contact.party_id,
        "party_kind": contact.party_kind,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "webhook_url": contact.webhook_url,
        "webhook_secret_set": secret_set,
        "locale": contact.locale.value,
        "channels": [c.value for c in contact.channels],
        "opt_outs": sorted(c.value for c in contact.opt_outs),
        "updated_at": contact.updated_at,
    }


def _inbox_view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "unread": row["read_at"] is None}


def make_router(runtime: ServiceRuntime) -> APIRouter:  # noqa: C901 - one closure per route reads best
    router = APIRouter()

    async def _contact(party_id: str) -> dict[str, Any]:
        contact = await repo.get_contact(runtime.pool, party_id)
        if contact is None:
            raise NotFound("contact", party_id)
        return contact_view(contact, secret_set=await repo.has_webhook_secret(runtime.pool, party_id))

    @router.put("/contacts/{party_id}", tags=["contacts"])
    async def put_contact(party_id: str, body: ContactIn) -> dict[str, Any]:
        """Create or replace a contact. Published as ``contact.upserted`` for every other subscriber."""
        try:
            event = ContactUpserted(
                party_id=party_id,
                party_kind=body.party_kind,
                name=body.name,
                email=body.email,
                phone=body.phone,
                webhook_url=body.webhook_url,
                locale=body.locale,
                channels=body.channels,
                opt_outs=body.opt_outs,
                updated_at=body.updated_at or datetime.now(UTC),
            )
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None
        if body.webhook_secret is not None:
            # Before the upsert, so no webhook is ever signed with a generated secret in between.
            await repo.set_webhook_secret(runtime.pool, party_id, body.webhook_secret.get_secret_value())
        await runtime.submit(event, consumer=CONTACTS_DURABLE)
        return await _contact(party_id)

    @router.get("/contacts/{party_id}", tags=["contacts"])
    async def get_contact(party_id: str) -> dict[str, Any]:
        return await _contact(party_id)

    @router.get("/contacts", tags=["contacts"])
    async def list_contacts(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0
    ) -> list[dict[str, Any]]:
        contacts = await repo.list_contacts(runtime.pool, limit, offset)
        return [
            contact_view(c, secret_set=await repo.has_webhook_secret(runtime.pool, c.party_id))
            for c in contacts
        ]

    @router.post("/contacts/{party_id}/webhook-secret", tags=["contacts"])
    async def rotate_webhook_secret(party_id: str) -> dict[str, str]:
        """Generate a new signing secret and show it once. Deliveries from now on are signed with it."""
        import secrets

        if await repo.get_contact(runtime.pool, party_id) is None:
            raise NotFound("contact", party_id)
        secret = secrets.token_urlsafe(32)
        await repo.set_webhook_secret(runtime.pool, party_id, secret)
        return {"party_id": party_id, "webhook_secret": secret}

    @router.get("/inbox/{party_id}", tags=["inbox"])
    async def get_inbox(
        party_id: str,
        unread_only: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        messages = await repo.inbox(runtime.pool, party_id, unread_only=unread_only, limit=limit)
        return {
            "party_id": party_id,
            "unread": await repo.unread_count(runtime.pool, party_id),
            "messages": [_inbox_view(m) for m in messages],
        }

    @router.post("/inbox/{party_id}/{message_id}/read", tags=["inbox"])
    async def mark_read(party_id: str, message_id: UUID) -> dict[str, Any]:
        read_at = await repo.mark_read(runtime.pool, party_id, message_id)
        if read_at is None:
            raise NotFound("inbox message", f"{party_id}/{message_id}")
        return {"id": message_id, "party_id": party_id, "read_at": read_at, "unread": False}

    _activity_routes(router, runtime, _contact)
    return router


def _activity_routes(  # noqa: C901 - one closure per route reads best
    router: APIRouter, runtime: ServiceRuntime, _contact: Callable[[str], Awaitable[dict[str, Any]]]
) -> None:
    """The activity feed, and an operator's resend and reroute."""

    @router.get("/notifications", tags=["activity"])
    async def activity(
        party_id: str | None = None,
        status: Status | None = None,
        event_id: UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """The activity feed: every notification with every attempt and the provider's response."""
        return await repo.feed(
            runtime.pool,
            party_id=party_id,
            status=status.value if status else None,
            event_id=event_id,
            limit=limit,
        )

    async def _reroute(notification_id: UUID) -> list[repo.NewDelivery]:
        handlers: NotificationHandlers = runtime.definition.state["handlers"]
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                return await handlers.reroute(conn, runtime.emit, notification_id)
        except NotReroutable as exc:
            raise Refusal(exc.code, f"notification {notification_id}: {exc.message}") from exc

    def _routed(rows: list[repo.NewDelivery]) -> list[dict[str, Any]]:
        return [{"id": r.id, "channel": r.channel, "status": r.status} for r in rows]

    @router.post("/notifications/{notification_id}/resend", tags=["activity"])
    async def resend(notification_id: UUID) -> dict[str, Any]:
        """An operator's decision: send an 'unknown' or 'failed' notification again, or route a 'no_contact'
        or 'suppressed' one now that the party has a contact (or no longer opts out)."""
        previous = await repo.requeue(runtime.pool, notification_id)
        if previous is None:
            rows = await repo.feed(
                runtime.pool, party_id=None, status=None, limit=1, notification_id=notification_id
            )
            if not rows:
                raise NotFound("notification", str(notification_id))
            status = rows[0]["status"]
            if status in {Status.NO_CONTACT, Status.SUPPRESSED}:
                routed = await _reroute(notification_id)
                return {
                    "id": notification_id,
                    "previous_status": status,
                    "status": "rerouted",
                    "routed": _routed(routed),
                }
            raise Refusal(
                "not_resendable",
                f"notification is {status}; only unknown, failed, no_contact and suppressed ones are resent",
            )
        async with runtime.pool.acquire() as conn:
            await repo.wake_dispatcher(conn)
        return {"id": notification_id, "previous_status": previous, "status": "pending"}

    @router.post("/contacts/{party_id}/reroute", tags=["contacts"])
    async def reroute_party(party_id: str) -> dict[str, Any]:
        """Route every no_contact or suppressed notification of the party that can now reach it (after the
        contact was added or an opt-out lifted). Those that still cannot are listed with the reason."""
        await _contact(party_id)  # 404 when the party still has no contact
        routed: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for notification_id in await repo.unrouted_ids(runtime.pool, party_id):
            try:
                rows = await _reroute(notification_id)
            except Refusal as exc:
                skipped.append({"id": notification_id, "error": exc.code, "message": exc.reason})
                continue
            routed.append({"id": notification_id, "routed": _routed(rows)})
        return {"party_id": party_id, "rerouted": routed, "skipped": skipped}
