"""`kumkm login`, `logout`, `token` and `audit` as processes, against the tests' real OpenID provider and a
real loans service on its HTTP port; run.json names both as `kumkm up` writes it in embedded mode."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
import uvicorn

from kumkm_loans.app import build
from kumkm_loans.settings import LoansSettings
from kumkm_shared.cli.runinfo import RunInfo
from kumkm_shared.cli.signin import claims_of
from kumkm_shared.servers.oidc import DEFAULT_REALM
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import ServiceHarness
from tests.support.provider_pages import sign_in_on_device_page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kumkm_shared.testing.identity import TestIdentity

pytestmark = pytest.mark.integration

KUMKM = str(Path(sys.executable).parent / "kumkm")
JWT = re.compile(r"^[\w-]+\.[\w-]+\.[\w-]+$")
DEVICE_PROMPT = re.compile(r"open (\S+) and enter the code (\S+)")


@dataclass
class System:
    """A data folder whose run.json names the loans service and the provider (embedded mode)."""

    data_dir: Path
    config_dir: Path
    loans_url: str
    issuer: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
        env.update({"XDG_CONFIG_HOME": str(self.config_dir), "COLUMNS": "250", "PYTHONUNBUFFERED": "1"})
        env.update(extra)
        return env

    async def kumkm(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        command = [KUMKM, *args, "--data-dir", str(self.data_dir)]
        env_ = self.env(**env)
        return await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, env=env_, check=False, timeout=60
        )

    @property
    def login_file(self) -> Path:
        return self.data_dir / "login.json"


@pytest_asyncio.fixture
async def system(
    nats_url: str, database_url: str, identity: TestIdentity, tmp_path: Path
) -> AsyncIterator[System]:
    definition = build(settings=LoansSettings(daily_tick=False))
    async with ServiceHarness.start(definition, nats_url, database_url) as loans:
        port = loans.runtime.infra.http_port
        app = loans.runtime.http
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        )
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        await wait_for(lambda: server.started, timeout=10)
        url = f"http://127.0.0.1:{port}"
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        RunInfo(
            nats_url=nats_url,
            database_url="",
            services={"loans": url},
            mode="embedded",
            auth_issuer=identity.issuer,
            auth_realm=str(DEFAULT_REALM),
        ).write(data_dir)
        try:
            yield System(data_dir, tmp_path / "config", url, identity.issuer)
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await task


async def test_token_as_a_demo_user_is_a_jwt_the_services_accept(system: System) -> None:
    printed = await system.kumkm("token", "--as", "officer.bekasi")
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    assert JWT.match(token), "kumkm token prints the access token alone, for $(...)"
    claims = claims_of(token)
    assert (claims["sub"], claims["iss"], claims["kumkm_roles"]) == (
        "officer.bekasi",
        system.issuer,
        ["loans-officer"],
    )
    async with httpx.AsyncClient(base_url=system.loans_url) as http:
        accepted = await http.get("/restructurings", headers={"Authorization": f"Bearer {token}"})
        assert accepted.status_code == 200, accepted.text
        assert (await http.get("/restructurings")).status_code == 401

    service = await system.kumkm("token", "--as", "integrator-demo")
    assert service.returncode == 0, service.stderr
    assert claims_of(service.stdout.strip())["kumkm_kind"] == "service"

    unknown = await system.kumkm("token", "--as", "nobody.at.all")
    assert unknown.returncode == 1
    assert "no demo user or service account 'nobody.at.all'" in unknown.stderr
    assert "officer.bekasi" in unknown.stderr

    not_signed_in = await system.kumkm("token")
    assert not_signed_in.returncode == 1
    assert "sign in first: kumkm login" in not_signed_in.stderr


async def test_as_only_against_the_embedded_provider(system: System) -> None:
    elsewhere = await system.kumkm(
        "token", "--as", "officer.bekasi", "--issuer", "http://127.0.0.1:9/realms/x"
    )
    assert elsewhere.returncode == 1
    assert "--as works only with the embedded provider" in elsewhere.stderr
    info = json.loads((system.data_dir / "run.json").read_text())
    (system.data_dir / "run.json").write_text(json.dumps({**info, "auth_realm": None}))
    given = await system.kumkm("login", "--as", "officer.bekasi")
    assert given.returncode == 1
    assert "--as works only with the embedded provider" in given.stderr
    assert not system.login_file.exists()


async def test_login_as_then_commands_work_and_logout_then_401(system: System) -> None:
    signed_in = await system.kumkm("login", "--as", "officer.bekasi")
    assert signed_in.returncode == 0, signed_in.stderr
    assert "signed in as officer.bekasi (loans-officer)" in signed_in.stdout
    assert stat.S_IMODE(system.login_file.stat().st_mode) == 0o600
    stored = json.loads(system.login_file.read_text())
    assert stored["access_token"] not in signed_in.stdout + signed_in.stderr
    assert "kumkm-demo" not in system.login_file.read_text()

    listed = await system.kumkm("loans", "requests")
    assert listed.returncode == 0, listed.stderr
    printed = await system.kumkm("token")
    assert printed.stdout.strip() == stored["access_token"]

    refused = await system.kumkm("loans", "tick", "--date", "2020-01-01")
    assert refused.returncode == 1
    assert "missing permission: loans.tick" in refused.stderr

    # KUMKM_TOKEN wins over the stored login.
    operator = (await system.kumkm("token", "--as", "operator")).stdout.strip()
    ticked = await system.kumkm("loans", "tick", "--date", "2020-01-01", KUMKM_TOKEN=operator)
    assert ticked.returncode == 0, ticked.stderr
    ticked = await system.kumkm("--token", operator, "loans", "tick", "--date", "2020-01-01")
    assert ticked.returncode == 0, ticked.stderr

    signed_out = await system.kumkm("logout")
    assert signed_out.returncode == 0
    assert not system.login_file.exists()
    after = await system.kumkm("loans", "requests")
    assert after.returncode == 1
    assert "sign in first: kumkm login" in after.stderr
    garbage = await system.kumkm("loans", "requests", KUMKM_TOKEN="not-a-token")
    assert garbage.returncode == 1
    assert "refused the token" in garbage.stderr
    assert "sign in first: kumkm login" in garbage.stderr


async def test_a_login_near_expiry_is_renewed_with_its_refresh_token(system: System) -> None:
    assert (await system.kumkm("login", "--as", "supervisor.bekasi")).returncode == 0
    stored = json.loads(system.login_file.read_text())
    system.login_file.write_text(json.dumps({**stored, "expires_at": time.time() - 1}))
    listed = await system.kumkm("loans", "requests")
    assert listed.returncode == 0, listed.stderr
    renewed = json.loads(system.login_file.read_text())
    assert renewed["expires_at"] > time.time() + 60
    assert renewed["access_token"] != stored["access_token"]
    assert stat.S_IMODE(system.login_file.stat().st_mode) == 0o600

    system.login_file.write_text(
        json.dumps({**renewed, "expires_at": time.time() - 1, "refresh_token": "not-a-refresh-token"})
    )
    expired = await system.kumkm("loans", "requests")
    assert expired.returncode == 1
    assert "could not be renewed" in expired.stderr
    assert "sign in first: kumkm login" in expired.stderr


async def test_audit_lists_a_refused_attempt(system: System, identity: TestIdentity) -> None:
    officer = identity.token("officer.bekasi")
    refused = await system.kumkm("loans", "tick", "--date", "2020-01-01", KUMKM_TOKEN=officer)
    assert refused.returncode == 1

    auditor = identity.token("auditor")
    filters = ("--service", "loans", "--refused", "--subject", "officer.bekasi")
    found = await system.kumkm("audit", *filters, "--json", KUMKM_TOKEN=auditor)
    assert found.returncode == 0, found.stderr
    records: list[dict[str, Any]] = json.loads(found.stdout)
    assert [(r["service"], r["route"], r["status"], r["outcome"]) for r in records] == [
        ("loans", "/tick", 403, "forbidden")
    ]
    assert "loans.tick" in records[0]["reason"]

    table = await system.kumkm("audit", "--service", "loans", "--refused", KUMKM_TOKEN=auditor)
    assert table.returncode == 0, table.stderr
    assert "officer.bekasi" in table.stdout
    assert "POST /tick" in table.stdout
    assert "forbidden" in table.stdout

    not_auditor = await system.kumkm("audit", "--service", "loans", KUMKM_TOKEN=officer)
    assert not_auditor.returncode == 1
    assert "missing permission: audit.read" in not_auditor.stderr
    bad = await system.kumkm("audit", "--service", "everything", KUMKM_TOKEN=auditor)
    assert bad.returncode == 2
    assert "--service" in bad.stderr


async def test_device_login_completed_on_the_provider_pages(system: System) -> None:
    process = await asyncio.create_subprocess_exec(
        KUMKM,
        "login",
        "--data-dir",
        str(system.data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=system.env(),
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        prompt = DEVICE_PROMPT.search(first)
        assert prompt, f"no verification address and code in {first!r}"
        address, code = prompt.groups()
        assert address.startswith(system.issuer)
        page = await sign_in_on_device_page(address, code, "curator.bekasi", "kumkm-demo")
        assert "signed in" in page
        rest, errors = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    out, err = first + rest.decode(), errors.decode()
    assert process.returncode == 0, err
    assert "signed in as curator.bekasi (catalog-curator)" in out
    stored = json.loads(system.login_file.read_text())
    assert stored["username"] == "curator.bekasi"
    assert stored["issuer"] == system.issuer
    assert stored["access_token"] not in out + err
    assert stat.S_IMODE(system.login_file.stat().st_mode) == 0o600
    # A curator holds no loans permission: the stored login is sent, and the service names what is missing.
    listed = await system.kumkm("loans", "requests")
    assert listed.returncode == 1
    assert "missing permission: loans.read" in listed.stderr
