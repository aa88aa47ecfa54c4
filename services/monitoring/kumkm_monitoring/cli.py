"""``kumkm monitoring ...``: read the running monitoring service's figures through its HTTP API, and rebuild
its read models from the streams."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kumkm_shared.cli.runinfo import DEFAULT_DATA_DIR
from kumkm_shared.cli.service_api import call_service

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The recovery monitor.")

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="KUMKM_MONITORING_URL",
        help="the monitoring service's base URL (default: from run.json)",
    ),
]
DataDir = Annotated[Path, typer.Option("--data-dir", help="where run.json lives")]


def _api(method: str, url: str | None, data_dir: Path | None, path: str, **kwargs: Any) -> Any:
    return call_service("monitoring", method, path, url=url, data_dir=data_dir, **kwargs)


def _print(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@app.command()
def recovery(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month)")] = None,
    level: Annotated[str | None, typer.Option(help="province, city or district")] = None,
    province: Annotated[str | None, typer.Option()] = None,
    city: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option(help="cooperative or umkm")] = None,
    url: Url = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The share productive against the target, by region and kind."""
    params = _params(month=month, level=level, province=province, city=city, kind=kind)
    result = _api("GET", url, data_dir, "/recovery", params=params)
    typer.echo(f"{result['month']} by {result['level']}")
    for row in result["rows"]:
        where = "/".join(x for x in (row["province"], row["city"], row["district"]) if x)
        typer.echo(
            f"{where}\t{row['kind']}\t{row['productive']}/{row['registered']}\t{row['share']}"
            f"\ttarget {row['target_share']}"
        )


@app.command()
def outreach(
    province: Annotated[str | None, typer.Option()] = None,
    city: Annotated[str | None, typer.Option()] = None,
    district: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The first page of parties not yet productive this month (JSON)."""
    params = _params(province=province, city=city, district=district, kind=kind)
    _print(_api("GET", url, data_dir, "/outreach", params=params))


@app.command()
def rebuild(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Drop the read models and re-read the streams from the start: stop the monitoring service first,
    start it again after (the system `kumkm up` runs, by its run.json)."""
    import nats

    from kumkm_monitoring.rebuild import rebuild as run_rebuild
    from kumkm_shared.cli.runinfo import nats_creds_file, running_system
    from kumkm_shared.db.pool import create_pool

    info = running_system(data_dir)
    creds = nats_creds_file(info)

    async def run() -> None:
        pool = await create_pool(info.database_url, "monitoring", min_size=1, max_size=2)
        options: dict[str, Any] = {"user_credentials": str(creds)} if creds is not None else {}
        nc = await nats.connect(info.nats_url.split(","), **options)
        try:
            async with pool.acquire() as conn:
                done = await run_rebuild(conn, nc.jetstream())
        finally:
            await nc.drain()
            await pool.close()
        typer.echo(f"durables {', '.join(done.durables)} recreated; read models emptied")

    asyncio.run(run())
