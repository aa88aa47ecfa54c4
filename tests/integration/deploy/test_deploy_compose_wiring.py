"""docker-compose.yml's one-shot services, run as compose runs them but against local servers.

`provision` and each `<service>-migrate` run their compose command with their compose environment (through
compose_env and compose_run), with the compose host names mapped to embedded NATS started with deploy/nats
and embedded Postgres initialised by deploy/postgres/initdb (and, for the migrations, by the CloudNativePG
bootstrap of deploy/k8s too). The whole system, the long-running services and a cross-service flow, is in
tests/acceptance/deploy/test_deploy_compose_system.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import nats
import pytest

from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS
from kumkm_shared.testing import free_port
from tests.integration.deploy.compose_run import run_one_shots
from tests.integration.deploy.conftest import with_local_creds
from tests.support.compose_env import compose_hosts_in, localize

if TYPE_CHECKING:
    from tests.integration.deploy.conftest import DeployNats, DeployPostgres
    from tests.support.compose_env import ComposeService

pytestmark = pytest.mark.integration

SERVICES = ("loans", "catalog", "notifications", "monitoring")


@pytest.mark.parametrize("deploy_nats", ["compose"], indirect=True)
async def test_provision_one_shot_runs_with_its_compose_environment(
    deploy_nats: DeployNats, compose_services: dict[str, ComposeService]
) -> None:
    host, port = deploy_nats.url.removeprefix("nats://").split(":")
    provision = localize(compose_services["provision"], {("nats", 4222): (host, int(port))})
    provision = with_local_creds(provision, deploy_nats)
    assert compose_hosts_in(provision, compose_services) == {}
    result = run_one_shots([provision])["provision"]
    assert result.returncode == 0, result.stdout + result.stderr
    nc = await nats.connect(deploy_nats.url, user_credentials=str(deploy_nats.creds("operator")))
    try:
        js = nc.jetstream()
        for stream in STREAM_DECLS:
            info = await js.stream_info(stream.name)
            assert info.config.num_replicas == 1
        for decl in CONSUMER_DECLS:
            await js.consumer_info(decl.stream, decl.name)
    finally:
        await nc.close()


async def test_migrate_one_shots_run_with_each_service_role(
    deploy_postgres: DeployPostgres, compose_services: dict[str, ComposeService]
) -> None:
    # `migrate` connects to Postgres only: NATS, SMTP and the identity provider point at a closed local port,
    # so no compose host name is left in the environment.
    closed = ("127.0.0.1", free_port())
    endpoints = {
        ("postgres", 5432): (deploy_postgres.host, deploy_postgres.port),
        ("nats", 4222): closed,
        ("mailpit", 1025): closed,
        ("keycloak", 8080): closed,
    }
    one_shots = [localize(compose_services[f"{name}-migrate"], endpoints) for name in SERVICES]
    for service in one_shots:
        assert compose_hosts_in(service, compose_services) == {}, service.name
        assert service.environment["KUMKM_DATABASE_URL"].startswith(f"postgresql://{service.name[:-8]}:")

    # Side by side, as compose starts them; each is the owner of its schema alone.
    first = run_one_shots(one_shots)
    for name, result in first.items():
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"
        assert "applied migrations: [" in result.stdout, result.stdout
    again = run_one_shots(one_shots)
    for name, result in again.items():
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"
        assert "none (up to date)" in result.stdout, result.stdout

    admin = await asyncpg.connect(deploy_postgres.superuser_dsn)
    try:
        rows = await admin.fetch(
            "SELECT n.nspname AS schema, c.relname AS name, pg_get_userbyid(c.relowner) AS owner"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        )
    finally:
        await admin.close()
    by_schema: dict[str, set[str]] = {}
    for row in rows:
        assert row["owner"] == row["schema"], dict(row)
        by_schema.setdefault(row["schema"], set()).add(row["name"])
    assert set(by_schema) == set(SERVICES), by_schema
    for name in SERVICES:
        assert {"platform_migrations", "schema_migrations", "inbox", "outbox"} <= by_schema[name], by_schema
