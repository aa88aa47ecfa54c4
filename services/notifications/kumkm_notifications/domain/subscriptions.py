"""Which events notify whom, under which category. Pure: the table of issue 5, as code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumkm_shared.contracts import (
    Category,
    InstallmentOverdue,
    LoanCollectibilityChanged,
    OrderAccepted,
    OrderCancelled,
    OrderDelivered,
    OrderPaid,
    OrderRejected,
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
    event_type: str
    category: Category
    recipients: Callable[[Any, str], list[Recipient]]  # (event data, officers' party id) -> recipients
    description: str


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


def _buyer_and_seller(data: OrderCancelled, officers: str) -> list[Recipient]:
    return _buyer(data, officers) + (_seller(data, officers) if data.seller is not None else [])


def _sub(
    model: type[EventData], category: Category, recipients: Callable[[Any, str], list[Recipient]], text: str
) -> Subscription:
    return Subscription(model.event_type, category, recipients, text)


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
        _sub(OrderDelivered, Category.ORDERS, _seller, "handover signed, to the seller"),
        _sub(OrderPaid, Category.ORDERS, _seller, "payment settled, to the seller"),
    )
}


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
