"""Idempotent consumer: a processed event id is recorded in the handler's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kumkm_shared.db.migrations import check_schema_name

if TYPE_CHECKING:
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
