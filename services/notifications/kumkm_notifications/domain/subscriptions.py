"""Which events notify whom, under which category. Pure: the table of ``docs/rules/notifications.md``,
section "Who is notified", as code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumkm_shared.contracts import (
    Category,
    InstallmentOverdue,
    LoanCollectibilityChanged,
    OrderAccepted,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    OrderStepRefused,
    ProductCurated,
    RestructuringApproved,
    RestructuringReferred,
    RestructuringRejected,
    RestructuringRequested,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kumkm_shared.contracts import EventData


@dataclass(frozen=True, slots=True)
class Party:
    """A recipient known by its party id (NIB, cooperative number, buyer id or a group id)."""

    party_id: str
    role: str  # borrower, seller, buyer, officers: what the template may say about them


@dataclass(frozen=True, slots=True)
class BorrowerOfLoan:
    """A recipient the event names only through its loan (a restructuring request carries no borrower)."""

    loan_id: str
    role: str = "borrower"


Recipient = Party | BorrowerOfLoan


@dataclass(frozen=True, slots=True)
class Subscription:
    event_type: str  # what the notification is about, and its template's name
    category: Category
    recipients: Callable[[Any, str], list[Recipient]]  # (event data, officers' party id) -> recipients
    description: str
    via: str | None = None  # the event that carries it, when not the event itself


def _borrower(data: Any, _officers: str) -> list[Recipient]:
    return [Party(data.borrower.id, "borrower")]


def _requester(data: RestructuringRequested, _officers: str) -> list[Recipient]:
    return [BorrowerOfLoan(data.loan_id)]


def _officers(_data: Any, officers: str) -> list[Recipient]:
    return [Party(officers, "officers")]


def _seller(data: Any, _officers: str) -> list[Recipient]:
    return [Party(data.seller.nib, "seller")]


def _buyer(data: Any, _officers: str) -> list[Recipient]:
    return [Party(data.buyer.id, "buyer")]


def _step_sender(data: OrderStepRefused, _officers: str) -> list[Recipient]:
    """The order's party whose system sends the refused step: the seller confirms and ships, the buyer
    signs the handover and pays."""
    if data.step in {"confirmed", "shipped"}:
        return [Party(data.seller.nib, "seller")] if data.seller is not None else []
    return [Party(data.buyer.id, "buyer")]


def _buyer_and_seller(data: OrderCancelled, officers: str) -> list[Recipient]:
    return _buyer(data, officers) + (_seller(data, officers) if data.seller is not None else [])


def _sub(
    model: type[EventData],
    category: Category,
    recipients: Callable[[Any, str], list[Recipient]],
    text: str,
    *,
    via: type[EventData] | None = None,
) -> Subscription:
    return Subscription(model.event_type, category, recipients, text, via.event_type if via else None)


STEP_RECORD = OrderStatusChanged

SUBSCRIPTIONS: dict[str, Subscription] = {
    s.event_type: s
    for s in (
        _sub(RestructuringRequested, Category.RESTRUCTURING, _requester, "receipt to the borrower"),
        _sub(RestructuringApproved, Category.RESTRUCTURING, _borrower, "new terms to the borrower"),
        _sub(RestructuringRejected, Category.RESTRUCTURING, _borrower, "reasons to the borrower"),
        _sub(RestructuringReferred, Category.RESTRUCTURING, _officers, "review request to the officers"),
        _sub(InstallmentOverdue, Category.REPAYMENT, _borrower, "overdue reminder to the borrower"),
        _sub(LoanCollectibilityChanged, Category.REPAYMENT, _borrower, "new grade to the borrower"),
        _sub(ProductCurated, Category.CURATION, _seller, "curation decision to the seller"),
        _sub(OrderAccepted, Category.ORDERS, _seller, "new order to the seller"),
        _sub(OrderRejected, Category.ORDERS, _buyer, "rejection to the buyer"),
        _sub(OrderCancelled, Category.ORDERS, _buyer_and_seller, "cancellation to buyer and seller"),
        # Integrators publish the lifecycle steps and the catalog may refuse them: the other party hears of
        # a step only from the catalog's record that it took effect.
        _sub(OrderConfirmed, Category.ORDERS, _buyer, "confirmation, to the buyer", via=STEP_RECORD),
        _sub(OrderShipped, Category.ORDERS, _buyer, "shipment and tracking, to the buyer", via=STEP_RECORD),
        _sub(OrderDelivered, Category.ORDERS, _seller, "handover signed, to the seller", via=STEP_RECORD),
        _sub(OrderPaid, Category.ORDERS, _seller, "payment settled, to the seller", via=STEP_RECORD),
        _sub(OrderStepRefused, Category.ORDERS, _step_sender, "refused step, to the party that sends it"),
    )
}

CONSUMED: frozenset[str] = frozenset(s.via or s.event_type for s in SUBSCRIPTIONS.values())
"""The event types the service consumes to produce notifications."""


def about(event_type: str, data: EventData) -> tuple[str, EventData] | None:
    """What a consumed event notifies about: itself, or the step a carrier event applied.

    None when nobody is told.
    """
    if isinstance(data, OrderStatusChanged):
        step = data.applied
        subscription = SUBSCRIPTIONS.get(step.event_type)
        return (step.event_type, step) if subscription and subscription.via == event_type else None
    return (event_type, data) if event_type in SUBSCRIPTIONS else None


def subscription_for(event_type: str) -> Subscription:
    return SUBSCRIPTIONS[event_type]


def recipients_of(event_type: str, data: EventData, officers_party_id: str) -> list[Recipient]:
    """Each distinct recipient once (a party that is both buyer and seller gets one message)."""
    found = subscription_for(event_type).recipients(data, officers_party_id)
    seen: set[str] = set()
    unique: list[Recipient] = []
    for recipient in found:
        key = recipient.party_id if isinstance(recipient, Party) else f"loan:{recipient.loan_id}"
        if key not in seen:
            seen.add(key)
            unique.append(recipient)
    return unique
