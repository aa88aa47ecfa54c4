"""The permission matrix: who may call every route of every service, stated once, by hand.

This is the policy as the rules state it (``docs/rules/access.md``, ``docs/rules/loans.md``,
``docs/rules/catalog.md``), written independently of the services' permission tables
(``kumkm_loans.domain.permissions.PERMISSIONS`` and the others): the tables and the running services are
checked against it, never the other way round. ``test_matrix.py`` turns every route and persona into one cell.

A route names the one permission it declares, the roles that grant it, and how regions bound it:

- ``Scope.NONE``: not regional (operations, contacts, the audit trail);
- ``Scope.ITEM``: one record (or a command on one): a regional person outside its region gets 403
  ``outside_region``;
- ``Scope.LIST``: a list filtered by region: outside, 200 without the seeded record (inside, with it);
- ``Scope.FIGURE``: figures for a region asked for: outside, 403 ``outside_region``.

The requests aim at records the test seeds in Kota Bekasi (the ids below), with bodies valid enough that a
refusal can only come from who asks, never from what is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Literal

from kumkm_shared.auth.roles import (
    AUDITOR,
    CATALOG_CURATOR,
    INTEGRATOR,
    LOANS_OFFICER,
    LOANS_SUPERVISOR,
    MONITORING_VIEWER,
    OPERATOR,
)

Service = Literal["loans", "catalog", "notifications"]
SERVICES: Final[tuple[Service, ...]] = ("loans", "catalog", "notifications")
Where = Literal["bekasi", "other", "national", "none"]

BEKASI_SCOPE: Final = "Jawa Barat/Kota Bekasi"
OTHER_SCOPE: Final = "Jawa Timur/Kota Surabaya"


@dataclass(frozen=True)
class Persona:
    """Who calls: a demo or test user (password grant) or a service account (client credentials)."""

    name: str
    roles: frozenset[str]
    where: Where
    service_account: bool = False

    @property
    def regional(self) -> bool:
        return self.where in {"bekasi", "other"}


def _person(name: str, where: Where, *roles: str) -> Persona:
    return Persona(name, frozenset(roles), where)


PERSONAS: Final[tuple[Persona, ...]] = (
    _person("officer.bekasi", "bekasi", LOANS_OFFICER),
    _person("officer.surabaya", "other", LOANS_OFFICER),
    _person("supervisor.bekasi", "bekasi", LOANS_SUPERVISOR),
    _person("it-supervisor-sby", "other", LOANS_SUPERVISOR),
    _person("supervisor.national", "national", LOANS_SUPERVISOR),
    _person("curator.bekasi", "bekasi", CATALOG_CURATOR),
    _person("it-curator-sby", "other", CATALOG_CURATOR),
    _person("curator.national", "national", CATALOG_CURATOR),
    _person("city.bekasi", "bekasi", MONITORING_VIEWER),
    _person("it-viewer-sby", "other", MONITORING_VIEWER),
    _person("ministry", "national", MONITORING_VIEWER),
    _person("operator", "national", OPERATOR),
    _person("auditor", "national", AUDITOR),
    Persona("integrator-demo", frozenset({INTEGRATOR}), "national", service_account=True),
    _person("it-nobody", "none"),
)
"""One person per role in Kota Bekasi and one in Kota Surabaya, the national roles, and a user with no role.

