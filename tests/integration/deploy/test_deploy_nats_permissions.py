"""NATS users and permissions of deploy/ against a real nats-server (compose config and Helm values).

Integrators may publish only their role's "ext" events (docs/rules/messaging.md, "Who publishes what") and
read nothing; services publish only their own context and DLQ subject and use only their own durable
consumers; the provision user can run the real provisioner. Every check runs against both the
docker-compose config and the Helm values (see conftest.py).
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import nats
import nats.errors
import pytest

from kumkm_shared.messaging.provision import provision
from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS, consumers_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from nats.aio.client import Client
    from nats.js.api import PubAck

    from tests.integration.deploy.conftest import DeployNats

pytestmark = pytest.mark.integration

# The "ext" events, by integrator role (docs/rules/messaging.md, "Who publishes what").
EXT_BY_ROLE = {
    "lender": ["kumkm.loans.loan.disbursed.v1"],
    "cooperative": ["kumkm.loans.restructuring.requested.v1", "kumkm.loans.repayment.received.v1"],
    "buyer": [
        "kumkm.catalog.order.placed.v1",
        "kumkm.catalog.order.delivered.v1",
        "kumkm.catalog.order.paid.v1",
    ],
    "seller": [
        "kumkm.catalog.product.submitted.v1",
        "kumkm.catalog.product.stock_updated.v1",
        "kumkm.catalog.order.confirmed.v1",
        "kumkm.catalog.order.shipped.v1",
    ],
    "registry": ["kumkm.notifications.contact.upserted.v1"],
}
ALL_EXT = sorted(s for subjects in EXT_BY_ROLE.values() for s in subjects)
# Events only the owning service publishes.
SERVICE_ONLY = [
    "kumkm.loans.restructuring.approved.v1",
    "kumkm.loans.installment.overdue.v1",
    "kumkm.catalog.order.accepted.v1",
    "kumkm.catalog.product.curated.v1",
    "kumkm.notifications.notification.delivered.v1",
    "kumkm.dlq.loans",
]
SERVICES = ("loans", "catalog", "notifications")
STREAM_OF = {"loans": "KUMKM_LOANS", "catalog": "KUMKM_CATALOG", "notifications": "KUMKM_NOTIFICATIONS"}
ADMIN_API = [
    "$JS.API.STREAM.CREATE.KUMKM_EVIL",
    "$JS.API.STREAM.DELETE.KUMKM_LOANS",
    "$JS.API.STREAM.PURGE.KUMKM_CATALOG",
    "$JS.API.STREAM.UPDATE.KUMKM_LOANS",
    "$JS.API.CONSUMER.CREATE.KUMKM_LOANS.spy",
    "$JS.API.CONSUMER.DURABLE.CREATE.KUMKM_LOANS.spy",
    "$JS.API.CONSUMER.DELETE.KUMKM_LOANS.loans",
]


@dataclass
class Conn:
    nc: Client
    errors: list[Exception] = field(default_factory=list)

    def violations(self, kind: str, subject: str) -> list[str]:
        """Server errors saying `kind` ("Publish" or "Subscription") to `subject` was not permitted."""
        wanted = f'permissions violation for {kind} to "{subject}"'.lower()
        return [str(e) for e in self.errors if wanted in str(e).lower()]

    async def publish_denied(self, subject: str) -> bool:
        await self.nc.publish(subject, b"{}")
        await self.nc.flush(timeout=5)
        for _ in range(20):
            if self.violations("Publish", subject):
                return True
            await asyncio.sleep(0.01)
        return False

    async def subscribe_denied(self, subject: str) -> bool:
        sub = await self.nc.subscribe(subject)
        await self.nc.flush(timeout=5)
        for _ in range(20):
            if self.violations("Subscription", subject):
                break
            await asyncio.sleep(0.01)
        denied = bool(self.violations("Subscription", subject))
        if not denied:
            await sub.unsubscribe()
        return denied

    async def js_publish(self, subject: str) -> PubAck:
        headers = {"Nats-Msg-Id": str(uuid.uuid4())}
        return await self.nc.jetstream().publish(subject, b'{"test": true}', headers=headers, timeout=5)


def inbox_prefix(user: str) -> str | None:
    return None if user == "operator" else f"_INBOX_{user}"


@asynccontextmanager
async def connect(deploy: DeployNats, user: str, *, prefix: str | None = "default") -> AsyncIterator[Conn]:
    conn = Conn(nc=None)  # type: ignore[arg-type]

    async def on_error(error: Exception) -> None:
        conn.errors.append(error)

    chosen = inbox_prefix(user) if prefix == "default" else prefix
    options = {"inbox_prefix": chosen} if chosen else {}
    conn.nc = await nats.connect(
        deploy.url,
        user=user,
        password=deploy.passwords[user],
        error_cb=on_error,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=5,
        **options,
    )
    try:
        yield conn
    finally:
        await conn.nc.close()


@pytest.fixture(scope="module")
async def provisioned(deploy_nats: DeployNats) -> DeployNats:
    """The streams and consumers, created by the real provisioner with the provision user's rights."""
    async with connect(deploy_nats, "provision") as conn:
        await provision(conn.nc.jetstream(), replicas=1)
        assert conn.errors == []
    return deploy_nats


