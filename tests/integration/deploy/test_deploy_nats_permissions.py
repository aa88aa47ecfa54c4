"""NATS identities and permissions of deploy/ against a real nats-server in operator mode (compose config and
Helm values).

Integrator organisations publish only their role's "ext" events on subjects ending with their OWN
organisation id (docs/rules/messaging.md, "Who publishes what"), get PubAcks only on `_INBOX_<org>` and read
nothing else: their role's scoped signing key decides, whatever their user JWT says. Services publish only
their own context and DLQ subject, use only their own durable consumers and read the mandates bucket; the
provision user can run the real provisioner. Revoking an organisation cuts its open connection at once and
refuses new ones; retiring a role's signing key cuts every user it signed. Every check runs against both the
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
from nats.aio.client import RawCredentials

from kumkm_shared.integrators import ROLE_EVENTS, IntegratorRole, sender_subject
from kumkm_shared.mandates import Grant, Mandate, MandateBook
from kumkm_shared.messaging.provision import provision
from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS, consumers_of
from kumkm_shared.natsauth import AuthDir, creds_jwt, decode
from kumkm_shared.natsauth.authdir import INTEGRATORS
from kumkm_shared.natsauth.jwt import creds_text, encode, new_key, public_key
from kumkm_shared.natsauth.permissions import PLATFORM_USERS
from kumkm_shared.natsauth.push import account_connections, push_account

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from nats.aio.client import Client
    from nats.js.api import PubAck

    from tests.integration.deploy.conftest import DeployNats

pytestmark = pytest.mark.integration

ROLES = sorted(IntegratorRole, key=str)
ALL_EXT = sorted({t for types in ROLE_EVENTS.values() for t in types})
# Events only the owning service publishes.
SERVICE_ONLY = [
    "kumkm.loans.restructuring.approved.v1",
    "kumkm.loans.installment.overdue.v1",
    "kumkm.catalog.order.accepted.v1",
    "kumkm.catalog.product.curated.v1",
    "kumkm.notifications.notification.delivered.v1",
    "kumkm.dlq.loans",
]
SERVICES = ("loans", "catalog", "notifications")  # each owns a context (a stream)
NATS_SERVICES = (*SERVICES, "monitoring")  # monitoring: a read side, no stream of its own
STREAM_OF = {
    "loans": "KUMKM_LOANS",
    "catalog": "KUMKM_CATALOG",
    "notifications": "KUMKM_NOTIFICATIONS",
    "registry": "KUMKM_REGISTRY",
}
ADMIN_API = [
    "$JS.API.STREAM.CREATE.KUMKM_EVIL",
    "$JS.API.STREAM.DELETE.KUMKM_LOANS",
    "$JS.API.STREAM.PURGE.KUMKM_CATALOG",
    "$JS.API.STREAM.UPDATE.KUMKM_LOANS",
    "$JS.API.CONSUMER.CREATE.KUMKM_LOANS.spy",
    "$JS.API.CONSUMER.DURABLE.CREATE.KUMKM_LOANS.spy",
    "$JS.API.CONSUMER.DELETE.KUMKM_LOANS.loans",
]
REVOKE_DEADLINE = 10.0  # generous: the server closes the connection as it applies the update


def org_of(role: IntegratorRole, suffix: str = "a") -> str:
    return f"{role.value.replace('_', '-')}-{suffix}"


@dataclass
class Conn:
    nc: Client
    errors: list[Exception] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

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


async def _open(url: str, creds: Path | RawCredentials, prefix: str | None) -> Conn:
    conn = Conn(nc=None)  # type: ignore[arg-type]

    async def on_error(error: Exception) -> None:
        conn.errors.append(error)

    async def on_closed() -> None:
        conn.closed.set()

    options = {"inbox_prefix": prefix.encode()} if prefix else {}
    conn.nc = await nats.connect(
        url,
        user_credentials=creds,  # type: ignore[arg-type]
        error_cb=on_error,
        closed_cb=on_closed,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=5,
        **options,
    )
    return conn


@asynccontextmanager
async def connect(deploy: DeployNats, user: str, *, prefix: str | None = "default") -> AsyncIterator[Conn]:
    """A platform user, with its creds from the auth directory and its private inbox."""
    chosen = (None if user == "operator" else f"_INBOX_{user}") if prefix == "default" else prefix
    conn = await _open(deploy.url, deploy.creds(user), chosen)
    try:
        yield conn
    finally:
        await conn.nc.close()


@asynccontextmanager
async def connect_org(
    deploy: DeployNats, creds: str, org: str, *, prefix: str | None = "default"
) -> AsyncIterator[Conn]:
    """An integrator organisation, with the creds `kumkm integrators add` issued and inbox `_INBOX_<org>`."""
    conn = await _open(deploy.url, RawCredentials(creds), f"_INBOX_{org}" if prefix == "default" else prefix)
    try:
        yield conn
    finally:
        await conn.nc.close()


@pytest.fixture(scope="module")
async def provisioned(deploy_nats: DeployNats) -> DeployNats:
    """The streams and consumers, created by the real provisioner with the provision user's rights."""
    async with connect(deploy_nats, "provision") as conn:
        await provision(conn.nc.jetstream(), replicas=1)
        await MandateBook(conn.nc.jetstream()).ensure_bucket()
        await conn.nc.flush()
        assert conn.errors == []
    return deploy_nats


