# A Postgres primary and a streaming standby run as child processes: failover, promotion and rejoin, for
# tests and for `kumkm up` on a cluster.
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any, Literal, Self

from kumkm_shared.servers._process import (
    LOCALHOST,
    StoppedOnExit,
    free_port,
    log_tail,
    port_accepts,
)
from kumkm_shared.servers.postgres import (
    SUPERUSER,
    EmbeddedPostgres,
    _open_path,
    _open_tree,
    _system_user,
)

if TYPE_CHECKING:
    from pathlib import Path

RejoinMethod = Literal["rewind", "basebackup"]

NODE_NAMES = ("pg_a", "pg_b")
STATE_FILE = "pair.json"
# WAL the primary keeps for a standby that is down or catching up (and for a rewound node's replay).
# No replication slot: a slot left behind by a dead standby would keep WAL on the primary without bound.
WAL_KEEP_SIZE = "256MB"
WAIT_TIMEOUT = 30.0
REPLICATION_SETTINGS = (
    "wal_level=replica",
    "wal_log_hints=on",  # pg_rewind needs it (or data checksums)
    "full_page_writes=on",  # pg_rewind and base backups need it, even without fsync
    "max_wal_senders=10",
    f"wal_keep_size={WAL_KEEP_SIZE}",
    "hot_standby=on",
    "wal_receiver_status_interval=1s",
    "wal_retrieve_retry_interval=1s",  # a standby whose primary died asks again soon (default 5 s)
)
CONF_BEGIN = "# kumkm: the command line's settings (EmbeddedPostgresPair), rewritten at each start"
CONF_END = "# kumkm: end"


class ReplicationError(RuntimeError):
    """A standby did not stream, a promotion did not finish, or a rejoin failed; carries the log tail."""


class PostgresNode(EmbeddedPostgres):
    """One member of an `EmbeddedPostgresPair`: an `EmbeddedPostgres` set up for streaming replication.

    `name` is its `application_name` on the primary (what `synchronous_standby_names` names) and its
    `cluster_name`. While `upstream` holds the primary's port, the node starts as a standby of it
    (standby.signal and `primary_conninfo`); `None` makes it a primary.
    """

    def __init__(self, data_dir: Path, *, name: str, port: int, fsync: bool = True) -> None:
        super().__init__(data_dir, port=port, fsync=fsync)
        self.name = name
        self.upstream: int | None = None

    @property
    def standby_signal(self) -> Path:
        return self.pgdata / "standby.signal"

    def primary_conninfo(self) -> str | None:
        if self.upstream is None:
            return None
        return f"host={LOCALHOST} port={self.upstream} user={SUPERUSER} application_name={self.name}"

    def _postgres_args(self) -> list[str]:
        args = super()._postgres_args()
        for setting in REPLICATION_SETTINGS:
            args += ["-c", setting]
        args += ["-c", f"cluster_name={self.name}"]
        conninfo = self.primary_conninfo()
        if conninfo is not None:
            # On the command line, not in postgresql.auto.conf: copies of a cluster (pg_basebackup,
            # pg_rewind) carry that file, and a promoted node then simply ignores this setting.
            args += ["-c", f"primary_conninfo={conninfo}"]
        return args

    def _start(self, timeout: float) -> None:
        if self.initialized:
            self.ensure_replication_conf()
            if self.upstream is not None and not self.standby_signal.exists():
                self.write_standby_signal()
        super()._start(timeout)

    def ensure_replication_conf(self) -> None:
        """The command line's settings in postgresql.conf too (a block rewritten each time): pg_rewind's own
        crash recovery of the target (a single-user postgres) reads only the file, and would otherwise
        record wal_log_hints=off in the control file and refuse to rewind; and a reload (which turns
        synchronous replication on and off) finds no file value that contradicts the running server."""
        conf = self.pgdata / "postgresql.conf"
        text = conf.read_text()
        if CONF_BEGIN in text and CONF_END in text:
            head, rest = text.split(CONF_BEGIN, 1)
            text = head.rstrip("\n") + "\n" + rest.split(CONF_END, 1)[1].lstrip("\n")
        args = self._postgres_args()
        settings = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-c"]
        lines = [
            f"{key} = '{value.replace(chr(39), chr(39) * 2)}'"
            for key, value in (setting.split("=", 1) for setting in settings)
            if key != "primary_conninfo"
        ]
        conf.write_text(text.rstrip("\n") + "\n\n" + "\n".join([CONF_BEGIN, *lines, CONF_END]) + "\n")

    def write_standby_signal(self) -> None:
        self.standby_signal.write_bytes(b"")
        user = _system_user()
        if user is not None:
            os.chown(self.standby_signal, user.pw_uid, user.pw_gid)

    def query(self, sql: str) -> str:
        """One value (or rows, `|`-separated) of `sql`, through psql; raises on failure."""
        return self.psql("-A", "-t", "-c", sql).strip()

    def in_recovery(self) -> bool:
        return self.query("SELECT pg_is_in_recovery()") == "t"

    def run_tool(self, args: list[str], note: str) -> int:
        """Run a Postgres tool as the user that owns the cluster, its output appended to the log."""
        return self._run_logged(args, note=note, user=_system_user(), cwd=self.data_dir)

    def __repr__(self) -> str:
        role = "standby" if self.upstream is not None else "primary"
        return f"PostgresNode(name={self.name!r}, port={self.port}, role={role}, running={self.running})"


