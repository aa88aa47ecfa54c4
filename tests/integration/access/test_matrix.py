"""The permission matrix, run: one test per route and persona (``matrix.CELLS``), against the three services
running together on real NATS and Postgres, signed in through the real OpenID provider.

Records in Kota Bekasi are seeded once for the module; every cell sends the matrix's request as its persona
and checks the answer: allowed (neither 401 nor 403: a 404, 409 or 422 after the checks counts as allowed),
denied (403 naming the route's permission, or ``outside_region``), or filtered (200 without the seeded
record). Commands change state as they are allowed (a decision is taken once; later ones are 409), which
cannot change who is allowed: permission and region are checked before state. Then the figures, the audit
trail of every refusal, and two guards: every served route is in the matrix, and the services' permission
tables say what the matrix says.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt
import pytest
import pytest_asyncio

from kumkm_catalog.app import build as build_catalog
from kumkm_catalog.domain.permissions import PERMISSIONS as CATALOG_TABLE
from kumkm_catalog.settings import CatalogSettings
from kumkm_loans.app import build as build_loans
from kumkm_loans.domain.permissions import PERMISSIONS as LOANS_TABLE
from kumkm_loans.settings import LoansSettings
from kumkm_notifications.app import build as build_notifications
from kumkm_notifications.domain.permissions import PERMISSIONS as NOTIFICATIONS_TABLE
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared import FixedClock
from kumkm_shared.audit.api import PERMISSIONS as AUDIT_TABLE
from kumkm_shared.auth.roles import AUDITOR
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import ServiceHarness
from kumkm_shared.testing.identity import identity
from kumkm_shared.testing.plugin import delete_all_streams, fresh_database, run_async
from tests.integration.access import matrix
from tests.integration.access.matrix import (
    CELLS,
    CONTACT,
    DYNAMIC,
    LISTED,
    LOAN,
    MESSAGE,
    NO_DEAD_LETTER,
    NOTIFICATION,
    ORDER,
    PARTY,
    PERSONAS,
    QUEUED,
    REFERRED,
    ROUTES,
    SERVICES,
    TALLY,
    TO_CURATE,
    TO_DELIST,
    Attempt,
    Cell,
    Expect,
    Persona,
    Service,
)
from tests.support.events import loan_disbursed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    import httpx

    from kumkm_shared.servers import Servers

pytestmark = pytest.mark.integration

# Thursday 12 September 2024, 10:00 in Jakarta: the catalog's clock stands still (confirmation deadlines).
THURSDAY = datetime(2024, 9, 12, 3, 0, tzinfo=UTC)
REFUSED = frozenset({401, 403})
HTTP_METHODS = frozenset({"get", "post", "put", "patch", "delete"})
AUDIT_WAIT = 10.0  # seconds: a refusal's record is written after the answer, in its own transaction


@dataclass
class World:
    """The three services, one client per service and persona, and the ids known only once seeded."""

    services: dict[Service, ServiceHarness]
    dynamic: dict[str, str] = field(default_factory=dict)
    _clients: dict[tuple[Service, str], httpx.AsyncClient] = field(default_factory=dict)

    def client(self, service: Service, persona: Persona) -> httpx.AsyncClient:
        key = (service, persona.name)
        if key not in self._clients:
            harness = self.services[service]
            made = (
                harness.service_client(persona.name)
                if persona.service_account
                else harness.client(persona.name)
            )
            self._clients[key] = made
        return self._clients[key]


def persona(name: str) -> Persona:
    return next(p for p in PERSONAS if p.name == name)


def claims_of(who: Persona) -> dict[str, Any]:
    """The claims of the persona's real access token (read, not verified: the services verify it)."""
    token = identity().service_token(who.name) if who.service_account else identity().token(who.name)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _ok(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json()


async def seed(world: World) -> None:
    """In Kota Bekasi: a loan with a referred request, products (listed, queued, to curate, to delist), an
    accepted order, the seller's contact with an inbox, and the notifications the catalog's events left."""
    loans, catalog, notifications = (world.services[s] for s in SERVICES)
    operator = notifications.client("operator")
    _ok(await operator.put(f"/contacts/{PARTY}", json=CONTACT), 200)
    await notifications.settle()

    await loans.publish(loan_disbursed(LOAN, principal="900000000.00"))
    await loans.settle()
    referred = _ok(
        await loans.http.post("/restructurings", json=matrix.restructuring_body(REFERRED, "other")), 201
    )
    assert referred["status"] == "referred", referred

    integrator = catalog.service_client("integrator-demo")
    curator = catalog.client("curator.national")
    for product_id in (LISTED, QUEUED, TO_CURATE, TO_DELIST):
        submitted = _ok(await integrator.post("/products", json=matrix.product_body(product_id)), 201)
        assert submitted["status"] == "pending_curation", submitted
    for product_id in (LISTED, TO_DELIST):
        _ok(
            await curator.post(
                f"/products/{product_id}/curation", json={"decision": "approved", "tier": "local"}
            ),
            200,
        )
    placed = _ok(await integrator.post("/orders", json=matrix.order_body(ORDER, qty=40)), 201)
    assert placed["status"] == "accepted", placed
    for harness in world.services.values():
        await harness.settle()

    async def messages() -> list[dict[str, Any]]:
        inbox: list[dict[str, Any]] = _ok(await operator.get(f"/inbox/{PARTY}"), 200)["messages"]
        return inbox

    async def notified() -> bool:
        return bool(await messages())

    await wait_for(notified, 15, message=f"an inbox message for {PARTY}")
    world.dynamic[MESSAGE] = str((await messages())[0]["id"])
    feed: list[dict[str, Any]] = _ok(await operator.get("/notifications", params={"party_id": PARTY}), 200)
    assert feed, "the seller's notifications"
    world.dynamic[NOTIFICATION] = str(feed[0]["id"])
    assert world.dynamic.keys() == DYNAMIC


@pytest_asyncio.fixture(scope="module")
async def world(kumkm_servers: Servers) -> AsyncIterator[World]:
    """Loans, catalog and notifications for the whole module, on one fresh database and clean streams."""
    if kumkm_servers.nats is not None and not kumkm_servers.nats.running:
        kumkm_servers.nats.start()  # a fault test before this module left it down
    nats_url = kumkm_servers.nats_url
    run_async(lambda: delete_all_streams(nats_url))
    definitions = {
        "loans": build_loans(settings=LoansSettings(daily_tick=False)),
        "catalog": build_catalog(
            settings=CatalogSettings(tick_interval_seconds=3600), clock=FixedClock(THURSDAY)
        ),
        "notifications": build_notifications(settings=NotificationsSettings()),
    }
    with fresh_database(kumkm_servers) as database_url:
        async with contextlib.AsyncExitStack() as stack:
            services: dict[Service, ServiceHarness] = {}
            for name in SERVICES:
                start = ServiceHarness.start(definitions[name], nats_url, database_url, consumer_batch=16)
                services[name] = await stack.enter_async_context(start)
            here = World(services)
            await seed(here)
            yield here


def _ids(body: Any, listed: tuple[str, str, str]) -> set[str]:
    items_key, id_key, _ = listed
    return {str(item[id_key]) for item in body[items_key]} if isinstance(body, dict) else set()


def _param(cell: Cell) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=cell.bug)] if cell.bug else []
    return pytest.param(cell, id=cell.id, marks=marks)


