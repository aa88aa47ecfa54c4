"""HTTP routes: the contact directory, the inbox, the activity feed, and an operator's resend and reroute.

Reads go to the repository through the pool; every write is a command of the service, in the one
transaction ``runtime.command`` opens for it. Refusals answer by the one mapping in ``kumkm_shared``.

Personal data: only the contact routes show e-mail addresses and phone numbers, to the roles that read
contacts (each read audited); every other answer masks them (``domain.privacy``). A webhook signing secret
is in one answer only, the rotation's; every other answer says whether one is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast
from uuid import UUID  # noqa: TC003 - FastAPI reads route annotations at runtime

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from kumkm_notifications import repository as repo
from kumkm_notifications.domain import permissions, privacy
from kumkm_notifications.domain.delivery import Status  # noqa: TC001 - FastAPI reads it at runtime
from kumkm_notifications.handlers import NotificationsService
from kumkm_shared import NotFound
from kumkm_shared.contracts import Category, Channel, ContactUpserted, Locale, PartyKind
from kumkm_shared.contracts.notifications import CHANNELS_HAVE_ADDRESSES
from kumkm_shared.contracts.types import (
    Email,
    HttpsUrl,
    Identifier,
    Name,
    PhoneE164,
    UtcDateTime,
    validate_text,
)
from kumkm_shared.service.deps import CommandDep, Require, RuntimeDep, service_of
from kumkm_shared.service.http import links, validated

if TYPE_CHECKING:
    from kumkm_notifications.domain.contacts import Contact
    from kumkm_shared import Actor, ServiceRuntime
    from kumkm_shared.contracts import Envelope

CONTACTS_DURABLE = "notifications-contacts"
MAX_OFFSET = 1_000_000  # deeper than a million contacts, page with a larger limit


def _storable_secret(secret: SecretStr) -> SecretStr:
    validate_text(secret.get_secret_value())
    return secret


class ContactIn(BaseModel):
    """A party's contact details; the party id is in the path. Replaces what was stored."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=CHANNELS_HAVE_ADDRESSES)

    party_kind: PartyKind | None = None
    # The contract's own types: what the event would refuse is a 422 naming the body field, and the
    # document says what each field takes.
    name: Name
    email: Email | None = None
    phone: PhoneE164 | None = Field(default=None, description="E.164, e.g. +6281234567890")
    webhook_url: HttpsUrl | None = None
    webhook_secret: Annotated[SecretStr, AfterValidator(_storable_secret)] | None = Field(
        default=None,
        min_length=16,
        description="HMAC-SHA256 key for X-KUMKM-Signature; generated when webhooks are on and none is set",
    )
    locale: Locale = Locale.ID_ID
    channels: list[Channel] = Field(default_factory=lambda: [Channel.INBOX])
    opt_outs: list[Category] = Field(default_factory=list)
    updated_at: UtcDateTime | None = Field(
        default=None, description="defaults to now; older updates are ignored"
    )


def contact_view(contact: Contact, *, secret_set: bool, reveal: bool = True) -> dict[str, Any]:
    """A contact as an answer; ``reveal=False`` (a caller who may not read contacts) masks its addresses."""
    email, phone = contact.email, contact.phone
    if not reveal:
        email = None if email is None else privacy.mask_email(email)
        phone = None if phone is None else privacy.mask_phone(phone)
    return {
        "party_id": contact.party_id,
        "party_kind": contact.party_kind,
        "name": contact.name,
        "email": email,
        "phone": phone,
        "webhook_url": contact.webhook_url
        if reveal or contact.webhook_url is None
        else privacy.mask_url(contact.webhook_url),
        "webhook_secret_set": secret_set,
        "locale": contact.locale.value,
        "channels": [c.value for c in contact.channels],
        "opt_outs": sorted(c.value for c in contact.opt_outs),
        "updated_at": contact.updated_at,
    }


def _inbox_view(row: dict[str, Any]) -> dict[str, Any]:
    texts = {key: privacy.scrub(row[key]) for key in ("subject", "body_text", "body_html")}
    return {**row, **texts, "unread": row["read_at"] is None}


def _feed_view(row: dict[str, Any]) -> dict[str, Any]:
    """A notification of the activity feed: its address masked, and any address quoted in a provider's
    response, an error or a subject."""
    texts: dict[str, Any] = {key: privacy.scrub(row[key]) for key in ("subject", "body_text") if key in row}
    return {
        **row,
        **texts,
        "address": privacy.mask_address(row["channel"], row["address"]),
        "last_error": privacy.scrub(row["last_error"]),
        "detail": privacy.scrub(row["detail"]),
        "attempt_log": [
            {**attempt, "response": privacy.scrub(attempt["response"])} for attempt in row["attempt_log"]
        ],
    }


def _reads_contacts(runtime: ServiceRuntime, actor: Actor) -> bool:
    return actor.has_any(runtime.permissions[permissions.READ_CONTACTS])


def _service(request: Request) -> NotificationsService:
    return cast("NotificationsService", service_of(request))


ServiceDep = Annotated[NotificationsService, Depends(_service)]

router = APIRouter()


async def _contact(runtime: ServiceRuntime, party_id: str) -> dict[str, Any]:
    contact = await repo.get_contact(runtime.pool, party_id)
    if contact is None:
        raise NotFound("contact", party_id)
    return contact_view(contact, secret_set=await repo.has_webhook_secret(runtime.pool, party_id))


def _routed(rows: list[repo.NewDelivery]) -> list[dict[str, Any]]:
    return [{"id": r.id, "channel": r.channel, "status": r.status} for r in rows]


