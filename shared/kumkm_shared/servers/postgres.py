# A PostgreSQL server run as a child process, for `kumkm up` and for tests.
from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from kumkm_shared.servers._process import (
    LOCALHOST,
    EmbeddedServer,
    ServerStartError,
    UserArgs,
    free_port,
    kill_stale,
    log_tail,
    wait_until_ready,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
SUPERUSER = "postgres"
# Postgres refuses to run as root. pgserver's wheel uses this account for the same reason; share it.
SYSTEM_USER = "pgserver"


class InitScriptError(RuntimeError):
    """An init script failed; the freshly initialised cluster was removed so the next start retries."""


def postgres_bin_dir() -> Path:
    """The Postgres binaries: pgserver's wheel, else the newest Debian/Ubuntu installation."""
    # find_spec locates the wheel without importing pgserver (whose import has side effects).
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "pginstall" / "bin"
        if (candidate / "postgres").is_file():
            return candidate
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    raise FileNotFoundError("no Postgres binaries: install the pgserver wheel or a PostgreSQL package")


def _system_user() -> pwd.struct_passwd | None:
    """The account to run Postgres as: None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(  # noqa: S603
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _open_path(path: Path) -> None:
    """Let other users traverse `path` and each of its parents."""
    rx = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & rx != rx:
            folder.chmod(mode | rx)


def _open_tree(path: Path) -> None:
    """Let other users read everything under `path` and run its executables (as pgserver does)."""
    _open_path(path)
    for item in path.rglob("*"):
        mode = item.stat().st_mode
        wanted = mode | stat.S_IRGRP | stat.S_IROTH
        if item.is_dir() or mode & stat.S_IXUSR:
            wanted |= stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            item.chmod(wanted)


class EmbeddedPostgres(EmbeddedServer):
    """Postgres on a free local port, its cluster in `data_dir/pgdata`, trust authentication.

    The cluster is created once and kept across restarts. On that first creation only, `init_scripts`
    runs like the official image's /docker-entrypoint-initdb.d: `*.sql` with psql as the superuser and
    `*.sh` with bash, in name order. `fsync=False` trades durability for speed (tests only).

    As root, Postgres runs as the system user "pgserver", which must be able to traverse every parent
    of `data_dir` whenever the server starts (we open them up). pytest resets /tmp/pytest-of-root to
    0700 whenever a session starts, so keep data out of pytest's tmp_path (see `server_data_dir`).

    `stop` is a fast shutdown (SIGINT: roll back open transactions, checkpoint); `kill` takes down the
    postmaster and its backends at once, like a crash, and the next start runs recovery.
    """

    log_name = "postgres.log"
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    stop_signal = signal.SIGINT

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        init_scripts: Path | None = None,
        fsync: bool = True,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port or free_port()
        self.init_scripts = init_scripts.resolve() if init_scripts is not None else None
        self.fsync = fsync
        self.bin_dir = postgres_bin_dir()
        self._socket_dir: Path | None = None
        if os.geteuid() == 0 and any(
            parent.name.startswith("pytest-of-") for parent in self.data_dir.parents
        ):
            warnings.warn(
                f"{self.data_dir} is under pytest's temporary folder, which pytest closes to other users "
                "whenever a session starts; Postgres (run as another user) would then crash. "
                "Use the server_data_dir fixture instead of tmp_path.",
                RuntimeWarning,
                stacklevel=2,
            )

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path | None:
        return self._socket_dir

    @property
    def dsn(self) -> str:
        return self.dsn_for(SUPERUSER)

    def dsn_for(self, user: str, password: str | None = None, database: str = "postgres") -> str:
        credentials = quote(user, safe="")
        if password is not None:
            credentials += ":" + quote(password, safe="")
        return f"postgresql://{credentials}@{LOCALHOST}:{self.port}/{quote(database, safe='')}"

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def _start(self, timeout: float) -> None:
        user = _system_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _open_tree(self.bin_dir.parent)
            _open_path(self.data_dir)
        kill_stale(
            self.pgdata / "postmaster.pid",
            executable_name="postgres",
            argument=str(self.pgdata),
            sig=signal.SIGINT,
        )
        fresh = not self.initialized
        if fresh:
            self._initdb(user)
        self._socket_dir = self._make_socket_dir(user)
        process = self._spawn(self._postgres_args(), **_as_user(user))
        try:
            wait_until_ready("postgres", process, self._accepting, timeout=timeout, log=self.log_path)
            if fresh and self.init_scripts is not None:
                self._run_init_scripts(self.init_scripts)
        except BaseException:
            self.kill()
            if fresh:
                # Never leave a half-initialised cluster: the next start would skip the init scripts.
                shutil.rmtree(self.pgdata, ignore_errors=True)
            raise

    def empty_pgdata(self, user: pwd.struct_passwd | None) -> None:
        """``pgdata`` removed and made again: empty, 0700, owned by ``user`` (who Postgres runs as)."""
        shutil.rmtree(self.pgdata, ignore_errors=True)
        self.pgdata.mkdir(mode=0o700)
        if user is not None:
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        self.empty_pgdata(user)
        args = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        if not self.fsync:
            args.append("--no-sync")
        code = self._run_logged(args, user=user)
        if code != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise ServerStartError(f"initdb failed with code {code}; log tail:\n{log_tail(self.log_path)}")

    def _make_socket_dir(self, user: pwd.struct_passwd | None) -> Path:
        # Short (socket paths are limited to 107 bytes) and always reachable by the Postgres user.
        socket_dir = Path(tempfile.mkdtemp(prefix="kumkm-pg-"))
        if user is not None:
            os.chown(socket_dir, user.pw_uid, user.pw_gid)
        return socket_dir

    def _postgres_args(self) -> list[str]:
        fsync = "on" if self.fsync else "off"
        args = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-h",
            LOCALHOST,
            "-k",
            str(self._socket_dir),
            "-c",
            "max_connections=200",
            "-c",
            f"fsync={fsync}",
        ]
        if not self.fsync:
            # synchronous_commit stays on: a commit still reaches the OS before it is acknowledged, so
            # killing the server (fault tests) loses nothing; only an OS crash could.
            args += ["-c", "full_page_writes=off"]
        return args

    def _accepting(self) -> bool:
        result = subprocess.run(  # noqa: S603
            [str(self.bin_dir / "pg_isready"), "-q", "-h", LOCALHOST, "-p", str(self.port), "-U", SUPERUSER],
            check=False,
            capture_output=True,
        )
        return result.returncode == 0

    def script_environment(self) -> dict[str, str]:
        """What init scripts see: our environment (passwords come from it) plus libpq and image variables."""
        env = dict(os.environ)
        env.update(
            PGHOST=LOCALHOST,
            PGPORT=str(self.port),
            PGUSER=SUPERUSER,
            PGDATABASE="postgres",
            POSTGRES_USER=SUPERUSER,
            POSTGRES_DB="postgres",
            PATH=f"{self.bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}",
        )
        return env

    def psql(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """Run psql as the superuser against this server; returns stdout, raises on failure."""
        result = subprocess.run(  # noqa: S603
            [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.dsn, *args],
            check=False,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else self.script_environment(),
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
        return result.stdout

    def _run_init_scripts(self, folder: Path) -> None:
        env = self.script_environment()
        for script in sorted(folder.iterdir()):
            if script.suffix == ".sql":
                command = [
                    str(self.bin_dir / "psql"),
                    "-X",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    self.dsn,
                    "-f",
                    str(script),
                ]
            elif script.suffix == ".sh":
                command = ["bash", str(script)]
            else:
                continue
            code = self._run_logged(command, note=f"kumkm: running init script {script}", env=env, cwd=folder)
            if code != 0:
                tail = log_tail(self.log_path)
                raise InitScriptError(f"init script {script} failed with code {code}; log tail:\n{tail}")

    def _run_logged(
        self,
        command: list[str],
        *,
        note: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: pwd.struct_passwd | None = None,
    ) -> int:
        """Run `command` to its end, its output appended to the log (after `note`); its exit code."""
        with self.log_path.open("ab") as log:
            if note is not None:
                log.write(f"{note}\n".encode())
                log.flush()
            return subprocess.run(  # noqa: S603
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                check=False,
                **_as_user(user),
            ).returncode

    def _stopped(self) -> None:
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._socket_dir = None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(dsn={self.dsn!r}, data_dir={str(self.data_dir)!r}, running={self.running})"


def _as_user(user: pwd.struct_passwd | None) -> UserArgs:
    """subprocess arguments that drop root for Postgres (which refuses to run as root)."""
    if user is None:
        return {"user": None, "group": None, "extra_groups": None}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
