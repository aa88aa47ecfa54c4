# EmbeddedPostgresPair: a primary and a synchronous streaming standby; kill -9, promotion, rejoin, and a
# pool on the multi-host DSN that finds the new primary by itself.
import asyncio
import time
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from kumkm_shared.db.migrations import load_migrations, migrate
from kumkm_shared.db.pool import create_pool
from kumkm_shared.db.transient import is_transient_db_error, retry_transient
from kumkm_shared.messaging.outbox import OutboxRelay
from kumkm_shared.servers import EmbeddedPostgresPair
from kumkm_shared.service.runtime import PLATFORM_MIGRATIONS
from kumkm_shared.testing import wait_for
from tests.support.pg import execute, fetchval

pytestmark = pytest.mark.integration


def report(figure: str) -> None:
    """A measured figure, shown with `pytest -s` (time to promote, to rejoin, to write again)."""
    print(f"postgres ha: {figure}")  # noqa: T201 - the figures operators and the fault suite quote


@pytest.fixture
def pair(server_data_dir: Path) -> Iterator[EmbeddedPostgresPair]:
    # fsync off: a kill -9 of Postgres loses nothing the OS holds; only an OS crash would.
    with EmbeddedPostgresPair(server_data_dir, fsync=False) as started:
        yield started


async def test_the_pair_streams_synchronously_and_clients_find_the_primary(
    pair: EmbeddedPostgresPair,
) -> None:
    primary, standby = pair.primary, pair.standby
    assert (primary.data_dir.name, standby.data_dir.name) == ("pg-a", "pg-b")
    assert pair.replication_state() == ("streaming", "sync")
    assert await fetchval(primary.dsn, "SHOW synchronous_standby_names") == f'"{standby.name}"'
    assert await fetchval(primary.dsn, "SHOW synchronous_commit") == "on"
    assert await fetchval(primary.dsn, "SHOW wal_log_hints") == "on"
    assert await fetchval(standby.dsn, "SELECT pg_is_in_recovery()") is True
    assert pair.dsn == (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )
    # The standby first in the host list: connect and the pool both skip it for the writable node.
    standby_first = (
        f"postgresql://postgres@127.0.0.1:{standby.port},127.0.0.1:{primary.port}/postgres"
        "?target_session_attrs=read-write"
    )
    assert await fetchval(standby_first, "SELECT inet_server_port()") == primary.port
    pool = await asyncpg.create_pool(standby_first, min_size=3, max_size=3)
    try:
        ports = {await pool.fetchval("SELECT inet_server_port()") for _ in range(6)}
        assert ports == {primary.port}
    finally:
        await pool.close()
    # A commit is on the standby once acknowledged.
    await execute(pair.dsn, "CREATE TABLE seen (n int); INSERT INTO seen VALUES (1)")
    assert await fetchval(standby.dsn, "SELECT count(*) FROM seen") == 1


async def test_no_acknowledged_commit_is_lost_when_the_primary_is_killed(pair: EmbeddedPostgresPair) -> None:
    old = pair.primary
    await fetchval(old.dsn, "CREATE TABLE acked (writer int, n int, PRIMARY KEY (writer, n))")
    acknowledged: list[tuple[int, int]] = []

    async def writer(index: int) -> None:
        connection = await asyncpg.connect(old.dsn)
        n = 0
        try:
            while True:
                n += 1
                await connection.execute("INSERT INTO acked VALUES ($1, $2)", index, n)
                acknowledged.append((index, n))  # the commit returned: it must survive
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
        finally:
            connection.terminate()

    writers = [asyncio.create_task(writer(i)) for i in range(8)]
    await asyncio.sleep(1.5)
    await asyncio.to_thread(pair.kill_primary)
    await asyncio.wait_for(asyncio.gather(*writers), 10)
    started = time.monotonic()
    await asyncio.to_thread(pair.promote)
    report(f"promoted in {time.monotonic() - started:.2f}s after {len(acknowledged)} acknowledged commits")
    assert pair.primary is not old
    assert len(acknowledged) > 100
    connection = await asyncpg.connect(pair.primary.dsn)
    try:
        rows = {(r["writer"], r["n"]) for r in await connection.fetch("SELECT writer, n FROM acked")}
        assert await connection.fetchval("SELECT pg_is_in_recovery()") is False
        assert await connection.fetchval("SHOW synchronous_standby_names") == ""
    finally:
        await connection.close()
    missing = set(acknowledged) - rows
    assert not missing, f"{len(missing)} acknowledged commits lost"


async def test_a_pool_on_the_dsn_writes_to_the_new_primary_after_failover(pair: EmbeddedPostgresPair) -> None:
    await execute(pair.dsn, "CREATE SCHEMA ha; CREATE TABLE ha.writes (port int, at timestamptz)")
    pool = await create_pool(pair.dsn, "ha", min_size=2, max_size=4)
    ports: list[int] = []

    async def write() -> int:
        async with pool.acquire() as conn, conn.transaction():
            port: int = await conn.fetchval(
                "INSERT INTO writes VALUES (inet_server_port(), now()) RETURNING port"
            )
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
            return port

    try:
        old, new = pair.primary, pair.standby
        ports += [await retry_transient(write) for _ in range(10)]
        await asyncio.to_thread(pair.kill_primary)
        killed = time.monotonic()
        promotion = asyncio.create_task(asyncio.to_thread(pair.promote))
        ports.append(await retry_transient(write, deadline=30))  # no restart of the pool
        report(f"the pool writes again {time.monotonic() - killed:.2f}s after the kill")
        await promotion
        ports += [await retry_transient(write) for _ in range(10)]
        assert ports[:10] == [old.port] * 10
        assert ports[10:] == [new.port] * 11  # never the standby, never the dead node
        assert await pool.fetchval("SELECT count(*) FROM writes") == len(ports)
    finally:
        await pool.close()


