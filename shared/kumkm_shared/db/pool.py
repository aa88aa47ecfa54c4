"""The asyncpg pool every service uses: one schema on the search path, JSON codecs installed."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from kumkm_shared.db.migrations import check_schema_name


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, schema: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    check_schema_name(schema)
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={"search_path": f"{schema}, public", "application_name": f"kumkm-{schema}"},
    )
    return pool  # type: ignore[no-any-return]