class EmbeddedPostgresPair(StoppedOnExit):
    """A primary and a streaming standby from the bundled binaries, nodes in `data_dir/pg-a` and `pg-b`.

    `start` creates the primary (initdb) and the standby (`pg_basebackup` from the running primary),
    or starts both again on their data; each node keeps its port across restarts and role changes (the
    ports and the current primary are kept in `data_dir/pair.json`). With `synchronous=True`, the primary
    names the standby in `synchronous_standby_names` (`synchronous_commit=on`): a commit is acknowledged
    only once the standby has flushed it, so a failover loses nothing acknowledged.

    Reach it through `dsn`: both nodes and `target_session_attrs=read-write`, so a client connects to
    whichever node accepts writes. `kill_primary` crashes the primary, `promote` makes the standby the
    primary, `rejoin_old_primary` brings the dead node back as the new primary's standby (pg_rewind,
    else a fresh base backup) and turns synchronous replication back on.

    Trade-off: a promoted node has no standby, so `promote` clears its `synchronous_standby_names`
    (commits would otherwise wait forever): between promotion and rejoin, an acknowledged commit lives on
    one node only. Availability is chosen over durability for that window, as CloudNativePG's
    `dataDurability: preferred` does.
    """

    def __init__(self, data_dir: Path, *, fsync: bool = True, synchronous: bool = True) -> None:
        self.data_dir = data_dir.absolute()
        self.fsync = fsync
        self.synchronous = synchronous
        state = self._load_state()
        ports: dict[str, int] = state.get("ports", {})
        first, second = (
            PostgresNode(
                self.data_dir / name.replace("_", "-"),
                name=name,
                port=_reusable(ports.get(name)) or free_port(),
                fsync=fsync,
            )
            for name in NODE_NAMES
        )
        self.nodes: tuple[PostgresNode, PostgresNode] = (first, second)
        primary_name = state.get("primary", NODE_NAMES[0])
        self._primary = 1 if primary_name == NODE_NAMES[1] else 0
        self.standby.upstream = self.primary.port
        self.primary.upstream = None

    # -- state ------------------------------------------------------------------------------------------
    @property
    def _state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    def _load_state(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self._state_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _save_state(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        state = {"primary": self.primary.name, "ports": {node.name: node.port for node in self.nodes}}
        self._state_path.write_text(json.dumps(state, indent=2) + "\n")

    @property
    def primary(self) -> PostgresNode:
        return self.nodes[self._primary]

    @property
    def standby(self) -> PostgresNode:
        return self.nodes[1 - self._primary]

    @property
    def dsn(self) -> str:
        """Both nodes, in a fixed order; libpq and asyncpg pick the one that accepts writes."""
        hosts = ",".join(f"{LOCALHOST}:{node.port}" for node in self.nodes)
        return f"postgresql://{SUPERUSER}@{hosts}/postgres?target_session_attrs=read-write"

    @property
    def running(self) -> bool:
        return self.primary.running

    # -- life cycle -------------------------------------------------------------------------------------
    def start(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Start the primary (creating it on first use), then its standby (a base backup on first use);
        returns once the standby streams (synchronously, when `synchronous`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._save_state()
        primary, standby = self.primary, self.standby
        primary.start(timeout)
        primary.ensure_replication_conf()  # a fresh cluster: its base backups carry the file
        if primary.in_recovery():
            raise ReplicationError(f"{primary.name} was recorded as the primary but is a standby")
        if not standby.initialized:
            self._base_backup(standby, primary)
        elif not standby.standby_signal.exists():
            # Left as a second primary (a promotion whose rejoin never ran): bring it back in line.
            self._rewind_or_copy(standby, primary)
        standby.start(timeout)
        self._wait_streaming(timeout, synchronous=False)
        self._set_synchronous_standby(standby if self.synchronous else None)
        self.wait_streaming(timeout)

    def stop(self) -> None:
        """The primary first (a fast shutdown sends its last WAL to the standby), then the standby."""
        self.primary.stop()
        self.standby.stop()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()  # `with` calls no __exit__ when __enter__ fails: leave nothing running
            raise
        return self

    # -- replication ------------------------------------------------------------------------------------
    def wait_streaming(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Return once the primary's pg_stat_replication shows the standby 'streaming' (and 'sync', when
        synchronous replication is on)."""
        self._wait_streaming(timeout, synchronous=self.synchronous)

    def replication_state(self) -> tuple[str, str] | None:
        """(state, sync_state) of the standby in the primary's pg_stat_replication, None when absent."""
        row = self.primary.query(
            "SELECT state || '|' || sync_state FROM pg_stat_replication "
            f"WHERE application_name = '{self.standby.name}'"
        )
        if not row:
            return None
        state, sync_state = row.splitlines()[0].split("|")
        return state, sync_state

    def _wait_streaming(self, timeout: float, *, synchronous: bool) -> None:
        deadline = time.monotonic() + timeout
        seen: tuple[str, str] | None = None
        while True:
            try:
                seen = self.replication_state()
            except subprocess.CalledProcessError:
                seen = None
            if seen is not None and seen[0] == "streaming" and (not synchronous or seen[1] == "sync"):
                return
            if not self.standby.running:
                raise ReplicationError(
                    f"standby {self.standby.name} is not running; log tail:\n{self._tail()}"
                )
            if time.monotonic() > deadline:
                raise ReplicationError(
                    f"standby {self.standby.name} not streaming after {timeout:.0f}s (saw {seen}); "
                    f"log tail:\n{self._tail()}"
                )
            time.sleep(0.05)

    def _set_synchronous_standby(self, standby: PostgresNode | None) -> None:
        """Make commits on the primary wait for `standby` (synchronous_commit=on), or for nobody (None)."""
        names = f'"{standby.name}"' if standby is not None else ""
        self.primary.query(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
        self.primary.query("ALTER SYSTEM SET synchronous_commit = 'on'")
        self.primary.query("SELECT pg_reload_conf()")

    def _tail(self) -> str:
        return "\n".join(f"--- {node.name}:\n{log_tail(node.log_path, 15)}" for node in self.nodes)

    # -- failover ---------------------------------------------------------------------------------------
    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster and backends at once, like a crash."""
        self.primary.kill()

    def promote(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Promote the standby and return once it accepts writes; it is then `primary`.

        Before promoting, its `synchronous_standby_names` is cleared (it has no standby of its own yet,
        and commits would hang): until `rejoin_old_primary`, commits are acknowledged by one node only.
        """
        node = self.standby
        if not node.running:
            raise ReplicationError(f"standby {node.name} is not running")
        node.query("ALTER SYSTEM SET synchronous_standby_names = ''")
        node.query("SELECT pg_reload_conf()")
        node.query("SELECT pg_promote(wait => false)")  # its own wait polls every 100 ms; ours is finer
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Fails in recovery ("cannot assign transaction IDs during recovery").
                node.query("SELECT pg_current_xact_id()")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise ReplicationError(
                        f"{node.name} does not accept writes {timeout:.0f}s after promotion; "
                        f"log tail:\n{self._tail()}"
                    ) from None
                time.sleep(0.01)
        self._primary = self.nodes.index(node)
        node.upstream = None
        # The dead node will follow the new primary once it rejoins.
        self.standby.upstream = node.port
        self._save_state()

    def failover(self, timeout: float = WAIT_TIMEOUT) -> None:
        """`kill_primary`, then `promote`."""
        self.kill_primary()
        self.promote(timeout)

    def rejoin_old_primary(
        self, timeout: float = WAIT_TIMEOUT, *, force_basebackup: bool = False
    ) -> RejoinMethod:
        """Bring the old primary back as a standby of the new one and turn synchronous replication on
        again; returns how its data was brought in line: "rewind" (pg_rewind) or "basebackup" (a fresh
        copy, when rewind fails or `force_basebackup`)."""
        old, new = self.standby, self.primary
        if old.running:
            old.stop()
        method = self._rewind_or_copy(old, new, force_basebackup=force_basebackup)
        old.upstream = new.port
        old.start(timeout)
        self._wait_streaming(timeout, synchronous=False)
        self._set_synchronous_standby(old if self.synchronous else None)
        self.wait_streaming(timeout)
        return method

    def _rewind_or_copy(
        self, target: PostgresNode, source: PostgresNode, *, force_basebackup: bool = False
    ) -> RejoinMethod:
        if not force_basebackup and target.initialized:
            target.ensure_replication_conf()
            # A source promoted moments ago: its control file shows the new timeline only after a
            # checkpoint, and pg_rewind reads the timeline from there.
            source.query("CHECKPOINT")
            code = target.run_tool(
                [
                    str(target.bin_dir / "pg_rewind"),
                    f"--target-pgdata={target.pgdata}",
                    f"--source-server=host={LOCALHOST} port={source.port} user={SUPERUSER} dbname=postgres",
                    "--progress",
                    *([] if self.fsync else ["--no-sync"]),
                ],
                note=f"kumkm: pg_rewind from {source.name}",
            )
            if code == 0:
                target.upstream = source.port
                target.write_standby_signal()
                return "rewind"
        self._base_backup(target, source)
        return "basebackup"

    def _base_backup(self, target: PostgresNode, source: PostgresNode) -> None:
        """A fresh copy of the running `source` into `target` (whose old data is removed), as its standby."""
        user = _system_user()
        target.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _open_tree(target.bin_dir.parent)
            _open_path(target.data_dir)
        target.empty_pgdata(user)
        args = [
            str(target.bin_dir / "pg_basebackup"),
            "-D",
            str(target.pgdata),
            "-d",
            f"host={LOCALHOST} port={source.port} user={SUPERUSER} application_name={target.name}",
            "-X",
            "stream",
            "--checkpoint=fast",
        ]
        if not self.fsync:
            args.append("--no-sync")
        code = target.run_tool(args, note=f"kumkm: pg_basebackup from {source.name}")
        if code != 0:
            shutil.rmtree(target.pgdata, ignore_errors=True)
            raise ReplicationError(f"pg_basebackup failed with code {code}; log tail:\n{self._tail()}")
        target.upstream = source.port
        target.write_standby_signal()

    def __repr__(self) -> str:
        return f"EmbeddedPostgresPair(dsn={self.dsn!r}, primary={self.primary!r}, standby={self.standby!r})"


def _reusable(port: int | None) -> int | None:
    """A port recorded for a node, when nothing else listens on it now."""
    if port is None or port_accepts(port):
        return None
    return port