async def test_the_old_primary_rejoins_by_rewind_and_fails_back(pair: EmbeddedPostgresPair) -> None:
    first = pair.primary
    await fetchval(pair.dsn, "CREATE TABLE history (step text)")
    await fetchval(pair.dsn, "INSERT INTO history VALUES ('on a') RETURNING 1")

    pair.failover()
    second = pair.primary
    assert second is not first
    await fetchval(pair.dsn, "INSERT INTO history VALUES ('on b, alone') RETURNING 1")
    started = time.monotonic()
    assert pair.rejoin_old_primary() == "rewind"
    report(f"rejoined by rewind in {time.monotonic() - started:.2f}s")
    assert pair.standby is first
    assert pair.replication_state() == ("streaming", "sync")
    assert await fetchval(second.dsn, "SHOW synchronous_standby_names") == f'"{first.name}"'
    assert await fetchval(first.dsn, "SELECT count(*) FROM history") == 2
    await fetchval(pair.dsn, "INSERT INTO history VALUES ('on b, synchronous') RETURNING 1")

    pair.failover()  # and back
    assert pair.primary is first
    assert await fetchval(pair.dsn, "SELECT inet_server_port()") == first.port
    await fetchval(pair.dsn, "INSERT INTO history VALUES ('on a again') RETURNING 1")
    started = time.monotonic()
    assert pair.rejoin_old_primary(force_basebackup=True) == "basebackup"
    report(f"rejoined by base backup in {time.monotonic() - started:.2f}s")
    assert pair.replication_state() == ("streaming", "sync")
    assert await fetchval(second.dsn, "SELECT count(*) FROM history") == 4
    assert (first.port, second.port) == (pair.nodes[0].port, pair.nodes[1].port)  # ports kept

    # A restart of the whole pair keeps the roles and the ports.
    pair.stop()
    again = EmbeddedPostgresPair(pair.data_dir, fsync=False)
    with again:
        assert again.primary.name == first.name
        assert [n.port for n in again.nodes] == [n.port for n in pair.nodes]
        assert again.replication_state() == ("streaming", "sync")
        assert await fetchval(again.dsn, "SELECT count(*) FROM history") == 4
    # And without synchronous replication: the standby streams, commits do not wait for it.
    with EmbeddedPostgresPair(pair.data_dir, fsync=False, synchronous=False) as asynchronous:
        assert asynchronous.replication_state() == ("streaming", "async")
        assert await fetchval(asynchronous.dsn, "SHOW synchronous_standby_names") == ""


async def stream_payloads(js: Any) -> list[bytes]:
    """Every message on the TOY stream, in stream order (a real nats-server takes the relays' publishes)."""
    info = await js.stream_info("TOY")
    if not info.state.messages:
        return []
    sub = await js.subscribe("toy.>", ordered_consumer=True)
    found: list[bytes] = []
    try:
        while len(found) < info.state.messages:
            found.append((await sub.next_msg(timeout=5)).data)
    finally:
        await sub.unsubscribe()
    return found


async def test_the_outbox_relay_leads_again_on_the_new_primary_one_leader_at_a_time(
    pair: EmbeddedPostgresPair, nats_url: str
) -> None:
    setup = await asyncpg.connect(pair.dsn)
    try:
        await setup.execute("CREATE SCHEMA toy")
        await migrate(setup, "toy", load_migrations(PLATFORM_MIGRATIONS), table="platform_migrations")
    finally:
        await setup.close()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name="TOY", subjects=["toy.>"])
    published: list[bytes] = []

    async def count() -> int:
        published[:] = await stream_payloads(js)
        return len(set(published))

    # Two replicas of a service: two pools, two relays, one leader lock.
    pools = [await create_pool(pair.dsn, "toy", min_size=1, max_size=3) for _ in range(2)]
    relays = [OutboxRelay(p, lambda: js, "toy", poll_interval=1.0) for p in pools]
    both_led = False

    async def watch() -> None:
        nonlocal both_led
        while True:
            both_led = both_led or all(r.is_leader for r in relays)
            await asyncio.sleep(0.005)

    async def add(n: int) -> None:
        async with pools[0].acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox (event_id, subject, payload) VALUES ($1, 'toy.event', $2)",
                uuid.uuid4(),
                str(n).encode(),
            )

    tasks = [asyncio.create_task(r.run()) for r in relays]
    watcher = asyncio.create_task(watch())
    try:
        await wait_for(lambda: any(r.is_leader for r in relays), timeout=10)
        for n in range(20):
            await add(n)
        await wait_for(lambda: _equals(count(), 20), timeout=10)
        await asyncio.to_thread(pair.kill_primary)
        # The lock died with its session: the leader knows at once, not at its next poll.
        await wait_for(lambda: not any(r.is_leader for r in relays), timeout=0.5)
        await asyncio.to_thread(pair.promote)
        for n in range(20, 40):
            await retry_transient(lambda n=n: add(n))
        await wait_for(lambda: _equals(count(), 40), timeout=20)
        await wait_for(lambda: sum(r.is_leader for r in relays) == 1, timeout=10)
        assert not both_led, "two relays led at once"
        first = list(dict.fromkeys(published))  # in the order each row was first published
        assert first == [str(n).encode() for n in range(40)]
    finally:
        watcher.cancel()
        for relay in relays:
            relay.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in pools:
            await p.close()
        await nc.close()


async def _equals(value: Awaitable[int], wanted: int) -> bool:
    return await value == wanted
