"""``kumkm up``: servers (NATS, Postgres, the OpenID provider), streams, migrations and the services as
child processes, with prefixed logs.

Embedded NATS runs in operator mode (decentralised JWT auth) from an auth directory kept under
``<data_dir>/nats-auth`` (created on the first run, like ``kumkm nats init``): each service connects with its
own creds and private inbox, and run.json records the directory (``nats_auth_dir``) for the CLI (``kumkm
publish``, ``kumkm integrators``). NATS given by URL (or a container) runs as configured there.

The embedded OpenID provider starts unless ``KUMKM_AUTH_ISSUER`` names one; either way the services get its
issuer and audience, and run.json records them (with the realm file of an embedded provider, where
``kumkm login --as`` and ``kumkm token --as`` find the demo users)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from kumkm_shared.cli.files import ensure_directory
from kumkm_shared.cli.runinfo import RunInfo
from kumkm_shared.servers import free_port, obtain_servers
from kumkm_shared.servers.mail import MailSink

if TYPE_CHECKING:
    from collections.abc import Iterator

ALL_SERVICES = ("loans", "catalog", "notifications", "monitoring", "console")
# `kumkm up --cluster`: replicas of each service that talks to the bus (the console is one process, which
# calls each service's first replica), and the stream replicas on the three NATS nodes.
CLUSTER_REPLICAS = 2
CLUSTER_STREAM_REPLICAS = 3
REPLICA_SEP = "#"  # "loans#2": the second replica of loans
COLOURS = {
    "loans": "cyan",
    "catalog": "magenta",
    "notifications": "green",
    "monitoring": "blue",
    "console": "bright_white",
}
# The console speaks HTTP only (to the services' APIs, with the person's token): no NATS, no database.
HTTP_ONLY = frozenset({"console"})
# Where people's browsers come back after sign-in: the kumkm-console client's redirect URIs in the demo
# realm (deploy/keycloak/kumkm-realm.json) are http://127.0.0.1:8000/* and http://localhost:8000/*.
CONSOLE_PORT = 8000
CONSOLE_CLIENT = "kumkm-console"
console = Console(stderr=True, highlight=False)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    extra_env: dict[str, str] | None = None


def installed_services() -> list[str]:
    """The services of ALL_SERVICES whose package is installed in this environment (``make install``)."""
    import importlib.util

    return [name for name in ALL_SERVICES if importlib.util.find_spec(f"kumkm_{name}") is not None]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def console_port() -> int:
    """``KUMKM_CONSOLE_PORT``, else 8000 (the demo realm's redirect URIs) when free, else a free port."""
    given = os.environ.get("KUMKM_CONSOLE_PORT")
    if given:
        return int(given)
    return CONSOLE_PORT if port_is_free(CONSOLE_PORT) else free_port()


def console_env(info: RunInfo, services: dict[str, str], port: int) -> dict[str, str]:
    """The console's settings (``KUMKM_CONSOLE_*``): where it listens, the issuer people sign in at, and
    the base URL of each service it calls."""
    env = {
        "KUMKM_CONSOLE_HOST": "127.0.0.1",
        "KUMKM_CONSOLE_PORT": str(port),
        "KUMKM_CONSOLE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "KUMKM_CONSOLE_CLIENT_ID": CONSOLE_CLIENT,
        "KUMKM_CONSOLE_AUDIENCE": info.auth_audience,
    }
    if info.auth_issuer:
        env["KUMKM_CONSOLE_ISSUER"] = info.auth_issuer
    for name, url in services.items():
        if name not in HTTP_ONLY:
            env[f"KUMKM_CONSOLE_{name.upper()}_URL"] = url
    return env


def service_of(name: str) -> str:
    """The service a child runs: "loans" for "loans" and for its replica "loans#2"."""
    return name.partition(REPLICA_SEP)[0]


def replica_names(service: str, replicas: int) -> list[str]:
    return [service if k == 1 else f"{service}{REPLICA_SEP}{k}" for k in range(1, replicas + 1)]


def _pump(name: str, stream: IO[bytes]) -> None:  # runs in a thread per child
    colour = COLOURS.get(service_of(name), "white")
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        # The child's text is never parsed as markup: its log lines contain brackets.
        console.print(Text.assemble((f"{name:>13} | ", colour), line), soft_wrap=True, highlight=False)


def service_env(
    info: RunInfo, port: int, extra: dict[str, str] | None = None, *, http_only: bool = False
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not (http_only and k.startswith(_BUS_AND_DB))}
    if not http_only:
        env["KUMKM_NATS_URL"] = info.nats_url
        env["KUMKM_DATABASE_URL"] = info.database_url
    env.update(
        {
            "KUMKM_HTTP_HOST": "127.0.0.1",
            "KUMKM_HTTP_PORT": str(port),
            "KUMKM_LOG_FORMAT": env.get("KUMKM_LOG_FORMAT", "console"),
            "KUMKM_AUTH_AUDIENCE": info.auth_audience,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if info.auth_issuer:
        env["KUMKM_AUTH_ISSUER"] = info.auth_issuer
    env.update(extra or {})
    return env


# What an HTTP-only child never gets from the parent's environment: the bus's and the databases' addresses
# and credentials.
_BUS_AND_DB = ("KUMKM_NATS_", "KUMKM_DATABASE_", "KUMKM_DB_")


def nats_env(info: RunInfo, user: str) -> dict[str, str]:
    """The NATS identity of a platform user (a service, or provision) when NATS runs in operator mode."""
    if not info.nats_auth_dir:
        return {}
    from kumkm_shared.natsauth import AuthDir
    from kumkm_shared.natsauth.permissions import INBOX_PREFIX

    env = {"KUMKM_NATS_CREDS": str(AuthDir(Path(info.nats_auth_dir)).creds_path(user))}
    prefix = INBOX_PREFIX.get(user)
    if prefix:
        env["KUMKM_NATS_INBOX_PREFIX"] = prefix
    return env


def start_service(
    name: str, info: RunInfo, port: int | None = None, extra_env: dict[str, str] | None = None
) -> Child:
    port = port or free_port()
    service = service_of(name)
    http_only = service in HTTP_ONLY
    bus = {} if http_only else nats_env(info, service)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", f"kumkm_{service}", "serve"],
        env=service_env(info, port, {**bus, **(extra_env or {})}, http_only=http_only),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
    )
    if process.stdout is None:  # pragma: no cover - stdout=PIPE always gives a stream
        raise RuntimeError("child has no stdout")
    threading.Thread(target=_pump, args=(name, process.stdout), daemon=True).start()
    return Child(name, process, f"http://127.0.0.1:{port}", extra_env)


# The readiness route of each child: the platform's services' /health/ready; the console has no bus or
# database to wait for and answers /healthz.
READY_PATHS = {"console": "/healthz"}


def ready_path(name: str) -> str:
    return READY_PATHS.get(service_of(name), "/health/ready")


def wait_ready(children: list[Child], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pending = {c.name: c for c in children}
    while pending and time.monotonic() < deadline:
        for name, child in list(pending.items()):
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"service {name} exited with code {child.process.returncode} during start-up"
                )
            with (
                contextlib.suppress(Exception),
                urllib.request.urlopen(f"{child.url}{ready_path(name)}", timeout=1) as r,  # noqa: S310 - our http URL
            ):
                if r.status == HTTPStatus.OK:
                    del pending[name]
        time.sleep(0.3)
    if pending:
        raise RuntimeError(f"services not ready after {timeout:.0f}s: {sorted(pending)}")


def stop_children(children: list[Child], timeout: float = 15.0) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def provision_streams(info: RunInfo, replicas: int = 1) -> str:
    import asyncio

    from kumkm_shared.cli.connect import connect
    from kumkm_shared.messaging.provision import provision

    async def run() -> str:
        async with connect(info, name="kumkm-provision") as nc:
            return str(await provision(nc.jetstream(), replicas=replicas))

    return asyncio.run(run())


def _mail_sink(data_dir: Path) -> MailSink | None:
    """A local mail catcher for the notifications service, unless an SMTP server is configured."""
    if os.environ.get("KUMKM_NOTIFICATIONS_SMTP_HOST"):
        return None
    try:
        sink = MailSink(
            data_dir / "mail", lambda line: console.print(Text.assemble(("         mail | ", "yellow"), line))
        )
    except ImportError:  # aiosmtpd is part of the `embedded` extra
        return None
    sink.start()
    console.print(f"mail catcher: smtp://127.0.0.1:{sink.port}, emails saved in {sink.folder}")
    return sink


@dataclass(frozen=True)
class SignIn:
    """The issuer the services trust; `realm` only when `kumkm up` runs the provider itself."""

    issuer: str
    audience: str
    realm: Path | None = None


def realm_for_console(realm: Path, port: int, folder: Path) -> Path:
    """``realm`` itself when the console listens where its client's redirect URIs point (port 8000); else a
    copy under ``folder`` whose ``kumkm-console`` client also accepts ``http://127.0.0.1:<port>/*``."""
    import json

    body = json.loads(realm.read_text(encoding="utf-8"))
    wanted = f"http://127.0.0.1:{port}/*"
    for client in body.get("clients", []):
        if client.get("clientId") == CONSOLE_CLIENT and wanted not in client.get("redirectUris", []):
            client["redirectUris"] = [*client.get("redirectUris", []), wanted]
            break
    else:
        return realm
    ensure_directory(folder)
    copy = folder / f"realm-console-{port}.json"
    copy.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return copy


@contextlib.contextmanager
def identity_provider(data_dir: Path, console_at: int | None = None) -> Iterator[SignIn]:
    """``KUMKM_AUTH_ISSUER`` when given; else the embedded provider, configured from the demo realm (or the
    realm file ``KUMKM_AUTH_REALM`` names), its keys and log under ``<data_dir>/oidc``; with ``console_at``,
    the realm's console client also accepts that port's redirect URIs (``realm_for_console``)."""
    audience = os.environ.get("KUMKM_AUTH_AUDIENCE") or "kumkm"
    given = os.environ.get("KUMKM_AUTH_ISSUER")
    if given:
        yield SignIn(given.rstrip("/"), audience)
        return
    from kumkm_shared.servers.oidc import DEFAULT_REALM, EmbeddedIdentityProvider

    realm = Path(os.environ.get("KUMKM_AUTH_REALM") or DEFAULT_REALM).absolute()
    if console_at is not None:
        realm = realm_for_console(realm, console_at, data_dir / "oidc")
    provider = EmbeddedIdentityProvider(data_dir / "oidc", realms=(realm,))
    provider.start()
    try:
        yield SignIn(provider.issuer, audience, realm)
    finally:
        provider.stop()


def print_demo_users(realm: Path, *, terminal: bool | None = None) -> None:
    """The realm's people and service accounts with their roles and regions. Their (demo) password is shown
    on a terminal only: a log (output to a file or a pipe) never carries one."""
    from kumkm_shared.cli.signin import DemoRealm

    found = DemoRealm.read(realm)
    console.print(
        f"demo users (realm {realm}; DEMO ONLY: change or delete them before going live; their password is "
        "in the README's quick start):"
    )
    on_terminal = console.is_terminal if terminal is None else terminal
    passwords = {
        found.passwords[u.username].get_secret_value()
        for u in found.people()
        if u.username in found.passwords
    }
    if on_terminal and len(passwords) == 1:
        console.print(f"  password of every demo person (DEMO ONLY): {passwords.pop()}", markup=False)
    for user in [*found.people(), *found.service_accounts()]:
        name = user.service_account_of or user.username
        kind = " (service account, client credentials)" if user.service_account_of else ""
        roles, regions = ", ".join(user.roles), ", ".join(user.regions) or "no region"
        console.print(f"  {name:>20}: {roles} [{regions}] {user.organisation or ''}{kind}", markup=False)
    example = 'curl -H "Authorization: Bearer $(kumkm token --as officer.bekasi)" ...'
    console.print(f"  sign in with `kumkm login --as officer.bekasi`, or {example}", markup=False)


def start_all(
    children: list[Child],
    info: RunInfo,
    services: list[str],
    notifications_env: dict[str, str],
    port: int,
    *,
    replicas: int = 1,
) -> None:
    """The services that talk to the bus first (``replicas`` processes each); once they are ready, the
    console, given their (first replicas') URLs. Each child is added to ``children`` as it starts, so the
    caller stops whatever started if one fails."""
    backends = [r for name in services if name not in HTTP_ONLY for r in replica_names(name, replicas)]
    children.extend(  # one by one: those started before a failure are in `children`
        start_service(
            name, info, extra_env=notifications_env if service_of(name) == "notifications" else None
        )
        for name in backends
    )
    wait_ready(children)
    urls = {c.name: c.url for c in children if REPLICA_SEP not in c.name}  # the first replicas
    front: list[Child] = []
    for name in services:
        if name in HTTP_ONLY:
            front.append(start_service(name, info, port, console_env(info, urls, port)))
            children.append(front[-1])
    wait_ready(front)


def _extra(name: str, notifications_env: dict[str, str]) -> dict[str, str] | None:
    return notifications_env if service_of(name) == "notifications" else None


def supervise(children: list[Child], info: RunInfo, stop_requested: threading.Event) -> None:
    """Restart a child that exits, on its port and with its environment, until a stop is requested."""
    while not stop_requested.is_set():
        for child in children:
            if child.process.poll() is not None:
                console.print(f"[red]{child.name} exited ({child.process.returncode}); restarting[/]")
                port = int(child.url.rsplit(":", 1)[1])
                children[children.index(child)] = start_service(child.name, info, port, child.extra_env)
        stop_requested.wait(1.0)


def run_up(data_dir: Path, services: list[str], *, demo: bool, cluster: bool = False) -> int:
    ensure_directory(data_dir)
    stop_requested = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    console.print(f"[bold]kumkm up[/]: data in {data_dir.resolve()}")
    from kumkm_shared.natsauth import AuthDir

    nats_auth = AuthDir.init(data_dir / "nats-auth")
    port = console_port() if "console" in services else None
    with (
        obtain_servers(data_dir, nats_auth=nats_auth, cluster=cluster) as servers,
        identity_provider(data_dir, port) as signin,
    ):
        info = RunInfo(
            nats_url=servers.nats_url,
            database_url=servers.database_url,
            mode=str(servers.mode),
            pid=os.getpid(),
            auth_issuer=signin.issuer,
            auth_audience=signin.audience,
            auth_realm=str(signin.realm) if signin.realm else None,
            nats_auth_dir=str(nats_auth.root) if servers.mode == "embedded" else None,
        )
        console.print(f"servers ({info.mode}): NATS {info.nats_url}  Postgres {info.database_url}")
        if info.nats_auth_dir:
            console.print(f"NATS operator mode: auth directory {info.nats_auth_dir} (keys and creds, 0600)")
        embedded = "embedded" if signin.realm else "given"
        console.print(f"sign-in ({embedded}): OpenID issuer {signin.issuer}, audience {signin.audience}")
        clustered = servers.servers.nats_cluster is not None
        if clustered:
            console.print(
                f"cluster: 3 NATS nodes (streams at R{CLUSTER_STREAM_REPLICAS}), Postgres primary with a "
                f"synchronous standby, {CLUSTER_REPLICAS} replicas of each service"
            )
        stream_replicas = CLUSTER_STREAM_REPLICAS if clustered else 1
        console.print(f"provisioned: {provision_streams(info, stream_replicas)}")
        sink = _mail_sink(data_dir)
        extra_env = (
            {"KUMKM_NOTIFICATIONS_SMTP_HOST": "127.0.0.1", "KUMKM_NOTIFICATIONS_SMTP_PORT": str(sink.port)}
            if sink
            else {}
        )
        children: list[Child] = []
        try:
            start_all(
                children,
                info,
                services,
                extra_env,
                port or CONSOLE_PORT,
                replicas=CLUSTER_REPLICAS if clustered else 1,
            )
            info.services = {c.name: c.url for c in children}
            path = info.write(data_dir)
            console.print(f"[bold green]ready[/]: {path}")
            for child in children:
                docs = "" if child.name in HTTP_ONLY else f"  (docs {child.url}/docs)"
                console.print(f"  {child.name:>13}: {child.url}{docs}")
            if "console" in info.services:
                console.print(f"[bold]console[/]: {info.services['console']}  (sign in as a demo user below)")
            if signin.realm is not None:
                print_demo_users(signin.realm)
            if demo:
                from kumkm_shared.cli.demo import run_demo

                run_demo(info, console, data_dir)
            supervise(children, info, stop_requested)
        finally:
            console.print("stopping services...")
            stop_children(children)
            if sink is not None:
                sink.stop()
            (data_dir / "run.json").unlink(missing_ok=True)
            console.print("stopping servers...")
    console.print("[bold]stopped[/]")
    return 0
