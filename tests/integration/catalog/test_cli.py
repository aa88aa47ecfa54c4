"""``kumkm catalog tick`` and ``kumkm catalog curate`` against the running service's HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest
import uvicorn
from typer.testing import CliRunner

from kumkm_catalog.cli import app
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.identity import identity
from tests.integration.catalog import samples

if TYPE_CHECKING:
    import httpx

    from kumkm_shared import ServiceRuntime

pytestmark = pytest.mark.integration


async def test_cli_curates_and_ticks(service: tuple[ServiceRuntime, httpx.AsyncClient]) -> None:
    runtime, client = service
    server = uvicorn.Server(
        uvicorn.Config(
            runtime.http, host="127.0.0.1", port=runtime.infra.http_port, log_config=None, lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, timeout=10)
        url = f"http://127.0.0.1:{runtime.infra.http_port}"
        runner = CliRunner()

        def cli(*args: str, user: str = "curator.bekasi") -> tuple[int, str]:
            # The token a signed-in session sends, given as KUMKM_TOKEN (real, from the test provider).
            env = {"KUMKM_TOKEN": identity().token(user)}
            result = runner.invoke(app, [*args, "--url", url], env=env)
            return result.exit_code, result.output

        await client.post("/products", json=samples.product("PRD-CLI"))
        code, out = await asyncio.to_thread(
            cli, "curate", "PRD-CLI", "--decision", "approved", "--tier", "local", "--notes", "lengkap"
        )
        assert code == 0, out
        assert "PRD-CLI revision 1: approved at Rp450,000 (local)" in out
        code, out = await asyncio.to_thread(cli, "curate", "PRD-CLI", "--decision", "rejected")
        assert code == 1
        assert "not_pending_curation" in out

        order = (await client.post("/orders", json=samples.order("PRD-CLI"))).json()
        code, out = await asyncio.to_thread(cli, "tick", "--date", "2024-09-18")
        assert code == 1
        assert "missing permission: catalog.tick" in out
        code, out = await asyncio.to_thread(cli, "tick", "--date", "2024-09-18", user="operator")
        assert (code, out.splitlines()[0]) == (0, "2024-09-18: 0 order(s) cancelled for seller timeout")
        code, out = await asyncio.to_thread(cli, "tick", "--date", "2024-09-19", user="operator")
        assert code == 0
        assert order["order_id"] in out
        code, out = await asyncio.to_thread(cli, "tick", "--date", "19-09-2024", user="operator")
        assert code == 2
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
