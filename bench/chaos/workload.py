"""The integrators' side: parties, loans, products and orders, published as contract events or sent to the
HTTP APIs, with an independent ledger of what was sent and which effects must follow.

The ledger never reads the system to decide what to expect: it derives expectations from what it sent.
Publishes are retried with the same ``Nats-Msg-Id`` until a PubAck arrives (the broker de-duplicates), and
HTTP commands until a definitive answer; an operation that needed a retry is *uncertain*, and the checker
counts it as *recovered* when its effect turns out to exist exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import httpx
import nats
import nats.errors
import nats.js.errors

from bench.chaos.signin import READERS
from kumkm_shared.contracts import (
    ContactUpserted,
    EventData,
    LoanDisbursed,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ProductSubmitted,
    RepaymentReceived,
    RestructuringRequested,
    make_event,
)

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

    from bench.chaos.orgs import Org
    from bench.chaos.signin import SignIn

SOURCE = "urn:integrator:kumkm-chaos"
OFFICERS = "officers"
CHANNELS = ("email", "webhook", "inbox")
REGION = {"province": "Jawa Barat", "city": "Kota Bekasi"}


# ------------------------------------------------------------------------------------------------------
# the ledger


@dataclass
class Sent:
    """One event an integrator published (or a command sent over HTTP)."""

    event_id: str
    type: str
    aggregate: str
    sent_at: float  # time.time() of the first attempt
    acked_at: float = 0.0
    attempts: int = 0
    uncertain: bool = False  # needed a retry: the first attempt's fate was unknown to the client
    sender: str | None = None  # the organisation whose token the subject carried


@dataclass
class ExpectedNotification:
    """A notification that must reach ``party`` on ``channel`` because of ``cause``.

    ``cause`` is either an event id we sent, or ``(outcome type, aggregate)`` resolved by the checker from
    the streams (an outcome event the services emit, whose id we cannot know in advance).
    """

    party: str
    channel: str
    cause_event_id: str | None = None
    cause_type: str | None = None
    cause_key: tuple[str, str] | None = None  # (data field, value) identifying the outcome event


@dataclass
class ExpectedOutcome:
    """Exactly one event of one of ``types`` with ``data[field] == value`` must be on the streams."""

    types: tuple[str, ...]
    field: str
    value: str


@dataclass
class ExpectedAudit:
    """A human command that took effect: exactly one ``committed`` record of it must be in the service's
    audit trail (written in the command's own transaction), whatever faults hit its answer."""

    schema: str  # the service's schema, where its audit_trail is
    path: str  # the request's path, e.g. /restructurings/RR-C-D-00001/decision
    actor: str  # the signed-in person's username


@dataclass
class Ledger:
    sent: list[Sent] = field(default_factory=list)
    by_id: dict[str, Sent] = field(default_factory=dict)
    outcomes: list[ExpectedOutcome] = field(default_factory=list)
    notifications: list[ExpectedNotification] = field(default_factory=list)
    loans: dict[str, list[str]] = field(default_factory=dict)  # loan id -> payment ids
    orders: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # order -> (product, qty, stock)
    products: dict[str, str] = field(default_factory=dict)  # product -> seller NIB
    contacts: set[str] = field(default_factory=set)
    http_commands: list[Sent] = field(default_factory=list)
    audits: list[ExpectedAudit] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)  # restructuring request -> its final status
    poison: dict[str, PoisonSent] = field(default_factory=dict)  # poison id -> what was sent
    flows_done: int = 0
    flows_failed: list[str] = field(default_factory=list)

    def record(self, item: Sent) -> None:
        self.sent.append(item)
        self.by_id[item.event_id] = item


@dataclass
class Impersonation:
    """An event claiming a party outside its sender's mandate: refused by ``consumer``, audited once, and
    changing nothing: no row where ``absent`` says (``(table, column, value)``), no event it caused, no
    notification about it."""

    what: str
    event_id: str
    consumer: str  # the owning service's durable, which checks the sender's mandate
    absent: tuple[tuple[str, str, str], ...] = ()
    stream_message: tuple[str, int] | None = None  # (stream, sequence) once published: the audit's key


@dataclass
class PoisonSent:
    poison_id: str
    kind: str
    subject: str
    consumers: tuple[str, ...]  # durables that must each dead-letter it
    expected_reasons: tuple[str, ...]  # acceptable reason codes (empty: any)
    impersonation: Impersonation | None = None


# ------------------------------------------------------------------------------------------------------
# publishing with retries


async def _quiet(_exc: Exception) -> None:
    """The default error callback prints every reconnect failure; the faults make them expected."""


async def _quiet_event() -> None:
    return None


