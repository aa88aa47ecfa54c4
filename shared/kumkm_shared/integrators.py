"""Integrator organisations on the bus: their roles, the event types each role may publish, and the sender
token that the subject carries.

An organisation publishes an "ext" event on ``<type>.<organisation>``
(``kumkm.loans.loan.disbursed.v1.bank-bjb``).
The NATS server guarantees the token: an organisation's user may publish only on subjects that end with its
own name (``docs/rules/access.md``, "Integrator organisations"). Services' own events stay on the bare type.
Which party an event claims, and whether the sender's mandate covers it, is each service's rule.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "ORG_ID_PATTERN",
    "RESERVED_ORG_IDS",
    "ROLE_EVENTS",
    "IntegratorRole",
    "org_id_problem",
    "roles_for",
    "sender_subject",
    "split_subject",
    "valid_org_id",
]

# Lowercase letters, digits and hyphens: one NATS subject token, never a wildcard, never a dot.
ORG_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
_ORG_ID = re.compile(ORG_ID_PATTERN)

# The platform's own NATS users (kumkm_shared.natsauth.permissions.PLATFORM_USERS, a unit test checks) and
# services: never an organisation's id, so that no organisation's user, inbox (``_INBOX_<org>``) or sender
# token is named like one of the platform's.
RESERVED_ORG_IDS = frozenset(
    {"loans", "catalog", "notifications", "monitoring", "console", "provision", "operator", "sys"}
)


class IntegratorRole(StrEnum):
    LENDER = "lender"  # LPDB-KUMKM or another lender: disbursements and the repayments it collects
    PAYMENT_CHANNEL = "payment_channel"  # a bank or payment channel collecting repayments for lenders
    COOPERATIVE = "cooperative"  # a cooperative's (or a UMKM borrower's) system: restructuring requests
    BUYER = "buyer"  # a government buyer's procurement system
    SELLER = "seller"  # a UMKM seller's system, or a marketplace acting for sellers
    REGISTRY = "registry"  # a registry of parties: contact details, the party registry, activity surveys


ROLE_EVENTS: dict[IntegratorRole, tuple[str, ...]] = {
    IntegratorRole.LENDER: ("kumkm.loans.loan.disbursed.v1", "kumkm.loans.repayment.received.v1"),
    IntegratorRole.PAYMENT_CHANNEL: ("kumkm.loans.repayment.received.v1",),
    IntegratorRole.COOPERATIVE: ("kumkm.loans.restructuring.requested.v1",),
    IntegratorRole.BUYER: (
        "kumkm.catalog.order.placed.v1",
        "kumkm.catalog.order.delivered.v1",
        "kumkm.catalog.order.paid.v1",
    ),
    IntegratorRole.SELLER: (
        "kumkm.catalog.product.submitted.v1",
        "kumkm.catalog.product.stock_updated.v1",
        "kumkm.catalog.order.confirmed.v1",
        "kumkm.catalog.order.shipped.v1",
    ),
    IntegratorRole.REGISTRY: (
        "kumkm.notifications.contact.upserted.v1",
        "kumkm.registry.cooperative.registered.v1",
        "kumkm.registry.cooperative.updated.v1",
        "kumkm.registry.umkm.registered.v1",
        "kumkm.registry.umkm.updated.v1",
        "kumkm.registry.activity.reported.v1",
    ),
}


def valid_org_id(value: str) -> bool:
    """The shape of an organisation id (a reserved name has it too: ``org_id_problem`` refuses both)."""
    return _ORG_ID.fullmatch(value) is not None


def org_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a new organisation's id, or ``None`` when it can."""
    if not valid_org_id(value):
        return f"{value!r} is not an organisation id (lowercase letters, digits, hyphens: {ORG_ID_PATTERN})"
    if value in RESERVED_ORG_IDS:
        return (
            f"{value!r} is reserved: it names a platform user or service "
            f"({', '.join(sorted(RESERVED_ORG_IDS))}); choose another organisation id"
        )
    return None


def roles_for(event_type: str) -> frozenset[IntegratorRole]:
    """The integrator roles that may publish ``event_type`` (empty for a type only its owner publishes)."""
    return frozenset(role for role, types in ROLE_EVENTS.items() if event_type in types)


def sender_subject(event_type: str, organisation: str) -> str:
    """The subject an organisation publishes ``event_type`` on."""
    problem = org_id_problem(organisation)
    if problem is not None:
        raise ValueError(problem)
    return f"{event_type}.{organisation}"


def split_subject(subject: str, event_type: str) -> tuple[bool, str | None]:
    """Whether ``subject`` fits ``event_type`` and, if it carries one, the sending organisation.

    ``(True, None)``: the bare type (a service's own publish). ``(True, org)``: ``<type>.<org>``.
    ``(False, None)``: any other subject (the envelope's type is not the subject's prefix).
    """
    if subject == event_type:
        return True, None
    prefix = event_type + "."
    if subject.startswith(prefix):
        token = subject[len(prefix) :]
        if valid_org_id(token):
            return True, token
    return False, None
