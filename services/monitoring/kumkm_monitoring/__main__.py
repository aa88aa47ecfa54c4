"""``python -m kumkm_monitoring serve|migrate|asyncapi|rebuild`` (also the ``kumkm-monitoring`` script)."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from kumkm_monitoring.app import build
from kumkm_shared import service_cli

app = service_cli(build)


async def _rebuild(nats_url: str, database_url: str, connect: dict[str, Any]) -> None:
    import nats

    from kumkm_monitoring.rebuild import rebuild
    from kumkm_shared.db.migrations import load_migrations, migrate
    from kumkm_shared.db.pool import create_pool
    from kumkm_shared.service.runtime import PLATFORM_MIGRATIONS

    definition = build()
    pool = await create_pool(database_url, definition.name, min_size=1, max_size=2)
    nc = await nats.connect(nats_url.split(","), **connect)
    try:
        async with pool.acquire() as conn:
            await migrate(
                conn, definition.name, load_migrations(PLATFORM_MIGRATIONS), table="platform_migrations"
            )
            await migrate(conn, definition.name, load_migrations(definition.migrations))
            done = await rebuild(conn, nc.jetstream())
    finally:
        await nc.drain()
        await pool.close()
    typer.echo(
        f"emptied {', '.join(done.tables)}; durables {', '.join(done.durables)} recreated from the streams' "
        "start: start the service to read them again"
    )


@app.command("rebuild")
def rebuild_cmd() -> None:
    """Drop the read models and re-read the streams from the start (stop the service first).

    Uses KUMKM_NATS_URL, KUMKM_DATABASE_URL and KUMKM_NATS_CREDS (an operator's or the provisioner's: the
    service's own user may not delete consumers)."""
    from kumkm_shared.service.settings import InfraSettings

    infra = InfraSettings()
    connect: dict[str, Any] = {}
    if infra.nats_creds:
        connect["user_credentials"] = str(infra.nats_creds)
    asyncio.run(_rebuild(infra.nats_url, infra.database_url.get_secret_value(), connect))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
