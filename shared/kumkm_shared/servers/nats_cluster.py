# A cluster of nats-servers with JetStream on loopback, for tests and a local R3 setup.
from __future__ import annotations

import contextlib
import json
import time
import urllib.error
from typing import TYPE_CHECKING, Any, Self

from kumkm_shared.servers._process import (
    LOCALHOST,
    ServerStartError,
    StoppedOnExit,
    free_port,
    log_tail,
    port_accepts,
)
from kumkm_shared.servers.nats import ClusterBlock, EmbeddedNats

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from kumkm_shared.natsauth import AuthDir

CLUSTER_NAME = "kumkm"
START_TIMEOUT = 60.0
LEADER_TIMEOUT = 30.0
_PORTS_FILE = "cluster.json"


class ClusterError(ServerStartError):
    """The cluster did not reach the state waited for; the message says which and carries the logs' tails."""


def _wait(what: str, check: Callable[[], bool], timeout: float, tails: Callable[[], str]) -> float:
    """Poll ``check`` until true; the seconds it took. Monitoring errors while nodes come and go count as
    "not yet"."""
    started = time.monotonic()
    deadline = started + timeout
    delay = 0.02
    while True:
        with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
            if check():
                return time.monotonic() - started
        if time.monotonic() > deadline:
            raise ClusterError(f"{what}: not reached after {timeout:.0f}s\n{tails()}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class EmbeddedNatsCluster(StoppedOnExit):
    """``size`` nats-servers (``EmbeddedNats``) forming one JetStream cluster on free loopback ports.

    Node ``i`` (0-based, ``nodes[i]``) is ``server_name`` ``n<i+1>`` in ``data_dir/n<i+1>``, with a
    `cluster { name, listen, routes }` block naming every other node's route port, and JetStream with
    `sync_interval: always`. Each node keeps its client, route and monitoring ports across restarts (and
    across instances on the same ``data_dir`` while they are free: ``cluster.json``) and its store.

    With ``auth`` every node runs in operator mode from the same auth directory (its `server/auth.conf`: the
    operator, the system account, the preloaded account JWTs; a `full` resolver per node, whose JWTs the
    nodes exchange through the system account), so the same creds work on any node. Routes carry no auth:
    they listen on loopback only.

    Everything the cluster reports comes from the monitoring endpoints (`/healthz`, `/jsz`), which need no
    credentials. A fresh cluster elects its meta leader only once all its nodes are up (a quorum of peers
    it has never seen is not assumed), so ``start`` starts every node, then waits.
    """

    def __init__(
        self, data_dir: Path, *, size: int = 3, auth: AuthDir | None = None, name: str = CLUSTER_NAME
    ) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one node")
        self.data_dir = data_dir.absolute()
        self.size = size
        self.auth = auth
        self.name = name
        ports = self._ports()
        self.route_ports = [p["route"] for p in ports]
        self.nodes = [
            EmbeddedNats(
                self.data_dir / f"n{i + 1}",
                port=ports[i]["client"],
                monitor_port=ports[i]["monitor"],
                auth=auth,
                server_name=f"n{i + 1}",
                cluster=self._block(i),
            )
            for i in range(size)
        ]
        self.partitioned: set[int] = set()

    # -- ports and config ---------------------------------------------------------------------------
    def _ports(self) -> list[dict[str, int]]:
        path = self.data_dir / _PORTS_FILE
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved: list[dict[str, int]] = json.loads(path.read_text())["nodes"]
            if len(saved) == self.size and not any(port_accepts(port) for p in saved for port in p.values()):
                return saved
        ports: list[dict[str, int]] = []
        taken: set[int] = set()
        for _ in range(self.size):
            node: dict[str, int] = {}
            for kind in ("client", "route", "monitor"):
                port = free_port()
                while port in taken:
                    port = free_port()
                taken.add(port)
                node[kind] = port
            ports.append(node)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"nodes": ports}, indent=2) + "\n")
        return ports

    def _block(self, i: int) -> ClusterBlock:
        routes = tuple(
            f"nats-route://{LOCALHOST}:{port}" for j, port in enumerate(self.route_ports) if j != i
        )
        return ClusterBlock(name=self.name, port=self.route_ports[i], routes=routes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (``KUMKM_NATS_URL``). nats-py's ``connect`` and FastStream
        want a list: split it on commas (``InfraSettings.nats_servers`` does), or use ``urls``."""
        return ",".join(self.urls)

    def node_index(self, server_name: str) -> int:
        for i, node in enumerate(self.nodes):
            if node.server_name == server_name:
                return i
        raise KeyError(f"no node named {server_name!r} in this cluster")

    def _tails(self) -> str:
        return "\n".join(
            f"--- {node.server_name} log tail:\n{log_tail(node.log_path, 15)}" for node in self.nodes
        )

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> float:
        """Start every node that is not running, then wait until each answers a plain `/healthz` 200, a
        meta leader exists and every stream the nodes hold has a leader (a cluster restarted on its stores
        answers `/healthz` before). Returns the seconds it took."""
        started = time.monotonic()
        try:
            for node in self.nodes:
                node.start(timeout)
            remaining = max(1.0, timeout - (time.monotonic() - started))
            _wait("every node healthy with a meta leader", self._formed, remaining, self._tails)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def _formed(self) -> bool:
        if not all(node.healthy() for node in self.nodes) or self._meta_leader_name() is None:
            return False
        # A cluster restarted on its stores is healthy before its streams have elected their leaders.
        for name in {stream["name"] for i in range(self.size) for stream in self._streams(i)}:
            try:
                self.stream_leader(name)
            except LookupError:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i`` (and nothing else), like a crash."""
        self.nodes[i].kill()

    def stop_node(self, i: int) -> None:
        self.nodes[i].stop()

    def start_node(self, i: int, timeout: float = START_TIMEOUT) -> float:
        """Start node ``i`` again on its ports and store, and wait until it is healthy (plain `/healthz`: a
        meta leader known, its streams and consumers current) and every stream replica it holds is current
        by its leader's account. Returns the seconds it took."""
        started = time.monotonic()
        self.nodes[i].start(timeout)
        remaining = max(1.0, timeout - (time.monotonic() - started))
        _wait(f"node {i} caught up", lambda: self.caught_up(i), remaining, self._tails)
        return time.monotonic() - started

    def caught_up(self, i: int) -> bool:
        """Node ``i`` is healthy and, for every stream it holds a replica of, the stream's leader counts that
        replica current."""
        node = self.nodes[i]
        if not node.healthy():
            return False
        for stream in self._streams(i):
            cluster = stream.get("cluster") or {}
            leader = cluster.get("leader")
            if not leader:
                return False
            if leader == node.server_name:
                continue
            seen = self._stream_view(self.node_index(leader), stream["name"], stream["account"])
            replicas = (seen or {}).get("cluster", {}).get("replicas") or []
            mine = [r for r in replicas if r.get("name") == node.server_name]
            if not mine or not mine[0].get("current"):
                return False
        return True

    # -- partition ----------------------------------------------------------------------------------
    def partition(self, i: int, timeout: float = START_TIMEOUT) -> None:
        """Cut node ``i`` off the others: it is killed and restarted (on its store and client port) with its
        route listener on another port and a route to itself only, so it reaches no peer and no peer
        reaches it.

        nats-server has no "drop routes" control, and a firewall rule on loopback (iptables, needs root and
        the tool) would cut every process on the host that uses the port, so the isolated node is a
        restarted one: its clients reconnect (to it or elsewhere), its in-memory
        state is gone; what it wrote stays in its store. It runs without a meta leader (its `/healthz` is not
        200) and accepts no JetStream writes, the minority side of a partition.
        """
        node = self.nodes[i]
        node.kill()  # no leader step-down, no goodbye to its peers: as a cut cable
        # JetStream refuses a cluster without routes: the one route is to itself, which the server ignores.
        port = free_port()
        node.cluster = ClusterBlock(name=self.name, port=port, routes=(f"nats-route://{LOCALHOST}:{port}",))
        self.partitioned.add(i)
        node.start(timeout)

    def heal(self, i: int, timeout: float = START_TIMEOUT) -> float:
        """Put node ``i`` back: restarted with its routes, then waited for as ``start_node``."""
        node = self.nodes[i]
        node.stop()
        node.cluster = self._block(i)
        self.partitioned.discard(i)
        return self.start_node(i, timeout)

    # -- what the cluster reports -------------------------------------------------------------------
    def jsz(self, i: int, **query: str) -> dict[str, Any]:
        suffix = "&".join(f"{k}={v}" for k, v in query.items())
        return self.nodes[i].monitor(f"jsz?{suffix}" if suffix else "jsz", timeout=2)

    def _meta_leader_name(self, among: set[int] | None = None) -> str | None:
        """The meta leader every running (reachable) node agrees on, or None."""
        names: set[str | None] = set()
        for i, node in enumerate(self.nodes):
            if not node.running or i in self.partitioned or (among is not None and i not in among):
                continue
            meta = self.jsz(i).get("meta_cluster") or {}
            names.add(meta.get("leader") or None)
        if len(names) != 1:
            return None
        return names.pop()

    def meta_leader(self) -> int:
        """The index of the meta leader (raises ``LookupError`` when there is none right now)."""
        name = self._meta_leader_name()
        if name is None:
            raise LookupError("no meta leader agreed on by the running nodes")
        return self.node_index(name)

    def wait_meta_leader(self, timeout: float = LEADER_TIMEOUT) -> int:
        _wait("a meta leader", lambda: self._meta_leader_name() is not None, timeout, self._tails)
        return self.meta_leader()

    def _streams(self, i: int) -> list[dict[str, Any]]:
        """The streams node ``i`` holds a replica of, each with its ``account`` added."""
        return [
            {**stream, "account": account.get("name")}
            for account in self.jsz(i, streams="true").get("account_details") or []
            for stream in account.get("stream_detail") or []
        ]

    def _stream_view(self, i: int, stream: str, account: str | None = None) -> dict[str, Any] | None:
        for found in self._streams(i):
            if found["name"] == stream and (account is None or found["account"] == account):
                return found
        return None

    def stream_info(self, stream: str) -> dict[str, Any]:
        """The stream as its leader reports it (`/jsz`: ``state``, ``cluster.leader``, ``cluster.replicas``
        with ``current`` and ``lag``); raises ``LookupError`` without an agreed leader."""
        leader = self.stream_leader(stream)
        view = self._stream_view(leader, stream)
        if view is None:
            raise LookupError(f"stream {stream!r}: its leader does not report it")
        return view

    def stream_leader(self, stream: str) -> int:
        """The index of the node leading ``stream``: the running node that reports itself its leader, with
        every other running node that holds it agreeing. ``LookupError`` when there is none right now."""
        claims: set[str | None] = set()
        views: set[str | None] = set()
        for i, node in enumerate(self.nodes):
            if not node.running or i in self.partitioned:
                continue
            view = self._stream_view(i, stream)
            if view is None:
                continue
            leader = (view.get("cluster") or {}).get("leader") or None
            views.add(leader)
            if leader == node.server_name:
                claims.add(leader)
        if len(claims) != 1 or len(views) != 1:
            raise LookupError(f"stream {stream!r} has no agreed leader right now")
        return self.node_index(str(claims.pop()))

    def wait_stream_leader(
        self, stream: str, timeout: float = LEADER_TIMEOUT, *, exclude: int | None = None
    ) -> int:
        """Wait until ``stream`` has a leader (not node ``exclude``, e.g. the one just killed) that the
        running nodes agree on, and that reports a quorum of its replicas current; its index."""

        def elected() -> bool:
            try:
                leader = self.stream_leader(stream)
            except LookupError:
                return False
            if leader == exclude:
                return False
            view = self._stream_view(leader, stream) or {}
            cluster = view.get("cluster") or {}
            replicas = cluster.get("replicas") or []
            current = 1 + sum(1 for r in replicas if r.get("current"))
            return current > (len(replicas) + 1) // 2

        _wait(f"a leader for stream {stream!r}", elected, timeout, self._tails)
        return self.stream_leader(stream)

    def __repr__(self) -> str:
        return f"EmbeddedNatsCluster(url={self.url!r}, data_dir={str(self.data_dir)!r})"
