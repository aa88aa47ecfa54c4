"""``kumkm loans tick`` and ``kumkm loans decide`` against the service's real HTTP port."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest
import uvicorn
from typer.testing import CliRunner

from kumkm_loans.cli import app
from kumkm_shared.testing import wait_for
from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def serving(loans: Loans) -> AsyncIterator[str]:
    infra = loans.runtime.infra
    server = uvicorn.Server(
        uvicorn.Config(
            loans.runtime.http, host="127.0.0.1", port=infra.http_port, log_config=None, lifespan="off"
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=10)
    try:
        yield f"http://127.0.0.1:{infra.http_port}"
    finally:
        server.should_exit = True
        await task


async def test_tick_and_decide_from_the_command_line(loans: Loans) -> None:
    runner = CliRunner()
    await loans.publish(loan_disbursed("LN-CLI", principal="11000000000.00"))
    await loans.publish(restructuring_requested("LN-CLI", request_id="RR-CLI", reason="other"))
    await loans.settle()
    async with serving(loans) as url:
        ticked = await asyncio.to_thread(runner.invoke, app, ["tick", "--date", "2019-08-01", "--url", url])
        assert ticked.exit_code == 0, ticked.output
        assert "tick 2019-08-01: 1 loans checked, 1 installments overdue, 1 grade changes" in ticked.output
        bad_date = await asyncio.to_thread(runner.invoke, app, ["tick", "--date", "29-02-2020", "--url", url])
        assert bad_date.exit_code == 2
        args = [
            "decide",
            "RR-CLI",
            "--approve",
            "--reason",
            "Diverifikasi",
            "--officer",
            "OFC-1",
            "--url",
            url,
        ]
        decided = await asyncio.to_thread(runner.invoke, app, [*args, "--decided-on", "2020-05-02"])
        assert decided.exit_code == 0, decided.output
        assert "RR-CLI: approved by OFC-1" in decided.output
        twice = await asyncio.to_thread(runner.invoke, app, args)
        assert twice.exit_code == 1
        assert "error 409" in twice.output
        assert "not referred" in twice.output
    await loans.settle()
    [approved] = await loans.events("restructuring.approved.v1")
    assert approved["data"]["reason_codes"] == ["reason_not_covid19", "above_auto_approval_limit"]
