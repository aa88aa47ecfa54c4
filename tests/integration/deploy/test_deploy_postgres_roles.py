"""Postgres roles and schemas of deploy/ against a real Postgres.

Runs against both initialisations (see conftest.py): deploy/postgres/initdb (docker-compose) and the
CloudNativePG bootstrap SQL with managed roles (deploy/k8s/postgres/cluster.yaml).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

import kumkm_shared.db
from kumkm_shared.db.migrations import load_migrations, migrate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.integration.deploy.conftest import DeployPostgres

pytestmark = pytest.mark.integration

SERVICES = ("loans", "catalog", "notifications", "monitoring")
SCHEMA_OF = "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = to_regclass($1)"
PLATFORM_MIGRATIONS = Path(kumkm_shared.db.__file__).parent / "platform_migrations"


@asynccontextmanager
async def connect(
    pg: DeployPostgres, role: str, database: str = "kumkm"
) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg.dsn(role, database=database))
    try:
        yield conn
    finally:
        await conn.close()


def others(role: str) -> list[str]:
    return [other for other in SERVICES if other != role]


@pytest.fixture(scope="module")
async def with_tables(deploy_postgres: DeployPostgres) -> DeployPostgres:
    """Each role has a table with a row in its own schema, created through its own connection."""
    for role in SERVICES:
        async with connect(deploy_postgres, role) as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS secrets_of_mine (id int PRIMARY KEY, note text)")
            await conn.execute("INSERT INTO secrets_of_mine VALUES (1, $1) ON CONFLICT DO NOTHING", role)
    return deploy_postgres


async def test_each_role_logs_in_with_its_password_only(deploy_postgres: DeployPostgres) -> None:
    for role in SERVICES:
        async with connect(deploy_postgres, role) as conn:
            assert await conn.fetchval("SELECT current_user") == role
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(deploy_postgres.dsn(role, password="not-the-password"))
        other = others(role)[0]
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(deploy_postgres.dsn(role, password=deploy_postgres.passwords[other]))


@pytest.mark.parametrize("role", SERVICES)
async def test_role_lands_in_its_own_schema_and_owns_only_it(
    deploy_postgres: DeployPostgres, role: str
) -> None:
    async with connect(deploy_postgres, role) as conn:
        assert await conn.fetchval("SELECT current_schema()") == role
        owned = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE pg_get_userbyid(nspowner) = current_user ORDER BY 1"
        )
        assert [r["nspname"] for r in owned] == [role]
        attributes = await conn.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit "
            "FROM pg_roles WHERE rolname = current_user"
        )
        assert not any(attributes.values())


@pytest.mark.parametrize("role", SERVICES)
async def test_role_creates_and_uses_objects_in_its_own_schema(
    deploy_postgres: DeployPostgres, role: str
) -> None:
    async with connect(deploy_postgres, role) as conn, conn.transaction():
        await conn.execute("CREATE TABLE scratch (id bigserial PRIMARY KEY, payload jsonb NOT NULL)")
        await conn.execute("CREATE INDEX scratch_payload ON scratch USING gin (payload)")
        await conn.execute("CREATE VIEW scratch_view AS SELECT id FROM scratch")
        await conn.execute(
            "CREATE FUNCTION scratch_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM scratch'"
        )
        await conn.execute("INSERT INTO scratch (payload) VALUES ('{}')")
        assert await conn.fetchval("SELECT scratch_count()") == 1
        assert await conn.fetchval(SCHEMA_OF, "scratch") == role
        # What the runtime needs besides: advisory locks (migrations) and LISTEN/NOTIFY (outbox relay).
        assert await conn.fetchval("SELECT pg_try_advisory_xact_lock(42)")
        await conn.execute("LISTEN outbox")
        await conn.execute("SELECT pg_notify('outbox', 'x')")
        await conn.execute("DROP FUNCTION scratch_count(); DROP VIEW scratch_view; DROP TABLE scratch")


@pytest.mark.parametrize("role", SERVICES)
async def test_platform_migrations_run_with_the_service_role(
    deploy_postgres: DeployPostgres, role: str
) -> None:
    async with connect(deploy_postgres, role) as conn:
        await migrate(conn, role, load_migrations(PLATFORM_MIGRATIONS))
        assert await conn.fetchval(SCHEMA_OF, "outbox") == role
        assert await migrate(conn, role, load_migrations(PLATFORM_MIGRATIONS)) == []


@pytest.mark.parametrize("role", SERVICES)
async def test_role_cannot_read_or_write_other_schemas(with_tables: DeployPostgres, role: str) -> None:
    async with connect(with_tables, role) as conn:
        assert await conn.fetchval("SELECT note FROM secrets_of_mine") == role
        for other in others(role):
            for statement in (
                f"SELECT * FROM {other}.secrets_of_mine",
                f"INSERT INTO {other}.secrets_of_mine VALUES (2, 'x')",
                f"DELETE FROM {other}.secrets_of_mine",
                f"CREATE TABLE {other}.planted (id int)",
                f"DROP TABLE {other}.secrets_of_mine",
                f"SET ROLE {other}",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
            assert not await conn.fetchval("SELECT has_schema_privilege($1, 'USAGE')", other)


async def test_catalog_cannot_read_loans_tables(with_tables: DeployPostgres) -> None:
    async with connect(with_tables, "catalog") as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema loans"):
            await conn.fetch("SELECT * FROM loans.secrets_of_mine")


@pytest.mark.parametrize("role", SERVICES)
async def test_role_cannot_create_anything_outside_its_schema(
    deploy_postgres: DeployPostgres, role: str
) -> None:
    async with connect(deploy_postgres, role) as conn:
        for statement in (
            "CREATE TABLE public.planted (id int)",
            "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE SCHEMA planted",
            "CREATE TEMPORARY TABLE planted (id int)",
            "CREATE ROLE planted",
            f"ALTER SCHEMA {role} RENAME TO planted",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE DATABASE planted")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(deploy_postgres.dsn(role, database="postgres"))


async def test_other_roles_cannot_connect_to_the_database(deploy_postgres: DeployPostgres) -> None:
    admin = await asyncpg.connect(deploy_postgres.superuser_dsn)
    try:
        await admin.execute("CREATE ROLE intruder LOGIN PASSWORD 'intruder-password'")
    finally:
        await admin.close()
    deploy_postgres.passwords["intruder"] = "intruder-password"
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
            await asyncpg.connect(deploy_postgres.dsn("intruder"))
    finally:
        del deploy_postgres.passwords["intruder"]