@pytest.fixture(scope="module")
def org_creds(deploy_nats: DeployNats) -> dict[IntegratorRole, str]:
    """One organisation per role, `<role>-a`, issued as `kumkm integrators add` issues it."""
    return {role: deploy_nats.auth.issue_integrator(org_of(role), role).creds for role in ROLES}


# ---- authentication --------------------------------------------------------------------------------------


def _foreign_creds(tmp: Path) -> str:
    """Creds with the same layout, signed by another installation's operator and account."""
    other = AuthDir.init(tmp / "other-auth")
    return other.issue_integrator("bank-x", IntegratorRole.LENDER).creds


def _self_signed_creds() -> str:
    """A user JWT signed with its own key (no account), claiming every permission."""
    seed = new_key("user")
    token = encode("user", public_key(seed), "bank-x", {"pub": {}, "sub": {}}, signer=seed)
    return creds_text(token, seed)


async def test_connections_without_valid_creds_are_refused(deploy_nats: DeployNats, tmp_path: Path) -> None:
    attempts: list[dict[str, object]] = [
        {},
        {"user": "operator", "password": "whatever"},
        {"user_credentials": RawCredentials(_foreign_creds(tmp_path))},
        {"user_credentials": RawCredentials(_self_signed_creds())},
    ]
    # A platform user's JWT with another user's seed: the nonce signature does not match.
    mixed = (
        deploy_nats.creds("loans")
        .read_text()
        .replace(
            creds_jwt(deploy_nats.creds("loans").read_text()),
            creds_jwt(deploy_nats.creds("operator").read_text()),
        )
    )
    attempts.append({"user_credentials": RawCredentials(mixed)})
    for options in attempts:
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(
                deploy_nats.url,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
                **options,  # type: ignore[arg-type]
            )


async def test_every_platform_user_connects_with_its_creds(deploy_nats: DeployNats) -> None:
    assert set(PLATFORM_USERS) == {*NATS_SERVICES, "provision", "operator", "sys"}
    for user in PLATFORM_USERS:
        token = decode(creds_jwt(deploy_nats.creds(user).read_text()))
        assert token.claims["name"] == user
        assert deploy_nats.creds(user).stat().st_mode & 0o777 == 0o600
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


# ---- integrator organisations ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_organisation_publishes_its_role_events_on_its_own_token_and_gets_pub_acks(
    provisioned: DeployNats, org_creds: dict[IntegratorRole, str], role: IntegratorRole
) -> None:
    org = org_of(role)
    async with connect_org(provisioned, org_creds[role], org) as conn:
        for event_type in ROLE_EVENTS[role]:
            ack = await conn.js_publish(sender_subject(event_type, org))
            assert ack.stream == STREAM_OF[event_type.split(".")[1]]
        assert conn.errors == []


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_organisation_cannot_publish_as_another_or_anything_else(
    provisioned: DeployNats, org_creds: dict[IntegratorRole, str], role: IntegratorRole
) -> None:
    org = org_of(role)
    own = list(ROLE_EVENTS[role])
    # its own types: bare (a service's subject), on another organisation's token, on its role's name
    forbidden = own + [sender_subject(t, org_of(role, "b")) for t in own] + [f"{t}.{role.value}" for t in own]
    forbidden += [f"{t}.{org}.x" for t in own] + [f"{t}.*" for t in own] + [f"{t}.>" for t in own]
    # every other role's types, on its own token too
    others = [t for t in ALL_EXT if t not in own]
    forbidden += others + [sender_subject(t, org) for t in others]
    forbidden += SERVICE_ONLY + [sender_subject(t, org) for t in SERVICE_ONLY]
    forbidden += ["kumkm.catalog.order.placed.v2", "kumkm.loans.>", "$JS.API.INFO", *ADMIN_API]
    forbidden += ["$KV.KUMKM_MANDATES." + org, "$SYS.REQ.CLAIMS.UPDATE"]
    async with connect_org(provisioned, org_creds[role], org) as conn:
        allowed = [subject for subject in forbidden if not await conn.publish_denied(subject)]
    assert allowed == []


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_organisation_reads_nothing_but_its_private_inbox(
    provisioned: DeployNats, org_creds: dict[IntegratorRole, str], role: IntegratorRole
) -> None:
    org = org_of(role)
    targets = ["kumkm.>", ">", "_INBOX.>", "_INBOX_loans.>", "$JS.EVENT.>", "kumkm.dlq.>", "$KV.>"]
    targets += [f"_INBOX_{org_of(other)}.>" for other in ROLES if other != role]
    targets += [f"_INBOX_{org_of(role, 'b')}.>", f"_INBOX_{role.value}.>"]
    async with connect_org(provisioned, org_creds[role], org) as conn:
        readable = [subject for subject in targets if not await conn.subscribe_denied(subject)]
        await conn.nc.subscribe(f"_INBOX_{org}.x")
        await conn.nc.flush()
        assert not conn.violations("Subscription", f"_INBOX_{org}.x")
    assert readable == []


