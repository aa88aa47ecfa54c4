"""The impersonation matrix, in one place: every integrator role x every integrator event type x its own party
or another's, with the expected verdict (docs/rules/access.md, "Integrator organisations").

- ``server``: the role may not publish the type at all; the NATS server refuses the publish (the role's
  scoped signing key allows only its own types, on subjects ending with its own organisation id).
- ``mandate``: the role may publish the type, but the party belongs to someone else; the owning service
  dead-letters the event with ``not_authorised_for_party`` and nothing changes.
- ``allow``: the role's own party; the owning service applies the event.

The expected verdicts are written out below from the role table of the docs, not derived from
``kumkm_shared.integrators.ROLE_EVENTS``, so a change there that the docs do not make is caught here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kumkm_shared.integrators import IntegratorRole

Verdict = Literal["allow", "mandate", "server"]
Party = Literal["own", "other"]

DISBURSED = "kumkm.loans.loan.disbursed.v1"
REPAID = "kumkm.loans.repayment.received.v1"
REQUESTED = "kumkm.loans.restructuring.requested.v1"
SUBMITTED = "kumkm.catalog.product.submitted.v1"
STOCK = "kumkm.catalog.product.stock_updated.v1"
PLACED = "kumkm.catalog.order.placed.v1"
CONFIRMED = "kumkm.catalog.order.confirmed.v1"
SHIPPED = "kumkm.catalog.order.shipped.v1"
DELIVERED = "kumkm.catalog.order.delivered.v1"
PAID = "kumkm.catalog.order.paid.v1"
CONTACT = "kumkm.notifications.contact.upserted.v1"
COOP_REGISTERED = "kumkm.registry.cooperative.registered.v1"
COOP_UPDATED = "kumkm.registry.cooperative.updated.v1"
UMKM_REGISTERED = "kumkm.registry.umkm.registered.v1"
UMKM_UPDATED = "kumkm.registry.umkm.updated.v1"
ACTIVITY = "kumkm.registry.activity.reported.v1"
REGISTRY_TYPES = (COOP_REGISTERED, COOP_UPDATED, UMKM_REGISTERED, UMKM_UPDATED, ACTIVITY)

EVENT_TYPES = (
    DISBURSED,
    REPAID,
    REQUESTED,
    SUBMITTED,
    STOCK,
    PLACED,
    CONFIRMED,
    SHIPPED,
    DELIVERED,
    PAID,
    CONTACT,
    *REGISTRY_TYPES,
)

# What each role may send (the docs' table); everything else is refused by the server.
MAY_SEND: dict[IntegratorRole, frozenset[str]] = {
    IntegratorRole.LENDER: frozenset({DISBURSED, REPAID}),
    IntegratorRole.PAYMENT_CHANNEL: frozenset({REPAID}),
    IntegratorRole.COOPERATIVE: frozenset({REQUESTED}),
    IntegratorRole.BUYER: frozenset({PLACED, DELIVERED, PAID}),
    IntegratorRole.SELLER: frozenset({SUBMITTED, STOCK, CONFIRMED, SHIPPED}),
    IntegratorRole.REGISTRY: frozenset({CONTACT, *REGISTRY_TYPES}),
}

# Each role's organisation in the matrix, and the parties its mandate names (the "own" party).
ORGS: dict[IntegratorRole, str] = {
    IntegratorRole.LENDER: "mx-lender",
    IntegratorRole.PAYMENT_CHANNEL: "mx-paychan",
    IntegratorRole.COOPERATIVE: "mx-coop",
    IntegratorRole.BUYER: "mx-buyer",
    IntegratorRole.SELLER: "mx-seller",
    IntegratorRole.REGISTRY: "mx-registry",
}
# The organisations that own the "other" parties (they set up the other side's loans, products, orders).
OTHER_ORGS: dict[IntegratorRole, str] = {
    IntegratorRole.LENDER: "mx-lender-b",
    IntegratorRole.COOPERATIVE: "mx-coop-b",
    IntegratorRole.BUYER: "mx-buyer-b",
    IntegratorRole.SELLER: "mx-seller-b",
}

LENDER_A, LENDER_B = "BANK MATRIKS A", "BANK MATRIKS B"
COOP_A, COOP_B = "3275019900000001", "3275019900000002"
NIB_A, NIB_B = "9120099000001", "9120099000002"
BUYER_A, BUYER_B = "MX-BUYER-A", "MX-BUYER-B"
PARTY_A, PARTY_B = "3275019900000011", "3275019900000012"
UMKM_A, UMKM_B = "3275019900011", "3275019900012"  # the registry's UMKM (NIB)

# The parties each organisation's mandate names.
MANDATES: dict[str, tuple[IntegratorRole, tuple[str, ...]]] = {
    "mx-lender": (IntegratorRole.LENDER, (LENDER_A,)),
    "mx-lender-b": (IntegratorRole.LENDER, (LENDER_B,)),
    "mx-paychan": (IntegratorRole.PAYMENT_CHANNEL, (LENDER_A,)),  # collects for lender A only
    "mx-coop": (IntegratorRole.COOPERATIVE, (COOP_A,)),
    "mx-coop-b": (IntegratorRole.COOPERATIVE, (COOP_B,)),
    "mx-buyer": (IntegratorRole.BUYER, (BUYER_A,)),
    "mx-buyer-b": (IntegratorRole.BUYER, (BUYER_B,)),
    "mx-seller": (IntegratorRole.SELLER, (NIB_A,)),
    "mx-seller-b": (IntegratorRole.SELLER, (NIB_B,)),
    "mx-registry": (IntegratorRole.REGISTRY, (PARTY_A, UMKM_A)),
}


@dataclass(frozen=True)
class Cell:
    role: IntegratorRole
    event_type: str
    party: Party
    verdict: Verdict

    @property
    def org(self) -> str:
        return ORGS[self.role]

    @property
    def id(self) -> str:
        short = self.event_type.removeprefix("kumkm.").removesuffix(".v1")
        return f"{self.role.value}-{short}-{self.party}-{self.verdict}"


def cells() -> list[Cell]:
    out = []
    for role in IntegratorRole:
        for event_type in EVENT_TYPES:
            for party in ("own", "other"):
                if event_type not in MAY_SEND[role]:
                    verdict: Verdict = "server"
                else:
                    verdict = "allow" if party == "own" else "mandate"
                out.append(Cell(role, event_type, party, verdict))  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class TokenCell:
    """An organisation publishing its own type with another organisation's token: refused by the server."""

    role: IntegratorRole
    event_type: str

    @property
    def id(self) -> str:
        return f"{self.role.value}-{self.event_type.removeprefix('kumkm.').removesuffix('.v1')}-as-another"


def token_cells() -> list[TokenCell]:
    return [TokenCell(role, t) for role in IntegratorRole for t in sorted(MAY_SEND[role])]
