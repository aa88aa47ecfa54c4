"""SQL for the ``notifications`` schema only. Every function takes the connection of the caller's
transaction; the pool's search path puts the schema first."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kumkm_notifications.domain.contacts import Contact
from kumkm_shared.contracts import Category, Channel, Locale

if TYPE_CHECKING:
    from datetime import datetime
    from typing import TypeAlias
    from uuid import UUID

    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    from kumkm_notifications.domain.delivery import Status
    from kumkm_shared.contracts import ContactUpserted

    Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy  # in the caller's transaction
    Db: TypeAlias = Conn | asyncpg.Pool  # reads may also go through the pool

WAKE_CHANNEL = "notifications_deliveries"


# -- contacts ------------------------------------------------------------------------------------------
async def upsert_contact(conn: Conn, data: ContactUpserted, event_id: UUID) -> bool:
    """Store the contact unless a newer version is already stored. True when stored."""
    stored = await conn.fetchval(
        """
        INSERT INTO contacts AS c (party_id, party_kind, name, email, phone, webhook_url, locale, channels,
                                   opt_outs, updated_at, event_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (party_id) DO UPDATE SET
            party_kind = EXCLUDED.party_kind, name = EXCLUDED.name, email = EXCLUDED.email,
            phone = EXCLUDED.phone, webhook_url = EXCLUDED.webhook_url, locale = EXCLUDED.locale,
            channels = EXCLUDED.channels, opt_outs = EXCLUDED.opt_outs, updated_at = EXCLUDED.updated_at,
            event_id = EXCLUDED.event_id, stored_at = now()
        WHERE c.updated_at <= EXCLUDED.updated_at
        RETURNING true
        """,
        data.party_id,
        data.party_kind.value if data.party_kind else None,
        data.name,
        data.email,
        data.phone,
        data.webhook_url,
        data.locale.value,
        [c.value for c in data.channels],
        [c.value for c in data.opt_outs],
        data.updated_at,
        event_id,
    )
    return bool(stored)


def _contact(row: asyncpg.Record) -> Contact:
    return Contact(
        party_id=row["party_id"],
        name=row["name"],
        locale=Locale(row["locale"]),
        channels=tuple(Channel(c) for c in row["channels"]),
        opt_outs=frozenset(Category(c) for c in row["opt_outs"]),
        email=row["email"],
        phone=row["phone"],
        webhook_url=row["webhook_url"],
        party_kind=row["party_kind"],
        updated_at=row["updated_at"],
    )


async def get_contact(conn: Db, party_id: str) -> Contact | None:
    row = await conn.fetchrow("SELECT * FROM contacts WHERE party_id = $1", party_id)
    return None if row is None else _contact(row)


async def list_contacts(conn: Db, limit: int, offset: int = 0) -> list[Contact]:
    rows = await conn.fetch("SELECT * FROM contacts ORDER BY party_id LIMIT $1 OFFSET $2", limit, offset)
    return [_contact(r) for r in rows]


async def has_webhook_secret(conn: Db, party_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM webhook_secrets WHERE party_id = $1", party_id))


async def ensure_webhook_secret(conn: Conn, party_id: str) -> None:
    """A party that enables webhooks without giving a secret gets a generated one (rotate to read it)."""
    await conn.execute(
        "INSERT INTO webhook_secrets (party_id, secret) VALUES ($1, $2) ON CONFLICT (party_id) DO NOTHING",
        party_id,
        secrets.token_urlsafe(32),
    )


async def set_webhook_secret(conn: Db, party_id: str, secret: str) -> None:
    await conn.execute(
        "INSERT INTO webhook_secrets (party_id, secret) VALUES ($1, $2) "
        "ON CONFLICT (party_id) DO UPDATE SET secret = EXCLUDED.secret, updated_at = now()",
        party_id,
        secret,
    )


# -- loans -> borrowers --------------------------------------------------------------------------------
async def remember_borrower(conn: Conn, loan_id: str, borrower_id: str, name: str) -> None:
    """A loan's borrower never changes: the first record stands (as on loans' book, where a second
    disbursement of the same loan is ignored), so a later event cannot redirect its messages."""
    await conn.execute(
        "INSERT INTO loan_borrowers (loan_id, borrower_id, name) VALUES ($1, $2, $3) "
        "ON CONFLICT (loan_id) DO NOTHING",
        loan_id,
        borrower_id,
        name,
    )


async def borrower_of(conn: Conn, loan_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT borrower_id FROM loan_borrowers WHERE loan_id = $1", loan_id
    )
    return found


# -- deliveries ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: UUID
    event_id: UUID
    event_type: str
    correlation_id: str | None
    party_id: str
    channel: Channel | None
    category: Category
    status: Status
    locale: Locale | None = None
    address: str | None = None
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None
    payload: bytes | None = None
    detail: str | None = None
    event: dict[str, Any] | None = None  # the envelope, kept on rows without a channel (for a reroute)


async def insert_delivery(conn: Conn, d: NewDelivery) -> bool:
    """Insert unless the (event, party, channel) row exists. True when inserted."""
    inserted = await conn.fetchval(
        """
        INSERT INTO deliveries (id, event_id, event_type, correlation_id, party_id, channel, category, status,
                                locale, address, subject, body_text, body_html, payload, detail, event,
                                next_attempt_at, delivered_at, attempts)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb,
                CASE WHEN $8 = 'pending' THEN now() END, CASE WHEN $8 = 'delivered' THEN now() END,
                CASE WHEN $8 = 'delivered' THEN 1 ELSE 0 END)
        ON CONFLICT DO NOTHING
        RETURNING true
        """,
        d.id,
        d.event_id,
        d.event_type,
        d.correlation_id,
        d.party_id,
        d.channel.value if d.channel else None,
        d.category.value,
        d.status.value,
        d.locale.value if d.locale else None,
        d.address,
        d.subject,
        d.body_text,
        d.body_html,
        d.payload,
        d.detail,
        d.event,
    )
    return bool(inserted)


async def insert_deliveries(conn: Conn, rows: list[NewDelivery]) -> set[UUID]:
    """``insert_delivery`` for several rows in one statement. Returns the ids inserted."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        """
        INSERT INTO deliveries (id, event_id, event_type, correlation_id, party_id, channel, category, status,
                                locale, address, subject, body_text, body_html, payload, detail,
                                next_attempt_at, delivered_at, attempts)
        SELECT u.id, u.event_id, u.event_type, u.correlation_id, u.party_id, u.channel, u.category, u.status,
               u.locale, u.address, u.subject, u.body_text, u.body_html, u.payload, u.detail,
               CASE WHEN u.status = 'pending' THEN now() END, CASE WHEN u.status = 'delivered' THEN now() END,
               CASE WHEN u.status = 'delivered' THEN 1 ELSE 0 END
        FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[],
                    $15::text[]) WITH ORDINALITY
             AS u(id, event_id, event_type, correlation_id, party_id, channel, category, status, locale,
                  address, subject, body_text, body_html, payload, detail, n)
        ORDER BY u.n
        ON CONFLICT DO NOTHING
        RETURNING id
        """,
        [d.id for d in rows],
        [d.event_id for d in rows],
        [d.event_type for d in rows],
        [d.correlation_id for d in rows],
        [d.party_id for d in rows],
        [d.channel.value if d.channel else None for d in rows],
        [d.category.value for d in rows],
        [d.status.value for d in rows],
        [d.locale.value if d.locale else None for d in rows],
        [d.address for d in rows],
        [d.subject for d in rows],
        [d.body_text for d in rows],
        [d.body_html for d in rows],
        [d.payload for d in rows],
        [d.detail for d in rows],
    )
    return {r["id"] for r in inserted}


async def record_inbox_message(conn: Conn, d: NewDelivery) -> None:
    await conn.execute(
        """
        WITH msg AS (
            INSERT INTO inbox_messages (id, party_id, event_id, event_type, category, subject, body_text,
                                        body_html)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        )
        INSERT INTO attempts (delivery_id, attempt_no, finished_at, outcome, code, response)
        VALUES ($1, 1, clock_timestamp(), 'delivered', 'ok', 'stored in the inbox')
        """,
        d.id,
        d.party_id,
        d.event_id,
        d.event_type,
        d.category.value,
        d.subject,
        d.body_text,
        d.body_html,
    )


async def wake_dispatcher(conn: Conn) -> None:
    await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken by the dispatcher: its attempt is recorded and committed before the send."""

    id: UUID
    event_id: UUID
    event_type: str
    correlation_id: str | None
    party_id: str
    channel: Channel
    category: Category
    address: str = field(repr=False)  # personal data, and the secret: never in a repr, so never logged
    subject: str
    body_text: str
    body_html: str
    payload: bytes = field(repr=False)
    attempt: int
    name: str
    secret: str | None = field(repr=False)


