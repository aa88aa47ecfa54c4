"""``kumkm up``: servers, streams, migrations and the services as child processes, with prefixed logs."""

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
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from kumkm_shared.cli.files import ensure_directory
from kumkm_shared.cli.runinfo import RunInfo
from kumkm_shared.servers import free_port, obtain_servers
from kumkm_shared.servers.mail import MailSink

if TYPE_CHECKING:
    from pathlib import Path

ALL_SERVICES = ("loans", "catalog", "notifications")
COLOURS = {"loans": "cyan", "catalog": "magenta", "notifications": "green"}
console = Console(stderr=True, highlight=False)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    url: str


def _pump(name: str, stream: IO[bytes]) -> None:  # runs in a thread per child
    colour = COLOURS.get(name, "white")
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        # The child's text is never parsed as markup: its log lines contain brackets.
        console.print(Text.assemble((f"{name:>13} | ", colour), line), soft_wrap=True, highlight=False)


def service_env(info: RunInfo, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KUMKM_NATS_URL": info.nats_url,
            "KUMKM_DATABASE_URL": info.database_url,
            "KUMKM_HTTP_HOST": "127.0.0.1",
            "KUMKM_HTTP_PORT": str(port),
            "KUMKM_LOG_FORMAT": env.get("KUMKM_LOG_FORMAT", "console"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def start_service(
    name: str, info: RunInfo, port: int | None = None, extra_env: dict[str, str] | None = None
) -> Child:
    port = port or free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", f"kumkm_{name}", "serve"],
        env=service_env(info, port, extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
    )
    if process.stdout is None:  # pragma: no cover - stdout=PIPE always gives a stream
        raise RuntimeError("child has no stdout")
    threading.Thread(target=_pump, args=(name, process.stdout), daemon=True).start()
    return Child(name, process, f"http://127.0.0.1:{port}")


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
                urllib.request.urlopen(f"{child.url}/health/ready", timeout=1) as r,  # noqa: S310 - our http URL
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


def run_up(data_dir: Path, services: list[str], *, demo: bool) -> int:
    ensure_directory(data_dir)
    stop_requested = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    console.print(f"[bold]kumkm up[/]: data in {data_dir.resolve()}")
    with obtain_servers(data_dir) as servers:
        info = RunInfo(
            nats_url=servers.nats_url,
            database_url=servers.database_url,
            mode=str(servers.mode),
            pid=os.getpid(),
        )
        console.print(f"servers ({info.mode}): NATS {info.nats_url}  Postgres {info.database_url}")
        console.print(f"provisioned: {provision_streams(info)}")
        sink = _mail_sink(data_dir)
        extra_env = (
            {"KUMKM_NOTIFICATIONS_SMTP_HOST": "127.0.0.1", "KUMKM_NOTIFICATIONS_SMTP_PORT": str(sink.port)}
            if sink
            else {}
        )
        children: list[Child] = []
        try:
            children.extend(
                start_service(name, info, extra_env=extra_env if name == "notifications" else None)
                for name in services
            )
            wait_ready(children)
            info.services = {c.name: c.url for c in children}
            path = info.write(data_dir)
            console.print(f"[bold green]ready[/]: {path}")
            for child in children:
                console.print(f"  {child.name:>13}: {child.url}  (docs {child.url}/docs)")
            if demo:
                from kumkm_shared.cli.demo import run_demo

                run_demo(info, console)
            while not stop_requested.is_set():
                for child in children:
                    if child.process.poll() is not None:
                        console.print(f"[red]{child.name} exited ({child.process.returncode}); restarting[/]")
                        port = int(child.url.rsplit(":", 1)[1])
                        env = extra_env if child.name == "notifications" else None
                        children[children.index(child)] = start_service(child.name, info, port, env)
                stop_requested.wait(1.0)
        finally:
            console.print("stopping services...")
            stop_children(children)
            if sink is not None:
                sink.stop()
            (data_dir / "run.json").unlink(missing_ok=True)
            console.print("stopping servers...")
    console.print("[bold]stopped[/]")
    return 0
