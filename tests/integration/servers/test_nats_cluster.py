# EmbeddedNatsCluster: three nodes, R3 streams from the provisioner, kill -9 of a leader, a puller across it,
# operator-mode auth on every node. Timings are printed (pytest -s), never asserted tightly.
from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
import nats.js.errors
import pytest

from kumkm_shared.mandates import BUCKET
from kumkm_shared.messaging.consumer import AdvisoryWatcher
from kumkm_shared.messaging.provision import provision
from kumkm_shared.messaging.puller import BatchPuller
from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS, ConsumerDecl, StreamDecl
from kumkm_shared.servers import EmbeddedNatsCluster

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
    from pathlib import Path

    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

pytestmark = pytest.mark.integration

DEADLINE = 30.0  # for a leader election or a catch-up: generous, machines are noisy
STREAM = StreamDecl("CLUSTER_T", ("cluster.>",), "cluster test stream")
DURABLE = ConsumerDecl(
    name="cluster-t",
    stream="CLUSTER_T",
    service="test",
    filter_subjects=("cluster.orders",),
    description="cluster test durable",
    ack_wait_seconds=5.0,
)


def report(line: str) -> None:
    print(line)  # noqa: T201 - the measured figures, shown with -s


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedNatsCluster]:
    nodes = EmbeddedNatsCluster(tmp_path / "nats")
    seconds = nodes.start()
    report(f"cluster formed in {seconds:.2f}s")
    try:
        yield nodes
    finally:
        nodes.stop()


async def connect(servers: Sequence[str], **kwargs: Any) -> Client:
    return await nats.connect(
        servers=list(servers),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=2,
        **kwargs,
    )


@contextlib.asynccontextmanager
async def client(servers: Sequence[str], **kwargs: Any) -> AsyncIterator[Client]:
    nc = await connect(servers, **kwargs)
    try:
        yield nc
    finally:
        await nc.close()


async def publish_until_acked(js: JetStreamContext, subject: str, msg_id: str, deadline: float) -> int:
    """Publish with ``msg_id`` until a PubAck (a retry is de-duplicated by the stream); its sequence."""
    until = time.monotonic() + deadline
    while True:
        try:
            ack = await js.publish(subject, msg_id.encode(), timeout=2, headers={"Nats-Msg-Id": msg_id})
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
            if time.monotonic() > until:
                raise
            await asyncio.sleep(0.2)
            continue
        return ack.seq


async def eventually(check: Callable[[], Awaitable[bool]], what: str, deadline: float = DEADLINE) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < deadline, f"{what}: not within {deadline:.0f}s"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def stream_replicated(js: JetStreamContext, stream: str) -> bool:
    cluster_info = (await js.stream_info(stream)).cluster
    replicas = (cluster_info.replicas or []) if cluster_info is not None else []
    return len(replicas) == 2 and all(r.current for r in replicas)


async def consumer_replicated(js: JetStreamContext, decl: ConsumerDecl) -> bool:
    cluster_info = (await js.consumer_info(decl.stream, decl.name)).cluster
    replicas = (cluster_info.replicas or []) if cluster_info is not None else []
    return len(replicas) == 2 and all(r.current for r in replicas)