async def claim_due(conn: Conn, limit: int, lease_seconds: float) -> list[Claimed]:
    """Take up to ``limit`` due deliveries: status 'sending', attempt counted, attempt row written.

    One statement, alone in its transaction: committed before any send starts, so the attempt is on
    record before the message goes on the wire, even if the process dies while it is there.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM deliveries
            WHERE status = 'pending' AND next_attempt_at <= now()
            ORDER BY next_attempt_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE deliveries AS d
            SET status = 'sending', attempts = d.attempts + 1, updated_at = now(),
                lease_until = clock_timestamp() + make_interval(secs => $2)
            FROM due WHERE d.id = due.id
            RETURNING d.*
        ), logged AS (
            INSERT INTO attempts (delivery_id, attempt_no) SELECT id, attempts FROM claimed
        )
        SELECT claimed.*,
            (SELECT name FROM contacts c WHERE c.party_id = claimed.party_id) AS contact_name,
            (SELECT secret FROM webhook_secrets s WHERE s.party_id = claimed.party_id) AS secret
        FROM claimed
        """,
        limit,
        lease_seconds,
    )
    return [
        Claimed(
            id=r["id"],
            event_id=r["event_id"],
            event_type=r["event_type"],
            correlation_id=r["correlation_id"],
            party_id=r["party_id"],
            channel=Channel(r["channel"]),
            category=Category(r["category"]),
            address=r["address"],
            subject=r["subject"],
            body_text=r["body_text"],
            body_html=r["body_html"],
            payload=bytes(r["payload"] or b""),
            attempt=r["attempts"],
            name=r["contact_name"] or r["party_id"],
            secret=r["secret"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Finished:
    """One attempt's outcome, for ``finish_attempts``."""

    delivery_id: UUID
    attempt: int
    status: Status
    outcome: str
    code: str
    response: str
    retry_in: float | None


async def finish_attempts(conn: Conn, finished: list[Finished]) -> set[UUID]:
    """Record attempts' outcomes, in one statement. Returns the ids recorded: a delivery no longer in
    'sending' with that attempt (reconciled meanwhile) is left as it is."""
    if not finished:
        return set()
    rows = await conn.fetch(
        """
        WITH u AS (
            SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                                 $7::float8[]) AS u(id, attempt, status, outcome, code, response, retry_in)
        ), done AS (
            UPDATE deliveries AS d SET status = u.status, updated_at = now(), lease_until = NULL,
                last_error = CASE WHEN u.status = 'delivered' THEN d.last_error ELSE u.response END,
                next_attempt_at = CASE WHEN u.retry_in IS NULL THEN NULL
                                       ELSE clock_timestamp() + make_interval(secs => u.retry_in) END,
                delivered_at = CASE WHEN u.status = 'delivered' THEN now() END
            FROM u
            WHERE d.id = u.id AND d.status = 'sending' AND d.attempts = u.attempt
            RETURNING d.id
        ), logged AS (
            UPDATE attempts AS a SET finished_at = clock_timestamp(), outcome = u.outcome, code = u.code,
                response = u.response
            FROM u JOIN done ON done.id = u.id
            WHERE a.delivery_id = u.id AND a.attempt_no = u.attempt
        )
        SELECT id FROM done
        """,
        [f.delivery_id for f in finished],
        [f.attempt for f in finished],
        [f.status.value for f in finished],
        [f.outcome for f in finished],
        [f.code for f in finished],
        [f.response[:2000] for f in finished],
        [f.retry_in for f in finished],
    )
    return {r["id"] for r in rows}


@dataclass(frozen=True, slots=True)
class Orphan:
    id: UUID
    channel: Channel
    attempt: int


async def claim_orphans(conn: Conn, limit: int = 500) -> list[Orphan]:
    """Deliveries left in 'sending' past their lease: the sender died between the send and the record."""
    rows = await conn.fetch(
        "SELECT id, channel, attempts FROM deliveries "
        "WHERE status = 'sending' AND lease_until < clock_timestamp() "
        "ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [Orphan(r["id"], Channel(r["channel"]), r["attempts"]) for r in rows]


async def settle_orphan(conn: Conn, orphan: Orphan, status: Status, note: str) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = $2, lease_until = NULL, updated_at = now(), last_error = $3, "
        "next_attempt_at = CASE WHEN $2 = 'pending' THEN now() END WHERE id = $1",
        orphan.id,
        status.value,
        note,
    )
    await conn.execute(
        "UPDATE attempts SET finished_at = clock_timestamp(), outcome = 'unknown', code = 'outcome_lost', "
        "response = $3 WHERE delivery_id = $1 AND attempt_no = $2",
        orphan.id,
        orphan.attempt,
        note,
    )


async def requeue(conn: Db, delivery_id: UUID) -> str | None:
    """An operator's decision to send again (after 'unknown' or 'failed'). Returns the previous status."""
    previous: str | None = await conn.fetchval(
        "WITH old AS (SELECT id, status FROM deliveries WHERE id = $1 FOR UPDATE) "
        "UPDATE deliveries d SET status = 'pending', next_attempt_at = now(), updated_at = now() "
        "FROM old WHERE d.id = old.id AND old.status IN ('unknown', 'failed') RETURNING old.status",
        delivery_id,
    )
    return previous


async def status_of(conn: Db, delivery_id: UUID) -> str | None:
    found: str | None = await conn.fetchval("SELECT status FROM deliveries WHERE id = $1", delivery_id)
    return found


async def unrouted(conn: Conn, delivery_id: UUID) -> asyncpg.Record | None:
    """A row recorded without a channel (no_contact or suppressed), locked, with the event it was about."""
    return await conn.fetchrow(
        "SELECT id, event_id, party_id, status, event FROM deliveries "
        "WHERE id = $1 AND status IN ('no_contact', 'suppressed') FOR UPDATE",
        delivery_id,
    )


async def unrouted_ids(conn: Db, party_id: str) -> list[UUID]:
    """The party's notifications recorded without a channel, oldest first."""
    rows = await conn.fetch(
        "SELECT id FROM deliveries WHERE party_id = $1 AND status IN ('no_contact', 'suppressed') "
        "ORDER BY created_at, id",
        party_id,
    )
    return [r["id"] for r in rows]


async def mark_rerouted(conn: Conn, delivery_id: UUID, detail: str) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = 'rerouted', detail = $2, updated_at = now() WHERE id = $1",
        delivery_id,
        detail,
    )


# -- reading -------------------------------------------------------------------------------------------
async def feed(
    conn: Db,
    *,
    party_id: str | None,
    status: str | None,
    event_id: UUID | None = None,
    notification_id: UUID | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT d.id, d.event_id, d.event_type, d.party_id, d.channel, d.category, d.status, d.address,
               d.subject, d.attempts, d.next_attempt_at, d.last_error, d.detail, d.created_at, d.updated_at,
               d.delivered_at,
               COALESCE((SELECT json_agg(json_build_object(
                        'attempt', a.attempt_no, 'started_at', a.started_at, 'finished_at', a.finished_at,
                        'outcome', a.outcome, 'code', a.code, 'response', a.response) ORDER BY a.attempt_no)
                   FROM attempts a WHERE a.delivery_id = d.id), '[]'::json) AS attempt_log
        FROM deliveries d
        WHERE ($1::text IS NULL OR d.party_id = $1)
          AND ($2::text IS NULL OR d.status = $2)
          AND ($3::uuid IS NULL OR d.event_id = $3)
          AND ($5::uuid IS NULL OR d.id = $5)
        ORDER BY d.created_at DESC, d.id
        LIMIT $4
        """,
        party_id,
        status,
        event_id,
        limit,
        notification_id,
    )
    return [dict(r) for r in rows]


async def inbox(conn: Db, party_id: str, *, unread_only: bool, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, event_id, event_type, category, subject, body_text, body_html, created_at, read_at "
        "FROM inbox_messages WHERE party_id = $1 AND (NOT $2 OR read_at IS NULL) "
        "ORDER BY created_at DESC, id LIMIT $3",
        party_id,
        unread_only,
        limit,
    )
    return [dict(r) for r in rows]


async def unread_count(conn: Db, party_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM inbox_messages WHERE party_id = $1 AND read_at IS NULL", party_id
    )
    return count


async def mark_read(conn: Db, party_id: str, message_id: UUID) -> datetime | None:
    read_at: datetime | None = await conn.fetchval(
        "UPDATE inbox_messages SET read_at = COALESCE(read_at, now()) WHERE party_id = $1 AND id = $2 "
        "RETURNING read_at",
        party_id,
        message_id,
    )
    return read_at
