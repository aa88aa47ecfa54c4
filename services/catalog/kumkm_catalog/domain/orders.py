"""E-purchasing: the order assessment rules and the order state machine.

Lifecycle: placed -> accepted | rejected; accepted -> confirmed (seller) | cancelled (buyer or seller
timeout); confirmed -> shipped | cancelled (buyer); shipped -> delivered (BAST) -> paid.

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

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


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


class IllegalTransition(Exception):  # noqa: N818 - a verdict, not a crash
    def __init__(self, transition: Transition) -> None:
        super().__init__(f"{transition.code}: {transition.reason}")
        self.transition = transition
        self.code = transition.code
        self.reason = transition.reason


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


# ----------------------------------------------------------------------------------------------------------
# assessing a placed order


class RejectionCode(StrEnum):
    PRODUCT_NOT_LISTED = "product_not_listed"
    PRICE_MISMATCH = "price_mismatch"
    INSUFFICIENT_STOCK = "insufficient_stock"
    BELOW_MIN_ORDER = "below_min_order"
    LIMIT_EXCEEDED = "limit_exceeded"
    MULTIPLE_SELLERS = "multiple_sellers"
    DUPLICATE_LINE = "duplicate_line"


@dataclass(frozen=True)
class Problem:
    code: RejectionCode
    text_en: str
    text_id: str
    ref: str | None = None


@dataclass(frozen=True)
class ListedProduct:
    """What an order is checked against: the product's current listing."""

    product_id: str
    name: str
    listed: bool
    seller_nib: str
    listed_price: Decimal | None
    min_order_qty: int
    stock_available: int


@dataclass(frozen=True)
class RequestedLine:
    product_id: str
    qty: int
    unit_price: Decimal


@dataclass(frozen=True)
class AcceptedLine:
    product_id: str
    name: str
    qty: int
    unit_price: Decimal

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.qty


@dataclass(frozen=True)
class OrderRules:
    package_ceiling: Decimal = Decimal(2_500_000_000)


@dataclass(frozen=True)
class Assessment:
    problems: tuple[Problem, ...]
    lines: tuple[AcceptedLine, ...]
    seller_nib: str | None

    @property
    def accepted(self) -> bool:
        return not self.problems

    @property
    def total(self) -> Decimal:
        return sum((line.line_total for line in self.lines), start=Decimal("0.00"))

    @property
    def codes(self) -> list[str]:
        return list(dict.fromkeys(p.code.value for p in self.problems))


def rupiah(amount: Decimal) -> str:
    return f"Rp{amount:,.2f}"


def insufficient_stock(product_id: str, qty: int, available: int) -> Problem:
    return Problem(
        RejectionCode.INSUFFICIENT_STOCK,
        f"{qty} units of {product_id} ordered but only {available} available",
        f"dipesan {qty} unit {product_id} tetapi stok tersedia hanya {available}",
        product_id,
    )


def assess_order(
    lines: Sequence[RequestedLine], products: Mapping[str, ListedProduct], rules: OrderRules
) -> Assessment:
    """Check every DESIGN.md e-purchasing rule and report every problem at once.

    Stock is checked here against a snapshot; the reservation itself is made atomically afterwards, and a
    reservation that loses a race also rejects with ``insufficient_stock``.
    """
    problems: list[Problem] = []
    accepted: list[AcceptedLine] = []
    counts = Counter(line.product_id for line in lines)
    for product_id, count in counts.items():
        if count > 1:
            problems.append(
                Problem(
                    RejectionCode.DUPLICATE_LINE,
                    f"product {product_id} appears on {count} lines; order it on one line",
                    f"produk {product_id} muncul di {count} baris; pesan dalam satu baris",
                    product_id,
                )
            )
    sellers: dict[str, list[str]] = {}
    for line in lines:
        product = products.get(line.product_id)
        if product is None or not product.listed or product.listed_price is None:
            problems.append(
                Problem(
                    RejectionCode.PRODUCT_NOT_LISTED,
                    f"product {line.product_id} is not listed in the catalog",
                    f"produk {line.product_id} tidak tayang di katalog",
                    line.product_id,
                )
            )
            continue
        sellers.setdefault(product.seller_nib, []).append(product.product_id)
        if line.unit_price != product.listed_price:
            problems.append(
                Problem(
                    RejectionCode.PRICE_MISMATCH,
                    f"{product.product_id}: ordered at {rupiah(line.unit_price)}, listed at "
                    f"{rupiah(product.listed_price)}",
                    f"{product.product_id}: dipesan dengan harga {rupiah(line.unit_price)}, harga tayang "
                    f"{rupiah(product.listed_price)}",
                    product.product_id,
                )
            )
        if line.qty < product.min_order_qty:
            problems.append(
                Problem(
                    RejectionCode.BELOW_MIN_ORDER,
                    f"{product.product_id}: {line.qty} units is below the minimum order of "
                    f"{product.min_order_qty}",
                    f"{product.product_id}: {line.qty} unit di bawah pesanan minimum {product.min_order_qty}",
                    product.product_id,
                )
            )
        if line.qty > product.stock_available:
            problems.append(insufficient_stock(product.product_id, line.qty, product.stock_available))
        accepted.append(AcceptedLine(product.product_id, product.name, line.qty, product.listed_price))
    if len(sellers) > 1:
        problems.append(
            Problem(
                RejectionCode.MULTIPLE_SELLERS,
                f"one order must have one seller; these lines belong to {len(sellers)} sellers",
                f"satu pesanan hanya untuk satu penyedia; baris-baris ini milik {len(sellers)} penyedia",
                ",".join(sorted(sellers)),
            )
        )
    total = sum((line.unit_price * line.qty for line in lines), start=Decimal("0.00"))
    if total > rules.package_ceiling:
        problems.append(
            Problem(
                RejectionCode.LIMIT_EXCEEDED,
                f"order total {rupiah(total)} is above the small-business package ceiling "
                f"{rupiah(rules.package_ceiling)}",
                f"total pesanan {rupiah(total)} melebihi batas paket usaha kecil "
                f"{rupiah(rules.package_ceiling)}",
            )
        )
    seller = next(iter(sellers)) if len(sellers) == 1 else None
    return Assessment(tuple(problems), tuple(accepted) if not problems else (), seller)