class Integrator:
    """A nats-py client that publishes events and retries until the broker acknowledges them."""

    def __init__(self, nats_url: str, ledger: Ledger, *, name: str = "kumkm-chaos-integrator") -> None:
        self.nats_url = nats_url
        self.ledger = ledger
        self.name = name
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None

    async def connect(self) -> None:
        self.nc = await nats.connect(
            self.nats_url.split(","),  # one URL, or each node's on a cluster
            name=self.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            allow_reconnect=True,
            error_cb=_quiet,
            disconnected_cb=_quiet_event,
        )
        self.js = self.nc.jetstream(timeout=3.0)

    async def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
            self.nc = None

    async def publish_raw(
        self, subject: str, body: bytes, headers: dict[str, str], *, deadline: float = 180.0
    ) -> int:
        """Publish until acked; returns the number of attempts."""
        attempts, _ = await self.publish_acked(subject, body, headers, deadline=deadline)
        return attempts

    async def publish_acked(
        self, subject: str, body: bytes, headers: dict[str, str], *, deadline: float = 180.0
    ) -> tuple[int, PubAck]:
        """Publish until acked; the number of attempts and the PubAck (a retry's duplicate PubAck names
        the first copy's stream sequence)."""
        if self.js is None:
            raise RuntimeError("not connected")
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                ack = await self.js.publish(subject, body, headers=headers)
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
                if time.monotonic() - start > deadline:
                    raise RuntimeError(f"publish to {subject} not acknowledged after {deadline}s") from exc
                await asyncio.sleep(min(0.2 * attempt, 1.0))
                continue
            return attempt, ack

    async def publish(self, data: EventData, sender: Org, *, event_id: UUID | None = None) -> Sent:
        """Publish as ``sender`` (on ``<type>.<organisation>``), recorded in the ledger as a valid event."""
        envelope = make_event(data, source=SOURCE, event_id=event_id or uuid4())
        item = Sent(str(envelope.id), envelope.type, envelope.subject or "", time.time(), sender=sender.id)
        self.ledger.record(item)
        item.attempts = await self.publish_raw(
            sender.subject(envelope.type), envelope.to_json_bytes(), {"Nats-Msg-Id": envelope.msg_id}
        )
        item.uncertain = item.attempts > 1
        item.acked_at = time.time()
        return item


class Api:
    """HTTP commands and reads, retried through service restarts, each with a real access token: a read as
    the service's reader (``signin.READERS``), a command as the person or service account it names.

    With several replicas of a service (``urls``: each replica's base URL), requests take them in turn, as
    a load balancer would, and a retry goes to the next one."""

    def __init__(self, urls: dict[str, list[str]], ledger: Ledger, signin: SignIn) -> None:
        self.urls = urls
        self._turn: Counter[str] = Counter()
        self.ledger = ledger
        self.signin = signin
        self.client = httpx.AsyncClient(timeout=10.0)

    def url(self, service: str, path: str) -> str:
        replicas = self.urls[service]
        self._turn[service] += 1
        return replicas[self._turn[service] % len(replicas)] + path

    async def close(self) -> None:
        await self.client.aclose()
        await self.signin.aclose()

    async def get(
        self, service: str, path: str, *, deadline: float = 180.0, who: str | None = None
    ) -> httpx.Response | None:
        start = time.monotonic()
        while time.monotonic() - start < deadline:
            headers = await self.signin.headers(who or READERS[service])
            try:
                response = await self.client.get(self.url(service, path), headers=headers)
            except httpx.HTTPError:
                await asyncio.sleep(0.3)
                continue
            if response.status_code >= 500:
                await asyncio.sleep(0.3)
                continue
            return response
        return None

    async def command(
        self,
        service: str,
        method: str,
        path: str,
        body: dict[str, Any],
        *,
        label: str,
        who: str,
        deadline: float = 180.0,
    ) -> httpx.Response:
        """Send as `who` until a definitive answer. A 409 after an attempt whose answer was lost means it
        applied."""
        item = Sent(f"http:{label}", f"{method} {path}", label, time.time())
        self.ledger.http_commands.append(item)
        start = time.monotonic()
        while True:
            item.attempts += 1
            headers = await self.signin.headers(who)
            try:
                response = await self.client.request(
                    method, self.url(service, path), json=body, headers=headers
                )
            except httpx.HTTPError:
                item.uncertain = True
                if time.monotonic() - start > deadline:
                    raise
                await asyncio.sleep(0.3)
                continue
            if response.status_code >= 500:
                item.uncertain = True
                if time.monotonic() - start > deadline:
                    response.raise_for_status()
                await asyncio.sleep(0.3)
                continue
            item.acked_at = time.time()
            return response


# ------------------------------------------------------------------------------------------------------
# the business data


def cooperative_number(i: int) -> str:
    return f"3275{i:012d}"


def nib(i: int) -> str:
    return f"91{i:011d}"


def buyer_id(i: int) -> str:
    return f"BUYER-{i:05d}"