The roles and regions here are what the realms give them (``deploy/keycloak/kumkm-realm.json``,
``tests/support/realm-test.json``); ``test_matrix.py`` checks each token says the same."""

# -- the records the requests aim at (seeded in Kota Bekasi by the test) ---------------------------------
LOAN: Final = "LN-MX-BKS"  # a Bekasi cooperative's loan, Rp900,000,000 (below the second-approval threshold)
REFERRED: Final = "RR-MX-BKS"  # a request of that loan, referred (reason "other"): one decision decides it
NEW_REQUEST: Final = "RR-MX-NEW"  # the request the matrix's POST /restructurings asks for
LISTED: Final = "PRD-MX-LISTED"  # a Bekasi seller's product, listed (read, stock, ordered)
QUEUED: Final = "PRD-MX-QUEUE"  # pending curation; nobody curates it (the queue's seeded record)
TO_CURATE: Final = "PRD-MX-CURATE"  # pending curation; the matrix's curation target
TO_DELIST: Final = "PRD-MX-DELIST"  # listed; the matrix's delisting target
NEW_PRODUCT: Final = "PRD-MX-NEW"  # the product the matrix's POST /products submits
ORDER: Final = "ORD-MX-BKS"  # accepted, bought by a Bekasi office (read, steps, cancellation)
NEW_ORDER: Final = "ORD-MX-NEW"  # the order the matrix's POST /orders places
PARTY: Final = "9120001234567"  # the Bekasi seller's NIB: a contact with an inbox, notified of ORDER
MESSAGE: Final = "<message_id>"  # the inbox message ORDER's acceptance left for PARTY (known once seeded)
NOTIFICATION: Final = "<notification_id>"  # that notification (known once seeded)
DYNAMIC: Final = frozenset({MESSAGE, NOTIFICATION})
# A dead letter's id nobody wrote: the DLQ routes are not regional; the permission alone decides (then 404).
NO_DEAD_LETTER: Final = "999999"

BEKASI_REGION: Final = {"province": "Jawa Barat", "city": "Kota Bekasi"}
SELLER: Final = {
    "nib": PARTY,
    "name": "Mebel Jati Kranggan",
    "scale": "micro",
    "cooperative_id": "3275010203040001",
    "region": BEKASI_REGION,
}
BUYER: Final = {
    "id": "PEMKOT-BEKASI-DISDIK",
    "name": "Dinas Pendidikan Kota Bekasi",
    "kind": "local_government",
    "work_unit": "Bidang Sarana dan Prasarana",
    "commitment_official": "Drs. Ahmad Fauzi",
    "region": BEKASI_REGION,
}


def product_body(product_id: str) -> dict[str, Any]:
    """A submission every pre-check passes (pending curation), for the Bekasi seller."""
    return {
        "product_id": product_id,
        "revision": 1,
        "seller": SELLER,
        "name": "Kursi siswa kayu jati",
        "category": "furniture",
        "unit": "pcs",
        "unit_price": "450000.00",
        "min_order_qty": 10,
        "stock": 120,
        "tkdn_pct": "62.5",
        "certifications": ["sni"],
        "description": "Kursi belajar siswa SD/SMP dari kayu jati",
    }


def order_body(order_id: str, product_id: str = LISTED, qty: int = 20) -> dict[str, Any]:
    """An order the Bekasi education office places, delivered in Bekasi, at the listed price."""
    return {
        "order_id": order_id,
        "buyer": BUYER,
        "budget": {"rup_code": "RUP-2024-3275-0042", "fiscal_year": 2024},
        "lines": [{"product_id": product_id, "qty": qty, "unit_price": "450000.00"}],
        "delivery": {
            "address": "Jl. Lapan No. 1, Bekasi Timur",
            "needed_by": "2024-10-15",
            "region": BEKASI_REGION,
        },
    }


def restructuring_body(request_id: str, reason: str = "covid19_direct") -> dict[str, Any]:
    """A restructuring request of ``LOAN`` (POST /restructurings)."""
    return {
        "request_id": request_id,
        "loan_id": LOAN,
        "requested_on": "2020-04-20",
        "reason": reason,
        "impact": {"revenue_drop_pct": "60", "note": "Pasar sepi selama PSBB"},
        "proposal": [
            {"scheme": "grace_period", "months": 6, "on": "principal"},
            {"scheme": "tenor_extension", "extra_months": 12},
        ],
        "reschedule_from": "2020-05-15",
    }


CONTACT: Final = {"party_kind": "umkm", "name": "Mebel Jati Kranggan", "channels": ["inbox"]}


class Scope(Enum):
    NONE = "none"
    ITEM = "item"
    LIST = "list"
    FIGURE = "figure"


@dataclass(frozen=True)
class Route:
    """One route: what it needs, and the request the matrix sends to it."""

    service: Service
    method: str
    path: str  # the template, as in the OpenAPI document
    permission: str
    roles: frozenset[str]
    scope: Scope = Scope.NONE
    args: dict[str, str] = field(default_factory=dict)  # path parameters
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    listed: tuple[str, str, str] | None = None  # LIST: (the list's key, the record's id key, the seeded id)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.service, self.method, self.path)

    def url(self, dynamic: dict[str, str]) -> str:
        values = {name: dynamic.get(value, value) for name, value in self.args.items()}
        return self.path.format(**values)


STAFF: Final = frozenset({LOANS_OFFICER, LOANS_SUPERVISOR})
CATALOG_READERS: Final = frozenset({CATALOG_CURATOR, INTEGRATOR, OPERATOR})
ONLY_OPERATOR: Final = frozenset({OPERATOR})
ONLY_INTEGRATOR: Final = frozenset({INTEGRATOR})
ONLY_CURATOR: Final = frozenset({CATALOG_CURATOR})
OPERATOR_OR_INTEGRATOR: Final = frozenset({OPERATOR, INTEGRATOR})
BEKASI_FIGURES: Final = {"province": "Jawa Barat", "city": "Kota Bekasi"}


def _audit(service: Service) -> Route:
    return Route(service, "GET", "/audit", "audit.read", frozenset({AUDITOR}), params={"limit": 1})


def _dlq(service: Service) -> tuple[Route, ...]:
    """The runtime's dead-letter routes (operators only); the id is one nobody wrote (404 once allowed)."""
    missing = {"seq": NO_DEAD_LETTER}
    return (
        Route(service, "GET", "/dlq", "dlq.read", ONLY_OPERATOR, params={"limit": 1}),
        Route(service, "GET", "/dlq/{seq}", "dlq.read", ONLY_OPERATOR, args=missing),
        Route(service, "POST", "/dlq/{seq}/replay", "dlq.replay", ONLY_OPERATOR, args=missing),
    )


