"""One-shot queries on a new connection, for tests of the Postgres servers themselves."""

from __future__ import annotations

import asyncpg


async def fetchval(dsn: str, query: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def execute(dsn: str, query: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(query)
    finally:
        await connection.close()
