"""The asyncpg pool every service uses: one schema on the search path, JSON codecs installed.

The DSN may name several hosts with ``target_session_attrs=read-write`` (a primary and its standbys):
every new connection then goes to the node that accepts writes, so after a failover the pool's next
connections reach the new primary by themselves (docs/rules/database.md). A connection that died with
the old primary is closed, and the pool replaces it on its next acquire; callers retry the transaction
on a transient error (``kumkm_shared.db.transient``).
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from kumkm_shared.db.migrations import check_schema_name

# Seconds to open one connection (per host tried): a node that does not answer must not hold a caller for
# the driver's default minute when another host of the DSN accepts writes.
CONNECT_TIMEOUT = 10.0


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str,
    schema: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT,
    command_timeout: float | None = None,
) -> asyncpg.Pool:
    """A pool on `dsn` (one host, or several with ``target_session_attrs``) for the service `schema`.

    `command_timeout` bounds each statement (None: no bound, the default, since migrations and read
    models run long statements); a primary that vanishes without closing its sockets is noticed through
    the operating system's TCP timeouts otherwise.
    """
    check_schema_name(schema)
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        timeout=connect_timeout,
        command_timeout=command_timeout,
        server_settings={"search_path": f"{schema}, public", "application_name": f"kumkm-{schema}"},
    )
    return pool  # type: ignore[no-any-return]