RUNTIME_PERMISSIONS: Final = frozenset({"audit.read", "dlq.read", "dlq.replay"})


def _loans(method: str, path: str, permission: str, roles: frozenset[str], **rest: Any) -> Route:
    return Route("loans", method, path, permission, roles, **rest)


def _catalog(method: str, path: str, permission: str, roles: frozenset[str], **rest: Any) -> Route:
    return Route("catalog", method, path, permission, roles, **rest)


def _notifications(method: str, path: str, permission: str, roles: frozenset[str], **rest: Any) -> Route:
    return Route("notifications", method, path, permission, roles, **rest)


_STEP = {"order_id": ORDER}

ROUTES: Final[tuple[Route, ...]] = (
    # -- loans --------------------------------------------------------------------------------------------
    _loans("POST", "/tick", "loans.tick", ONLY_OPERATOR, body={"date": "2019-06-30"}),
    _loans("GET", "/loans/{loan_id}", "loans.read", STAFF, scope=Scope.ITEM, args={"loan_id": LOAN}),
    _loans(
        "GET",
        "/loans/{loan_id}/restructurings/preview",
        "loans.read",
        STAFF,
        scope=Scope.ITEM,
        args={"loan_id": LOAN},
        params={"reschedule_from": "2020-05-15", "extra_months": 6},
    ),
    _loans(
        "POST",
        "/restructurings",
        "loans.restructuring.request",
        STAFF,
        scope=Scope.ITEM,
        body=restructuring_body(NEW_REQUEST),
    ),
    _loans(
        "GET",
        "/restructurings",
        "loans.read",
        STAFF,
        scope=Scope.LIST,
        listed=("items", "request_id", REFERRED),
    ),
    _loans(
        "GET",
        "/restructurings/{request_id}",
        "loans.read",
        STAFF,
        scope=Scope.ITEM,
        args={"request_id": REFERRED},
    ),
    _loans(
        "POST",
        "/restructurings/{request_id}/decision",
        "loans.restructuring.decide",
        STAFF,
        scope=Scope.ITEM,
        args={"request_id": REFERRED},
        body={"decision": "approve", "reason": "Dampak COVID terverifikasi", "decided_on": "2020-05-04"},
    ),
    _loans(
        "GET",
        "/progress",
        "loans.progress.read",
        STAFF | {MONITORING_VIEWER},
        scope=Scope.FIGURE,
        params=BEKASI_FIGURES,
    ),
    _audit("loans"),
    *_dlq("loans"),
    # -- catalog ------------------------------------------------------------------------------------------
    _catalog(
        "POST",
        "/products",
        "catalog.products.submit",
        ONLY_INTEGRATOR,
        scope=Scope.ITEM,
        body=product_body(NEW_PRODUCT),
    ),
    _catalog(
        "GET",
        "/products",
        "catalog.products.read",
        CATALOG_READERS,
        scope=Scope.LIST,
        listed=("items", "product_id", LISTED),
    ),
    _catalog(
        "GET",
        "/products/{product_id}",
        "catalog.products.read",
        CATALOG_READERS,
        scope=Scope.ITEM,
        args={"product_id": LISTED},
    ),
    _catalog(
        "GET",
        "/curation/queue",
        "catalog.curation.queue",
        ONLY_CURATOR,
        scope=Scope.LIST,
        listed=("items", "product_id", QUEUED),
    ),
    _catalog(
        "POST",
        "/products/{product_id}/curation",
        "catalog.products.curate",
        ONLY_CURATOR,
        scope=Scope.ITEM,
        args={"product_id": TO_CURATE},
        body={"decision": "approved", "tier": "local"},
    ),
    _catalog(
        "POST",
        "/products/{product_id}/stock",
        "catalog.products.stock",
        ONLY_INTEGRATOR,
        scope=Scope.ITEM,
        args={"product_id": LISTED},
        body={"stock": 500},
    ),
    _catalog(
        "POST",
        "/products/{product_id}/delist",
        "catalog.products.delist",
        ONLY_CURATOR,
        scope=Scope.ITEM,
        args={"product_id": TO_DELIST},
        body={"reason": "withdrawn"},
    ),
    _catalog(
        "POST",
        "/orders",
        "catalog.orders.place",
        ONLY_INTEGRATOR,
        scope=Scope.ITEM,
        body=order_body(NEW_ORDER),
    ),
    _catalog(
        "GET",
        "/orders",
        "catalog.orders.read",
        CATALOG_READERS,
        scope=Scope.LIST,
        listed=("items", "order_id", ORDER),
    ),
    _catalog(
        "GET", "/orders/{order_id}", "catalog.orders.read", CATALOG_READERS, scope=Scope.ITEM, args=_STEP
    ),
    _catalog(
        "POST",
        "/orders/{order_id}/confirm",
        "catalog.orders.step",
        ONLY_INTEGRATOR,
        scope=Scope.ITEM,
        args=_STEP,
        body={},
    ),
    _catalog(
        "POST",
        "/orders/{order_id}/ship",
        "catalog.orders.step",
        ONLY_INTEGRATOR,
        scope=Scope.ITEM,
        args=_STEP,
        body={"carrier": "JNE"},
    ),
    _catalog(
        "POST",
        "/orders/{order_id}/deliver",
        "catalog.orders.step",
        ONLY_INTEGRATOR,
        scope=Scope.ITEM,
        args=_STEP,
        body={"bast_number": "BAST-MX-0001"},
    ),
    _catalog(
        "POST",
        "/orders/{order_id}/pay",
        "catalog.orders.step",
        ONLY_INTEGRATOR,
        scope=Scope.ITEM,
        args=_STEP,
        body={"payment_reference": "SP2D-MX-0001"},
    ),
    _catalog(
        "POST",
        "/orders/{order_id}/cancel",
        "catalog.orders.cancel",
        OPERATOR_OR_INTEGRATOR,
        scope=Scope.ITEM,
        args=_STEP,
        body={"reason": "Anggaran dialihkan"},
    ),
    _catalog("POST", "/tick", "catalog.tick", ONLY_OPERATOR, body={"date": "2024-09-12"}),
    _catalog(
        "GET",
        "/stats",
        "catalog.stats.read",
        frozenset({CATALOG_CURATOR, MONITORING_VIEWER, OPERATOR}),
        scope=Scope.FIGURE,
        params=BEKASI_FIGURES,
    ),
    _audit("catalog"),
    *_dlq("catalog"),
    # -- notifications (nothing regional: contacts are personal data, for operators) -----------------------
    _notifications(
        "PUT",
        "/contacts/{party_id}",
        "contacts.write",
        ONLY_OPERATOR,
        args={"party_id": PARTY},
        body=CONTACT,
    ),
    _notifications("GET", "/contacts/{party_id}", "contacts.read", ONLY_OPERATOR, args={"party_id": PARTY}),
    _notifications("GET", "/contacts", "contacts.read", ONLY_OPERATOR),
    _notifications(
        "POST",
        "/contacts/{party_id}/webhook-secret",
        "contacts.webhook_secret.rotate",
        ONLY_OPERATOR,
        args={"party_id": PARTY},
    ),
    _notifications(
        "POST", "/contacts/{party_id}/reroute", "contacts.reroute", ONLY_OPERATOR, args={"party_id": PARTY}
    ),
    _notifications("GET", "/inbox/{party_id}", "inbox.read", ONLY_OPERATOR, args={"party_id": PARTY}),
    _notifications(
        "POST",
        "/inbox/{party_id}/{message_id}/read",
        "inbox.mark_read",
        ONLY_OPERATOR,
        args={"party_id": PARTY, "message_id": MESSAGE},
    ),
    _notifications("GET", "/notifications", "notifications.read", ONLY_OPERATOR, params={"party_id": PARTY}),
    _notifications(
        "POST",
        "/notifications/{notification_id}/resend",
        "notifications.resend",
        ONLY_OPERATOR,
        args={"notification_id": NOTIFICATION},
    ),
    _audit("notifications"),
    *_dlq("notifications"),
)

