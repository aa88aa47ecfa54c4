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
from kumkm_shared.testing.identity import identity
from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


pytestmark = pytest.mark.integration


def signed_in(user: str) -> dict[str, str]:
    """The environment of a CLI session that passes ``user``'s token in ``KUMKM_TOKEN`` (a real token from
    the test provider; the service verifies it as always)."""
    return {"KUMKM_TOKEN": identity().token(user)}


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


async def test_tick_and_decide_from_the_command_line(loans: Loans, tmp_path: Path) -> None:
    runner = CliRunner()
    await loans.publish(loan_disbursed("LN-CLI", principal="11000000000.00"))
    await loans.publish(restructuring_requested("LN-CLI", request_id="RR-CLI", reason="other"))
    await loans.settle()
    async with serving(loans) as url:
        session = signed_in("officer.bekasi")
        refused = await asyncio.to_thread(
            runner.invoke, app, ["tick", "--date", "2019-08-01", "--url", url], env=session
        )
        assert refused.exit_code == 1
        assert "missing permission: loans.tick" in refused.output
        # No token and no stored login (a data folder and a config folder without one).
        nobody = {"KUMKM_TOKEN": "", "XDG_CONFIG_HOME": str(tmp_path)}
        args = ["requests", "--url", url, "--data-dir", str(tmp_path)]
        anonymous = await asyncio.to_thread(runner.invoke, app, args, env=nobody)
        assert anonymous.exit_code == 1
        assert "sign in first: kumkm login" in anonymous.output
        session = signed_in("operator")
        ticked = await asyncio.to_thread(
            runner.invoke, app, ["tick", "--date", "2019-08-01", "--url", url], env=session
        )
        assert ticked.exit_code == 0, ticked.output
        assert "tick 2019-08-01: 1 loans checked, 1 installments overdue, 1 grade changes" in ticked.output
        bad_date = await asyncio.to_thread(
            runner.invoke, app, ["tick", "--date", "29-02-2020", "--url", url], env=session
        )
        assert bad_date.exit_code == 2
        args = ["decide", "RR-CLI", "--approve", "--reason", "Diverifikasi", "--url", url]
        # The decider is whoever is signed in: the officer makes, a supervisor checks (above the threshold).
        session = signed_in("officer.bekasi")
        made = await asyncio.to_thread(runner.invoke, app, [*args, "--decided-on", "2020-05-02"], env=session)
        assert made.exit_code == 0, made.output
        assert "RR-CLI: approved once by officer.bekasi; waiting for a supervisor" in made.output
        again = await asyncio.to_thread(runner.invoke, app, args, env=session)
        assert again.exit_code == 1
        assert "error 403 maker_is_checker" in again.output
        session = signed_in("supervisor.bekasi")
        decided = await asyncio.to_thread(
            runner.invoke, app, [*args, "--decided-on", "2020-05-03"], env=session
        )
        assert decided.exit_code == 0, decided.output
        assert "RR-CLI: approved by supervisor.bekasi (first approval by officer.bekasi)" in decided.output
        twice = await asyncio.to_thread(runner.invoke, app, args, env=session)
        assert twice.exit_code == 1
        assert "error 409" in twice.output
        assert "not referred" in twice.output
        no_reason = await asyncio.to_thread(runner.invoke, app, [*args[:3], "--url", url], env=session)
        assert no_reason.exit_code == 2
        assert "--officer" not in no_reason.output
    await loans.settle()
    [approved] = await loans.events("restructuring.approved.v1")
    assert approved["data"]["reason_codes"] == ["reason_not_covid19", "above_auto_approval_limit"]
    assert (approved["data"]["decided_by"], approved["data"]["first_approved_by"]) == (
        "supervisor.bekasi",
        "officer.bekasi",
    )
