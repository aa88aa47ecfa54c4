"""Outbox relay publish rate from a backlog, against real NATS JetStream and Postgres.

    python bench/outbox_relay.py [--rows 10000] [--batch 500]

Fills a service schema's outbox with ROWS committed events, then starts one relay and measures the time
until every row is marked published (PubAck received). In the same run, a bare baseline publishes the same
payloads with raw nats-py ``publish_async`` in the same window and marks the same rows with one asyncpg
UPDATE per batch, with no framework around it. Prints both rates and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import nats

from kumkm_shared.contracts import make_event
from kumkm_shared.contracts.loans import LoanDisbursed
from kumkm_shared.db.migrations import load_migrations, migrate
from kumkm_shared.db.pool import create_pool
from kumkm_shared.messaging.outbox import OutboxRelay, nats_headers
from kumkm_shared.messaging.provision import provision
from kumkm_shared.servers import obtain_servers
from kumkm_shared.service.runtime import PLATFORM_MIGRATIONS

if TYPE_CHECKING:
    from nats.aio.client import Client


def sample(i: int) -> LoanDisbursed:
    return LoanDisbursed.model_validate(
        {
            "loan_id": f"LN-BENCH-{i % 997}",
            "lender": "LPDB-KUMKM",
            "borrower": {
                "kind": "cooperative",
                "id": "3275010101010001",
                "name": "Koperasi Pedagang Pasar Kranggan",
                "region": {"province": "Jawa Barat", "city": "Kota Bekasi"},
            },
            "principal": "2500000000.00",
            "annual_rate": "0.06",
            "tenor_months": 60,
            "method": "annuity",
            "disbursed_on": "2019-06-15",
            "first_due_on": "2019-07-15",
        }
    )


async def fill(pool: asyncpg.Pool, schema: str, rows: int) -> None:
    envelopes = [make_event(sample(i), source="bench") for i in range(rows)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            f"INSERT INTO {schema}.outbox (event_id, subject, aggregate_id, payload, headers) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(e.id, e.type, e.subject, e.to_json_bytes(), nats_headers(e)) for e in envelopes],
        )


async def run_relay(pool: asyncpg.Pool, nc: Client, schema: str, rows: int, batch: int) -> float:
    js = nc.jetstream(publish_async_max_pending=256)
    relay = OutboxRelay(pool, lambda: js, schema, batch_size=batch, poll_interval=0.05)
    start = time.perf_counter()
    task = asyncio.create_task(relay.run())
    while await pool.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    relay.stop()
    await task
    return rows / elapsed


async def run_baseline(pool: asyncpg.Pool, nc: Client, schema: str, rows: int, batch: int) -> float:
    js = nc.jetstream(publish_async_max_pending=256)
    start = time.perf_counter()
    while True:
        async with pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetch(
                f"SELECT id, subject, payload, headers FROM {schema}.outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                batch,
            )
            if not claimed:
                break
            futures = [
                await js.publish_async(r["subject"], bytes(r["payload"]), headers=dict(r["headers"]))
                for r in claimed
            ]
            acks = await asyncio.gather(*futures)
            await conn.execute(
                f"UPDATE {schema}.outbox AS o SET published_at = now(), stream_seq = u.seq "
                "FROM unnest($1::bigint[], $2::bigint[]) AS u(id, seq) WHERE o.id = u.id",
                [r["id"] for r in claimed],
                [a.seq for a in acks],
            )
    return rows / (time.perf_counter() - start)


async def main(rows: int, batch: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kumkm-bench-") as tmp, obtain_servers(Path(tmp)) as servers:
        nc = await nats.connect(servers.nats_url)
        await provision(nc.jetstream())
        conn = await asyncpg.connect(servers.database_url)
        for schema in ("bench_relay", "bench_base"):
            await migrate(conn, schema, load_migrations(PLATFORM_MIGRATIONS), table="platform_migrations")
        await conn.close()
        pool = await create_pool(servers.database_url, "bench_relay", min_size=2, max_size=4)
        await fill(pool, "bench_relay", rows)
        relay_rate = await run_relay(pool, nc, "bench_relay", rows, batch)
        # The baseline publishes copies under new ids, so the broker's de-duplication does not skip them.
        await fill(pool, "bench_base", rows)
        base_rate = await run_baseline(pool, nc, "bench_base", rows, batch)
        await pool.close()
        await nc.drain()
    print(f"outbox relay benchmark  {datetime.now(UTC):%Y-%m-%d}  {platform.machine()} {platform.node()}")
    print(f"  backlog rows           {rows}")
    print(f"  relay (OutboxRelay)    {relay_rate:10.0f} events/s")
    print(f"  bare nats-py + asyncpg {base_rate:10.0f} events/s")
    print(f"  ratio                  {relay_rate / base_rate:10.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.batch))