PERMISSIONS_NOT_ON_A_ROUTE: Final[dict[Service, dict[str, frozenset[str]]]] = {
    # Checked in code by the decision route, when a request waits for its second approval (maker-checker).
    "loans": {"loans.restructuring.approve_second": frozenset({LOANS_SUPERVISOR})},
}


def stated_permissions(service: Service) -> dict[str, frozenset[str]]:
    """Permission → roles as this matrix states them for ``service`` (``audit.read`` and ``dlq.*`` are the
    runtime's)."""
    stated = {
        r.permission: r.roles
        for r in ROUTES
        if r.service == service and r.permission not in RUNTIME_PERMISSIONS
    }
    return stated | PERMISSIONS_NOT_ON_A_ROUTE.get(service, {})


class Expect(Enum):
    ALLOW = (
        "allow"  # neither 401 nor 403 (a 404, 409 or 422 after the checks is allowed); a list with the record
    )
    DENY = "deny"  # 403 ``forbidden``, naming the route's permission
    OUTSIDE = "outside"  # 403 ``outside_region``, naming the route's permission
    FILTERED = "filtered"  # 200, without the seeded record

    @property
    def label(self) -> str:
        return "deny" if self in {Expect.DENY, Expect.OUTSIDE} else self.value

    @property
    def denied(self) -> bool:
        return self in {Expect.DENY, Expect.OUTSIDE}