# ---- authentication --------------------------------------------------------------------------------------


async def test_unknown_users_and_wrong_passwords_are_refused(deploy_nats: DeployNats) -> None:
    attempts = [
        {"user": "seller", "password": "wrong-password"},
        {"user": "nobody", "password": "whatever"},
        {},
    ]
    for credentials in attempts:
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(
                deploy_nats.url,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
                **credentials,
            )


async def test_every_user_logs_in_with_its_password(deploy_nats: DeployNats) -> None:
    assert set(deploy_nats.passwords) == {*SERVICES, "provision", "operator", *EXT_BY_ROLE}
    for user in deploy_nats.passwords:
        async with connect(deploy_nats, user) as conn:
            assert conn.nc.is_connected


# ---- provisioning ----------------------------------------------------------------------------------------


async def test_provision_user_creates_every_stream_and_consumer(provisioned: DeployNats) -> None:
    async with connect(provisioned, "operator") as conn:
        js = conn.nc.jetstream()
        for stream in STREAM_DECLS:
            await js.stream_info(stream.name)
        for decl in CONSUMER_DECLS:
            await js.consumer_info(decl.stream, decl.name)
    async with connect(provisioned, "provision") as conn:
        # idempotent, and the provision user reads no application subjects
        report = await provision(conn.nc.jetstream(), replicas=1)
        assert report.created == []
        assert await conn.subscribe_denied("kumkm.>")
        assert await conn.publish_denied("kumkm.loans.loan.disbursed.v1")


# ---- integrators -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(EXT_BY_ROLE))
async def test_integrator_publishes_its_ext_events_and_gets_pub_acks(
    provisioned: DeployNats, role: str
) -> None:
    async with connect(provisioned, role) as conn:
        for subject in EXT_BY_ROLE[role]:
            ack = await conn.js_publish(subject)
            assert ack.stream == STREAM_OF[subject.split(".")[1]]
        assert conn.errors == []


@pytest.mark.parametrize("role", sorted(EXT_BY_ROLE))
async def test_integrator_cannot_publish_anything_else(provisioned: DeployNats, role: str) -> None:
    forbidden = [s for s in ALL_EXT if s not in EXT_BY_ROLE[role]] + SERVICE_ONLY
    forbidden += ["kumkm.catalog.order.placed.v2", "kumkm.loans.>", "$JS.API.INFO", *ADMIN_API]
    async with connect(provisioned, role) as conn:
        allowed = [subject for subject in forbidden if not await conn.publish_denied(subject)]
    assert allowed == []


@pytest.mark.parametrize("role", sorted(EXT_BY_ROLE))
async def test_integrator_reads_nothing_but_its_private_inbox(provisioned: DeployNats, role: str) -> None:
    targets = ["kumkm.>", ">", "_INBOX.>", "_INBOX_loans.>", "$JS.EVENT.>", "kumkm.dlq.>"]
    targets += [f"_INBOX_{other}.>" for other in EXT_BY_ROLE if other != role]
    async with connect(provisioned, role) as conn:
        readable = [subject for subject in targets if not await conn.subscribe_denied(subject)]
    assert readable == []


async def test_integrator_without_its_inbox_prefix_gets_no_pub_ack(provisioned: DeployNats) -> None:
    async with connect(provisioned, "buyer", prefix=None) as conn:
        with pytest.raises(nats.errors.TimeoutError):
            await conn.nc.jetstream().publish("kumkm.catalog.order.placed.v1", b"{}", timeout=1)
        # The client's reply subscription on _INBOX.<id>.* is refused, so the PubAck never arrives.
        assert any('subscription to "_inbox.' in str(e).lower() for e in conn.errors)


