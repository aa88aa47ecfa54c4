"""`kumkm up`'s service list and the environment each child gets (kumkm_shared.cli.up): monitoring and the
console run too; the console gets the services' URLs and the issuer, and never the bus's or a database's
address; its sign-in comes back to the port it listens on."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import pytest

from kumkm_shared.cli import up
from kumkm_shared.cli.runinfo import RunInfo
from kumkm_shared.servers.oidc import DEFAULT_REALM

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

INFO = RunInfo(
    nats_url="nats://127.0.0.1:4222",
    database_url="postgresql://postgres:pw@127.0.0.1:5432/postgres",
    auth_issuer="http://127.0.0.1:9999",
)


def test_every_service_runs_monitoring_and_console_included() -> None:
    assert up.ALL_SERVICES == ("loans", "catalog", "notifications", "monitoring", "console")
    assert set(up.COLOURS) == set(up.ALL_SERVICES)
    assert frozenset({"console"}) == up.HTTP_ONLY
    installed = up.installed_services()
    assert {"loans", "catalog", "notifications", "console"} <= set(installed)
    assert installed == [name for name in up.ALL_SERVICES if name in installed], "in start order"
    assert up.ready_path("console") == "/healthz"
    assert up.ready_path("monitoring") == "/health/ready"


def test_the_console_gets_the_issuer_and_every_other_services_url() -> None:
    urls = {"loans": "http://127.0.0.1:1", "monitoring": "http://127.0.0.1:4", "console": "http://x"}
    env = up.console_env(INFO, urls, 8000)
    assert env["KUMKM_CONSOLE_PORT"] == "8000"
    assert env["KUMKM_CONSOLE_PUBLIC_URL"] == "http://127.0.0.1:8000"
    assert env["KUMKM_CONSOLE_ISSUER"] == INFO.auth_issuer
    assert env["KUMKM_CONSOLE_AUDIENCE"] == "kumkm"
    assert env["KUMKM_CONSOLE_CLIENT_ID"] == "kumkm-console"
    assert env["KUMKM_CONSOLE_LOANS_URL"] == "http://127.0.0.1:1"
    assert env["KUMKM_CONSOLE_MONITORING_URL"] == "http://127.0.0.1:4"
    assert "KUMKM_CONSOLE_CONSOLE_URL" not in env


def test_an_http_only_child_never_gets_the_bus_or_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMKM_NATS_CREDS", "/secret/operator.creds")
    monkeypatch.setenv("KUMKM_DATABASE_URL", "postgresql://postgres:pw@db/x")
    monkeypatch.setenv("KUMKM_DB_POOL_MAX", "5")
    console = up.service_env(INFO, 8000, {"KUMKM_CONSOLE_PORT": "8000"}, http_only=True)
    assert not [key for key in console if key.startswith(("KUMKM_NATS_", "KUMKM_DATABASE_", "KUMKM_DB_"))]
    assert console["KUMKM_CONSOLE_PORT"] == "8000"
    assert console["KUMKM_AUTH_ISSUER"] == INFO.auth_issuer
    service = up.service_env(INFO, 8081)
    assert service["KUMKM_NATS_URL"] == INFO.nats_url
    assert service["KUMKM_DATABASE_URL"] == INFO.database_url
    assert service["KUMKM_HTTP_PORT"] == "8081"


def test_the_console_listens_where_the_realm_sends_people_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUMKM_CONSOLE_PORT", raising=False)
    realm = json.loads(DEFAULT_REALM.read_text())
    (console,) = [c for c in realm["clients"] if c["clientId"] == up.CONSOLE_CLIENT]
    assert f"http://127.0.0.1:{up.CONSOLE_PORT}/*" in console["redirectUris"]
    assert up.realm_for_console(DEFAULT_REALM, up.CONSOLE_PORT, tmp_path) == DEFAULT_REALM
    # Port 8000 taken: another port, and a copy of the realm whose console client accepts it too.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        assert not up.port_is_free(port)
        copy = up.realm_for_console(DEFAULT_REALM, port, tmp_path)
    assert copy.parent == tmp_path
    (patched,) = [c for c in json.loads(copy.read_text())["clients"] if c["clientId"] == up.CONSOLE_CLIENT]
    assert patched["redirectUris"] == [*console["redirectUris"], f"http://127.0.0.1:{port}/*"]
    monkeypatch.setenv("KUMKM_CONSOLE_PORT", "8123")
    assert up.console_port() == 8123


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log"])
def test_the_demo_users_are_printed_with_their_password_on_a_terminal_only(
    terminal: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    up.print_demo_users(DEFAULT_REALM, terminal=terminal)
    printed = capsys.readouterr().err
    for person in ("city.bekasi", "ministry", "officer.bekasi", "supervisor.bekasi", "curator.bekasi"):
        assert f"{person}:" in printed
    assert "operator: operator [national]" in printed
    assert "DEMO ONLY" in printed
    assert ("kumkm-demo" in printed) is terminal