def expectation(route: Route, persona: Persona) -> Expect:
    """What the policy says ``persona`` gets from ``route``."""
    if not route.roles & persona.roles:
        return Expect.DENY
    if persona.where == "other":
        if route.scope in {Scope.ITEM, Scope.FIGURE}:
            return Expect.OUTSIDE
        if route.scope is Scope.LIST:
            return Expect.FILTERED
    return Expect.ALLOW


KNOWN_BUGS: Final[dict[tuple[str, str, str, str], str]] = {}
"""Cells that fail because of a bug found in a service: (service, method, path, persona) -> the bug, by
file and function. Each is a strict xfail: fixing the bug makes the cell pass; then it leaves the table."""


@dataclass(frozen=True)
class Cell:
    route: Route
    persona: Persona
    expect: Expect

    @property
    def id(self) -> str:
        r = self.route
        return f"{r.service}-{r.method}-{r.path}-{self.persona.name}-{self.expect.label}"

    @property
    def bug(self) -> str | None:
        return KNOWN_BUGS.get((*self.route.key, self.persona.name))


CELLS: Final[tuple[Cell, ...]] = tuple(
    Cell(route, persona, expectation(route, persona)) for route in ROUTES for persona in PERSONAS
)


@dataclass
class Attempt:
    """What one cell's request got."""

    cell: Cell
    status: int
    body: Any
    wrongly_allowed: bool
    wrongly_denied: bool


@dataclass
class Tally:
    """The cells run so far, for the summary (and the figures printed at the end of the session)."""

    attempts: list[Attempt] = field(default_factory=list)
    audited: int | None = None  # the refusals found in the audit trails, once the summary has looked

    def add(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)

    def figures(self) -> dict[str, int]:
        return {
            "cells": len(CELLS),
            "attempts": len(self.attempts),
            "wrongly allowed": sum(a.wrongly_allowed for a in self.attempts),
            "wrongly denied": sum(a.wrongly_denied for a in self.attempts),
            "denied (403)": sum(a.status == 403 for a in self.attempts),
        } | ({} if self.audited is None else {"403s found in the audit trail": self.audited})


TALLY: Final = Tally()