async def test_organisation_without_its_inbox_prefix_gets_no_pub_ack(
    provisioned: DeployNats, org_creds: dict[IntegratorRole, str]
) -> None:
    org = org_of(IntegratorRole.BUYER)
    async with connect_org(provisioned, org_creds[IntegratorRole.BUYER], org, prefix=None) as conn:
        with pytest.raises(nats.errors.TimeoutError):
            await conn.nc.jetstream().publish(
                sender_subject("kumkm.catalog.order.placed.v1", org), b"{}", timeout=1
            )
        # The client's reply subscription on _INBOX.<id>.* is refused, so the PubAck never arrives.
        assert any('subscription to "_inbox.' in str(e).lower() for e in conn.errors)


async def test_user_jwt_permissions_do_not_widen_the_role(provisioned: DeployNats) -> None:
    """A scoped key's user claiming permissions of its own is refused: only the role's template applies."""
    auth = provisioned.auth
    key = auth.role_keys(IntegratorRole.SELLER)[-1]
    signer = (auth.keys_dir / "signing" / f"{key}.nk").read_bytes().strip()
    seed = new_key("user")
    wide = {"pub": {"allow": [">"]}, "sub": {"allow": [">"]}, "issuer_account": auth.account_key(INTEGRATORS)}
    token = encode("user", public_key(seed), "seller-a", wide, signer=signer)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            provisioned.url,
            user_credentials=RawCredentials(creds_text(token, seed)),  # type: ignore[arg-type]
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=3,
        )


async def test_seller_cannot_place_orders_but_can_submit_products(
    provisioned: DeployNats, org_creds: dict[IntegratorRole, str]
) -> None:
    org = org_of(IntegratorRole.SELLER)
    async with connect_org(provisioned, org_creds[IntegratorRole.SELLER], org) as conn:
        assert await conn.publish_denied(sender_subject("kumkm.catalog.order.placed.v1", org))
        ack = await conn.js_publish(sender_subject("kumkm.catalog.product.submitted.v1", org))
        assert ack.stream == "KUMKM_CATALOG"
        assert not ack.duplicate


async def test_cooperative_cannot_report_repayments(
    provisioned: DeployNats, org_creds: dict[IntegratorRole, str]
) -> None:
    org = org_of(IntegratorRole.COOPERATIVE)
    async with connect_org(provisioned, org_creds[IntegratorRole.COOPERATIVE], org) as conn:
        assert await conn.publish_denied(sender_subject("kumkm.loans.repayment.received.v1", org))
        assert await conn.publish_denied("kumkm.loans.repayment.received.v1")


# ---- revocation and signing-key rotation -----------------------------------------------------------------


async def _cut_within(conn: Conn, deadline: float = REVOKE_DEADLINE) -> None:
    await asyncio.wait_for(conn.closed.wait(), deadline)