@pytest.mark.parametrize("cell", [_param(c) for c in CELLS])
async def test_cell(world: World, cell: Cell) -> None:
    route, expect = cell.route, cell.expect
    client = world.client(route.service, cell.persona)
    response = await client.request(
        route.method, route.url(world.dynamic), params=route.params or None, json=route.body
    )
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    seeded_shown = route.listed is not None and status == 200 and route.listed[2] in _ids(body, route.listed)
    wrongly_allowed = (expect.denied and status not in REFUSED) or (
        expect is Expect.FILTERED and seeded_shown
    )
    wrongly_denied = not expect.denied and status in REFUSED
    TALLY.add(Attempt(cell, status, body, wrongly_allowed, wrongly_denied))

    seen = f"{route.method} {route.url(world.dynamic)} as {cell.persona.name}: {status} {response.text[:400]}"
    if expect.denied:
        assert status == 403, f"expected 403 ({expect.value}); {seen}"
        code = "forbidden" if expect is Expect.DENY else "outside_region"
        assert body["error"] == code, seen
        assert body["permission"] == route.permission, seen
        return
    assert status not in REFUSED, f"expected allowed; {seen}"
    assert status < 500, f"a server error hides the answer; {seen}"
    if route.listed is not None:
        assert status == 200, seen
        if expect is Expect.FILTERED:
            assert not seeded_shown, f"a record outside the region is listed; {seen}"
        else:
            assert seeded_shown, f"the seeded record {route.listed[2]} is not listed; {seen}"


def _subject(who: Persona) -> str:
    return str(claims_of(who)["sub"])


Refusal = tuple[str, str, str]  # method, route template, outcome (forbidden, outside_region)


def _refusal(attempt: Attempt) -> Refusal:
    error = attempt.body.get("error") if isinstance(attempt.body, dict) else None
    return (attempt.cell.route.method, attempt.cell.route.path, str(error))


