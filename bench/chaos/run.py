"""The fault suite: mixed workload with its ledger, poison mix, faults, healing, then the checker."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bench.chaos.checker import Checker, Report
from bench.chaos.cluster import Cluster, ClusterConfig
from bench.chaos.orgs import record_mandates
from bench.chaos.poison import PoisonMaker, send_poison
from bench.chaos.scenario import Scenario
from bench.chaos.services import SERVICES
from bench.chaos.sinks import SmtpSink, WebhookSink
from bench.chaos.workload import Api, Integrator, Ledger
from kumkm_shared import failpoints

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path


CONSUMER_POINTS = (
    failpoints.CONSUMER_BEFORE_COMMIT,
    failpoints.CONSUMER_AFTER_COMMIT,
    failpoints.CONSUMER_DURING_ACKS,
    failpoints.RELAY_BEFORE_MARK,
)
FULL_FAILPOINTS: tuple[str, ...] = (
    *(f"{service}:{point}" for service in SERVICES for point in CONSUMER_POINTS),
    f"notifications:{failpoints.DISPATCHER_AFTER_SEND}",
)


@dataclass
class ChaosConfig:
    seed: int = 7
    loan_flows: int = 60
    decision_flows: int = 12  # referred requests approved over HTTP, a third of them by one officer
    catalog_flows: int = 40
    concurrency: int = 12
    poison: int = 1000
    rejected_orders: int = 5
    target_loans: int = 3  # loans on the book that the poison's impersonation attempts aim at
    kills_per_service: int = 3
    nats_kills: int = 1
    postgres_restarts: int = 1
    oidc_kills: int = 1  # kill -9 of the OpenID provider, restarted on the same port with the same keys
    pauses: int = 1
    # The topology (``Cluster``): "cluster" runs three NATS nodes (R3), a Postgres primary with a synchronous
    # standby, and ``replicas`` processes per service. There, a "nats" fault is a kill -9 of the node leading
    # a stream (restarted later on its store), a "postgres" fault a kill -9 of the primary, the standby's
    # promotion and later the old primary's return as a standby, and a "kill" hits one replica.
    topology: Literal["single", "cluster"] = "single"
    replicas: int = 1
    leader_kills: int = 0  # per service: kill -9 of the replica whose relay leads; a survivor takes over
    partitions: int = 0  # cluster: one NATS node cut off from its peers for a while, then healed
    # kill -9 at a named point of a batch, the relay or the dispatcher (``kumkm_shared.failpoints``): each
    # "service:point" restarts that service armed to kill itself there, then starts it again unarmed.
    failpoints: tuple[str, ...] = FULL_FAILPOINTS
    failpoint_wait: float = 20.0  # seconds for an armed service to reach its point before it is killed anyway
    ack_wait: float = 10.0  # the durables' ack_wait for this run; a pause lasts longer than this
    fault_window: float = 60.0  # seconds over which faults are spread
    heal_timeout: float = 240.0
    data_dir: Path | None = None
    keep_data: bool = False
    log: Callable[[str], None] = print
    faults: list[str] = field(default_factory=list)  # filled in: what was injected, when
    failpoints_fired: list[str] = field(default_factory=list)  # filled in: "service:point" that killed
    failpoints_missed: list[str] = field(default_factory=list)  # filled in: armed, never reached
    extra_flows: Counter[str] = field(default_factory=Counter)  # filled in: flows started by keep_busy
    recoveries: list[tuple[str, float]] = field(default_factory=list)  # filled in: (fault, seconds)
    leader_moves: list[str] = field(default_factory=list)  # filled in: "service: old -> new in s"
    leader_moves_missed: list[str] = field(default_factory=list)  # filled in: no leader found


# On the cluster, failpoints in the consumers and after an email's send; the relay's own crash is the leader
# kill there (an armed restart would hand the relay's lock to the other replica before the point is reached).
CLUSTER_FAILPOINTS: tuple[str, ...] = tuple(
    f for f in FULL_FAILPOINTS if not f.endswith(failpoints.RELAY_BEFORE_MARK)
)


def cluster_config(**overrides: Any) -> ChaosConfig:
    """The fault suite on the cluster topology (``make chaos-cluster``); ``overrides`` are ChaosConfig's."""
    base: dict[str, Any] = {
        "topology": "cluster",
        "replicas": 2,
        "nats_kills": 2,  # kill -9 of a stream's leader node
        "postgres_restarts": 1,  # kill -9 of the primary, promotion, the old primary back as a standby
        "leader_kills": 1,
        "partitions": 1,
        "failpoints": CLUSTER_FAILPOINTS,
        "fault_window": 90.0,
        "heal_timeout": 300.0,
    }
    return ChaosConfig(**(base | overrides))


