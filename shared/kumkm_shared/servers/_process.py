# Process plumbing shared by the embedded servers: ports, readiness polling, log tails, signals, and the
# life cycle (start, stop, kill, restart, `with`) every embedded server has.
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self, TypedDict, Unpack

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

LOCALHOST = "127.0.0.1"


class UserArgs(TypedDict, total=False):
    """The subprocess arguments that run a child as another user."""

    user: int | None
    group: int | None
    extra_groups: list[int] | None


class ServerStartError(RuntimeError):
    """An embedded server did not become ready; the message carries the tail of its log."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that nothing listens on right now (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until_ready(
    name: str,
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    timeout: float,
    log: Path,
) -> None:
    """Poll `ready` until true; fail early when the process dies, and with the log tail in both cases."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        code = process.poll()
        if code is not None:
            raise ServerStartError(f"{name} exited with code {code} during start; log tail:\n{log_tail(log)}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerStartError(f"{name} not ready after {timeout:.0f}s; log tail:\n{log_tail(log)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def terminate(process: subprocess.Popen[bytes], sig: signal.Signals, *, timeout: float) -> None:
    """Send `sig` to the process group (the server and its children), escalate to SIGKILL after timeout."""
    if process.poll() is not None:
        return
    _signal_group(process, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server and every child in its process group at once, as a crash would."""
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # Servers start in their own session, so the group id is the server's pid.
    with contextlib.suppress(ProcessLookupError):
        if sig is signal.SIGKILL:
            os.killpg(process.pid, sig)
        else:
            # A graceful signal goes to the server only: it shuts its children down in order.
            process.send_signal(sig)


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, parent gone and not yet reaped) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def kill_stale(
    pid_file: Path,
    *,
    executable_name: str,
    argument: str,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 10.0,
) -> None:
    """Stop a server left behind by a crashed parent (found through its pid file), so its data can be reused.

    The pid is only trusted when /proc says the process runs `executable_name` with `argument`
    (its config file or data folder): pids are reused.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return
    if Path(argv[0]).name != executable_name or argument not in argv:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class StoppedOnExit(ABC):
    """Something a `with` block stops when it ends (however it ends)."""

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedServer(StoppedOnExit):
    """A server run as a child process in its own session, its output appended to `log_path`.

    A subclass names its log file and its timeouts, says how it stops in order (`stop_signal`) and
    implements `_start`: spawn through `_spawn`, then wait until ready. A `with` block starts the server
    and stops it.
    """

    log_name: ClassVar[str]
    start_timeout: ClassVar[float]
    stop_timeout: ClassVar[float]
    stop_signal: ClassVar[signal.Signals]

    data_dir: Path
    _process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    def start(self, timeout: float | None = None) -> None:
        """Start the server (unless it runs) and wait until it is ready, `start_timeout` at most."""
        if not self.running:
            self._start(self.start_timeout if timeout is None else timeout)

    @abstractmethod
    def _start(self, timeout: float) -> None: ...

    def _spawn(self, args: Sequence[str], **user: Unpack[UserArgs]) -> subprocess.Popen[bytes]:
        """Start `args` in a session of its own in `data_dir`, its output appended to the log (as `user`,
        when given)."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - the server's own binary and arguments
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                **user,
            )
        return self._process

    def stop(self, timeout: float | None = None) -> None:
        """Send `stop_signal` (the server's own orderly shutdown), SIGKILL after `timeout`."""
        if self._process is not None:
            terminate(
                self._process, self.stop_signal, timeout=self.stop_timeout if timeout is None else timeout
            )
            self._process = None
        self._stopped()

    def kill(self) -> None:
        """SIGKILL the server and its children at once, like a crash (for fault tests)."""
        if self._process is not None:
            kill_group(self._process)
            self._process = None
        self._stopped()

    def _stopped(self) -> None:
        """What else to clean up once the process is gone (nothing by default)."""

    def restart(self, timeout: float | None = None) -> None:
        """Stop if running, then start on the same ports with the same data."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self
