"""NATS, Postgres and the three services as child processes, with the faults a supervisor can inject.

Services run as ``python -m kumkm_<svc> serve`` (the way ``kumkm up`` runs them), each in its own process
group, with its output in ``<data_dir>/logs/<svc>.log``. A service keeps its HTTP port across restarts.
The embedded OpenID provider (``Cluster.signin``) starts first; the services verify its tokens
(``KUMKM_AUTH_ISSUER`` in their environment) and the workload signs in through it.

Two topologies (``ClusterConfig.topology``):
- ``single``: one nats-server, one Postgres, one process per service (``make chaos``);
- ``cluster``: three nats-servers with R3 streams, a Postgres primary with a synchronous streaming standby
  reached through a multi-host DSN (``target_session_attrs=read-write``), and ``replicas`` processes per
  service (``make chaos-cluster``). A service's first replica is named after it (``loans``), the others
  ``loans#2``...; each has its own HTTP port, and the workload spreads its requests over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, Self

import asyncpg
import httpx
import nats
import psutil

from bench.chaos.services import CONSUMER_DECLS, SERVICES
from bench.chaos.signin import SignIn
from kumkm_shared.cli.runinfo import RunInfo
from kumkm_shared.cli.up import Child, service_env, stop_children, wait_ready
from kumkm_shared.failpoints import ENV as FAILPOINTS_ENV
from kumkm_shared.messaging.provision import provision
from kumkm_shared.servers import (
    EmbeddedNats,
    EmbeddedNatsCluster,
    EmbeddedPostgres,
    EmbeddedPostgresPair,
    free_port,
    obtain_servers,
)

if TYPE_CHECKING:
    from kumkm_shared.servers import ServerHandle


@dataclass
class ServiceProcess:
    name: str  # the instance: "loans", "loans#2"
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    starts: int = 0
    peak_rss: int = 0  # bytes, over every incarnation
    paused: bool = False

    @property
    def service(self) -> str:
        """The service this instance runs (its module ``kumkm_<service>``)."""
        return self.name.partition(REPLICA_SEP)[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def start(self, failpoints: str | None = None) -> None:
        """Start the service; ``failpoints`` arms ``KUMKM_FAILPOINTS`` for this incarnation only."""
        if self.pid is not None:
            return
        if self.log is None:
            self.log = self.log_path.open("ab")
        armed = f" with {FAILPOINTS_ENV}={failpoints}" if failpoints else ""
        self.log.write(
            f"\n===== start #{self.starts + 1} at {time.strftime('%H:%M:%S')}{armed} =====\n".encode()
        )
        self.log.flush()
        env = {k: v for k, v in self.env.items() if k != FAILPOINTS_ENV}
        if failpoints:
            env[FAILPOINTS_ENV] = failpoints
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"kumkm_{self.service}", "serve"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        self.paused = False

    def child(self) -> Child:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not started")
        return Child(self.name, self.process, self.url)

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def exited(self) -> int | None:
        """The return code once the process has ended by itself (a failpoint's SIGKILL: -9), else None."""
        if self.process is None:
            return None
        return self.process.poll()

    def kill(self) -> None:
        """kill -9 of the whole process group, as a crash."""
        if self.process is None:
            return
        if self.paused:
            self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self.process.wait()
        self.process = None
        self.paused = False

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def sample_rss(self) -> int:
        pid = self.pid
        if pid is None:
            return 0
        try:
            rss = int(psutil.Process(pid).memory_info().rss)
        except psutil.Error:
            return 0
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


REPLICA_SEP = "#"
STREAM_REPLICAS = 3  # streams and durables on the three-node NATS cluster


def instance_name(service: str, k: int) -> str:
    """The k-th replica's name (1-based): the service's own name for the first."""
    return service if k == 1 else f"{service}{REPLICA_SEP}{k}"


@dataclass
class ClusterConfig:
    services: tuple[str, ...] = SERVICES
    topology: Literal["single", "cluster"] = "single"
    replicas: int = 1  # processes per service
    smtp_port: int = 1025
    ack_wait: float | None = None  # seconds; None keeps the declared durables' ack_wait
    max_deliver: int | None = None
    send_lease: float = 10.0  # notifications: how long a 'sending' row is trusted before reconciling
    fsync: bool = True  # Postgres fsync (sync_interval is always on in NATS)
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)  # per service
    data_dir: Path | None = None
    # Directories put first on the services' PYTHONPATH (and on the provisioning's): another tree's
    # shared/ and services/<svc>/ run that tree's code with this harness (bench.system --ab).
    pythonpath: tuple[str, ...] = ()


