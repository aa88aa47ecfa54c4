"""The whole docker-compose system without Docker: every service of docker-compose.yml, run with its own
command and its own environment, then a cross-service flow driven by integrator organisations.

- `keycloak` is the embedded OpenID provider run from the realm Keycloak imports
  (deploy/keycloak/kumkm-realm.json, plus the test users), with Keycloak's issuer path /realms/kumkm; the
  HTTP calls of the flow carry a token of `it-all` from it.
- NATS is started with deploy/nats/nats-server.conf in operator mode (an auth directory from
  `kumkm nats init`; each service gets its own creds, as the compose secrets /run/secrets/nats-<user> do)
  and Postgres is initialised by deploy/postgres/initdb with the environment docker-compose.yml gives its
  container (passwords generated from .env.example's variable names); `mailpit` is an aiosmtpd sink.
  Compose host names (`nats:4222`, `postgres:5432`, `mailpit` + port 1025) map to these local servers;
  nothing else in an environment is changed but each long-running service's KUMKM_HTTP_PORT (three
  services cannot all listen on 8080) and KUMKM_NATS_CREDS (the same user's creds, at their local path).
  KUMKM_HTTP_HOST stays compose's 0.0.0.0.
- `provision` and the four `<service>-migrate` one-shots run side by side and must exit 0; `loans`,
  `catalog`, `notifications` and `monitoring` then run `kumkm-<service> serve` until their own compose
  healthcheck passes, and so does `console` (HTTP only: no NATS user, no database), with compose's service
  host names (`http://loans:8080`, ...) mapped to the local processes.
- The flow, each integrator an organisation with its own creds and mandate (`kumkm integrators add`),
  publishing on `<type>.<org>`: `registry` upserts the contacts; `lender` reports a disbursement;
  `cooperative` asks for a restructuring, which loans approves (on the stream, published by the `loans`
  user) and notifications emails to the cooperative through "mailpit" (receipt published by the
  `notifications` user); `seller` submits a product that a curator approves over catalog's HTTP API, and
  `buyer` orders it, which catalog accepts. Nothing lands in the DLQ and no service logs a permissions
  violation.
- A person (`city.bekasi`) signs in to the console through the provider (authorization code with PKCE,
  client `kumkm-console`) and its dashboard answers.
- Each service stops on SIGTERM with exit code 0 within compose's stop_grace_period.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx
import nats
import nats.errors
import pytest
from nats.aio.client import RawCredentials
from nats.js.api import DeliverPolicy

from kumkm_shared.auth.client import password_token
from kumkm_shared.cli.demo import demo_events, lifecycle_events, order_event
from kumkm_shared.contracts import validate_event_payload
from kumkm_shared.integrators import IntegratorRole, sender_subject
from kumkm_shared.mandates import ALL_PARTIES, Grant, Mandate, MandateBook
from kumkm_shared.messaging.outbox import nats_headers
from kumkm_shared.servers.oidc import DEFAULT_REALM, EmbeddedIdentityProvider
from kumkm_shared.testing import free_port
from kumkm_shared.testing.identity import TEST_REALM
from tests.integration.deploy.compose_run import run_one_shots, running_services, wait_healthy
from tests.integration.deploy.conftest import deploy_nats_server, deploy_postgres_server, with_local_creds
from tests.integration.notifications.sinks import smtp_sink
from tests.support.compose_env import compose_hosts_in, localize, start_order
from tests.support.provider_pages import submit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from email.message import EmailMessage
    from pathlib import Path

    from nats.js import JetStreamContext

    from tests.integration.deploy.compose_run import ServiceProcess
    from tests.integration.deploy.conftest import DeployNats
    from tests.integration.notifications.sinks import SmtpSink
    from tests.support.compose_env import ComposeService

pytestmark = pytest.mark.acceptance

STATUS_CHANGED = "kumkm.catalog.order.status_changed.v1"

APPS = ("loans", "catalog", "notifications", "monitoring")  # each with its NATS user and schema
CONSOLE = "console"  # HTTP only: the services' APIs, with the signed-in person's token
VIEWER = ("city.bekasi", "kumkm-demo")  # a demo person of deploy/keycloak/kumkm-realm.json
# Images we do not build: stood in for by embedded NATS and Postgres and an SMTP sink.
STAND_INS = {"nats", "postgres", "mailpit", "keycloak"}
KEYCLOAK_PORT = 8080
REALM_PATH = "/realms/kumkm"  # Keycloak's issuer path of the realm
FLOW_USER = ("it-all", "kumkm-test")  # every role (tests/support/realm-test.json)
WAIT = 20.0
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - docker-compose.yml's KUMKM_HTTP_HOST, kept as it is


def test_compose_services_run_with_their_own_commands_and_environments(
    compose_services: dict[str, ComposeService], tmp_path: Path
) -> None:
    started = time.monotonic()
    # Every service `docker compose up` starts (default profile) is a stand-in or is run below.
    ours = [name for name in start_order(compose_services) if name not in STAND_INS]
    assert set(ours) == {"provision", *APPS, *(f"{app}-migrate" for app in APPS), CONSOLE}
    with ExitStack() as stack:
        deploy_nats = stack.enter_context(deploy_nats_server("compose"))
        postgres = stack.enter_context(deploy_postgres_server("compose-initdb", compose_services))
        smtp = stack.enter_context(smtp_sink())
        keycloak = stack.enter_context(
            EmbeddedIdentityProvider(
                tmp_path / "keycloak", [DEFAULT_REALM, TEST_REALM], issuer_path=REALM_PATH
            )
        )
        nats_host, nats_port = deploy_nats.url.removeprefix("nats://").split(":")
        endpoints = {
            ("nats", 4222): (nats_host, int(nats_port)),
            ("postgres", 5432): (postgres.host, postgres.port),
            ("mailpit", 1025): (smtp.host, smtp.port),
            ("keycloak", KEYCLOAK_PORT): ("127.0.0.1", keycloak.port),
        }

        one_shots = [localize(compose_services[name], endpoints) for name in ours]
        one_shots = [with_local_creds(service, deploy_nats) for service in one_shots if service.one_shot]
        assert {s.name for s in one_shots} == {"provision", *(f"{app}-migrate" for app in APPS)}
        for service in one_shots:
            assert compose_hosts_in(service, compose_services) == {}, service.name
        for name, result in run_one_shots(one_shots).items():
            assert result.returncode == 0, (
                f"{name} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )

        # KUMKM_HTTP_HOST keeps compose's 0.0.0.0 (what the container binds); only the port is this test's.
        long_running = [
            with_local_creds(
                localize(
                    compose_services[app], endpoints, http_port=free_port(ALL_INTERFACES), http_host=None
                ),
                deploy_nats,
            )
            for app in APPS
        ]
        for service in long_running:
            assert compose_hosts_in(service, compose_services) == {}, service.name
            assert service.environment["KUMKM_HTTP_HOST"] == ALL_INTERFACES
            assert service.environment["KUMKM_AUTH_ISSUER"] == keycloak.issuer
        console = _local_console(compose_services[CONSOLE], endpoints, long_running)
        assert compose_hosts_in(console, compose_services) == {}, console.name
        assert console.environment["KUMKM_CONSOLE_ISSUER"] == keycloak.issuer
        with running_services([*long_running, console], tmp_path) as processes:
            wait_healthy(processes.values(), timeout=60)
            # Subscriptions are made before a service reports ready: a denied one is in the log by now.
            _assert_no_permission_violations(processes)
            try:
                urls = {n: p.base_url for n, p in processes.items() if n != CONSOLE}
                asyncio.run(_flow(deploy_nats, urls, smtp, keycloak.issuer))
                asyncio.run(_console_sign_in(processes[CONSOLE].base_url, keycloak.issuer))
            except BaseException as exc:
                tails = "\n\n".join(f"--- {p.name}:\n{p.log_tail(60)}" for p in processes.values())
                exc.add_note(f"service logs:\n{tails}")
                raise
            for process in processes.values():
                process.check_running()
                code = process.stop()
                if process.name == CONSOLE:
                    # uvicorn.run re-raises the SIGTERM it handled once shut down: a graceful stop exits
                    # with -15 (143 in Docker), after its shutdown is logged complete.
                    assert code in {0, -signal.SIGTERM}, f"console stopped with {code}:\n{process.log_tail()}"
                    assert "Application shutdown complete" in process.log_tail(), process.log_tail()
                    continue
                assert code == 0, f"{process.name} stopped with {code}:\n{process.log_tail()}"
            _assert_no_permission_violations(processes)
    assert time.monotonic() - started < 120


def _local_console(
    console: ComposeService,
    endpoints: dict[tuple[str, int], tuple[str, int]],
    services: list[ComposeService],
) -> ComposeService:
    """The console with compose's service host names (http://loans:8080, ...) mapped to the local
    processes, listening on a free port (KUMKM_CONSOLE_PORT, and KUMKM_HTTP_PORT for its healthcheck),
    its public URL one the realm's kumkm-console client accepts."""
    port = free_port()
    apps = {(s.name, 8080): ("127.0.0.1", int(s.environment["KUMKM_HTTP_PORT"])) for s in services}
    local = localize(console, {**endpoints, **apps}, http_port=port)
    env = dict(local.environment)
    assert env["KUMKM_CONSOLE_PORT"] == "8080", "compose: the console listens on the container's 8080"
    env["KUMKM_CONSOLE_PORT"] = str(port)
    env["KUMKM_CONSOLE_HOST"] = "127.0.0.1"
    env["KUMKM_CONSOLE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    return replace(local, environment=env)


async def _console_sign_in(console: str, issuer: str) -> None:
    """A person signs in to the console through the provider compose's console trusts (authorization code
    with PKCE, kumkm-console), and the dashboard page answers."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=20) as browser:
        start = await browser.get(f"{console}/auth/login", follow_redirects=False)
        assert start.status_code in {302, 303}, start.text
        assert start.headers["location"].startswith(f"{issuer}/"), start.headers["location"]
        page = await browser.get(start.headers["location"])
        assert page.status_code == 200, page.text
        username, password = VIEWER
        page = await submit(browser, page, "login", username=username, password=password)
        assert page.status_code == 200, page.text[:2000]
        assert str(page.url).startswith(console), page.url
        home = await browser.get(f"{console}/")
        assert home.status_code == 200, home.text[:2000]
        assert "/auth/login" not in str(home.url), "the console kept the session"


def _assert_no_permission_violations(processes: dict[str, ServiceProcess]) -> None:
    for process in processes.values():
        text = process.log.read_text(errors="replace")
        assert "permissions violation" not in text.lower(), f"{process.name}:\n{process.log_tail(80)}"


def _org(role: IntegratorRole) -> str:
    return f"{role.value.replace('_', '-')}-org"


async def _add_organisations(deploy_nats: DeployNats, js: JetStreamContext) -> dict[IntegratorRole, str]:
    """One organisation per role the flow needs, as `kumkm integrators add ORG --role R --all-parties` does:
    its creds (signed by the role's scoped key) and its mandate in the bucket the services read."""
    book = MandateBook(js)
    await book.ensure_bucket()
    creds = {}
    roles = (IntegratorRole.REGISTRY, IntegratorRole.LENDER, IntegratorRole.COOPERATIVE)
    for role in (*roles, IntegratorRole.SELLER, IntegratorRole.BUYER):
        issued = deploy_nats.auth.issue_integrator(_org(role), role)
        grant = Grant(role=role, parties=(ALL_PARTIES,), user_keys=(issued.public_key,))
        await book.put(Mandate(organisation=_org(role), grants=(grant,), granted_by="acceptance test"))
        creds[role] = issued.creds
    return creds


@asynccontextmanager
async def _integrator(
    deploy_nats: DeployNats, creds: dict[IntegratorRole, str], role: IntegratorRole
) -> AsyncIterator[Sender]:
    """An organisation's connection: its own creds, and the private inbox `_INBOX_<org>` it requires."""
    nc = await nats.connect(
        deploy_nats.url,
        user_credentials=RawCredentials(creds[role]),  # type: ignore[arg-type]
        inbox_prefix=f"_INBOX_{_org(role)}".encode(),
        allow_reconnect=False,
    )
    try:
        yield Sender(nc.jetstream(), _org(role))
    finally:
        await nc.close()


@dataclass(frozen=True)
class Sender:
    js: JetStreamContext
    org: str


async def _publish(sender: Sender, obj: dict[str, Any]) -> None:
    envelope = validate_event_payload(obj).envelope
    subject = sender_subject(envelope.type, sender.org)
    ack = await sender.js.publish(subject, envelope.to_json_bytes(), headers=nats_headers(envelope))
    assert not ack.duplicate


async def _event(
    js: JetStreamContext, subject: str, match: Callable[[dict[str, Any]], bool], timeout: float = WAIT
) -> dict[str, Any]:
    """The first event on `subject` (read from the stream, as the operator) whose data matches."""
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await sub.next_msg(timeout=min(left, 1.0))
            except nats.errors.TimeoutError:
                continue
            body: dict[str, Any] = json.loads(msg.data)
            if match(body["data"]):
                return body
    finally:
        await sub.unsubscribe()
    raise AssertionError(f"no matching {subject} within {timeout}s")


async def _http_ok(client: httpx.AsyncClient, path: str, timeout: float = WAIT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(path)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        if response.status_code != 404 or time.monotonic() > deadline:
            raise AssertionError(f"GET {client.base_url}{path}: {response.status_code} {response.text}")
        await asyncio.sleep(0.1)


async def _email_to(smtp: SmtpSink, address: str, *words: str, timeout: float = WAIT) -> EmailMessage:
    """The first email "mailpit" received for `address` whose subject contains every one of `words`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in list(smtp.messages):
            subject = str(message["Subject"])
            if address in str(message["To"]) and all(word in subject for word in words):
                return message
        await asyncio.sleep(0.1)
    got = [(str(m["To"]), str(m["Subject"])) for m in smtp.messages]
    raise AssertionError(f"no email to {address} about {words} within {timeout}s; got {got}")


async def _flow(deploy_nats: DeployNats, urls: dict[str, str], smtp: SmtpSink, issuer: str) -> None:
    suffix = uuid.uuid4().hex[:6].upper()
    coop_contact, seller_contact, disbursed, requested, submitted = demo_events(suffix)
    loan_id, request_id = disbursed["data"]["loan_id"], requested["data"]["request_id"]
    product_id = submitted["data"]["product_id"]
    operator = await nats.connect(
        deploy_nats.url, user_credentials=str(deploy_nats.creds("operator")), allow_reconnect=False
    )
    tokens = await password_token(issuer, "kumkm-cli", *FLOW_USER)
    signed_in = {"Authorization": f"Bearer {tokens.bearer}"}
    clients = {
        app: httpx.AsyncClient(base_url=url, timeout=10, headers=signed_in) for app, url in urls.items()
    }
    try:
        js = operator.jetstream()
        creds = await _add_organisations(deploy_nats, js)
        # What Prometheus scrapes (deploy/prometheus/prometheus.yml); /metrics redirects to /metrics/, which
        # Prometheus follows (follow_redirects defaults to true).
        for app, client in clients.items():
            metrics = await client.get("/metrics", follow_redirects=True)
            assert metrics.status_code == 200, f"{app}: {metrics.status_code}"
            assert "# TYPE" in metrics.text, app

        # registry -> notifications: the contact directory.
        async with _integrator(deploy_nats, creds, IntegratorRole.REGISTRY) as registry:
            await _publish(registry, coop_contact)
            await _publish(registry, seller_contact)
        for contact in (coop_contact, seller_contact):
            await _http_ok(clients["notifications"], f"/contacts/{contact['data']['party_id']}")

        # lender, cooperative -> loans -> restructuring.approved -> notifications -> "mailpit".
        async with _integrator(deploy_nats, creds, IntegratorRole.LENDER) as lender:
            await _publish(lender, disbursed)
        await _http_ok(clients["loans"], f"/loans/{loan_id}")
        async with _integrator(deploy_nats, creds, IntegratorRole.COOPERATIVE) as cooperative:
            await _publish(cooperative, requested)
        approved = await _event(
            js, "kumkm.loans.restructuring.approved.v1", lambda d: d["request_id"] == request_id
        )
        assert approved["data"]["loan_id"] == loan_id
        # The acknowledgement of the request, then the approval (Indonesian: the contact's locale).
        await _email_to(smtp, coop_contact["data"]["email"], request_id, "kami terima")
        email = await _email_to(smtp, coop_contact["data"]["email"], loan_id, "disetujui")
        assert email["Message-ID"], email
        assert "noreply@kumkm.example" in str(email["From"]), email["From"]  # KUMKM_NOTIFICATIONS_SMTP_SENDER
        await _event(
            js,
            "kumkm.notifications.notification.delivered.v1",
            lambda d: d["event_id"] == approved["id"] and d["channel"] == "email",
        )

        # seller -> catalog; a curator over HTTP; buyer -> catalog -> order.accepted.
        async with _integrator(deploy_nats, creds, IntegratorRole.SELLER) as seller:
            await _publish(seller, submitted)
        await _http_ok(clients["catalog"], f"/products/{product_id}")
        curation = await clients["catalog"].post(
            f"/products/{product_id}/curation",
            json={
                "decision": "approved",
                "tier": "local",
                "notes": "Lengkap; TKDN 85%.",
                "checklist": [{"item": "documents_complete", "passed": True}],
            },
        )
        assert curation.status_code == 200, curation.text
        await _event(js, "kumkm.catalog.product.curated.v1", lambda d: d["product_id"] == product_id)
        await _email_to(smtp, seller_contact["data"]["email"], submitted["data"]["name"], "disetujui")
        await _order_lifecycle(deploy_nats, creds, js, smtp, seller_contact["data"]["email"], suffix)

        dlq = await js.stream_info("KUMKM_DLQ")
        assert dlq.state.messages == 0, "events landed in the DLQ"
    finally:
        for client in clients.values():
            await client.aclose()
        await operator.close()


async def _order_lifecycle(
    deploy_nats: DeployNats,
    creds: dict[IntegratorRole, str],
    js: JetStreamContext,
    smtp: SmtpSink,
    seller_email: str,
    suffix: str,
) -> None:
    """buyer -> catalog -> order.accepted; then each step from the role allowed to publish it, each one
    recorded by the catalog; the seller hears of the payment."""
    order = order_event(suffix)
    async with _integrator(deploy_nats, creds, IntegratorRole.BUYER) as buyer:
        await _publish(buyer, order)
    order_id = order["data"]["order_id"]
    await _event(js, "kumkm.catalog.order.accepted.v1", lambda d: d["order_id"] == order_id)
    confirmed, shipped, delivered, paid = lifecycle_events(suffix)
    seller, buyer = IntegratorRole.SELLER, IntegratorRole.BUYER
    for role, step in ((seller, confirmed), (seller, shipped), (buyer, delivered), (buyer, paid)):
        async with _integrator(deploy_nats, creds, role) as client:
            await _publish(client, step)
        applied = step["id"]
        await _event(js, STATUS_CHANGED, lambda d, applied=applied: d["applied_event_id"] == applied)
    await _email_to(smtp, seller_email, order_id, "Pembayaran")