def contact(
    party: str, kind: str, name: str, hook_url: str, *, channels: tuple[str, ...] = CHANNELS
) -> ContactUpserted:
    return ContactUpserted.model_validate(
        {
            "party_id": party,
            "party_kind": kind,
            "name": name,
            "email": f"{party.lower()}@example.org",
            "webhook_url": f"{hook_url}/{party}",
            "locale": "id_ID",
            "channels": list(channels),
            "updated_at": datetime.now(UTC).isoformat(),
        }
    )


def disbursement(loan_id: str, borrower: str, principal: str = "500000000.00") -> LoanDisbursed:
    return LoanDisbursed.model_validate(
        {
            "loan_id": loan_id,
            "lender": "LPDB-KUMKM",
            "borrower": {
                "kind": "cooperative",
                "id": borrower,
                "name": f"Koperasi {borrower[-5:]}",
                "region": REGION,
            },
            "principal": principal,
            "annual_rate": "0.06",
            "tenor_months": 24,
            "method": "annuity",
            "disbursed_on": "2020-02-01",
            "first_due_on": "2020-03-01",
        }
    )


def repayment(payment_id: str, loan_id: str, paid_on: date, amount: str = "22000000.00") -> RepaymentReceived:
    return RepaymentReceived.model_validate(
        {
            "payment_id": payment_id,
            "loan_id": loan_id,
            "amount": amount,
            "paid_on": paid_on.isoformat(),
            "channel": "virtual_account",
            "reference": f"VA-{payment_id}",
        }
    )


def restructuring(request_id: str, loan_id: str, reason: str = "covid19_direct") -> RestructuringRequested:
    """A request the policy approves at once; with another `reason` than COVID-19 it is referred to an
    officer."""
    return RestructuringRequested.model_validate(
        {
            "request_id": request_id,
            "loan_id": loan_id,
            "requested_on": "2020-04-15",
            "reason": reason,
            "impact": {"revenue_drop_pct": "45", "note": "Pasar sepi selama PSBB"},
            "proposal": [{"scheme": "tenor_extension", "extra_months": 6}],
            "reschedule_from": "2020-05-01",
        }
    )


def seller(seller_nib: str) -> dict[str, Any]:
    return {"nib": seller_nib, "name": f"CV Mebel {seller_nib[-5:]}", "scale": "small", "region": REGION}


def product(product_id: str, seller_nib: str, stock: int = 100) -> ProductSubmitted:
    return ProductSubmitted.model_validate(
        {
            "product_id": product_id,
            "revision": 1,
            "seller": seller(seller_nib),
            "name": "Meja kerja kayu jati 120x60",
            "category": "furniture",
            "unit": "pcs",
            "unit_price": "1850000.00",
            "min_order_qty": 2,
            "stock": stock,
            "tkdn_pct": "85",
            "certifications": ["sni"],
            "description": "Meja kerja kayu jati, finishing natural.",
        }
    )


def buyer(buyer: str) -> dict[str, Any]:
    return {
        "id": buyer,
        "name": "Dinas Pendidikan Kota Bekasi",
        "kind": "local_government",
        "work_unit": "Sekretariat",
        "commitment_official": "Budi Santoso",
        "region": REGION,
    }


def order(order_id: str, buyer_party: str, product_id: str, qty: int) -> OrderPlaced:
    return OrderPlaced.model_validate(
        {
            "order_id": order_id,
            "buyer": buyer(buyer_party),
            "budget": {"rup_code": "RUP-26541234", "fiscal_year": 2026},
            "lines": [{"product_id": product_id, "qty": qty, "unit_price": "1850000.00"}],
            "delivery": {"address": "Jl. Ir. H. Juanda No. 100, Bekasi", "needed_by": "2027-03-20"},
        }
    )


def lifecycle(step: str, order_id: str, buyer_party: str, seller_nib: str) -> EventData:
    refs = {"order_id": order_id, "buyer": {"id": buyer_party}, "seller": {"nib": seller_nib}}
    now = datetime.now(UTC)
    if step == "confirm":
        return OrderConfirmed.model_validate(
            {**refs, "confirmed_at": now.isoformat(), "expected_ship_on": "2027-01-10"}
        )
    if step == "ship":
        return OrderShipped.model_validate(
            {
                **refs,
                "shipped_at": now.isoformat(),
                "carrier": "JNE",
                "tracking_number": f"JNE{order_id[-8:]}",
            }
        )
    if step == "deliver":
        return OrderDelivered.model_validate(
            {
                **refs,
                "bast_number": f"BAST/{order_id}",
                "delivered_on": now.date().isoformat(),
                "received_by": "Budi Santoso",
            }
        )
    return OrderPaid.model_validate(
        {
            **refs,
            "amount": "7400000.00",
            "paid_on": now.date().isoformat(),
            "payment_reference": f"SP2D/{order_id}",
            "channel": "sp2d",
        }
    )