def replicas_of(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Every replica of a stream as its leader reports it: the leader itself and its peers."""
    cluster_info = info["cluster"]
    return [{"name": cluster_info["leader"], "current": True}, *cluster_info["replicas"]]


async def test_three_nodes_form_a_cluster_and_provisioned_streams_are_r3(
    cluster: EmbeddedNatsCluster,
) -> None:
    assert len(cluster.nodes) == 3
    assert cluster.url == ",".join(f"nats://127.0.0.1:{node.port}" for node in cluster.nodes)
    leader = cluster.meta_leader()
    assert cluster.nodes[leader].server_name in {"n1", "n2", "n3"}
    meta = cluster.jsz(0)["meta_cluster"]
    assert meta["cluster_size"] == 3
    for node in cluster.nodes:
        assert node.healthy()
        routes = node.monitor("routez")["routes"]
        assert isinstance(routes, list)
        assert {r["remote_name"] for r in routes} == {"n1", "n2", "n3"} - {node.server_name}

    # nats-py (and FastStream, which hands it on) take a list: the comma-separated string is not split.
    with pytest.raises(nats.errors.Error):
        await nats.connect(cluster.url, allow_reconnect=False, connect_timeout=1)

    async with client(cluster.url.split(",")) as nc:
        js = nc.jetstream()
        # Provisioned at R1 first (a single server's setting), then at R3: the same call updates in place.
        first = await provision(js, replicas=1)
        assert len(first.created) == len(STREAM_DECLS) + len(CONSUMER_DECLS) + 1
        await js.publish("kumkm.dlq.loans", b"kept across the change", headers={"Nats-Msg-Id": "dlq-1"})
        scaled = await provision(js, replicas=3)
        assert sorted(scaled.updated) == sorted(
            [f"stream {s.name}" for s in STREAM_DECLS] + [f"bucket {BUCKET}"]
        ), scaled
        again = await provision(js, replicas=3)
        assert not again.created
        assert not again.updated

        # A scale-up is applied in the background: the new replicas catch up, then count as current.
        for stream in [*(s.name for s in STREAM_DECLS), f"KV_{BUCKET}"]:
            info = await js.stream_info(stream)
            assert info.config.num_replicas == 3, stream
            await eventually(functools.partial(stream_replicated, js, stream), f"{stream} at R3")
        assert (await js.stream_info("KUMKM_DLQ")).state.messages == 1
        for decl in CONSUMER_DECLS:
            consumer = await js.consumer_info(decl.stream, decl.name)
            # No count of its own (0): the stream's, and it followed the stream from 1 to 3.
            assert consumer.config.num_replicas in {0, None}
            await eventually(functools.partial(consumer_replicated, js, decl), f"{decl.name} at R3")


async def test_kill_of_the_stream_leader_loses_no_acknowledged_message(cluster: EmbeddedNatsCluster) -> None:
    async with client(cluster.urls) as nc:
        js = nc.jetstream()
        await provision(js, replicas=3, streams=[STREAM], consumers=[], mandates=False)
        for n in range(200):
            await js.publish("cluster.orders", str(n).encode(), headers={"Nats-Msg-Id": f"before-{n}"})

        old = cluster.wait_stream_leader(STREAM.name)
        killed_at = time.monotonic()
        cluster.kill_node(old)
        new = cluster.wait_stream_leader(STREAM.name, DEADLINE, exclude=old)
        elected = time.monotonic() - killed_at
        report(f"stream leader n{old + 1} killed; n{new + 1} elected after {elected:.2f}s")
        assert new != old

        seq = await publish_until_acked(js, "cluster.orders", "after-0", DEADLINE)
        published = time.monotonic() - killed_at
        report(f"first PubAck after the kill: {published:.2f}s")
        assert seq == 201
        for n in range(1, 50):
            await publish_until_acked(js, "cluster.orders", f"after-{n}", DEADLINE)
        info = await js.stream_info(STREAM.name)
        assert (info.state.messages, info.state.last_seq) == (250, 250)
        assert (await js.get_msg(STREAM.name, 200)).data == b"199"

    caught_up = cluster.start_node(old, DEADLINE)
    report(f"n{old + 1} restarted on its store and caught up in {caught_up:.2f}s")
    assert cluster.caught_up(old)
    assert all(r["current"] for r in replicas_of(cluster.stream_info(STREAM.name)))
    # Its own replica holds every message, the ones written while it was down included.
    own = cluster._stream_view(old, STREAM.name)  # the node's own view, not its leader's
    assert own is not None
    assert own["state"]["messages"] == 250


async def test_a_puller_keeps_consuming_across_a_leader_kill(cluster: EmbeddedNatsCluster) -> None:
    acked: dict[str, int] = {}  # msg id -> stream sequence of its PubAck
    seen: dict[str, list[tuple[int, int]]] = {}  # msg id -> (stream sequence, delivery count) per delivery

    async def apply(msgs: Sequence[Msg]) -> None:
        for msg in msgs:
            msg_id = (msg.headers or {})["Nats-Msg-Id"]
            seen.setdefault(msg_id, []).append((msg.metadata.sequence.stream, msg.metadata.num_delivered))
            with contextlib.suppress(Exception):  # an ack lost to the kill: redelivered, counted as such
                await msg.ack_sync(timeout=2)

    async with client(cluster.urls) as admin, client(cluster.urls) as consumer_nc:
        js = admin.jetstream()
        await provision(js, replicas=3, streams=[STREAM], consumers=[DURABLE], mandates=False)
        puller = BatchPuller(
            decl=DURABLE, jetstream=consumer_nc.jetstream, apply=apply, size=50, fill_wait=0.05, idle_wait=1.0
        )
        puller.start()
        stop = asyncio.Event()

        async def publisher() -> None:
            n = 0
            while not stop.is_set():
                msg_id = f"m-{n}"
                acked[msg_id] = await publish_until_acked(js, "cluster.orders", msg_id, DEADLINE)
                n += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(publisher())
        try:
            await asyncio.sleep(2)
            ci = await js.consumer_info(DURABLE.stream, DURABLE.name)
            assert ci.cluster is not None
            assert ci.cluster.leader is not None
            victim = cluster.node_index(ci.cluster.leader)  # the durable's leader (often the stream's too)
            before = len(acked)
            cluster.kill_node(victim)
            killed_at = time.monotonic()
            await asyncio.to_thread(cluster.wait_stream_leader, STREAM.name, DEADLINE, exclude=None)
            report(f"durable leader n{victim + 1} killed at {before} published")
            await asyncio.sleep(6)
            stop.set()
            await task
            deadline = time.monotonic() + DEADLINE
            while not set(acked) <= set(seen):
                assert time.monotonic() < deadline, (
                    f"{len(set(acked) - set(seen))} acknowledged never consumed"
                )
                await asyncio.sleep(0.2)
            report(f"{len(acked)} published, all consumed {time.monotonic() - killed_at:.2f}s after the kill")
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await puller.stop(5)

    assert len(acked) > before > 0  # published on both sides of the kill
    report(f"redeliveries across the kill: {check_once_each(acked, seen)}")
    cluster.start_node(victim, DEADLINE)


def check_once_each(acked: dict[str, int], seen: dict[str, list[tuple[int, int]]]) -> int:
    """Every id one stream message, processed again only as a redelivery; the count of redeliveries."""
    assert len(set(acked.values())) == len(acked)  # a retried publish never became a second message
    redelivered = 0
    for msg_id, deliveries in seen.items():
        assert {seq for seq, _ in deliveries} == {acked[msg_id]}, msg_id  # one stream message per id
        # A second processing only as a redelivery (delivery count above 1), never a second copy.
        assert sorted(count for _, count in deliveries)[1:] == list(range(2, len(deliveries) + 1))
        redelivered += len(deliveries) - 1
    return redelivered


async def test_max_deliveries_advisory_reaches_the_watcher_from_a_new_leader(
    cluster: EmbeddedNatsCluster,
) -> None:
    flaky = ConsumerDecl(
        name="cluster-flaky",
        stream="CLUSTER_T",
        service="loans",
        filter_subjects=("cluster.flaky",),
        description="never acknowledged",
        ack_wait_seconds=1.0,
        max_deliver=2,
    )
    dlq = next(s for s in STREAM_DECLS if s.name == "KUMKM_DLQ")
    async with client(cluster.urls) as nc:
        js = nc.jetstream()
        await provision(js, replicas=3, streams=[STREAM, dlq], consumers=[flaky], mandates=False)
        watcher = AdvisoryWatcher(service="loans", decls=[flaky], jetstream=lambda: js)
        await watcher.start(nc)
        sub = await js.pull_subscribe_bind(durable=flaky.name, stream=flaky.stream)

        async def dead_letters() -> int:
            try:
                info = await asyncio.wait_for(js.stream_info("KUMKM_DLQ"), 2)
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
                return -1  # the DLQ stream electing its own leader
            return info.state.messages

        async def dead_letter_after(payload: bytes, expected: int) -> None:
            await publish_until_acked(js, "cluster.flaky", payload.decode(), DEADLINE)
            deadline = time.monotonic() + DEADLINE
            while await dead_letters() < expected:
                assert time.monotonic() < deadline, "no dead letter from the max-deliveries advisory"
                with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
                    await sub.fetch(1, timeout=1)  # delivered, never acknowledged

        await dead_letter_after(b"first", 1)
        ci = await js.consumer_info(flaky.stream, flaky.name)
        assert ci.cluster is not None
        assert ci.cluster.leader is not None
        victim = cluster.node_index(ci.cluster.leader)
        cluster.kill_node(victim)
        await asyncio.to_thread(cluster.wait_stream_leader, STREAM.name, DEADLINE, exclude=victim)
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                ci = await js.consumer_info(flaky.stream, flaky.name, timeout=2)
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
                ci = None
            if (
                ci is not None
                and ci.cluster is not None
                and ci.cluster.leader not in {None, f"n{victim + 1}"}
            ):
                break
            assert time.monotonic() < deadline, "the durable elected no new leader"
            await asyncio.sleep(0.2)
        await dead_letter_after(b"second", 2)
        await watcher.stop()
    cluster.start_node(victim, DEADLINE)


async def test_operator_mode_auth_across_the_cluster(tmp_path: Path) -> None:
    from nats.aio.client import RawCredentials

    from kumkm_shared.integrators import IntegratorRole
    from kumkm_shared.natsauth import AuthDir
    from kumkm_shared.natsauth.push import push_account

    auth = AuthDir.init(tmp_path / "auth")
    with EmbeddedNatsCluster(tmp_path / "nats", auth=auth) as cluster:
        for node in cluster.nodes:
            assert node.varz()["auth_required"] is True
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await nats.connect(
                    node.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2
                )
        n1, n2, n3 = ([node.url] for node in cluster.nodes)
        # Each platform user on another node: the same creds and the same accounts everywhere.
        async with client(
            n3, user_credentials=str(auth.creds_path("provision")), inbox_prefix="_INBOX_provision"
        ) as nc:
            report = await provision(nc.jetstream(), replicas=3)
            assert not report.updated
        async with client(
            n1, user_credentials=str(auth.creds_path("loans")), inbox_prefix="_INBOX_loans"
        ) as nc:
            js = nc.jetstream()
            for n in range(5):
                ack = await js.publish(
                    "kumkm.loans.loan.disbursed.v1", b"{}", headers={"Nats-Msg-Id": f"loan-{n}"}
                )
                assert ack.stream == "KUMKM_LOANS"
            with pytest.raises(nats.errors.Error):
                await js.publish("kumkm.catalog.product.curated.v1", b"{}", timeout=2)
        async with client(
            n2, user_credentials=str(auth.creds_path("loans")), inbox_prefix="_INBOX_loans"
        ) as nc:
            sub = await nc.jetstream().pull_subscribe_bind(
                durable="loans", stream="KUMKM_LOANS", inbox_prefix=b"_INBOX_loans."
            )
            msgs = await sub.fetch(5, timeout=5)
            assert len(msgs) == 5
            for msg in msgs:
                await msg.ack_sync()
        async with client(cluster.urls, user_credentials=str(auth.creds_path("operator"))) as nc:
            info = await nc.jetstream().stream_info("KUMKM_LOANS")
            assert info.config.num_replicas == 3
            assert info.cluster is not None
            assert len(info.cluster.replicas or []) == 2
        # An account update pushed to one server reaches the others (each server's full resolver).
        org = auth.issue_integrator("bank-cluster", IntegratorRole.LENDER)
        async with client(n3, user_credentials=RawCredentials(org.creds), inbox_prefix="_INBOX_bank-cluster"):
            pass  # accepted on n3
        reply = await push_account(n1, auth.creds_path("sys"), auth.revoke([org.public_key]))
        assert reply["data"]["code"] == 200

        async def as_revoked_on_n3() -> Client:
            return await nats.connect(
                n3[0],
                user_credentials=RawCredentials(org.creds),
                inbox_prefix="_INBOX_bank-cluster",
                allow_reconnect=False,
                connect_timeout=2,
            )

        async def refused_on_n3() -> bool:
            try:
                nc = await as_revoked_on_n3()
            except nats.errors.Error:
                return True
            await nc.close()
            return False

        await eventually(refused_on_n3, "the revocation pushed to n1 applied on n3")
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await as_revoked_on_n3()


async def test_a_partitioned_leader_is_replaced_and_catches_up_when_healed(
    cluster: EmbeddedNatsCluster,
) -> None:
    async with client(cluster.urls) as nc:
        js = nc.jetstream()
        await provision(js, replicas=3, streams=[STREAM], consumers=[], mandates=False)
        for n in range(20):
            await js.publish("cluster.orders", b"before", headers={"Nats-Msg-Id": f"p-{n}"})
        isolated = cluster.wait_stream_leader(STREAM.name)
        cut_at = time.monotonic()
        cluster.partition(isolated)
        new = cluster.wait_stream_leader(STREAM.name, DEADLINE, exclude=isolated)
        report(f"n{isolated + 1} partitioned; n{new + 1} leads after {time.monotonic() - cut_at:.2f}s")
        # The minority side: no meta leader, not healthy, its routes gone.
        assert not cluster.nodes[isolated].healthy()
        assert cluster.nodes[isolated].monitor("routez")["routes"] in ([], None)
    async with client([cluster.nodes[isolated].url]) as nc:
        with pytest.raises((nats.errors.Error, nats.js.errors.Error, TimeoutError)):
            await nc.jetstream().publish("cluster.orders", b"minority", timeout=2)
    majority = [node.url for i, node in enumerate(cluster.nodes) if i != isolated]
    async with client(majority) as nc:
        js = nc.jetstream()
        for n in range(20, 40):
            await publish_until_acked(js, "cluster.orders", f"p-{n}", DEADLINE)
    healed = cluster.heal(isolated, DEADLINE)
    report(f"n{isolated + 1} healed and caught up in {healed:.2f}s")
    own = cluster._stream_view(isolated, STREAM.name)  # the node's own view
    assert own is not None
    assert own["state"]["messages"] == 40


async def test_a_cluster_starts_again_on_its_ports_and_stores(tmp_path: Path) -> None:
    with EmbeddedNatsCluster(tmp_path / "nats") as first:
        urls = first.urls
        async with client(urls) as nc:
            js = nc.jetstream()
            await provision(js, replicas=3, streams=[STREAM], consumers=[], mandates=False)
            for n in range(3):
                await js.publish("cluster.orders", b"kept", headers={"Nats-Msg-Id": f"k-{n}"})
    again = EmbeddedNatsCluster(tmp_path / "nats")
    assert again.urls == urls  # the same ports while they are free (cluster.json)
    report(f"cluster restarted on its stores in {again.start():.2f}s")
    try:
        async with client(again.urls) as nc:
            # On a loaded machine the first API request after a restart may still time out: ask again.
            deadline = time.monotonic() + 30
            while True:
                try:
                    info = await nc.jetstream(timeout=10).stream_info(STREAM.name)
                    break
                except nats.errors.TimeoutError:
                    if time.monotonic() > deadline:
                        raise
            assert info.state.messages == 3
    finally:
        again.stop()
