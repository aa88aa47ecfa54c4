# pytest plugin (entry point `kumkm`): real NATS, Postgres and OpenID provider for integration and
# acceptance tests.
#
# Servers start only when a test asks for them, once per session. Isolation:
# - `database_url`: a fresh database per test, dropped afterwards (with roles the test created, when the
#   server is ours);
# - `nats_url`: every JetStream stream (and so every consumer) deleted before the test; tests run serially.
#
# Fixtures are synchronous on purpose: async setup runs in a worker thread with its own event loop, so it
# never meets pytest-asyncio's session loop.
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

from kumkm_shared.servers import EmbeddedNats, EmbeddedPostgres, Servers, obtain_servers
from kumkm_shared.testing.identity import TestIdentity, stop_identity
from kumkm_shared.testing.identity import identity as session_identity

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

T = TypeVar("T")

# The reusable suites assert like tests do: let pytest rewrite their asserts into readable failures.
pytest.register_assert_rewrite("kumkm_shared.testing.guarantees")


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a worker thread with its own event loop (safe from sync code)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kumkm-fixture") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def dsn_with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def server_folder(prefix: str) -> Iterator[Path]:
    """A new folder for server data, removed on exit.

    Not under pytest's tmp_path: as root, Postgres runs as another user who must traverse the folder's
    parents, and every pytest session that starts resets /tmp/pytest-of-root to 0700.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server_data_dir() -> Iterator[Path]:
    """A fresh folder for a test's own EmbeddedPostgres or EmbeddedNats (use instead of tmp_path)."""
    with server_folder("kumkm-test-") as folder:
        yield folder


@pytest.fixture(scope="session")
def kumkm_servers() -> Iterator[Servers]:
    """NATS and Postgres for the whole session: given URLs, else containers, else embedded (no fsync)."""
    with server_folder("kumkm-servers-") as folder, obtain_servers(folder, fsync=False) as handle:
        yield handle.servers


@pytest.fixture(scope="session", name="identity")
def identity_fixture() -> TestIdentity:
    """The session's real OpenID provider (demo and test realms): `.issuer`, `.token(username)`,
    `.service_token(client_id)`, `.headers(username)`, `.provider`."""
    return session_identity()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:  # noqa: ARG001 - hook signature
    """Stop the session's OpenID provider if a test started it."""
    stop_identity()


@pytest.fixture(scope="session")
def embedded_nats(kumkm_servers: Servers) -> EmbeddedNats:
    """The session's embedded NATS, to kill or restart in fault tests (skips in other modes)."""
    if kumkm_servers.nats is None:
        pytest.skip(f"needs embedded NATS, but the servers come from {kumkm_servers.mode}")
    return kumkm_servers.nats


@pytest.fixture(scope="session")
def embedded_postgres(kumkm_servers: Servers) -> EmbeddedPostgres:
    """The session's embedded Postgres, to kill or restart in fault tests (skips in other modes)."""
    if kumkm_servers.postgres is None:
        pytest.skip(f"needs embedded Postgres, but the servers come from {kumkm_servers.mode}")
    return kumkm_servers.postgres


@contextmanager
def fresh_database(servers: Servers) -> Iterator[str]:
    """A database of its own (DSN as the admin user), dropped on exit with the roles created meanwhile."""
    if servers.postgres is not None and not servers.postgres.running:
        servers.postgres.start()  # a fault test before this one left it down
    admin = servers.database_url
    name = f"t_{secrets.token_hex(8)}"
    roles_before = run_async(lambda: _create_database(admin, name))
    try:
        yield dsn_with_database(admin, name)
    finally:
        if servers.postgres is not None and not servers.postgres.running:
            servers.postgres.start()
        # Roles are cluster-wide: drop the test's own, unless the server is someone else's.
        drop_roles = servers.mode != "env"
        run_async(lambda: _drop_database(admin, name, roles_before if drop_roles else None))


@pytest.fixture
def database_url(kumkm_servers: Servers) -> Iterator[str]:
    """DSN of a database created for this test alone (superuser in embedded and container modes)."""
    with fresh_database(kumkm_servers) as dsn:
        yield dsn


async def _create_database(admin_dsn: str, name: str) -> set[str]:
    import asyncpg

    connection = await asyncpg.connect(admin_dsn)
    try:
        roles = {row["rolname"] for row in await connection.fetch("SELECT rolname FROM pg_roles")}
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return roles


async def _drop_database(admin_dsn: str, name: str, roles_before: set[str] | None) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if roles_before is None:
            return
        rows = await connection.fetch("SELECT rolname FROM pg_roles")
        for role in sorted({row["rolname"] for row in rows} - roles_before):
            # Privileges granted in the admin database would block DROP ROLE.
            await connection.execute(f"DROP OWNED BY {_ident(role)} CASCADE")
            await connection.execute(f"DROP ROLE {_ident(role)}")
    finally:
        await connection.close()


@pytest.fixture
def nats_url(kumkm_servers: Servers) -> str:
    """The NATS URL, with every JetStream stream and consumer deleted before the test."""
    if kumkm_servers.nats is not None and not kumkm_servers.nats.running:
        kumkm_servers.nats.start()  # a fault test before this one left it down
    run_async(lambda: delete_all_streams(kumkm_servers.nats_url))
    return kumkm_servers.nats_url


async def delete_all_streams(url: str) -> None:
    """Delete every JetStream stream of the connecting account (their consumers go with them)."""
    import nats

    options: dict[str, Any] = {"allow_reconnect": False, "connect_timeout": 5}
    if os.environ.get("KUMKM_NATS_USER"):
        options |= {
            "user": os.environ["KUMKM_NATS_USER"],
            "password": os.environ.get("KUMKM_NATS_PASSWORD", ""),
        }
    client = await nats.connect(url.split(","), **options)
    try:
        jsm = client.jsm()
        while True:
            reply = await client.request("$JS.API.STREAM.NAMES", b"{}", timeout=5)
            names: list[str] = json.loads(reply.data).get("streams") or []
            if not names:
                return
            for name in names:
                await jsm.delete_stream(name)
    finally:
        await client.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
