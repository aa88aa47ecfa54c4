"""E-purchasing: the order state machine (placing an order is ``placement``, its deadline ``deadline``).

Rules: ``docs/rules/catalog.md``, section "Order state machine". Lifecycle: placed -> accepted | rejected;
accepted -> confirmed (seller) | cancelled (buyer or seller timeout); confirmed -> shipped | cancelled
(buyer); shipped -> delivered (BAST) -> paid.

``OrderStateMachine.decide`` classifies every (status, action) pair:

- ``apply``: a legal step;
- ``stale``: the order is already at or past the step (a late copy, e.g. ``confirmed`` when it is
  ``shipped``): nothing to do;
- ``ahead``: the step needs an earlier one first (e.g. ``shipped`` while only ``accepted``). From the
  stream this is parked (redelivered later, because the missing event may be in flight); over the API it
  is refused;
- ``illegal``: it can never apply (e.g. ``shipped`` after ``cancelled``, cancelling a shipped order).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from kumkm_shared.errors import Refusal

if TYPE_CHECKING:
    from collections.abc import Mapping


class OrderStatus(StrEnum):
    PLACED = "placed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    PAID = "paid"
    CANCELLED = "cancelled"


class OrderAction(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    CONFIRM = "confirm"
    SHIP = "ship"
    DELIVER = "deliver"
    PAY = "pay"
    CANCEL = "cancel"  # by the buyer (or the system)
    TIME_OUT = "time_out"  # the seller did not confirm in time


class Verdict(StrEnum):
    APPLY = "apply"
    STALE = "stale"
    AHEAD = "ahead"
    ILLEGAL = "illegal"


# Statuses that still hold reserved stock, and therefore release it when cancelled.
RESERVING = frozenset({OrderStatus.ACCEPTED, OrderStatus.CONFIRMED})
# Statuses whose value counts as committed purchase value in the statistics.
COMMITTED = frozenset(
    {
        OrderStatus.ACCEPTED,
        OrderStatus.CONFIRMED,
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
        OrderStatus.PAID,
    }
)
TERMINAL = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.PAID})

_HAPPY_PATH = (
    OrderStatus.PLACED,
    OrderStatus.ACCEPTED,
    OrderStatus.CONFIRMED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.PAID,
)
_RANK = {status: rank for rank, status in enumerate(_HAPPY_PATH)}


@dataclass(frozen=True)
class Transition:
    verdict: Verdict
    status: OrderStatus  # the status after the action (unchanged unless the verdict is apply)
    code: str = ""
    reason: str = ""


class IllegalTransition(Refusal):
    """An action the order's status does not allow (a refusal: 409 over HTTP, a dead letter on the bus)."""

    def __init__(self, transition: Transition) -> None:
        super().__init__(transition.code, transition.reason)
        self.transition = transition


class OrderStateMachine:
    """The legal order transitions, and a clear reason for every other one."""

    TRANSITIONS: Mapping[tuple[OrderStatus, OrderAction], OrderStatus] = {
        (OrderStatus.PLACED, OrderAction.ACCEPT): OrderStatus.ACCEPTED,
        (OrderStatus.PLACED, OrderAction.REJECT): OrderStatus.REJECTED,
        (OrderStatus.ACCEPTED, OrderAction.CONFIRM): OrderStatus.CONFIRMED,
        (OrderStatus.ACCEPTED, OrderAction.CANCEL): OrderStatus.CANCELLED,
        (OrderStatus.ACCEPTED, OrderAction.TIME_OUT): OrderStatus.CANCELLED,
        (OrderStatus.CONFIRMED, OrderAction.SHIP): OrderStatus.SHIPPED,
        (OrderStatus.CONFIRMED, OrderAction.CANCEL): OrderStatus.CANCELLED,
        (OrderStatus.SHIPPED, OrderAction.DELIVER): OrderStatus.DELIVERED,
        (OrderStatus.DELIVERED, OrderAction.PAY): OrderStatus.PAID,
    }
    # The happy-path status each lifecycle action leads to.
    TARGET: Mapping[OrderAction, OrderStatus] = {
        OrderAction.ACCEPT: OrderStatus.ACCEPTED,
        OrderAction.CONFIRM: OrderStatus.CONFIRMED,
        OrderAction.SHIP: OrderStatus.SHIPPED,
        OrderAction.DELIVER: OrderStatus.DELIVERED,
        OrderAction.PAY: OrderStatus.PAID,
    }

    @classmethod
    def decide(cls, status: OrderStatus, action: OrderAction) -> Transition:
        target = cls.TRANSITIONS.get((status, action))
        if target is not None:
            return Transition(Verdict.APPLY, target)
        if action in (OrderAction.CANCEL, OrderAction.TIME_OUT):
            return cls._cannot_cancel(status, action)
        if action is OrderAction.REJECT:
            return Transition(
                Verdict.ILLEGAL, status, "illegal_transition", f"an order that is {status} cannot be rejected"
            )
        wanted = cls.TARGET[action]
        if status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            return Transition(
                Verdict.ILLEGAL,
                status,
                f"order_{status.value}",
                f"the order is {status}; it cannot become {wanted}",
            )
        if _RANK[status] >= _RANK[wanted]:
            return Transition(
                Verdict.STALE, status, f"already_{wanted.value}", f"the order is already {status}"
            )
        needed = _HAPPY_PATH[_RANK[wanted] - 1]
        return Transition(
            Verdict.AHEAD,
            status,
            "out_of_order",
            f"the order is {status}; it must be {needed} before it can be {wanted}",
        )

    @staticmethod
    def _cannot_cancel(status: OrderStatus, action: OrderAction) -> Transition:
        if status is OrderStatus.CANCELLED:
            return Transition(Verdict.STALE, status, "already_cancelled", "the order is already cancelled")
        if action is OrderAction.TIME_OUT:
            return Transition(
                Verdict.ILLEGAL,
                status,
                "not_awaiting_confirmation",
                "only an accepted order awaiting the seller's confirmation can time out; "
                f"this one is {status}",
            )
        return Transition(
            Verdict.ILLEGAL,
            status,
            "not_cancellable",
            f"an order that is {status} can no longer be cancelled (only accepted or confirmed orders can)",
        )

    @classmethod
    def apply(cls, status: OrderStatus, action: OrderAction) -> OrderStatus:
        """The status after a legal ``action``; ``IllegalTransition`` for every other verdict."""
        transition = cls.decide(status, action)
        if transition.verdict is not Verdict.APPLY:
            raise IllegalTransition(transition)
        return transition.status