# -- contacts ------------------------------------------------------------------------------------------
@router.put(
    "/contacts/{party_id}",
    tags=["contacts"],
    dependencies=[Require(permissions.WRITE_CONTACT)],
    openapi_extra=links(
        200,
        "party_id",
        ("GET", "/contacts/{party_id}"),
        ("POST", "/contacts/{party_id}/webhook-secret"),
        ("POST", "/contacts/{party_id}/reroute"),
        ("GET", "/inbox/{party_id}"),
        source="$request.path.party_id",
    ),
)
async def put_contact(
    party_id: Identifier, body: ContactIn, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """Create or replace a contact. Published as ``contact.upserted`` for every other subscriber.

    The secret, the contact and the event commit together, or none does. The answer never holds the
    secret (``webhook_secret_set`` says there is one); a caller who may not read contacts (an integrator)
    gets the addresses masked."""
    fields = body.model_dump(exclude={"webhook_secret"}, exclude_none=True)
    event = validated(
        ContactUpserted,
        {**fields, "party_id": party_id, "updated_at": body.updated_at or service.clock.now()},
    )
    secret = None if body.webhook_secret is None else body.webhook_secret.get_secret_value()
    async with runtime.command(command) as work:

        async def claim(envelope: Envelope) -> None:
            await runtime.inbox.claim(work.conn, CONTACTS_DURABLE, envelope.id, envelope.type)

        contact = await service.put_contact(work, event, secret=secret, claim=claim)
        secret_set = await repo.has_webhook_secret(work.conn, party_id)
    return contact_view(contact, secret_set=secret_set, reveal=_reads_contacts(runtime, command.actor))


@router.get(
    "/contacts/{party_id}",
    tags=["contacts"],
    dependencies=[Require(permissions.READ_CONTACTS, audit_reads=True)],
)
async def get_contact(party_id: Identifier, runtime: RuntimeDep) -> dict[str, Any]:
    return await _contact(runtime, party_id)


@router.get(
    "/contacts", tags=["contacts"], dependencies=[Require(permissions.READ_CONTACTS, audit_reads=True)]
)
async def list_contacts(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    contacts = await repo.list_contacts(runtime.pool, limit, offset)
    return [
        contact_view(c, secret_set=await repo.has_webhook_secret(runtime.pool, c.party_id)) for c in contacts
    ]


@router.post(
    "/contacts/{party_id}/webhook-secret",
    tags=["contacts"],
    dependencies=[Require(permissions.ROTATE_SECRET)],
)
async def rotate_webhook_secret(
    party_id: Identifier, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, str]:
    """Generate a new signing secret and show it once. Deliveries from now on are signed with it."""
    async with runtime.command(command) as work:
        secret = await service.rotate_webhook_secret(work, party_id)
    return {"party_id": party_id, "webhook_secret": secret}


@router.post("/contacts/{party_id}/reroute", tags=["contacts"], dependencies=[Require(permissions.REROUTE)])
async def reroute_party(
    party_id: Identifier, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """Route every no_contact or suppressed notification of the party that can now reach it (after the
    contact was added or an opt-out lifted). Those that still cannot are listed with the reason."""
    result = await service.reroute_party(lambda: runtime.command(command), party_id)
    return {
        "party_id": party_id,
        "rerouted": [{"id": ident, "routed": _routed(rows)} for ident, rows in result.rerouted],
        "skipped": [
            {"id": ident, "error": refusal.code, "message": refusal.reason}
            for ident, refusal in result.skipped
        ],
    }


# -- inbox ---------------------------------------------------------------------------------------------
@router.get("/inbox/{party_id}", tags=["inbox"], dependencies=[Require(permissions.READ_INBOX)])
async def get_inbox(
    party_id: Identifier,
    runtime: RuntimeDep,
    unread_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """A party's messages. Any address quoted in a message is masked, for every reader."""
    messages = await repo.inbox(runtime.pool, party_id, unread_only=unread_only, limit=limit)
    return {
        "party_id": party_id,
        "unread": await repo.unread_count(runtime.pool, party_id),
        "messages": [_inbox_view(m) for m in messages],
    }


@router.post(
    "/inbox/{party_id}/{message_id}/read", tags=["inbox"], dependencies=[Require(permissions.MARK_READ)]
)
async def mark_read(
    party_id: Identifier, message_id: UUID, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    async with runtime.command(command) as work:
        read_at = await service.mark_read(work, party_id, message_id)
    return {"id": message_id, "party_id": party_id, "read_at": read_at, "unread": False}


# -- the activity feed, and an operator's resend --------------------------------------------------------
@router.get("/notifications", tags=["activity"], dependencies=[Require(permissions.READ_ACTIVITY)])
async def activity(
    runtime: RuntimeDep,
    party_id: Identifier | None = None,
    status: Status | None = None,
    event_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The activity feed: every notification with every attempt and the provider's response, addresses
    masked (the contact routes show them)."""
    rows = await repo.feed(
        runtime.pool,
        party_id=party_id,
        status=status.value if status else None,
        event_id=event_id,
        limit=limit,
    )
    return [_feed_view(row) for row in rows]


@router.post(
    "/notifications/{notification_id}/resend", tags=["activity"], dependencies=[Require(permissions.RESEND)]
)
async def resend(
    notification_id: UUID, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """An operator's decision: send an 'unknown' or 'failed' notification again, or route a 'no_contact'
    or 'suppressed' one now that the party has a contact (or no longer opts out)."""
    async with runtime.command(command) as work:
        resent = await service.resend(work, notification_id)
    if resent.routed is None:
        return {"id": notification_id, "previous_status": resent.previous_status, "status": "pending"}
    return {
        "id": notification_id,
        "previous_status": resent.previous_status,
        "status": "rerouted",
        "routed": _routed(resent.routed),
    }
