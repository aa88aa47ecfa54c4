"""Every (status, action) pair of the order state machine: legal, stale, ahead or illegal, with a reason."""

from __future__ import annotations

import itertools

import pytest

from kumkm_catalog.domain.orders import (
    COMMITTED,
    RESERVING,
    TERMINAL,
    IllegalTransition,
    OrderAction,
    OrderStateMachine,
    OrderStatus,
    Verdict,
)

pytestmark = pytest.mark.unit

S, A, V = OrderStatus, OrderAction, Verdict

LEGAL = {
    (S.PLACED, A.ACCEPT): S.ACCEPTED,
    (S.PLACED, A.REJECT): S.REJECTED,
    (S.ACCEPTED, A.CONFIRM): S.CONFIRMED,
    (S.ACCEPTED, A.CANCEL): S.CANCELLED,
    (S.ACCEPTED, A.TIME_OUT): S.CANCELLED,
    (S.CONFIRMED, A.SHIP): S.SHIPPED,
    (S.CONFIRMED, A.CANCEL): S.CANCELLED,
    (S.SHIPPED, A.DELIVER): S.DELIVERED,
    (S.DELIVERED, A.PAY): S.PAID,
}

# Every other pair, with its verdict and code.
NOT_LEGAL: dict[tuple[OrderStatus, OrderAction], tuple[Verdict, str]] = {
    # from placed: nothing but accept or reject; later steps wait for the acceptance
    (S.PLACED, A.CONFIRM): (V.AHEAD, "out_of_order"),
    (S.PLACED, A.SHIP): (V.AHEAD, "out_of_order"),
    (S.PLACED, A.DELIVER): (V.AHEAD, "out_of_order"),
    (S.PLACED, A.PAY): (V.AHEAD, "out_of_order"),
    (S.PLACED, A.CANCEL): (V.ILLEGAL, "not_cancellable"),
    (S.PLACED, A.TIME_OUT): (V.ILLEGAL, "not_awaiting_confirmation"),
    # accepted
    (S.ACCEPTED, A.ACCEPT): (V.STALE, "already_accepted"),
    (S.ACCEPTED, A.REJECT): (V.ILLEGAL, "illegal_transition"),
    (S.ACCEPTED, A.SHIP): (V.AHEAD, "out_of_order"),
    (S.ACCEPTED, A.DELIVER): (V.AHEAD, "out_of_order"),
    (S.ACCEPTED, A.PAY): (V.AHEAD, "out_of_order"),
    # from rejected, which is terminal
    (S.REJECTED, A.ACCEPT): (V.ILLEGAL, "order_rejected"),
    (S.REJECTED, A.REJECT): (V.ILLEGAL, "illegal_transition"),
    (S.REJECTED, A.CONFIRM): (V.ILLEGAL, "order_rejected"),
    (S.REJECTED, A.SHIP): (V.ILLEGAL, "order_rejected"),
    (S.REJECTED, A.DELIVER): (V.ILLEGAL, "order_rejected"),
    (S.REJECTED, A.PAY): (V.ILLEGAL, "order_rejected"),
    (S.REJECTED, A.CANCEL): (V.ILLEGAL, "not_cancellable"),
    (S.REJECTED, A.TIME_OUT): (V.ILLEGAL, "not_awaiting_confirmation"),
    # confirmed
    (S.CONFIRMED, A.ACCEPT): (V.STALE, "already_accepted"),
    (S.CONFIRMED, A.REJECT): (V.ILLEGAL, "illegal_transition"),
    (S.CONFIRMED, A.CONFIRM): (V.STALE, "already_confirmed"),
    (S.CONFIRMED, A.DELIVER): (V.AHEAD, "out_of_order"),
    (S.CONFIRMED, A.PAY): (V.AHEAD, "out_of_order"),
    (S.CONFIRMED, A.TIME_OUT): (V.ILLEGAL, "not_awaiting_confirmation"),
    # shipped
    (S.SHIPPED, A.ACCEPT): (V.STALE, "already_accepted"),
    (S.SHIPPED, A.REJECT): (V.ILLEGAL, "illegal_transition"),
    (S.SHIPPED, A.CONFIRM): (V.STALE, "already_confirmed"),
    (S.SHIPPED, A.SHIP): (V.STALE, "already_shipped"),
    (S.SHIPPED, A.PAY): (V.AHEAD, "out_of_order"),
    (S.SHIPPED, A.CANCEL): (V.ILLEGAL, "not_cancellable"),
    (S.SHIPPED, A.TIME_OUT): (V.ILLEGAL, "not_awaiting_confirmation"),
    # delivered
    (S.DELIVERED, A.ACCEPT): (V.STALE, "already_accepted"),
    (S.DELIVERED, A.REJECT): (V.ILLEGAL, "illegal_transition"),
    (S.DELIVERED, A.CONFIRM): (V.STALE, "already_confirmed"),
    (S.DELIVERED, A.SHIP): (V.STALE, "already_shipped"),
    (S.DELIVERED, A.DELIVER): (V.STALE, "already_delivered"),
    (S.DELIVERED, A.CANCEL): (V.ILLEGAL, "not_cancellable"),
    (S.DELIVERED, A.TIME_OUT): (V.ILLEGAL, "not_awaiting_confirmation"),
    # from paid, which is terminal
    (S.PAID, A.ACCEPT): (V.STALE, "already_accepted"),
    (S.PAID, A.REJECT): (V.ILLEGAL, "illegal_transition"),
    (S.PAID, A.CONFIRM): (V.STALE, "already_confirmed"),
    (S.PAID, A.SHIP): (V.STALE, "already_shipped"),
    (S.PAID, A.DELIVER): (V.STALE, "already_delivered"),
    (S.PAID, A.PAY): (V.STALE, "already_paid"),
    (S.PAID, A.CANCEL): (V.ILLEGAL, "not_cancellable"),
    (S.PAID, A.TIME_OUT): (V.ILLEGAL, "not_awaiting_confirmation"),
    # from cancelled, which is terminal
    (S.CANCELLED, A.ACCEPT): (V.ILLEGAL, "order_cancelled"),
    (S.CANCELLED, A.REJECT): (V.ILLEGAL, "illegal_transition"),
    (S.CANCELLED, A.CONFIRM): (V.ILLEGAL, "order_cancelled"),
    (S.CANCELLED, A.SHIP): (V.ILLEGAL, "order_cancelled"),
    (S.CANCELLED, A.DELIVER): (V.ILLEGAL, "order_cancelled"),
    (S.CANCELLED, A.PAY): (V.ILLEGAL, "order_cancelled"),
    (S.CANCELLED, A.CANCEL): (V.STALE, "already_cancelled"),
    (S.CANCELLED, A.TIME_OUT): (V.STALE, "already_cancelled"),
}