class Cluster:
    """The system under test. Use as a context manager; every method is synchronous (call it in a thread
    from async code when it may block: starts, restarts and waits)."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir or Path(tempfile.mkdtemp(prefix="kumkm-chaos-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self.handle: ServerHandle | None = None
        self.nats_cluster: EmbeddedNatsCluster | None = None
        self.pg_pair: EmbeddedPostgresPair | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.info: RunInfo | None = None
        self.signin = SignIn(self.data_dir / "oidc")

    # -- servers ------------------------------------------------------------------------------------
    @property
    def nats(self) -> EmbeddedNats:
        if self.handle is None or self.handle.servers.nats is None:
            raise RuntimeError("fault injection needs the embedded NATS server")
        return self.handle.servers.nats

    @property
    def postgres(self) -> EmbeddedPostgres:
        if self.handle is None or self.handle.servers.postgres is None:
            raise RuntimeError("fault injection needs the embedded Postgres server")
        return self.handle.servers.postgres

    @property
    def nats_url(self) -> str:
        if self.info is None:
            raise RuntimeError("cluster not started")
        return self.info.nats_url

    @property
    def database_url(self) -> str:
        if self.info is None:
            raise RuntimeError("cluster not started")
        return self.info.database_url

    def url(self, service: str) -> str:
        return self.services[service].url

    def urls(self, service: str) -> list[str]:
        """Every replica's URL (the first replica's first)."""
        return [self.services[name].url for name in self.instances(service)]

    def instances(self, service: str) -> list[str]:
        return [instance_name(service, k) for k in range(1, self.config.replicas + 1)]

    @property
    def clustered(self) -> bool:
        return self.config.topology == "cluster"

    def _start_servers(self) -> RunInfo:
        if not self.clustered:
            self.handle = obtain_servers(self.data_dir, fsync=self.config.fsync, mode="embedded")
            return RunInfo(nats_url=self.handle.nats_url, database_url=self.handle.database_url)
        self.nats_cluster = EmbeddedNatsCluster(self.data_dir / "nats")
        self.nats_cluster.start()
        self.pg_pair = EmbeddedPostgresPair(
            self.data_dir / "postgres", fsync=self.config.fsync, synchronous=True
        )
        self.pg_pair.start()
        return RunInfo(nats_url=self.nats_cluster.url, database_url=self.pg_pair.dsn)

    def start(self) -> None:
        self.info = self._start_servers()
        self.signin.start()
        if self.config.pythonpath:
            self._provision_other_tree()
        else:
            asyncio.run(self._provision())
        for service in self.config.services:
            for name in self.instances(service):
                env = service_env(self.info, 0, self._service_extra(service))
                port = free_port()
                env["KUMKM_HTTP_PORT"] = str(port)
                env["KUMKM_LOG_FORMAT"] = "json"
                if self.config.pythonpath:
                    env["PYTHONPATH"] = self.pythonpath_env(env.get("PYTHONPATH"))
                log_path = self.data_dir / "logs" / f"{name.replace(REPLICA_SEP, '-')}.log"
                self.services[name] = ServiceProcess(name, port, env, log_path)
        for svc in self.services.values():
            svc.start()
        self.wait_ready(list(self.services))

    def _service_extra(self, name: str) -> dict[str, str]:
        extra: dict[str, str] = self.signin.env()
        if name == "loans":
            extra["KUMKM_LOANS_DAILY_TICK"] = "false"
        if name == "notifications":
            extra.update(
                {
                    "KUMKM_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
                    "KUMKM_NOTIFICATIONS_SMTP_PORT": str(self.config.smtp_port),
                    "KUMKM_NOTIFICATIONS_SEND_LEASE": str(self.config.send_lease),
                    "KUMKM_NOTIFICATIONS_SMTP_TIMEOUT": "4",
                    "KUMKM_NOTIFICATIONS_WEBHOOK_TIMEOUT": "4",
                    "KUMKM_NOTIFICATIONS_BACKOFF_BASE": "0.5",
                    "KUMKM_NOTIFICATIONS_BACKOFF_CAP": "5",
                    "KUMKM_NOTIFICATIONS_WORKER_POLL_INTERVAL": "0.5",
                }
            )
        extra.update(self.config.extra_env.get(name, {}))
        return extra

    def pythonpath_env(self, existing: str | None = None) -> str:
        return os.pathsep.join([*self.config.pythonpath, *([existing] if existing else [])])

    def _provision_other_tree(self) -> None:
        """The other tree's topology, provisioned by its own ``kumkm_shared`` in a subprocess."""
        env = dict(os.environ, PYTHONPATH=self.pythonpath_env(os.environ.get("PYTHONPATH")))
        args = [str(self.config.ack_wait or ""), str(self.config.max_deliver or "")]
        subprocess.run(
            [sys.executable, "-m", "bench.chaos.provisioning", self.nats_url, *args],
            env=env,
            check=True,
            cwd=Path(__file__).resolve().parent.parent.parent,
        )

    async def _provision(self) -> None:
        decls = [
            replace(
                d,
                ack_wait_seconds=self.config.ack_wait or d.ack_wait_seconds,
                max_deliver=self.config.max_deliver or d.max_deliver,
            )
            for d in CONSUMER_DECLS
        ]
        nc = await nats.connect(self.nats_url.split(","), max_reconnect_attempts=3)
        try:
            replicas = STREAM_REPLICAS if self.clustered else 1
            await provision(nc.jetstream(), consumers=decls, replicas=replicas)
        finally:
            await nc.drain()

    def wait_ready(self, names: list[str], timeout: float = 90.0) -> None:
        wait_ready([self.services[n].child() for n in names], timeout=timeout)

    def stop(self) -> None:
        running = [s.child() for s in self.services.values() if s.pid is not None]
        for svc in self.services.values():
            if svc.paused:
                svc.resume()
        stop_children(running)
        for svc in self.services.values():
            svc.close()
        if self.handle is not None:
            self.handle.stop()
            self.handle = None
        if self.pg_pair is not None:
            self.pg_pair.stop()
            self.pg_pair = None
        if self.nats_cluster is not None:
            self.nats_cluster.stop()
            self.nats_cluster = None
        self.signin.stop()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- faults -------------------------------------------------------------------------------------
    def kill_service(self, name: str) -> None:
        self.services[name].kill()

    def start_service(self, name: str, *, wait: bool = True) -> None:
        self.services[name].start()
        if wait:
            self.wait_ready([name])

    def crash_at(self, name: str, point: str, timeout: float) -> bool:
        """Restart ``name`` armed to kill itself at the failpoint ``point``; wait for that death, at most
        ``timeout`` seconds (then kill it from outside). True when the failpoint fired."""
        svc = self.services[name]
        svc.kill()
        svc.start(failpoints=f"{point}=kill")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = svc.exited()
            if code is not None:
                svc.process = None
                return code == -signal.SIGKILL
            time.sleep(0.05)
        svc.kill()
        return False

    def restart_service(self, name: str) -> None:
        self.kill_service(name)
        self.start_service(name)

    def pause_service(self, name: str) -> None:
        self.services[name].pause()

    def resume_service(self, name: str) -> None:
        self.services[name].resume()

    def kill_nats(self) -> None:
        self.nats.kill()

    def start_nats(self) -> None:
        self.nats.start()

    def restart_postgres(self) -> None:
        """A fast shutdown (SIGINT: open transactions rolled back, connections dropped), then a start."""
        self.postgres.restart()

    def kill_postgres(self) -> None:
        self.postgres.kill()
        self.postgres.start()

    def kill_identity_provider(self) -> None:
        """kill -9 of the OpenID provider: services keep the keys they have read; new sign-ins wait."""
        self.signin.provider.kill()

    def start_identity_provider(self) -> None:
        """Start it again on the same port with the same signing keys."""
        self.signin.provider.start()

    # -- faults of the cluster topology -----------------------------------------------------------------
    @property
    def nats_nodes(self) -> EmbeddedNatsCluster:
        if self.nats_cluster is None:
            raise RuntimeError("this fault needs the cluster topology")
        return self.nats_cluster

    @property
    def pg(self) -> EmbeddedPostgresPair:
        if self.pg_pair is None:
            raise RuntimeError("this fault needs the cluster topology")
        return self.pg_pair

    def relay_leader(self, service: str) -> str | None:
        """The replica whose outbox relay holds the service's lock (its /metrics says so), if any."""
        for name in self.instances(service):
            svc = self.services[name]
            if svc.pid is None or svc.paused:
                continue
            try:
                body = httpx.get(f"{svc.url}/metrics", timeout=2.0).text
            except httpx.HTTPError:
                continue
            if f'kumkm_outbox_relay_leader{{schema="{service}"}} 1.0' in body:
                return name
        return None

    def wait_relay_leader(self, service: str, *, other_than: str, timeout: float = 60.0) -> str:
        """Until a replica other than ``other_than`` leads the relay; its name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.relay_leader(service)
            if leader is not None and leader != other_than:
                return leader
            time.sleep(0.2)
        raise TimeoutError(f"no replica of {service} took the relay over within {timeout:.0f}s")

    def database_writable(self, timeout: float = 60.0) -> float:
        """Seconds until a write commits through the multi-host DSN (a new connection each try)."""
        started = time.monotonic()

        async def write() -> None:
            conn = await asyncpg.connect(self.database_url, timeout=3)
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS public.chaos_probe (at timestamptz)")
                await conn.execute("INSERT INTO public.chaos_probe VALUES (now())")
            finally:
                await conn.close()

        while True:
            try:
                asyncio.run(write())
                return time.monotonic() - started
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"no writable Postgres within {timeout:.0f}s: {exc!r}") from exc
                time.sleep(0.2)

    def sample_rss(self) -> dict[str, int]:
        return {name: svc.sample_rss() for name, svc in self.services.items()}

    def peak_rss(self) -> dict[str, int]:
        return {name: svc.peak_rss for name, svc in self.services.items()}

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.services[name].log_path
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
