# Process plumbing shared by the embedded servers: ports, readiness polling, log tails, signals.
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

LOCALHOST = "127.0.0.1"


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