# The flow that keeps an armed service busy until it reaches its failpoint: each service handles a loan
# flow (loans: its events; notifications: the restructuring outcome) or a catalog flow.
BUSY_FLOW = {"loans": "loan", "catalog": "catalog", "notifications": "loan"}
EXTRA_FLOW_BASE = 10_000  # extra flows are numbered from here, apart from the workload's own


class Nemesis:
    def __init__(
        self,
        cluster: Cluster,
        config: ChaosConfig,
        rng: random.Random,
        traffic: Callable[[str, int], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.rng = rng
        self.t0 = time.monotonic()
        self.traffic = traffic
        self.extra: list[asyncio.Task[None]] = []

    async def keep_busy(self, service: str, done: asyncio.Future[bool]) -> None:
        """Start an extra flow through ``service`` every second until ``done`` (at most five): an armed
        failpoint is reached only by work, and the workload may be over. Each flow is in the ledger."""
        if self.traffic is None:
            return
        kind = BUSY_FLOW[service]
        for _ in range(5):
            n = EXTRA_FLOW_BASE + sum(self.config.extra_flows.values())
            self.config.extra_flows[kind] += 1
            self.extra.append(asyncio.create_task(self.traffic(kind, n)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), 1.0)
            if done.done():
                return

    async def settle_extra(self) -> None:
        """Wait for the extra flows to finish (each reports its own failure in the ledger)."""
        if self.extra:
            await asyncio.gather(*self.extra)

    def plan(self) -> list[tuple[str, str]]:
        c = self.config
        plan: list[tuple[str, str]] = []
        plan += [("kill", s) for s in SERVICES for _ in range(c.kills_per_service)]
        plan += [("nats", "")] * c.nats_kills
        plan += [("postgres", "")] * c.postgres_restarts
        plan += [("oidc", "")] * c.oidc_kills
        plan += [("pause", self.rng.choice(["notifications", "catalog", "loans"])) for _ in range(c.pauses)]
        plan += [("failpoint", f) for f in c.failpoints]
        plan += [("leader", s) for s in SERVICES for _ in range(c.leader_kills)]
        plan += [("partition", "")] * c.partitions
        self.rng.shuffle(plan)
        return plan

    def recovered(self, fault: str, seconds: float) -> None:
        self.config.recoveries.append((fault, seconds))

    def instance(self, service: str) -> str:
        """One replica of ``service``, at random (the service itself on a single node)."""
        return self.rng.choice(self.cluster.instances(service))

    def note(self, what: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f}s] {what}"
        self.config.faults.append(line)
        self.config.log("  fault " + line)

    async def run(self) -> None:
        plan = self.plan()
        if not plan:
            return
        gap = self.config.fault_window / (len(plan) + 1)
        for action, target in plan:
            await asyncio.sleep(self.rng.uniform(0.3 * gap, 1.3 * gap))
            await self.inject(action, target)

    async def inject(self, action: str, target: str) -> None:
        clustered = self.cluster.clustered
        faults: dict[str, Callable[[str], Coroutine[Any, Any, None]]] = {
            "kill": self.kill_instance,
            "leader": self.kill_leader,
            "nats": self.kill_stream_leader if clustered else self.kill_nats,
            "postgres": self.fail_over if clustered else self.restart_postgres,
            "partition": self.partition,
            "oidc": self.kill_identity_provider,
            "failpoint": self.crash_at,
            "pause": self.pause,
        }
        await faults[action](target)

    async def kill_instance(self, service: str) -> None:
        c = self.cluster
        name = self.instance(service)
        self.note(f"kill -9 {name}")
        t = time.monotonic()
        await asyncio.to_thread(c.kill_service, name)
        await asyncio.sleep(self.rng.uniform(0.2, 2.0))
        await asyncio.to_thread(c.start_service, name)
        self.recovered(f"kill -9 {name}: back and ready", time.monotonic() - t)
        self.note(f"{name} restarted and ready")

    async def kill_nats(self, _: str) -> None:
        c = self.cluster
        self.note("kill -9 nats-server")
        await asyncio.to_thread(c.kill_nats)
        await asyncio.sleep(self.rng.uniform(0.5, 3.0))
        await asyncio.to_thread(c.start_nats)
        self.note("nats-server restarted on the same store")

    async def kill_identity_provider(self, _: str) -> None:
        c = self.cluster
        self.note("kill -9 the OpenID provider")
        await asyncio.to_thread(c.kill_identity_provider)
        await asyncio.sleep(self.rng.uniform(1.0, 4.0))
        await asyncio.to_thread(c.start_identity_provider)
        self.note("OpenID provider restarted (same port, same keys)")

    async def restart_postgres(self, _: str) -> None:
        self.note("postgres restart (fast shutdown)")
        await asyncio.to_thread(self.cluster.restart_postgres)
        self.note("postgres back")

    async def pause(self, service: str) -> None:
        c = self.cluster
        name = self.instance(service)
        pause = self.config.ack_wait + 3.0
        self.note(f"SIGSTOP {name} for {pause:.0f}s (ack_wait {self.config.ack_wait:.0f}s)")
        await asyncio.to_thread(c.pause_service, name)
        await asyncio.sleep(pause)
        await asyncio.to_thread(c.resume_service, name)
        self.note(f"SIGCONT {name}")

    async def crash_at(self, target: str) -> None:
        """Restart a service armed with a failpoint ("service:point"), keep it busy until it kills itself."""
        c = self.cluster
        service, _, point = target.partition(":")
        wait = self.config.failpoint_wait
        # The other replicas are paused meanwhile (SIGSTOP), so the work reaches the armed one: otherwise
        # their waiting pulls take it all, and the messages they hold come back to it after ack_wait.
        others = [n for n in c.instances(service) if n != service and c.services[n].pid is not None]
        for name in others:
            await asyncio.to_thread(c.pause_service, name)
        paused = f" (paused meanwhile: {', '.join(others)})" if others else ""
        self.note(f"{service} restarted armed with {point}=kill{paused}")
        try:
            crash = asyncio.ensure_future(asyncio.to_thread(c.crash_at, service, point, wait))
            await self.keep_busy(service, crash)
            fired = await crash
        finally:
            for name in others:
                await asyncio.to_thread(c.resume_service, name)
        if fired:
            self.config.failpoints_fired.append(target)
            self.note(f"{service} killed itself (SIGKILL) at {point}")
        else:
            self.config.failpoints_missed.append(target)
            self.note(f"{service} did not reach {point} within {wait:.0f}s: killed from outside")
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await asyncio.to_thread(c.start_service, service)
        self.note(f"{service} restarted unarmed and ready")

    async def kill_leader(self, service: str) -> None:
        """kill -9 of the replica whose relay leads: a survivor's relay (and leader-only work) takes over."""
        c = self.cluster
        leader = None
        for _ in range(50):
            leader = await asyncio.to_thread(c.relay_leader, service)
            if leader is not None:
                break
            await asyncio.sleep(0.2)
        if leader is None:
            self.note(f"no relay leader of {service} found: leader kill skipped")
            self.config.leader_moves_missed.append(service)
            return
        self.note(f"kill -9 {leader} (its relay leads {service})")
        t = time.monotonic()
        await asyncio.to_thread(c.kill_service, leader)
        survivor = await asyncio.to_thread(c.wait_relay_leader, service, other_than=leader)
        moved = time.monotonic() - t
        self.recovered(f"relay of {service} moved {leader} -> {survivor}", moved)
        self.config.leader_moves.append(f"{service}: {leader} -> {survivor} in {moved:.1f}s")
        self.note(f"{survivor} leads {service}'s relay after {moved:.1f}s")
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        await asyncio.to_thread(c.start_service, leader)
        self.note(f"{leader} restarted and ready")

    async def kill_stream_leader(self, _: str) -> None:
        c = self.cluster.nats_nodes
        stream = self.rng.choice(("KUMKM_LOANS", "KUMKM_CATALOG", "KUMKM_NOTIFICATIONS"))
        node = await asyncio.to_thread(c.stream_leader, stream)
        self.note(f"kill -9 nats node n{node + 1} (leads {stream})")
        t = time.monotonic()
        await asyncio.to_thread(c.kill_node, node)
        await asyncio.to_thread(c.wait_stream_leader, stream, 60.0, exclude=node)
        elected = time.monotonic() - t
        self.recovered(f"kill -9 of {stream}'s leader: new leader elected", elected)
        self.note(f"{stream} has a new leader after {elected:.1f}s")
        await asyncio.sleep(self.rng.uniform(2.0, 5.0))
        t = time.monotonic()
        await asyncio.to_thread(c.start_node, node)
        self.recovered(f"nats node n{node + 1} restarted on its store", time.monotonic() - t)
        self.note(f"nats node n{node + 1} restarted on its store")

    async def partition(self, _: str) -> None:
        """One NATS node cut off from its peers (the minority side), then healed: its clients reconnect to
        the others, the streams keep a quorum, and the node catches up when it is back."""
        c = self.cluster.nats_nodes
        node = self.rng.randrange(len(c.nodes))
        self.note(f"partition: nats node n{node + 1} cut off from its peers")
        await asyncio.to_thread(c.partition, node)
        await asyncio.sleep(self.rng.uniform(3.0, 6.0))
        t = time.monotonic()
        await asyncio.to_thread(c.heal, node)
        self.recovered(f"nats node n{node + 1} healed: routes back, caught up", time.monotonic() - t)
        self.note(f"nats node n{node + 1} healed and caught up")

    async def fail_over(self, _: str) -> None:
        c = self.cluster
        pg = c.pg
        self.note("kill -9 of the Postgres primary")
        t = time.monotonic()
        await asyncio.to_thread(pg.kill_primary)
        await asyncio.to_thread(pg.promote, 60.0)
        promoted = time.monotonic() - t
        await asyncio.to_thread(c.database_writable, 60.0)
        writable = time.monotonic() - t
        self.recovered("Postgres primary killed: standby promoted", promoted)
        self.recovered("Postgres primary killed: writes commit again", writable)
        self.note(f"standby promoted after {promoted:.1f}s; writes commit after {writable:.1f}s")
        await asyncio.sleep(self.rng.uniform(3.0, 8.0))
        t = time.monotonic()
        method = await asyncio.to_thread(pg.rejoin_old_primary, 120.0)
        rejoined = time.monotonic() - t
        self.recovered(f"old primary back as a synchronous standby ({method})", rejoined)
        self.note(f"old primary back as a synchronous standby by {method} after {rejoined:.1f}s")


async def run_chaos(config: ChaosConfig) -> Report:  # noqa: C901, PLR0912, PLR0915 - one script, top to bottom
    log = config.log
    rng = random.Random(config.seed)
    smtp = SmtpSink()
    smtp.start()
    hooks = WebhookSink()
    await hooks.start()
    cluster = Cluster(
        ClusterConfig(
            smtp_port=smtp.port,
            ack_wait=config.ack_wait,
            data_dir=config.data_dir,
            topology=config.topology,
            replicas=config.replicas,
        )
    )
    started = time.monotonic()
    log(f"chaos: data in {cluster.data_dir}; topology {config.topology}, {config.replicas} per service")
    try:
        await asyncio.to_thread(cluster.start)
        log(f"chaos: cluster ready in {time.monotonic() - started:.1f}s")
        ledger = Ledger()
        integrator = Integrator(cluster.nats_url, ledger)
        await integrator.connect()
        api = Api({s: cluster.urls(s) for s in SERVICES}, ledger, cluster.signin)
        scenario = Scenario(integrator, api, ledger, hooks.url)
        try:
            n_parties = max(2, (config.loan_flows + config.decision_flows + config.catalog_flows) // 10)
            await scenario.setup_parties(n_parties, n_parties, n_parties)
            rejected = [await scenario.rejected_order(k) for k in range(config.rejected_orders)]
            targets = await scenario.target_loans(config.target_loans)
            maker = PoisonMaker(random.Random(config.seed + 1), rejected, scenario.senders, targets)
            if integrator.js is None:
                raise RuntimeError("not connected")
            await record_mandates(integrator.js, maker.own_orgs())
            orgs = scenario.senders.all() + maker.own_orgs()
            log(
                f"chaos: {len(ledger.contacts)} contacts, {len(rejected)} rejected orders, "
                f"{len(targets)} loans for impersonators; {len(orgs)} organisations with mandates; "
                "workload starts"
            )
            nemesis = Nemesis(cluster, config, random.Random(config.seed + 2), traffic=scenario.run_flow)
            semaphore = asyncio.Semaphore(config.concurrency)
            flows = [("loan", i) for i in range(config.loan_flows)]
            flows += [("decision", k) for k in range(config.decision_flows)]
            flows += [("catalog", j) for j in range(config.catalog_flows)]
            rng.shuffle(flows)
            pace = config.fault_window / max(1, len(flows))

            async def one(kind: str, n: int, delay: float) -> None:
                await asyncio.sleep(delay)
                async with semaphore:
                    await scenario.run_flow(kind, n)

            async def poison_all() -> None:
                gap = config.fault_window / max(1, config.poison)
                for _ in range(config.poison):
                    await send_poison(integrator, ledger, maker)
                    await asyncio.sleep(gap * rng.uniform(0, 2))

            t0 = time.monotonic()
            await asyncio.gather(
                nemesis.run(),
                poison_all(),
                *(one(kind, n, k * pace) for k, (kind, n) in enumerate(flows)),
            )
            await nemesis.settle_extra()
            log(
                f"chaos: workload done in {time.monotonic() - t0:.1f}s: flows ok={ledger.flows_done} "
                f"failed={len(ledger.flows_failed)}, events sent={len(ledger.sent)}, "
                f"poison={len(ledger.poison)}"
            )
            if config.failpoints:
                log(
                    f"chaos: failpoints fired {len(config.failpoints_fired)}/{len(config.failpoints)}"
                    + (
                        f"; not reached: {', '.join(config.failpoints_missed)}"
                        if config.failpoints_missed
                        else ""
                    )
                )
            for failure in ledger.flows_failed[:10]:
                log(f"  flow failed: {failure}")
            for name, svc in cluster.services.items():  # heal: everything running
                if svc.paused:
                    svc.resume()
                if svc.pid is None:
                    await asyncio.to_thread(cluster.start_service, name)
            checker = Checker(
                nats_url=cluster.nats_url,
                database_url=cluster.database_url,
                notifications_url=cluster.url("notifications"),
                signin=cluster.signin,
                ledger=ledger,
                smtp=smtp,
                webhooks=hooks,
            )
            t1 = time.monotonic()
            quiet = await checker.wait_quiet(config.heal_timeout)
            report = Report()
            report.indeterminate, report.operator_resent = await checker.resolve_unknown()
            if report.operator_resent:
                quiet = await checker.wait_quiet(config.heal_timeout) and quiet
            await asyncio.sleep(1.0)
            log(f"chaos: healed={'yes' if quiet else 'NO'} in {time.monotonic() - t1:.1f}s")
            if not quiet:
                log(f"  still busy at the deadline: {checker.last_busy}")
            await checker.check(report)
            for name, svc in cluster.services.items():
                log(f"  {name}: started {svc.starts} times")
            for fault, seconds in config.recoveries:
                log(f"  recovery {seconds:6.1f}s  {fault}")
            return report
        finally:
            await api.close()
            await integrator.close()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(cluster.stop)
        await hooks.stop()
        smtp.stop()
        if not config.keep_data and config.data_dir is None:
            import shutil

            shutil.rmtree(cluster.data_dir, ignore_errors=True)