def test_the_tables_cover_every_pair_exactly_once() -> None:
    pairs = set(itertools.product(OrderStatus, OrderAction))
    assert set(LEGAL) | set(NOT_LEGAL) == pairs
    assert not set(LEGAL) & set(NOT_LEGAL)


def _ids(pairs: dict[tuple[OrderStatus, OrderAction], object]) -> list[str]:
    return [f"{status}-{action}" for status, action in pairs]


@pytest.mark.parametrize(("pair", "target"), LEGAL.items(), ids=_ids(LEGAL))
def test_legal_transition(pair: tuple[OrderStatus, OrderAction], target: OrderStatus) -> None:
    status, action = pair
    transition = OrderStateMachine.decide(status, action)
    assert transition.verdict is Verdict.APPLY
    assert transition.status is target
    assert OrderStateMachine.apply(status, action) is target


@pytest.mark.parametrize(("pair", "expected"), NOT_LEGAL.items(), ids=_ids(NOT_LEGAL))
def test_refused_transition(pair: tuple[OrderStatus, OrderAction], expected: tuple[Verdict, str]) -> None:
    status, action = pair
    transition = OrderStateMachine.decide(status, action)
    assert (transition.verdict, transition.code) == expected
    assert transition.status is status, "a refused action never changes the status"
    assert transition.reason, "every refusal explains itself"
    with pytest.raises(IllegalTransition) as raised:
        OrderStateMachine.apply(status, action)
    assert raised.value.code == expected[1]


def test_paid_before_delivered_names_the_missing_step() -> None:
    transition = OrderStateMachine.decide(OrderStatus.SHIPPED, OrderAction.PAY)
    assert transition.reason == "the order is shipped; it must be delivered before it can be paid"


def test_the_happy_path_walks_through_every_status() -> None:
    status = OrderStatus.PLACED
    seen = [status]
    for action in (A.ACCEPT, A.CONFIRM, A.SHIP, A.DELIVER, A.PAY):
        status = OrderStateMachine.apply(status, action)
        seen.append(status)
    assert seen == [S.PLACED, S.ACCEPTED, S.CONFIRMED, S.SHIPPED, S.DELIVERED, S.PAID]


def test_the_status_sets_follow_the_lifecycle() -> None:
    # Rejected, cancelled and paid are final; nothing leaves them.
    assert {S.REJECTED, S.CANCELLED, S.PAID} == TERMINAL
    for status in TERMINAL:
        for action in OrderAction:
            assert OrderStateMachine.decide(status, action).verdict is not Verdict.APPLY, (status, action)
    # Stock is reserved at acceptance and leaves the reservation when shipped (or is released on cancel).
    assert {S.ACCEPTED, S.CONFIRMED} == RESERVING
    # Committed purchase value: every accepted order still on its way to payment, or paid.
    assert {S.ACCEPTED, S.CONFIRMED, S.SHIPPED, S.DELIVERED, S.PAID} == COMMITTED
