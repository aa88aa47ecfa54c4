"""Placing an order: a pure decision from the facts the handler loads, in two steps around the reservation.

Rules: ``docs/rules/catalog.md``, section "E-purchasing rules". The stock reservation must be atomic in the
database (two orders racing for the last units), so placing an order is:

1. ``assess_order``: every e-purchasing rule against the listings as read (all problems at once);
2. the handler reserves the assessed lines through the repository, all or none, which reports a
   ``Shortfall`` when another order took the units in between;
3. ``decide_placement``: the final outcome from the assessment and the reservation's outcome, with the
   confirmation deadline of an accepted order (``deadline.confirmation_deadline``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from kumkm_catalog.domain.calendar import BusinessCalendar
from kumkm_catalog.domain.deadline import Deadline, confirmation_deadline
from kumkm_shared.money import format_rupiah

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from kumkm_shared.contracts.types import Region


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
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)
    confirmation_working_days: int = 3


def _codes(problems: Sequence[Problem]) -> list[str]:
    """The problems' codes, each once, in the order first found."""
    return list(dict.fromkeys(p.code.value for p in problems))


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
        return _codes(self.problems)


def _en(amount: Decimal) -> str:
    return format_rupiah(amount, "en")


def _id(amount: Decimal) -> str:
    return format_rupiah(amount, "id")


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
    """Check every e-purchasing rule and report every problem at once (the first step of placing an order).

    Stock is checked here against a snapshot; the reservation itself is made atomically afterwards, and a
    reservation that loses a race also rejects with ``insufficient_stock`` (``decide_placement``).
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
                    f"{product.product_id}: ordered at {_en(line.unit_price)}, listed at "
                    f"{_en(product.listed_price)}",
                    f"{product.product_id}: dipesan dengan harga {_id(line.unit_price)}, harga tayang "
                    f"{_id(product.listed_price)}",
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
                f"order total {_en(total)} is above the small-business package ceiling "
                f"{_en(rules.package_ceiling)}",
                f"total pesanan {_id(total)} melebihi batas paket usaha kecil {_id(rules.package_ceiling)}",
            )
        )
    seller = next(iter(sellers)) if len(sellers) == 1 else None
    return Assessment(tuple(problems), tuple(accepted) if not problems else (), seller)


# ----------------------------------------------------------------------------------------------------------
# the decision


@dataclass(frozen=True)
class Shortfall:
    """A line the reservation could not cover: too few units were left when it was made."""

    product_id: str
    qty: int
    available: int


@dataclass(frozen=True)
class Accepted:
    """The order is accepted: its lines are reserved and the seller must confirm by ``deadline``."""

    lines: tuple[AcceptedLine, ...]
    total: Decimal
    seller_nib: str
    deadline: Deadline


@dataclass(frozen=True)
class Rejected:
    """The order is rejected, with every problem found (at least one)."""

    problems: tuple[Problem, ...]

    @property
    def codes(self) -> list[str]:
        return _codes(self.problems)


Placement = Accepted | Rejected


def decide_placement(
    assessment: Assessment, shortfall: Shortfall | None, *, accepted_at: datetime, rules: OrderRules
) -> Placement:
    """The outcome of placing an order: its assessment, then the reservation of an acceptable one.

    ``shortfall`` is ``None`` when every line was reserved (or nothing was, because the assessment already
    found problems).
    """
    if assessment.problems:
        return Rejected(assessment.problems)
    if shortfall is not None:
        return Rejected((insufficient_stock(shortfall.product_id, shortfall.qty, shortfall.available),))
    if assessment.seller_nib is None:
        raise ValueError("an order needs at least one line")
    deadline = confirmation_deadline(accepted_at, rules.calendar, rules.confirmation_working_days)
    return Accepted(assessment.lines, assessment.total, assessment.seller_nib, deadline)


def purchase_region(*candidates: Region | None) -> Region | None:
    """Where a purchase is made, for the statistics: the first known of the buyer's, the delivery's and the
    seller's region, in that order."""
    return next((region for region in candidates if region is not None), None)
