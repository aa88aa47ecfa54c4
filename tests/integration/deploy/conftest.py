"""Real NATS and Postgres configured exactly as deploy/ configures them, for the permission and role tests.

- NATS runs twice per module, in operator mode (decentralised JWT auth) from an auth directory created by
  `kumkm nats init` (kumkm_shared.natsauth.AuthDir): with deploy/nats/nats-server.conf (docker-compose), and
  with the Helm values (deploy/k8s/nats/values.yaml, `config.merge` and `config.resolver`) rendered into a
  config file. Each config includes the directory's server/auth.conf, as deployed.
- Postgres runs twice: initialised by deploy/postgres/initdb (as the official image does), and by the
  CloudNativePG bootstrap SQL plus the managed roles of deploy/k8s/postgres/cluster.yaml.

The Postgres passwords are generated per session and reach the server through the environment that
docker-compose.yml gives the postgres container (read with compose_env), so the variable names are checked
too. After initialisation, Postgres requires passwords over TCP (scram-sha-256) for every role but the
superuser. NATS users connect with the creds files of the auth directory; the compose services' creds paths
(/run/secrets/nats-<user>) are mapped to them by `with_local_creds`.

`deploy_nats_server` and `deploy_postgres_server` are the same servers as context managers, for a test that
needs one of each for itself (tests/acceptance/deploy runs the whole compose system on them).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
import yaml

from kumkm_shared.natsauth import AuthDir
from kumkm_shared.servers import EmbeddedNats, EmbeddedPostgres
from kumkm_shared.testing.plugin import run_async, server_folder
from tests.support.compose_env import ComposeService, load_compose, read_env_file

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SERVICES = ("loans", "catalog", "notifications", "monitoring")
DATABASE = "kumkm"


COMPOSE_CREDS = re.compile(r"^/run/secrets/nats-(?P<user>[a-z]+)$")


@dataclass(frozen=True)
class DeployNats:
    kind: str
    url: str
    auth: AuthDir
    monitor_url: str = ""

    def creds(self, user: str) -> Path:
        """The creds file of a platform user (kumkm_shared.natsauth.permissions.PLATFORM_USERS)."""
        return self.auth.creds_path(user)


def with_local_creds(service: ComposeService, deploy: DeployNats) -> ComposeService:
    """The compose service with its KUMKM_NATS_CREDS (a compose secret, /run/secrets/nats-<user>) pointing at
    the same user's creds in the test's auth directory."""
    env = dict(service.environment)
    match = COMPOSE_CREDS.match(env.get("KUMKM_NATS_CREDS", ""))
    if match is None:
        raise AssertionError(
            f"{service.name}: KUMKM_NATS_CREDS is not a compose secret /run/secrets/nats-<user>"
        )
    env["KUMKM_NATS_CREDS"] = str(deploy.creds(match.group("user")))
    return replace(service, environment=env)


@dataclass(frozen=True)
class DeployPostgres:
    kind: str
    host: str
    port: int
    # role -> password
    passwords: dict[str, str]
    superuser_dsn: str

    def dsn(self, role: str, password: str | None = None, database: str = DATABASE) -> str:
        secret = self.passwords[role] if password is None else password
        return f"postgresql://{role}:{secret}@{self.host}:{self.port}/{database}"


@pytest.fixture(scope="session")
def deploy_env() -> dict[str, str]:
    """.env.example with a fresh random value for every password (letters first, as .env.example asks)."""
    env = read_env_file()
    for key in env:
        if key.endswith("_PASSWORD"):
            env[key] = "pw" + secrets.token_hex(16)
    return env


@pytest.fixture(scope="session")
def compose_services(deploy_env: dict[str, str]) -> dict[str, ComposeService]:
    return load_compose(deploy_env)


def render_helm_config(values_file: Path = DEPLOY / "k8s" / "nats" / "values.yaml") -> str:
    """What the chart adds to its nats.conf from the values: `config.merge` (written as JSON, a `$include`
    key as an include directive) and the resolver of `config.resolver` (type full, its `dir`, `merge`)."""
    config = yaml.safe_load(values_file.read_text())["config"]
    lines = []
    for key, value in config["merge"].items():
        if key.endswith("$include"):
            lines.append(f"include {json.dumps(value)}")
            continue
        text = json.dumps(value, indent=2)
        # `<< $VAR >>` is the chart's marker for an unquoted value: a NATS variable reference.
        lines.append(f"{key}: " + re.sub(r'"<< (\$[A-Za-z0-9_]+) >>"', r"\1", text))
    resolver = config.get("resolver") or {}
    if resolver.get("enabled"):
        block = {
            "type": "full",
            "dir": resolver.get("dir", "/data/resolver"),
            **(resolver.get("merge") or {}),
        }
        lines.append("resolver: " + json.dumps(block, indent=2))
    return "\n".join(lines) + "\n"


@contextmanager
def deploy_nats_server(kind: str) -> Iterator[DeployNats]:
    """NATS started with deploy/nats/nats-server.conf ("compose") or the Helm values ("helm"), in operator
    mode from a fresh auth directory (`kumkm nats init`), which the config includes as ./auth/auth.conf."""
    with server_folder(f"kumkm-deploy-nats-{kind}-") as folder:
        auth = AuthDir.init(folder / "nats-auth")
        conf_dir = folder / "conf"
        conf_dir.mkdir()
        # As mounted in the container: the config next to auth/ (the auth directory's server/ folder).
        (conf_dir / "auth").symlink_to(auth.server_dir)
        config = conf_dir / "nats-server.conf"
        text = (
            (DEPLOY / "nats" / "nats-server.conf").read_text() if kind == "compose" else render_helm_config()
        )
        # The resolver's store goes under the test's data folder instead of the container's /data.
        deployed_dir = re.search(r'^\s*"?dir"?:\s*"(/data/[^"]+)"', text, re.MULTILINE)
        assert deployed_dir is not None, "the deploy config has no resolver dir under /data"
        config.write_text(text.replace(deployed_dir.group(1), str(folder / "data" / "resolver")))
        server = EmbeddedNats(folder / "data", config_file=config)
        server.start()
        try:
            yield DeployNats(kind=kind, url=server.url, auth=auth, monitor_url=server.monitor_url)
        finally:
            server.stop()


@pytest.fixture(scope="module", params=["compose", "helm"])
def deploy_nats(request: pytest.FixtureRequest) -> Iterator[DeployNats]:
    with deploy_nats_server(request.param) as server:
        yield server


def _require_passwords_over_tcp(server: EmbeddedPostgres) -> None:
    """Trust only the superuser (the test's admin); every other role must log in with its password."""
    (server.pgdata / "pg_hba.conf").write_text(
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )
    server.psql("-c", "SELECT pg_reload_conf()")
    # The postmaster applies the reload asynchronously: wait until a wrong password is refused.
    deadline = time.monotonic() + 10
    while True:
        try:
            run_async(lambda: _try_login(server.dsn_for("loans", "wrong", DATABASE)))
        except asyncpg.InvalidPasswordError:
            return
        except (OSError, asyncpg.PostgresError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("pg_hba.conf reload did not take effect")
        time.sleep(0.05)


async def _try_login(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.close()


async def _apply_cloudnativepg_bootstrap(admin_dsn: str, passwords: dict[str, str]) -> None:
    cluster = yaml.safe_load((DEPLOY / "k8s" / "postgres" / "cluster.yaml").read_text())["spec"]
    initdb = cluster["bootstrap"]["initdb"]
    admin = await asyncpg.connect(admin_dsn)
    try:
        # What CloudNativePG's initdb bootstrap does first: the application database and its owner.
        await admin.execute(f'CREATE ROLE "{initdb["owner"]}" LOGIN')
        await admin.execute(f'CREATE DATABASE "{initdb["database"]}" OWNER "{initdb["owner"]}"')
    finally:
        await admin.close()
    app = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + "/" + initdb["database"])
    try:
        for statement in initdb["postInitApplicationSQL"]:
            await app.execute(statement)
        # managed.roles: the operator reconciles LOGIN and the password from each role's Secret.
        for role in cluster["managed"]["roles"]:
            login = "LOGIN" if role["login"] else "NOLOGIN"
            sql = await app.fetchval(
                f"SELECT format('ALTER ROLE %I WITH {login} PASSWORD %L', $1::text, $2::text)",
                role["name"],
                passwords[role["name"]],
            )
            await app.execute(sql)
    finally:
        await app.close()


@contextmanager
def deploy_postgres_server(
    kind: str, compose_services: dict[str, ComposeService]
) -> Iterator[DeployPostgres]:
    """Postgres initialised by deploy/postgres/initdb ("compose-initdb", with the environment
    docker-compose.yml gives the postgres container) or by the CloudNativePG bootstrap ("cloudnativepg")."""
    env = compose_services["postgres"].environment
    passwords = {role: env[f"{role.upper()}_DB_PASSWORD"] for role in SERVICES}
    init_scripts = (DEPLOY / "postgres" / "initdb").resolve() if kind == "compose-initdb" else None
    with server_folder(f"kumkm-deploy-pg-{kind}-") as folder:
        server = EmbeddedPostgres(folder, init_scripts=init_scripts, fsync=False)
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            server.start()
        try:
            if kind == "cloudnativepg":
                run_async(lambda: _apply_cloudnativepg_bootstrap(server.dsn, passwords))
            _require_passwords_over_tcp(server)
            yield DeployPostgres(
                kind=kind,
                host="127.0.0.1",
                port=server.port,
                passwords=passwords,
                superuser_dsn=server.dsn_for("postgres", database=DATABASE),
            )
        finally:
            server.stop()


@pytest.fixture(scope="module", params=["compose-initdb", "cloudnativepg"])
def deploy_postgres(
    request: pytest.FixtureRequest, compose_services: dict[str, ComposeService]
) -> Iterator[DeployPostgres]:
    with deploy_postgres_server(request.param, compose_services) as server:
        yield server
