"""Numbered SQL migrations per service schema, applied under an advisory lock with a checksum check.

A migration file is ``NNN_description.sql``. Applied migrations are recorded in
``<schema>.schema_migrations`` with the SHA-256 of their text; a changed applied file is refused loudly,
because silently diverging schemas are worse than a failed start.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from pathlib import Path

    from kumkm_shared.db import Conn

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(?P<version>\d{3,})_(?P<name>[a-z0-9_]+)\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
BUILTIN_DIR_NAME = "builtin"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def check_schema_name(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise MigrationError(f"schema name {schema!r} must match {_SCHEMA.pattern}")
    return schema


def load_migrations(directory: Path) -> list[Migration]:
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name!r} must be named NNN_description.sql")
        migrations.append(Migration(int(match["version"]), match["name"], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}: {versions}")
    return migrations


def _lock_key(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(f"kumkm-migrate:{schema}".encode()).digest()[:8], "big", signed=True)


async def migrate(
    conn: Conn, schema: str, migrations: list[Migration], *, table: str = "schema_migrations"
) -> list[int]:
    """Apply pending migrations to ``schema``. Returns the versions applied now."""
    check_schema_name(schema)
    check_schema_name(table)
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
    try:
        # A locked-down role owns its schema but may not CREATE on the database, and Postgres checks that
        # privilege before IF NOT EXISTS: only create the schema when it is really missing.
        if not await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {schema}.{table} (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch(f"SELECT version, name, checksum FROM {schema}.{table}")
        done = {r["version"]: r for r in rows}
        for migration in migrations:
            row = done.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:03d}_{migration.name} in schema {schema!r} "
                        f"was changed after it was applied (checksum {row['checksum'][:12]} in the database, "
                        f"{migration.checksum[:12]} on disk). Add a new migration instead of editing one."
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {schema}.{table} (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(migration.version)
            log.info("migration applied", schema=schema, version=migration.version, name=migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
    return applied_now
