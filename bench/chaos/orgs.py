"""The integrator organisations a workload acts as, each with its mandate as ``kumkm integrators add``
records it (the KV bucket ``KUMKM_MANDATES``), and the subject each publishes on: ``<type>.<organisation>``.

A workload publishes every integrator event as the organisation that would send it in production: the lender's
core banking system, a payment channel, a cooperative's own system, a buyer's procurement system, a
marketplace acting for the sellers it holds a mandate for, the registry of contacts. Each mandate lists the
parties the workload uses; ``*`` only where a workload generates too many parties to list (say so where used).
The bench's NATS runs without the deploy's operator JWTs, so nothing but the mandate stands between an
organisation and another's party: what the chaos suite's impersonation attempts exercise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kumkm_shared.contracts import (
    ContactUpserted,
    LoanDisbursed,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ProductSubmitted,
    RepaymentReceived,
    RestructuringRequested,
)
from kumkm_shared.integrators import ROLE_EVENTS, IntegratorRole, sender_subject
from kumkm_shared.mandates import ALL_PARTIES, Grant, Mandate, MandateBook

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from nats.js import JetStreamContext

    from kumkm_shared.contracts import EventData

GRANTED_BY = "bench"
LENDER_PARTY = "LPDB-KUMKM"  # the lender every workload's loans name (``workload.disbursement``)


@dataclass(frozen=True)
class Org:
    """One organisation in one role, and the parties its mandate covers."""

    id: str
    role: IntegratorRole
    parties: tuple[str, ...]
    name: str = ""

    def subject(self, event_type: str) -> str:
        if event_type not in ROLE_EVENTS[self.role]:
            raise ValueError(f"{self.id} ({self.role}) does not publish {event_type}")
        return sender_subject(event_type, self.id)

    def covers(self, party: str) -> bool:
        return ALL_PARTIES in self.parties or party in self.parties

    def mandate(self) -> Mandate:
        return Mandate(
            organisation=self.id,
            name=self.name or self.id,
            grants=(Grant(role=self.role, parties=self.parties),),
            granted_by=GRANTED_BY,
        )


async def record_mandates(js: JetStreamContext, orgs: Iterable[Org]) -> int:
    """Put each organisation's mandate in the bucket (created if missing); returns how many."""
    book = MandateBook(js)
    await book.ensure_bucket()
    n = 0
    for org in orgs:
        await book.put(org.mandate())
        n += 1
    return n


def cooperative_org(cooperative: str) -> Org:
    """A cooperative's own system: restructuring requests for its own loans only."""
    return Org(f"kop-{cooperative}", IntegratorRole.COOPERATIVE, (cooperative,), f"Koperasi {cooperative}")


def buyer_org(buyer: str) -> Org:
    """A government buyer's procurement system: orders, deliveries and payments as itself only."""
    return Org(buyer.lower(), IntegratorRole.BUYER, (buyer,), f"Procurement system of {buyer}")


@dataclass
class Organisations:
    """Who sends what in a workload: one lender, one payment channel, a cooperative's system per cooperative,
    a procurement system per buyer, marketplaces splitting the sellers, one registry of contacts."""

    lender: Org
    channel: Org
    registry: Org
    cooperatives: dict[str, Org] = field(default_factory=dict)  # cooperative number -> its system
    buyers: dict[str, Org] = field(default_factory=dict)  # buyer id -> its procurement system
    sellers: dict[str, Org] = field(default_factory=dict)  # NIB -> the marketplace acting for it

    @classmethod
    def for_parties(
        cls,
        *,
        coops: list[str],
        sellers: list[str],
        buyers: list[str],
        contacts: list[str],
        marketplaces: int = 2,
        tag: str = "bench",
    ) -> Organisations:
        """Explicit mandates for exactly these parties."""
        lender = Org(f"lpdb-kumkm-{tag}", IntegratorRole.LENDER, (LENDER_PARTY,), "LPDB-KUMKM core banking")
        channel = Org(
            f"bank-va-{tag}",
            IntegratorRole.PAYMENT_CHANNEL,
            (LENDER_PARTY,),
            "Virtual-account channel collecting for LPDB-KUMKM",
        )
        registry = Org(
            f"registry-{tag}", IntegratorRole.REGISTRY, tuple(dict.fromkeys(contacts)), "Party registry"
        )
        n = max(1, min(marketplaces, len(sellers)))
        markets = [
            Org(
                f"marketplace-{chr(ord('a') + k)}-{tag}",
                IntegratorRole.SELLER,
                tuple(sellers[k::n]),
                f"Marketplace {chr(ord('A') + k)}",
            )
            for k in range(n)
        ]
        return cls(
            lender=lender,
            channel=channel,
            registry=registry,
            cooperatives={c: cooperative_org(c) for c in coops},
            buyers={b: buyer_org(b) for b in buyers},
            sellers={s: markets[i % n] for i, s in enumerate(sellers)},
        )

    def all(self) -> list[Org]:
        orgs = [self.lender, self.channel, self.registry, *self.cooperatives.values(), *self.buyers.values()]
        orgs += self.sellers.values()
        return list({org.id: org for org in orgs}.values())

    def cooperative(self, party: str) -> Org:
        return self.cooperatives[party]

    def buyer(self, party: str) -> Org:
        return self.buyers[party]

    def seller(self, party: str) -> Org:
        return self.sellers[party]

    def marketplaces(self) -> list[Org]:
        return list({org.id: org for org in self.sellers.values()}.values())

    async def record(self, js: JetStreamContext) -> int:
        return await record_mandates(js, self.all())

    def sender_for(self, data: EventData, borrower_of: Callable[[str], str]) -> Org:
        """The organisation that sends ``data`` in the workload: the party it claims decides
        (``borrower_of``: a loan's borrower, for a restructuring request)."""
        if isinstance(data, LoanDisbursed):
            return self.lender
        if isinstance(data, RepaymentReceived):  # every other one through the payment channel
            return self.channel if ord(data.payment_id[-1]) % 2 else self.lender
        if isinstance(data, RestructuringRequested):
            return self.cooperative(borrower_of(data.loan_id))
        if isinstance(data, (OrderPlaced, OrderDelivered, OrderPaid)):
            return self.buyer(data.buyer.id)
        if isinstance(data, (ProductSubmitted, OrderConfirmed, OrderShipped)):
            return self.seller(data.seller.nib)
        if isinstance(data, ContactUpserted):
            return self.registry
        raise ValueError(f"no integrator sends {type(data).__name__}")