async def test_seller_cannot_place_orders_but_can_submit_products(provisioned: DeployNats) -> None:
    async with connect(provisioned, "seller") as conn:
        assert await conn.publish_denied("kumkm.catalog.order.placed.v1")
        ack = await conn.js_publish("kumkm.catalog.product.submitted.v1")
        assert ack.stream == "KUMKM_CATALOG"
        assert not ack.duplicate


# ---- services --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_service_publishes_its_own_context_and_dlq(provisioned: DeployNats, service: str) -> None:
    own = {
        "loans": "kumkm.loans.restructuring.approved.v1",
        "catalog": "kumkm.catalog.order.accepted.v1",
        "notifications": "kumkm.notifications.notification.delivered.v1",
    }[service]
    async with connect(provisioned, service) as conn:
        assert (await conn.js_publish(own)).stream == STREAM_OF[service]
        assert (await conn.js_publish(f"kumkm.dlq.{service}")).stream == "KUMKM_DLQ"
        assert conn.errors == []


@pytest.mark.parametrize("service", SERVICES)
async def test_service_cannot_publish_into_another_context(provisioned: DeployNats, service: str) -> None:
    others = [s for s in ALL_EXT + SERVICE_ONLY if s.split(".")[1] not in {service, "dlq"}]
    others += [f"kumkm.dlq.{other}" for other in SERVICES if other != service]
    async with connect(provisioned, service) as conn:
        allowed = [subject for subject in others if not await conn.publish_denied(subject)]
    assert allowed == []
    assert others


@pytest.mark.parametrize("service", SERVICES)
async def test_service_cannot_administer_streams(provisioned: DeployNats, service: str) -> None:
    async with connect(provisioned, service) as conn:
        allowed = [subject for subject in ADMIN_API if not await conn.publish_denied(subject)]
    assert allowed == []


@pytest.mark.parametrize("decl", CONSUMER_DECLS, ids=lambda d: d.name)
async def test_service_pulls_and_acks_its_own_durable_consumer(provisioned: DeployNats, decl) -> None:
    subject = decl.filter_subjects[0]
    async with connect(provisioned, "operator") as operator:
        ack = await operator.js_publish(subject)
    async with connect(provisioned, decl.service) as conn:
        js = conn.nc.jetstream()
        # What FastStream does with declare=False: look the durable up, then bind and pull.
        sub = await js.pull_subscribe(subject, durable=decl.name, stream=decl.stream)
        seen = []
        while ack.seq not in seen:
            for msg in await sub.fetch(batch=100, timeout=5):
                seen.append(msg.metadata.sequence.stream)
                await msg.ack_sync(timeout=5)  # a request on the ack subject, answered on the private inbox
        # The DLQ path for max-deliveries advisories: read the advisory subject, fetch the message.
        await conn.nc.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{decl.stream}.{decl.name}")
        original = await js.get_msg(decl.stream, ack.seq)
        assert original.subject == subject
        info = await js.consumer_info(decl.stream, decl.name)
        assert info.num_ack_pending == 0
        await conn.nc.flush()
        assert conn.errors == []


@pytest.mark.parametrize("service", SERVICES)
async def test_service_cannot_use_other_services_consumers(provisioned: DeployNats, service: str) -> None:
    own = {(d.stream, d.name) for d in consumers_of(service)}
    foreign = [(d.stream, d.name) for d in CONSUMER_DECLS if (d.stream, d.name) not in own]
    subjects = []
    for stream, name in foreign:
        subjects += [
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
            f"$JS.API.CONSUMER.INFO.{stream}.{name}",
            f"$JS.ACK.{stream}.{name}.1.1.1.1.0",
        ]
    async with connect(provisioned, service) as conn:
        allowed = [subject for subject in subjects if not await conn.publish_denied(subject)]
        advisories = [
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{name}" for stream, name in foreign
        ]
        readable = [s for s in [*advisories, "kumkm.>", "_INBOX.>"] if not await conn.subscribe_denied(s)]
    assert allowed == []
    assert readable == []


async def test_operator_has_full_rights(provisioned: DeployNats) -> None:
    async with connect(provisioned, "operator") as conn:
        await conn.nc.subscribe("kumkm.>")
        await conn.nc.subscribe("$JS.EVENT.>")
        await conn.js_publish("kumkm.catalog.order.placed.v1")
        info = await conn.nc.jetstream().stream_info("KUMKM_CATALOG")
        assert info.state.messages > 0
        await conn.nc.flush()
        assert conn.errors == []