async def _refusals_recorded(world: World, service: Service, subject: str) -> set[Refusal]:
    """The 403s the service's audit trail holds for ``subject``, read by the auditor."""
    auditor = world.client(service, persona("auditor"))
    params: dict[str, str | int] = {"status": 403, "subject": subject, "limit": 1000}
    items: list[dict[str, Any]] = _ok(await auditor.get("/audit", params=params), 200)["items"]
    return {(str(r["method"]), str(r["route"]), str(r["outcome"])) for r in items}


async def test_the_figures_and_every_refusal_in_the_audit_trail(world: World) -> None:
    attempts = TALLY.attempts
    assert len(attempts) == len(CELLS), (
        f"{len(attempts)} of {len(CELLS)} cells ran: the figures need the whole module (no -k, no -x)"
    )
    figures = TALLY.figures()
    print("permission matrix:", ", ".join(f"{name} {value}" for name, value in figures.items()))  # noqa: T201
    wrong = [a.cell.id for a in attempts if (a.wrongly_allowed or a.wrongly_denied) and not a.cell.bug]
    assert not wrong, "cells answered against the matrix:\n" + "\n".join(wrong)

    refused: dict[tuple[Service, str], list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        if attempt.status == 403:
            refused[(attempt.cell.route.service, attempt.cell.persona.name)].append(attempt)
    missing: list[str] = []
    for (service, name), group in sorted(refused.items()):
        subject = _subject(persona(name))
        wanted = {_refusal(a) for a in group}

        async def recorded(
            service: Service = service, subject: str = subject, wanted: set[Refusal] = wanted
        ) -> bool:
            return wanted <= await _refusals_recorded(world, service, subject)

        with contextlib.suppress(TimeoutError, AssertionError):
            await wait_for(recorded, AUDIT_WAIT, message=f"{service}: refusals of {name}")
        have = await _refusals_recorded(world, service, subject)
        missing += [a.cell.id for a in group if _refusal(a) not in have]
    TALLY.audited = sum(len(g) for g in refused.values()) - len(missing)
    assert not missing, "refused attempts missing from the audit trail:\n" + "\n".join(missing)
    assert figures["denied (403)"] == sum(len(g) for g in refused.values())


def _operations(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS and not path.startswith("/health/")
    }


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_a_service_serves_is_in_the_matrix(world: World, service: Service) -> None:
    document = _ok(await world.services[service].anonymous().get("/openapi.json"), 200)
    served = _operations(document)
    stated = {(r.method, r.path) for r in ROUTES if r.service == service}
    assert not served - stated, (
        f"{service} serves routes the permission matrix does not list: {sorted(served - stated)}"
    )
    assert not stated - served, f"the matrix lists routes {service} does not serve: {sorted(stated - served)}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_permission_tables_say_what_the_matrix_says(service: Service) -> None:
    tables: dict[Service, Mapping[str, frozenset[str]]] = {
        "loans": LOANS_TABLE,
        "catalog": CATALOG_TABLE,
        "notifications": NOTIFICATIONS_TABLE,
    }
    assert dict(tables[service]) == matrix.stated_permissions(service)
    assert dict(AUDIT_TABLE) == {"audit.read": frozenset({AUDITOR})}


@pytest.mark.parametrize("who", PERSONAS, ids=[p.name for p in PERSONAS])
def test_each_persona_is_who_the_matrix_says(who: Persona) -> None:
    claims = claims_of(who)
    assert set(claims.get("kumkm_roles") or []) == who.roles, claims
    regions = {
        "bekasi": [matrix.BEKASI_SCOPE],
        "other": [matrix.OTHER_SCOPE],
        "national": ["national"],
        "none": [],
    }
    assert list(claims.get("kumkm_regions") or []) == regions[who.where], claims
    assert claims.get("kumkm_kind") == ("service" if who.service_account else "person"), claims


def test_every_route_is_aimed_at_a_seeded_record() -> None:
    """Each path parameter names a seeded record (or one known once seeded), so a region check can be
    reached; each list names the record whose absence or presence the cell looks for."""
    seeded = {LOAN, REFERRED, LISTED, TO_CURATE, TO_DELIST, ORDER, PARTY, NO_DEAD_LETTER, *DYNAMIC}
    for route in ROUTES:
        names = {part[1:-1] for part in route.path.split("/") if part.startswith("{")}
        assert names == route.args.keys(), route.key
        assert set(route.args.values()) <= seeded, route.key
        assert (route.listed is not None) == (route.scope is matrix.Scope.LIST), route.key
