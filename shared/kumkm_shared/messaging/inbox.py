"""Idempotent consumer: a processed event id is recorded in the handler's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kumkm_shared.db.migrations import check_schema_name

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from kumkm_shared.db import Conn


@dataclass(frozen=True, slots=True)
class Inbox:
    schema: str

    def __post_init__(self) -> None:
        check_schema_name(self.schema)

    async def claim(self, conn: Conn, consumer: str, event_id: UUID, event_type: str) -> bool:
        """True the first time ``consumer`` sees ``event_id``; False for a duplicate.

        Call inside the handler's transaction: a concurrent duplicate blocks on the primary key until
        the first transaction ends, then sees the row and reports a duplicate.
        """
        inserted = await conn.fetchval(
            f"INSERT INTO {self.schema}.inbox (consumer, event_id, event_type) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING true",
            consumer,
            event_id,
            event_type,
        )
        return bool(inserted)

    async def claim_many(self, conn: Conn, consumer: str, events: Sequence[tuple[UUID, str]]) -> set[UUID]:
        """``claim`` for several distinct event ids (id, type) in one statement: the ids claimed now."""
        if not events:
            return set()
        rows = await conn.fetch(
            f"INSERT INTO {self.schema}.inbox (consumer, event_id, event_type) "
            "SELECT $1, e, t FROM unnest($2::uuid[], $3::text[]) AS u(e, t) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            consumer,
            [e for e, _ in events],
            [t for _, t in events],
        )
        return {row["event_id"] for row in rows}

    async def release(self, conn: Conn, consumer: str, event_id: UUID) -> None:
        """Withdraw a claim made in this transaction (its event was not applied after all)."""
        await conn.execute(
            f"DELETE FROM {self.schema}.inbox WHERE consumer = $1 AND event_id = $2", consumer, event_id
        )