async def test_revoking_an_organisation_cuts_its_open_connection_and_refuses_it(
    provisioned: DeployNats,
) -> None:
    auth = provisioned.auth
    bad = auth.issue_integrator("bank-revoked", IntegratorRole.LENDER)
    good = auth.issue_integrator("bank-kept", IntegratorRole.LENDER)
    subject = "kumkm.loans.loan.disbursed.v1"
    sys_creds = provisioned.creds("sys")
    async with (
        connect_org(provisioned, bad.creds, "bank-revoked") as revoked,
        connect_org(provisioned, good.creds, "bank-kept") as kept,
    ):
        await revoked.js_publish(sender_subject(subject, "bank-revoked"))
        await kept.js_publish(sender_subject(subject, "bank-kept"))
        before = await account_connections([provisioned.url], sys_creds, auth.account_key(INTEGRATORS))
        assert bad.public_key in {c.get("authorized_user") for c in before}
        # Organisations are users of INTEGRATORS, never of the platform's account.
        platform = await account_connections([provisioned.url], sys_creds, auth.account_key("KUMKM"))
        assert bad.public_key not in {c.get("authorized_user") for c in platform}

        reply = await push_account([provisioned.url], sys_creds, auth.revoke([bad.public_key]))
        assert reply["data"]["code"] == 200

        await _cut_within(revoked)
        assert not revoked.nc.is_connected
        with pytest.raises(nats.errors.ConnectionClosedError):
            await revoked.js_publish(sender_subject(subject, "bank-revoked"))
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await _open(provisioned.url, RawCredentials(bad.creds), "_INBOX_bank-revoked")
        # Another organisation of the same role keeps working, on the same connection and a new one.
        assert (await kept.js_publish(sender_subject(subject, "bank-kept"))).stream == "KUMKM_LOANS"
        async with connect_org(provisioned, good.creds, "bank-kept") as again:
            assert (await again.js_publish(sender_subject(subject, "bank-kept"))).stream == "KUMKM_LOANS"
        after = await account_connections([provisioned.url], sys_creds, auth.account_key(INTEGRATORS))
        assert bad.public_key not in {c.get("authorized_user") for c in after}
    assert bad.public_key in auth.revocations()
    # The preloaded account JWT is the revoking one too: a restart from auth.conf keeps the revocation.
    assert auth.account_jwt(INTEGRATORS) in auth.server_config.read_text()


async def test_rotating_a_role_key_keeps_old_users_until_it_is_retired(provisioned: DeployNats) -> None:
    auth = provisioned.auth
    role = IntegratorRole.REGISTRY
    subject = "kumkm.notifications.contact.upserted.v1"
    sys_creds = provisioned.creds("sys")
    old_user = auth.issue_integrator("registry-old", role)
    old_key, new_key_ = old_user.signing_key, None
    new_key_, token = auth.rotate_role_key(role)
    await push_account([provisioned.url], sys_creds, token)
    new_user = auth.issue_integrator("registry-new", role)
    assert new_user.signing_key == new_key_ != old_key
    async with (
        connect_org(provisioned, old_user.creds, "registry-old") as old_conn,
        connect_org(provisioned, new_user.creds, "registry-new") as new_conn,
    ):
        # Both keys sign valid users with the same template.
        await old_conn.js_publish(sender_subject(subject, "registry-old"))
        await new_conn.js_publish(sender_subject(subject, "registry-new"))
        assert await new_conn.publish_denied(sender_subject(subject, "registry-old"))

        retired, token = auth.retire_role_key(role)
        assert retired == old_key
        await push_account([provisioned.url], sys_creds, token)
        await _cut_within(old_conn)
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await _open(provisioned.url, RawCredentials(old_user.creds), "_INBOX_registry-old")
        assert (
            await new_conn.js_publish(sender_subject(subject, "registry-new"))
        ).stream == "KUMKM_NOTIFICATIONS"
    assert auth.role_keys(role) == [new_key_]


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


async def test_monitoring_publishes_only_its_dlq(provisioned: DeployNats) -> None:
    """The read side owns no context: its DLQ subject is all it may publish."""
    async with connect(provisioned, "monitoring") as conn:
        assert (await conn.js_publish("kumkm.dlq.monitoring")).stream == "KUMKM_DLQ"
        assert conn.errors == []
        assert await conn.publish_denied("kumkm.monitoring.anything.v1")


@pytest.mark.parametrize("service", NATS_SERVICES)
async def test_service_cannot_publish_into_another_context(provisioned: DeployNats, service: str) -> None:
    others = [s for s in ALL_EXT + SERVICE_ONLY if s.split(".")[1] not in {service, "dlq"}]
    others += [f"kumkm.dlq.{other}" for other in NATS_SERVICES if other != service]
    async with connect(provisioned, service) as conn:
        allowed = [subject for subject in others if not await conn.publish_denied(subject)]
    assert allowed == []
    assert others


@pytest.mark.parametrize("service", NATS_SERVICES)
async def test_service_cannot_administer_streams(provisioned: DeployNats, service: str) -> None:
    async with connect(provisioned, service) as conn:
        allowed = [subject for subject in ADMIN_API if not await conn.publish_denied(subject)]
    assert allowed == []


