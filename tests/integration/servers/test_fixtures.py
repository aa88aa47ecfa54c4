# The pytest plugin's fixtures: a database per test, JetStream wiped before each test, embedded handles.
import asyncpg
import nats
import pytest

from kumkm_shared.servers import EmbeddedNats, EmbeddedPostgres, Servers
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.plugin import delete_all_streams, fresh_database
from tests.support.pg import fetchval

pytestmark = pytest.mark.integration


async def test_database_url_is_a_fresh_database(database_url: str, kumkm_servers: Servers) -> None:
    name = await fetchval(database_url, "SELECT current_database()")
    assert isinstance(name, str)
    assert name.startswith("t_")
    assert database_url != kumkm_servers.database_url
    assert await fetchval(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0


async def test_fresh_databases_are_isolated_and_dropped(kumkm_servers: Servers) -> None:
    admin = kumkm_servers.database_url
    with fresh_database(kumkm_servers) as first, fresh_database(kumkm_servers) as second:
        assert first != second
        connection = await asyncpg.connect(first)
        await connection.execute("CREATE SCHEMA loans; CREATE TABLE loans.loan (id int)")
        await connection.execute("CREATE ROLE loans_service LOGIN")
        await connection.close()
        assert await fetchval(second, "SELECT count(*) FROM pg_namespace WHERE nspname = 'loans'") == 0
        # An open connection must not block the drop.
        held = await asyncpg.connect(first)
    with pytest.raises(
        (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.AdminShutdownError)
    ):
        await held.fetchval("SELECT 1")
    held.terminate()
    databases = await fetchval(admin, "SELECT count(*) FROM pg_database WHERE datname LIKE 't\\_%'")
    assert databases == 0
    assert await fetchval(admin, "SELECT count(*) FROM pg_roles WHERE rolname = 'loans_service'") == 0


async def test_nats_url_leaves_a_stream_behind(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await js.add_stream(name="LEFTOVER", subjects=["leftover.>"])
    await js.publish("leftover.x", b"1")
    await js.add_consumer("LEFTOVER", durable_name="worker")
    await client.close()


async def test_nats_url_starts_without_streams(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        assert await client.jsm().streams_info() == []
    finally:
        await client.close()


async def test_delete_all_streams_pages_through_many(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        for number in range(30):
            await client.jsm().add_stream(name=f"S{number}", subjects=[f"s{number}"])
        await delete_all_streams(nats_url)
        assert await client.jsm().streams_info() == []
    finally:
        await client.close()


async def test_embedded_handles_survive_a_crash(
    embedded_nats: EmbeddedNats, embedded_postgres: EmbeddedPostgres, nats_url: str, database_url: str
) -> None:
    assert nats_url == embedded_nats.url
    embedded_nats.kill()
    embedded_postgres.kill()
    embedded_nats.start()
    embedded_postgres.start()
    assert await fetchval(database_url, "SELECT 1") == 1


def test_a_later_test_revives_servers_left_down(embedded_nats: EmbeddedNats) -> None:
    embedded_nats.stop()  # the nats_url fixture of the next test starts it again


async def test_servers_are_back(nats_url: str, embedded_nats: EmbeddedNats) -> None:
    assert embedded_nats.running
    client = await nats.connect(nats_url)
    await client.close()


async def test_wait_for_accepts_plain_and_async_predicates() -> None:
    calls: list[int] = []

    def plain() -> bool:
        calls.append(1)
        return len(calls) >= 3

    async def coroutine() -> bool:
        return True

    await wait_for(plain, 1)
    await wait_for(coroutine, 1)
    with pytest.raises(TimeoutError, match="never"):
        await wait_for(lambda: False, 0.05, message="never")
