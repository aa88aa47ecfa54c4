# One way to get a NATS URL and a Postgres DSN: given URLs, else testcontainers, else embedded servers.
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kumkm_shared.servers._process import StoppedOnExit
from kumkm_shared.servers.nats import EmbeddedNats
from kumkm_shared.servers.nats_cluster import EmbeddedNatsCluster
from kumkm_shared.servers.postgres import EmbeddedPostgres
from kumkm_shared.servers.postgres_ha import EmbeddedPostgresPair

if TYPE_CHECKING:
    from collections.abc import Callable

    from kumkm_shared.natsauth import AuthDir

Mode = Literal["env", "testcontainers", "embedded"]

NATS_URL_ENV = "KUMKM_NATS_URL"
DATABASE_URL_ENV = "KUMKM_DATABASE_URL"
NATS_IMAGE = "nats:2.11-alpine"
POSTGRES_IMAGE = "postgres:16-alpine"
DOCKER_PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class Servers:
    """Where the servers are. `nats` and `postgres` are set in embedded mode only (fault tests use them);
    `nats_cluster` and `postgres_pair` instead when the embedded servers run as a cluster."""

    nats_url: str
    database_url: str
    mode: Mode
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    nats_cluster: EmbeddedNatsCluster | None = None
    postgres_pair: EmbeddedPostgresPair | None = None


@dataclass
class ServerHandle(StoppedOnExit):
    """Servers obtained by `obtain_servers`, and how to stop what was started for them (also when its
    `with` block ends)."""

    servers: Servers
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def nats_url(self) -> str:
        return self.servers.nats_url

    @property
    def database_url(self) -> str:
        return self.servers.database_url

    @property
    def mode(self) -> Mode:
        return self.servers.mode

    def add_stop(self, stop: Callable[[], None]) -> None:
        self._stops.append(stop)

    def stop(self) -> None:
        """Stop what we started (nothing in env mode), last started first. Safe to call twice."""
        while self._stops:
            self._stops.pop()()


def docker_available(timeout: float = DOCKER_PROBE_TIMEOUT) -> bool:
    """True when a Docker engine answers within `timeout` (a client alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(  # noqa: S603
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def obtain_servers(
    data_dir: Path,
    *,
    fsync: bool = True,
    mode: Mode | None = None,
    nats_auth: AuthDir | None = None,
    cluster: bool = False,
) -> ServerHandle:
    """NATS and Postgres, from the first source that works (or from `mode` when given).

    1. `KUMKM_NATS_URL` and `KUMKM_DATABASE_URL` both set: use them, start nothing;
    2. a Docker engine answers: NATS and Postgres containers (testcontainers);
    3. embedded servers with their data in `data_dir/nats` and `data_dir/postgres`; a later call with the
       same `data_dir` reuses the data (on new ports). With `nats_auth`, the embedded NATS runs in operator
       mode from that auth directory (the other modes ignore it: their servers are configured elsewhere).
       With `cluster`, three NATS nodes (`data_dir/nats/n1..n3`, streams to be provisioned at R3) and a
       Postgres primary with a synchronous streaming standby (`data_dir/postgres`), reached through a
       multi-host DSN with `target_session_attrs=read-write`. Given URLs and containers are used as they are.
    """
    if mode is None:
        mode = _choose_mode()
    if mode == "env":
        nats_url, database_url = os.environ.get(NATS_URL_ENV), os.environ.get(DATABASE_URL_ENV)
        if not nats_url or not database_url:
            raise ValueError(f"mode 'env' needs both {NATS_URL_ENV} and {DATABASE_URL_ENV}")
        return ServerHandle(Servers(nats_url=nats_url, database_url=database_url, mode="env"))
    if mode == "testcontainers":
        return _start_containers()
    if cluster:
        return _start_embedded_cluster(data_dir, fsync=fsync, nats_auth=nats_auth)
    return _start_embedded(data_dir, fsync=fsync, nats_auth=nats_auth)


def _choose_mode() -> Mode:
    given = [name for name in (NATS_URL_ENV, DATABASE_URL_ENV) if os.environ.get(name)]
    if len(given) == 2:  # noqa: PLR2004
        return "env"
    if given:
        # Half a configuration is a mistake; starting a server silently would hide it.
        missing = DATABASE_URL_ENV if given[0] == NATS_URL_ENV else NATS_URL_ENV
        raise ValueError(f"{given[0]} is set but {missing} is not: set both or neither")
    if docker_available():
        return "testcontainers"
    return "embedded"


def _start_embedded(data_dir: Path, *, fsync: bool, nats_auth: AuthDir | None = None) -> ServerHandle:
    nats = EmbeddedNats(data_dir / "nats", auth=nats_auth)
    postgres = EmbeddedPostgres(data_dir / "postgres", fsync=fsync)
    servers = Servers(nats.url, postgres.dsn, "embedded", nats=nats, postgres=postgres)
    return _start_in_order(servers, nats, postgres)


def _start_embedded_cluster(data_dir: Path, *, fsync: bool, nats_auth: AuthDir | None) -> ServerHandle:
    nats = EmbeddedNatsCluster(data_dir / "nats", auth=nats_auth)
    postgres = EmbeddedPostgresPair(data_dir / "postgres", fsync=fsync, synchronous=True)
    servers = Servers(nats.url, postgres.dsn, "embedded", nats_cluster=nats, postgres_pair=postgres)
    return _start_in_order(servers, nats, postgres)


def _start_in_order(
    servers: Servers, *parts: EmbeddedNats | EmbeddedNatsCluster | EmbeddedPostgres | EmbeddedPostgresPair
) -> ServerHandle:
    """Start ``parts`` one after the other; a failure stops what already started."""
    handle = ServerHandle(servers)
    try:
        for part in parts:
            part.start()
            handle.add_stop(part.stop)
    except BaseException:
        handle.stop()
        raise
    return handle


def _start_containers() -> ServerHandle:
    from testcontainers.community.nats import NatsContainer
    from testcontainers.community.postgres import PostgresContainer

    stops: list[Callable[[], None]] = []
    try:
        nats = NatsContainer(NATS_IMAGE, jetstream=True)
        nats.start()
        stops.append(nats.stop)
        postgres = PostgresContainer(
            POSTGRES_IMAGE,
            username="postgres",
            password=secrets.token_hex(12),
            dbname="postgres",
            driver=None,
        )
        postgres.start()
        stops.append(postgres.stop)
    except BaseException:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()
        raise
    servers = Servers(
        nats_url=str(nats.nats_uri()),
        database_url=str(postgres.get_connection_url(driver=None)),
        mode="testcontainers",
    )
    return ServerHandle(servers, stops)
