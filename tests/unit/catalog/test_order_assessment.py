"""Every order rejection code, what an accepted order carries, and the placement decision."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from kumkm_catalog.domain.placement import (
    Accepted,
    ListedProduct,
    OrderRules,
    Rejected,
    RejectionCode,
    RequestedLine,
    Shortfall,
    assess_order,
    decide_placement,
)

pytestmark = pytest.mark.unit

SELLER_NIB = "9120001234567"  # the seller of every product but OTHER_SELLER


def listed(
    product_id: str,
    name: str,
    price: str | None,
    *,
    min_order_qty: int = 1,
    stock: int,
    seller_nib: str = SELLER_NIB,
) -> ListedProduct:
    """A product listed at ``price`` (unlisted when ``None``)."""
    return ListedProduct(
        product_id=product_id,
        name=name,
        listed=price is not None,
        seller_nib=seller_nib,
        listed_price=Decimal(price) if price is not None else None,
        min_order_qty=min_order_qty,
        stock_available=stock,
    )


CHAIR = listed("P-CHAIR", "Kursi siswa kayu jati", "450000.00", min_order_qty=10, stock=100)
DESK = listed("P-DESK", "Meja siswa", "800000.00", min_order_qty=5, stock=50)
OTHER_SELLER = listed("P-PAPER", "Kertas HVS A4", "55000.00", stock=1000, seller_nib="8120009876543")
UNLISTED = listed("P-PENDING", "Lemari arsip", None, stock=10)
PRODUCTS = {p.product_id: p for p in (CHAIR, DESK, OTHER_SELLER, UNLISTED)}
RULES = OrderRules()


def line(product: ListedProduct, qty: int, price: Decimal | None = None) -> RequestedLine:
    return RequestedLine(
        product.product_id, qty, price if price is not None else product.listed_price or Decimal(1)
    )


def test_a_valid_order_is_accepted_with_priced_lines_and_total() -> None:
    result = assess_order([line(CHAIR, 40), line(DESK, 5)], PRODUCTS, RULES)
    assert result.accepted
    assert result.codes == []
    assert result.seller_nib == CHAIR.seller_nib
    assert [(x.product_id, x.qty, x.line_total) for x in result.lines] == [
        ("P-CHAIR", 40, Decimal("18000000.00")),
        ("P-DESK", 5, Decimal("4000000.00")),
    ]
    assert result.total == Decimal("22000000.00")


def test_unknown_product_is_not_listed() -> None:
    result = assess_order([RequestedLine("P-NOPE", 1, Decimal(1))], PRODUCTS, RULES)
    assert result.codes == [RejectionCode.PRODUCT_NOT_LISTED]
    assert result.problems[0].ref == "P-NOPE"


def test_product_awaiting_curation_is_not_listed() -> None:
    assert assess_order([line(UNLISTED, 1, Decimal(1))], PRODUCTS, RULES).codes == [
        RejectionCode.PRODUCT_NOT_LISTED
    ]


def test_price_must_be_the_listed_price() -> None:
    result = assess_order([line(CHAIR, 40, Decimal("400000.00"))], PRODUCTS, RULES)
    assert result.codes == [RejectionCode.PRICE_MISMATCH]
    assert "Rp400,000" in result.problems[0].text_en
    assert "Rp400.000" in result.problems[0].text_id


def test_quantity_below_the_minimum_order() -> None:
    assert assess_order([line(CHAIR, 9)], PRODUCTS, RULES).codes == [RejectionCode.BELOW_MIN_ORDER]


def test_quantity_above_the_available_stock() -> None:
    assert assess_order([line(CHAIR, 101)], PRODUCTS, RULES).codes == [RejectionCode.INSUFFICIENT_STOCK]


def test_package_ceiling() -> None:
    big = listed("P-BUS", "Bus sekolah", "1250000000.00", stock=10)
    products = {**PRODUCTS, big.product_id: big}
    assert assess_order([line(big, 2)], products, RULES).accepted  # exactly Rp2.5 bn is allowed
    result = assess_order([line(big, 2), line(CHAIR, 10)], products, RULES)
    assert result.codes == [RejectionCode.LIMIT_EXCEEDED]
    assert assess_order(
        [line(big, 1)], products, OrderRules(package_ceiling=Decimal(1_000_000_000))
    ).codes == [RejectionCode.LIMIT_EXCEEDED]


def test_one_order_one_seller() -> None:
    result = assess_order([line(CHAIR, 10), line(OTHER_SELLER, 1)], PRODUCTS, RULES)
    assert result.codes == [RejectionCode.MULTIPLE_SELLERS]
    assert result.seller_nib is None


def test_the_same_product_twice_is_a_duplicate_line() -> None:
    assert assess_order([line(CHAIR, 10), line(CHAIR, 10)], PRODUCTS, RULES).codes == [
        RejectionCode.DUPLICATE_LINE
    ]


def test_every_problem_is_reported_once_per_code() -> None:
    result = assess_order(
        [line(CHAIR, 5, Decimal(1)), line(OTHER_SELLER, 2000), RequestedLine("P-NOPE", 1, Decimal(1))],
        PRODUCTS,
        RULES,
    )
    assert set(result.codes) == {
        RejectionCode.PRICE_MISMATCH,
        RejectionCode.BELOW_MIN_ORDER,
        RejectionCode.INSUFFICIENT_STOCK,
        RejectionCode.PRODUCT_NOT_LISTED,
        RejectionCode.MULTIPLE_SELLERS,
    }
    assert len(result.codes) == len(set(result.codes))
    assert not result.accepted
    assert result.lines == ()


def test_every_rejection_code_is_exercised() -> None:
    # The tests above cover each code; this guards against a new code without a test.
    assert {c.value for c in RejectionCode} == {
        "product_not_listed",
        "price_mismatch",
        "insufficient_stock",
        "below_min_order",
        "limit_exceeded",
        "multiple_sellers",
        "duplicate_line",
    }


# Thursday 12 September 2024, 10:00 in Jakarta.
THURSDAY = datetime(2024, 9, 12, 3, 0, tzinfo=UTC)


def test_an_acceptable_order_whose_lines_are_reserved_is_accepted_with_its_deadline() -> None:
    assessment = assess_order([line(CHAIR, 40), line(DESK, 5)], PRODUCTS, RULES)
    decision = decide_placement(assessment, None, accepted_at=THURSDAY, rules=RULES)
    assert isinstance(decision, Accepted)
    assert decision.lines == assessment.lines
    assert decision.total == Decimal("22000000.00")
    assert decision.seller_nib == CHAIR.seller_nib
    # Fri 13, (Sat, Sun, Mon 16 Maulid Nabi), Tue 17, Wed 18; by the end of Wednesday in Jakarta.
    assert decision.deadline.date == date(2024, 9, 18)
    assert decision.deadline.confirm_by == datetime(2024, 9, 18, 17, 0, tzinfo=UTC)


def test_the_deadline_follows_the_rules_working_days() -> None:
    rules = OrderRules(confirmation_working_days=1)
    decision = decide_placement(
        assess_order([line(CHAIR, 40)], PRODUCTS, rules), None, accepted_at=THURSDAY, rules=rules
    )
    assert isinstance(decision, Accepted)
    assert decision.deadline.date == date(2024, 9, 13)


def test_an_assessed_problem_rejects_whatever_the_reservation() -> None:
    assessment = assess_order([line(CHAIR, 9)], PRODUCTS, RULES)
    shortfall = Shortfall(CHAIR.product_id, 9, 0)
    decision = decide_placement(assessment, shortfall, accepted_at=THURSDAY, rules=RULES)
    assert isinstance(decision, Rejected)
    assert decision.problems == assessment.problems
    assert decision.codes == [RejectionCode.BELOW_MIN_ORDER]


def test_a_reservation_that_lost_the_race_rejects_for_insufficient_stock() -> None:
    assessment = assess_order([line(CHAIR, 40)], PRODUCTS, RULES)
    assert assessment.accepted
    decision = decide_placement(
        assessment, Shortfall(CHAIR.product_id, 40, 3), accepted_at=THURSDAY, rules=RULES
    )
    assert isinstance(decision, Rejected)
    assert decision.codes == [RejectionCode.INSUFFICIENT_STOCK]
    assert decision.problems[0].ref == CHAIR.product_id
    assert "only 3 available" in decision.problems[0].text_en