@pytest.mark.parametrize("service", NATS_SERVICES)
async def test_service_reads_mandates_but_cannot_write_them(provisioned: DeployNats, service: str) -> None:
    async with connect(provisioned, "operator") as operator:
        grant = Grant(role=IntegratorRole.LENDER, parties=("LENDER-1",))
        mandate = Mandate(organisation="bank-reads", grants=(grant,))
        await MandateBook(operator.nc.jetstream()).put(mandate)
    async with connect(provisioned, service) as conn:
        book = MandateBook(conn.nc.jetstream())
        found = await book.get("bank-reads")
        assert found is not None
        # Read from the stream's leader ($JS.API.STREAM.MSG.GET), not a follower's direct get (review 12, 7a).
        assert book._kv is not None
        assert book._kv._direct is False
        assert found.covers(frozenset({IntegratorRole.LENDER}), "LENDER-1")
        assert await MandateBook(conn.nc.jetstream()).get("nobody-here") is None
        assert await conn.publish_denied("$KV.KUMKM_MANDATES.bank-reads")
        assert await conn.publish_denied("$JS.API.STREAM.PURGE.KV_KUMKM_MANDATES")
        assert await conn.publish_denied("$JS.API.STREAM.DELETE.KV_KUMKM_MANDATES")


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


@pytest.mark.parametrize("service", NATS_SERVICES)
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


async def test_sys_user_only_pushes_accounts_and_lists_connections(provisioned: DeployNats) -> None:
    async with connect(provisioned, "sys") as conn:
        denied = ["$SYS.REQ.SERVER.PING.KICK", "$SYS.REQ.ACCOUNT.PING.STATZ", "kumkm.loans.loan.disbursed.v1"]
        allowed = [subject for subject in denied if not await conn.publish_denied(subject)]
        readable = [s for s in ["$SYS.>", ">"] if not await conn.subscribe_denied(s)]
    assert allowed == []
    assert readable == []


# ---- PubAck reply subjects (review 12, finding 1) --------------------------------------------------------


async def _stream_state(conn: Conn, stream: str) -> tuple[int, int]:
    state = (await conn.nc.jetstream().stream_info(stream)).state
    return state.messages, state.last_seq


@pytest.mark.parametrize(
    "reply",
    [
        "$KV.KUMKM_MANDATES.bank-victim",
        "kumkm.loans.loan.disbursed.v1",
        "kumkm.loans.loan.disbursed.v1.bank-victim",
        "kumkm.dlq.x",
        "$JS.API.STREAM.PURGE.KUMKM_LOANS",
    ],
)
async def test_a_reply_subject_cannot_make_jetstream_write_into_the_platform_account(
    provisioned: DeployNats, reply: str
) -> None:
    """NATS checks the publish subject only: JetStream then sends its PubAck to the reply subject. An
    organisation's reply subject must address nothing of the platform (its own account only)."""
    auth = provisioned.auth
    lender = auth.issue_integrator("bank-injector", IntegratorRole.LENDER)
    subject = sender_subject("kumkm.loans.loan.disbursed.v1", "bank-injector")
    async with connect(provisioned, "operator") as operator:
        book = MandateBook(operator.nc.jetstream())
        victim = Mandate(
            organisation="bank-victim", grants=(Grant(role=IntegratorRole.LENDER, parties=("L-1",)),)
        )
        await book.put(victim)
        watched = ["KV_KUMKM_MANDATES", "KUMKM_DLQ"]
        before = {s: await _stream_state(operator, s) for s in watched}
        loans_before = await _stream_state(operator, "KUMKM_LOANS")
        async with connect_org(provisioned, lender.creds, "bank-injector") as conn:
            await conn.nc.publish(
                subject, b'{"test": true}', reply=reply, headers={"Nats-Msg-Id": str(uuid.uuid4())}
            )
            await conn.nc.flush()
            # The same organisation's ordinary publish still gets its PubAck (and orders after the first).
            assert (await conn.js_publish(subject)).stream == "KUMKM_LOANS"
            assert conn.errors == []
        after = {s: await _stream_state(operator, s) for s in watched}
        loans_after = await _stream_state(operator, "KUMKM_LOANS")
        stored = await book.get("bank-victim")
    assert after == before
    # Exactly the two events themselves: no PubAck stored on a bare or another sender's subject.
    assert loans_after[1] == loans_before[1] + 2
    assert stored is not None
    assert stored.covers(frozenset({IntegratorRole.LENDER}), "L-1")
