"""The impersonation matrix's world: each cell's event, what must exist before it, and what it would change.

Every organisation publishes with its own NATS credentials; the prerequisites (loans, listed products,
orders in the state a step needs) are made by the organisations that own them, through the same bus, so
nothing is written behind the services' backs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kumkm_shared.integrators import sender_subject
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import dead_letters
from tests.integration.catalog import samples
from tests.integration.impersonation.matrix import (
    ACTIVITY,
    BUYER_A,
    BUYER_B,
    CONFIRMED,
    CONTACT,
    COOP_A,
    COOP_B,
    COOP_REGISTERED,
    COOP_UPDATED,
    DELIVERED,
    DISBURSED,
    LENDER_A,
    LENDER_B,
    NIB_A,
    NIB_B,
    PAID,
    PARTY_A,
    PARTY_B,
    PLACED,
    REPAID,
    REQUESTED,
    SHIPPED,
    STOCK,
    SUBMITTED,
    UMKM_A,
    UMKM_B,
    UMKM_REGISTERED,
    UMKM_UPDATED,
    Cell,
)
from tests.integration.loans.conftest import restructuring_requested
from tests.support.events import KRANGGAN_COOPERATIVE, contract_event, loan_disbursed, repayment_received

if TYPE_CHECKING:
    import asyncpg
    import httpx
    from nats.aio.client import Client

SCHEMA_OF = {
    "loans": "loans",
    "catalog": "catalog",
    "notifications": "notifications",
    "registry": "monitoring",
}
CONSUMER_OF = {
    "loans": "loans",
    "catalog": "catalog",
    "notifications": "notifications-contacts",
    "registry": "monitoring-registry",  # the registry has no owning service: monitoring follows it
}
BEKASI = {"province": "Jawa Barat", "city": "Kota Bekasi"}
STEP_ORDER = (CONFIRMED, SHIPPED, DELIVERED, PAID)


def context_of(event_type: str) -> str:
    return event_type.split(".")[1]


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def seller(nib: str) -> dict[str, Any]:
    return samples.FURNITURE_MAKER | {"nib": nib, "name": f"UMKM {nib[-2:]}", "region": BEKASI}


def buyer(ident: str) -> dict[str, Any]:
    return samples.DINAS_PENDIDIKAN_BEKASI | {"id": ident, "region": BEKASI}


def borrower(ident: str) -> dict[str, Any]:
    return KRANGGAN_COOPERATIVE | {"id": ident, "name": f"Koperasi {ident[-2:]}"}


@dataclass
class Side:
    """One side of the world: the parties a cell names, and the organisations that act for them."""

    lender: str
    lender_org: str
    cooperative: str
    nib: str
    seller_org: str
    buyer_id: str
    buyer_org: str
    party: str
    umkm: str
    loan_id: str = ""
    product_id: str = ""


@dataclass(frozen=True)
class Probe:
    """A query whose answer the event changes when applied, and must not change when refused."""

    sql: str
    args: tuple[Any, ...]


@dataclass
class World:
    connections: dict[str, Client]  # organisation -> its own connection (its own credentials)
    operator: Client
    db: asyncpg.Pool
    curator: httpx.AsyncClient  # the catalog's HTTP API, as a curator
    own: Side = field(
        default_factory=lambda: Side(
            LENDER_A, "mx-lender", COOP_A, NIB_A, "mx-seller", BUYER_A, "mx-buyer", PARTY_A, UMKM_A
        )
    )
    other: Side = field(
        default_factory=lambda: Side(
            LENDER_B, "mx-lender-b", COOP_B, NIB_B, "mx-seller-b", BUYER_B, "mx-buyer-b", PARTY_B, UMKM_B
        )
    )
    _stock_clock: datetime = field(default_factory=lambda: datetime(2024, 9, 1, tzinfo=UTC))

    # -- publishing as an organisation ------------------------------------------------------------------
    async def publish(self, org: str, event: dict[str, Any]) -> None:
        """Publish through the organisation's own connection, on ``<type>.<org>`` (PubAck awaited)."""
        js = self.connections[org].jetstream()
        await js.publish(
            sender_subject(event["type"], org),
            json.dumps(event).encode(),
            headers={"Nats-Msg-Id": event["id"]},
        )

    async def outcome(self, event: dict[str, Any], timeout: float = 20.0) -> tuple[bool, list[str]]:
        """Wait until the owning consumer applied the event (inbox row) or dead-lettered it; returns
        (applied, the dead letters' reason codes)."""
        context = context_of(event["type"])
        schema, consumer = SCHEMA_OF[context], CONSUMER_OF[context]
        found: dict[str, Any] = {}

        async def settled() -> bool:
            applied = await self.db.fetchval(
                f"SELECT true FROM {schema}.inbox WHERE consumer = $1 AND event_id = $2",
                consumer,
                uuid.UUID(event["id"]),
            )
            letters = [
                d.reason_code
                for d in await dead_letters(self.operator)
                if _event_id(d.original) == event["id"]
            ]
            found.update(applied=bool(applied), letters=letters)
            return bool(applied) or bool(letters)

        await wait_for(settled, timeout=timeout, interval=0.05)
        return found["applied"], found["letters"]

    async def applied(self, org: str, event: dict[str, Any]) -> None:
        """A prerequisite: published by its rightful organisation and applied."""
        await self.publish(org, event)
        applied, letters = await self.outcome(event)
        assert applied, (event["type"], letters)
        assert not letters, (event["type"], letters)

    # -- the world before any cell ----------------------------------------------------------------------
    async def prepare(self) -> None:
        for side in (self.own, self.other):
            side.loan_id = _uid("LN-MX")
            loan = loan_disbursed(side.loan_id, lender=side.lender, borrower=borrower(side.cooperative))
            await self.applied(side.lender_org, loan)
            side.product_id = _uid("PRD-MX")
            await self.applied(side.seller_org, self._product(side))
            listed = await self.curator.post(
                f"/products/{side.product_id}/curation", json={"decision": "approved", "tier": "local"}
            )
            assert listed.status_code == 200, listed.text

    def _product(self, side: Side, product_id: str | None = None) -> dict[str, Any]:
        data = samples.product(product_id or side.product_id, seller=seller(side.nib), stock=100_000)
        return samples.ev("product.submitted", data)

    async def _order(self, side: Side, status: str | None) -> str:
        """An order of ``side``'s buyer for ``side``'s product, taken up to (not including) ``status``, each
        step by its rightful party."""
        order = samples.ev("order.placed", samples.order(side.product_id, buyer=buyer(side.buyer_id)))
        await self.applied(side.buyer_org, order)
        order_id: str = order["data"]["order_id"]
        for step in STEP_ORDER:
            if status is None or step == status:
                break
            org = side.seller_org if step in (CONFIRMED, SHIPPED) else side.buyer_org
            await self.applied(org, self._step(step, order_id, side))
        return order_id

    @staticmethod
    def _step(step: str, order_id: str, side: Side) -> dict[str, Any]:
        refs = {"order_id": order_id, "buyer": {"id": side.buyer_id}, "seller": {"nib": side.nib}}
        data: dict[str, Any]
        if step == CONFIRMED:
            data = refs | {"confirmed_at": "2024-09-12T04:00:00Z"}
        elif step == SHIPPED:
            data = refs | {"shipped_at": "2024-09-13T02:00:00Z", "carrier": "JNE"}
        elif step == DELIVERED:
            data = refs | {"bast_number": _uid("BAST"), "delivered_on": "2024-09-20"}
        else:
            data = refs | {
                "amount": "18000000.00",
                "paid_on": "2024-10-01",
                "payment_reference": _uid("SP2D"),
            }
        return samples.ev(step.split(".")[2] + "." + step.split(".")[3], data)

    # -- a cell's event ---------------------------------------------------------------------------------
    async def event_for(self, cell: Cell, *, prepare: bool = True) -> tuple[dict[str, Any], Probe]:  # noqa: PLR0911
        """The event the cell's organisation sends, naming its own party or the other side's, with the
        prerequisites it needs made first (unless ``prepare`` is false: the server refuses it anyway); and
        the probe of what it would change."""
        side = self.own if cell.party == "own" else self.other
        kind = cell.event_type
        if kind == DISBURSED:
            loan_id = _uid("LN-MX")
            event = loan_disbursed(loan_id, lender=side.lender, borrower=borrower(side.cooperative))
            return event, Probe("SELECT count(*) FROM loans.loans WHERE loan_id = $1", (loan_id,))
        if kind == REPAID:
            event = repayment_received(side.loan_id)
            probe = Probe(
                "SELECT count(*) FROM loans.repayments WHERE payment_id = $1", (event["data"]["payment_id"],)
            )
            return event, probe
        if kind == REQUESTED:
            event = restructuring_requested(side.loan_id, request_id=_uid("RR-MX"))
            probe = Probe(
                "SELECT count(*) FROM loans.restructuring_requests WHERE request_id = $1",
                (event["data"]["request_id"],),
            )
            return event, probe
        if kind == SUBMITTED:
            product_id = _uid("PRD-MX")
            probe = Probe("SELECT count(*) FROM catalog.products WHERE product_id = $1", (product_id,))
            return self._product(side, product_id), probe
        if kind == STOCK:
            self._stock_clock += timedelta(minutes=1)  # each count newer than the last
            data = {
                "product_id": side.product_id,
                "seller": {"nib": side.nib},
                "stock": 90_000 + self._stock_clock.minute,
                "as_of": self._stock_clock.isoformat(),
            }
            probe = Probe(
                "SELECT stock_available FROM catalog.products WHERE product_id = $1", (side.product_id,)
            )
            return samples.ev("product.stock_updated", data), probe
        if kind == PLACED:
            event = samples.ev("order.placed", samples.order(side.product_id, buyer=buyer(side.buyer_id)))
            probe = Probe(
                "SELECT count(*) FROM catalog.orders WHERE order_id = $1", (event["data"]["order_id"],)
            )
            return event, probe
        if kind in STEP_ORDER:
            order_id = await self._order(side, kind) if prepare else _uid("ORD-MX")
            probe = Probe("SELECT status FROM catalog.orders WHERE order_id = $1", (order_id,))
            return self._step(kind, order_id, side), probe
        if kind == CONTACT:
            event = contract_event(CONTACT, party_id=side.party, name=f"Koperasi {side.party[-2:]}")
            probe = Probe("SELECT count(*) FROM notifications.contacts WHERE party_id = $1", (side.party,))
            return event, probe
        if kind in (COOP_REGISTERED, COOP_UPDATED, UMKM_REGISTERED, UMKM_UPDATED, ACTIVITY):
            return self._registry(kind, side)
        raise AssertionError(f"no event for {kind}")

    def _registry(self, kind: str, side: Side) -> tuple[dict[str, Any], Probe]:
        """A registry record or an activity report of the side's party; each one changes what monitoring
        keeps of it (a new name, a new survey id)."""
        tag = _uid("MX")
        where = BEKASI | {"district": "Jatisampurna"}
        if kind == ACTIVITY:
            event = contract_event(
                kind, party_kind="cooperative", party_id=side.party, as_of="2024-09-01", survey=tag
            )
            probe = Probe(
                "SELECT string_agg(survey, ',') FROM monitoring.activity WHERE party_id = $1", (side.party,)
            )
            return event, probe
        if kind in (COOP_REGISTERED, COOP_UPDATED):
            party = side.party
            event = contract_event(kind, cooperative_number=party, name=f"Koperasi {tag}", region=where)
        else:
            party = side.umkm
            event = contract_event(kind, nib=party, name=f"UMKM {tag}", region=where, as_of="2030-01-01")
        if kind == COOP_UPDATED:
            event["data"]["as_of"] = "2030-01-01"  # the latest record: it replaces the stored one
        probe = Probe("SELECT name FROM monitoring.parties WHERE party_id = $1", (party,))
        return event, probe

    async def probe(self, probe: Probe) -> Any:
        return await self.db.fetchval(probe.sql, *probe.args)


def _event_id(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
