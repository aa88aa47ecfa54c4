"""docker-compose.yml's services run as local processes, the way `docker compose up` would run them.

Each service runs its own compose `command` with its own compose `environment` and nothing else from the
test's environment (only PATH, so the console scripts of this virtualenv stand in for the image's, and
HOME). One-shots run to completion; long-running services run in their own process group, are polled with
their own compose healthcheck command, and are stopped with SIGTERM as `docker compose stop` does (SIGKILL
after the compose `stop_grace_period`). `running_services` kills whatever is left when it exits, so no test
leaves a process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from tests.support.compose_env import ComposeService

BIN = Path(sys.executable).parent
# docker-compose.yml: stop_grace_period of the long-running services.
STOP_GRACE_PERIOD = 30.0


class ServiceFailedError(AssertionError):
    """A compose service exited, or did not become healthy, when it should have."""


def process_env(service: ComposeService) -> dict[str, str]:
    """The compose environment alone (plus PATH and HOME): no KUMKM_* variable leaks in from the test."""
    base = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/")}
    return base | service.environment


def argv(service: ComposeService) -> list[str]:
    """The compose command, with the program found in this virtualenv (the image installs it on PATH)."""
    if not service.command:
        raise ServiceFailedError(f"{service.name}: no command in docker-compose.yml")
    program, *args = service.command
    path = BIN / program
    if not path.is_file():
        raise ServiceFailedError(f"{service.name}: {program!r} is not installed in {BIN}")
    return [str(path), *args]


def healthcheck_argv(service: ComposeService) -> list[str]:
    """The compose healthcheck test (exec form `CMD`), with `python` meaning this interpreter."""
    test = service.healthcheck
    if not test or test[0] not in {"CMD", "CMD-SHELL"}:
        raise ServiceFailedError(f"{service.name}: no CMD healthcheck in docker-compose.yml")
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    program, *args = test[1:]
    return [sys.executable if program in {"python", "python3"} else program, *args]


def run_one_shots(
    services: Iterable[ComposeService], *, timeout: float = 60.0
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run one-shot services side by side (compose starts them together) and wait for each to exit."""

    def run(service: ComposeService) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv(service),
            env=process_env(service),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    items = list(services)
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = {service.name: pool.submit(run, service) for service in items}
        return {name: future.result() for name, future in futures.items()}


class ServiceProcess:
    """One long-running compose service as a child process in its own process group."""

    def __init__(self, service: ComposeService, log: Path) -> None:
        self.service = service
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.service.environment['KUMKM_HTTP_PORT']}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv(self.service),
                env=process_env(self.service),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _require(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise ServiceFailedError(f"{self.name} was never started")
        return self.process

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def healthy(self) -> bool:
        """The compose healthcheck, run with the service's environment (as `docker exec` would)."""
        try:
            result = subprocess.run(
                healthcheck_argv(self.service),
                env=process_env(self.service),
                capture_output=True,
                check=False,
                timeout=3,  # the compose healthcheck timeout
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def check_running(self) -> None:
        code = self._require().poll()
        if code is not None:
            raise ServiceFailedError(f"{self.name} exited with code {code}; output:\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_GRACE_PERIOD) -> int | None:
        """SIGTERM, then wait up to the grace period; the exit code, or None when it had to be killed."""
        process = self._require()
        if process.poll() is not None:
            return process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the whole process group (nothing the service started survives it)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


@contextmanager
def running_services(
    services: Iterable[ComposeService], log_dir: Path
) -> Iterator[dict[str, ServiceProcess]]:
    """Start every service; on exit, SIGKILL the process group of any that the test did not stop."""
    started: dict[str, ServiceProcess] = {}
    try:
        for service in services:
            process = ServiceProcess(service, log_dir / f"{service.name}.log")
            started[service.name] = process
            process.start()
        yield started
    finally:
        for process in started.values():
            process.kill()


def wait_healthy(processes: Iterable[ServiceProcess], *, timeout: float = 60.0) -> None:
    """Poll each service's compose healthcheck until all pass; fail early if one exits."""
    pending = list(processes)
    deadline = time.monotonic() + timeout
    while pending:
        for process in list(pending):
            process.check_running()
            if process.healthy():
                pending.remove(process)
        if not pending:
            return
        if time.monotonic() > deadline:
            tails = "\n\n".join(f"--- {p.name}:\n{p.log_tail()}" for p in pending)
            raise ServiceFailedError(
                f"not healthy after {timeout:.0f}s: {[p.name for p in pending]}\n{tails}"
            )
        time.sleep(0.25)
