"""The order lifecycle steps integrators (or the HTTP API) send: confirmed, shipped, delivered and paid.

All four run one skeleton, driven by ``STEPS``: load and lock the order, ask the state machine whether the
step applies (``handling`` decides what a step that does not apply does), check the parties and the step's
own rule, run its effect, move the order and record on the stream that the step took effect
(``order.status_changed``). A refusal from the stream announces itself to the order's parties
(``order.step_refused``). Rules: ``docs/rules/catalog.md``, sections "Order state machine" and
"Confirmation deadline".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar, cast

import structlog

from kumkm_catalog import repository as repo
from kumkm_catalog.domain.deadline import Deadline, is_confirmation_late
from kumkm_catalog.domain.orders import OrderAction, OrderStateMachine, OrderStatus, Transition, Verdict
from kumkm_catalog.handlers.common import history_entry
from kumkm_catalog.handlers.strictness import Handling, announces_refusals, handling
from kumkm_shared import NotFound, Refusal, Retry
from kumkm_shared.contracts import (
    BuyerRef,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderShipped,
    OrderStatusChanged,
    OrderStepRefused,
    SellerRef,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from kumkm_shared import Clock, EventContext
    from kumkm_shared.contracts.catalog import OrderStep, StepStatus
    from kumkm_shared.db import Conn

log = structlog.get_logger(__name__)

E = TypeVar("E", OrderConfirmed, OrderShipped, OrderDelivered, OrderPaid)

if TYPE_CHECKING:
    # A step's own rule: ``None`` when it holds, else the refusal's (code, reason).
    Check: TypeAlias = Callable[[repo.Record, E], tuple[str, str] | None]
    # What else applying the step changes, in the same transaction.
    Effect: TypeAlias = Callable[[Conn, repo.Record], Awaitable[None]]


@dataclass(frozen=True)
class Step(Generic[E]):
    """One lifecycle step: how its event moves the order, and what it records."""

    event: type[E]
    action: OrderAction
    status: OrderStatus  # the status the step leads to
    record: Mapping[str, str]  # the order's column -> the event's field
    taken_by: Literal["seller", "buyer"]  # whose step it is: the party the sender must hold a mandate for
    check: Check[E] | None = None
    effect: Effect | None = field(default=None)

    @property
    def name(self) -> StepStatus:
        return cast("StepStatus", self.status.value)

    def party(self, data: OrderStep) -> str:
        """The party the step's event claims to act for: the seller's NIB or the buyer's id."""
        return data.seller.nib if self.taken_by == "seller" else data.buyer.id


def _confirmed_in_time(order: repo.Record, step: OrderConfirmed) -> tuple[str, str] | None:
    deadline = Deadline(order["confirm_deadline"], order["confirm_by"])
    if not is_confirmation_late(deadline, step.confirmed_at):
        return None
    reason = (
        f"the seller had to confirm by {deadline.date} (Asia/Jakarta); the order will be cancelled for "
        "seller timeout"
    )
    return "confirmation_too_late", reason


async def _ship_out(conn: Conn, order: repo.Record) -> None:
    """Shipped units leave the warehouse: they are no longer reserved."""
    lines = await repo.order_lines(conn, order["order_id"])
    await repo.ship_out(conn, [(x["product_id"], x["qty"]) for x in lines])


STEPS: Mapping[str, Step[Any]] = {
    step.event.event_type: step
    for step in (
        Step(
            OrderConfirmed,
            OrderAction.CONFIRM,
            OrderStatus.CONFIRMED,
            {"confirmed_at": "confirmed_at", "expected_ship_on": "expected_ship_on"},
            taken_by="seller",
            check=_confirmed_in_time,
        ),
        Step(
            OrderShipped,
            OrderAction.SHIP,
            OrderStatus.SHIPPED,
            {"shipped_at": "shipped_at", "carrier": "carrier", "tracking_number": "tracking_number"},
            taken_by="seller",
            effect=_ship_out,
        ),
        Step(
            OrderDelivered,
            OrderAction.DELIVER,
            OrderStatus.DELIVERED,
            {"bast_number": "bast_number", "delivered_on": "delivered_on", "received_by": "received_by"},
            taken_by="buyer",
        ),
        Step(
            OrderPaid,
            OrderAction.PAY,
            OrderStatus.PAID,
            {"paid_on": "paid_on", "paid_amount": "amount", "payment_reference": "payment_reference"},
            taken_by="buyer",
        ),
    )
}


@dataclass
class OrderLifecycle:
    """The handler of every step in ``STEPS``."""

    clock: Clock

    async def on_order_step(self, ctx: EventContext) -> None:
        step = STEPS[ctx.envelope.type]
        data: OrderStep = ctx.event.data_as(step.event)
        # A seller system steps only for the NIBs it holds a mandate for, a buyer only as itself; the
        # stored order's parties are compared below.
        await ctx.require_mandate(step.party(data))
        order = await repo.get_order(ctx.conn, data.order_id, for_update=True)
        if order is None:
            if handling(Verdict.AHEAD, ctx) is Handling.REFUSE:
                raise NotFound("order", data.order_id)
            raise Retry(
                "order_unknown",
                f"order {data.order_id} is not known (yet); its order.placed may be in flight",
            )
        transition = OrderStateMachine.decide(OrderStatus(order["status"]), step.action)
        if transition.verdict is not Verdict.APPLY:
            self._not_applicable(ctx, order, step, transition)
            return
        if order["seller_nib"] != data.seller.nib:
            raise self._refused(
                ctx, order, step, "seller_mismatch", f"order {data.order_id} is with another seller"
            )
        if order["buyer_id"] != data.buyer.id:
            raise self._refused(
                ctx, order, step, "buyer_mismatch", f"order {data.order_id} was placed by another buyer"
            )
        if step.check is not None and (refusal := step.check(order, data)) is not None:
            raise self._refused(ctx, order, step, *refusal)
        if step.effect is not None:
            await step.effect(ctx.conn, order)
        await self._move(ctx, order, step, data)

    def _not_applicable(
        self, ctx: EventContext, order: repo.Record, step: Step[Any], transition: Transition
    ) -> None:
        """Refuse, park or ignore a step that does not apply to the order now (``handling``)."""
        order_id = order["order_id"]
        what = handling(transition.verdict, ctx)
        if what is Handling.REFUSE:
            code = "illegal_transition" if transition.verdict is Verdict.AHEAD else transition.code
            reason = f"cannot {step.action.value} order {order_id}: {transition.reason}"
            raise self._refused(ctx, order, step, code, reason)
        if what is Handling.PARK:
            reason = f"order {order_id}: {transition.reason}"
            if ctx.last_attempt:  # given up on: the parties hear of it, as of any other refusal
                raise self._refused(
                    ctx, order, step, transition.code, f"{reason}; the missing step never came"
                )
            raise Retry(transition.code, f"{reason}; parked until the missing event")
        log.info(
            "stale order event ignored", order_id=order_id, action=step.action.value, reason=transition.reason
        )

    def _refused(
        self, ctx: EventContext, order: repo.Record, step: Step[Any], code: str, reason: str
    ) -> Refusal:
        """The refusal of the step in ``ctx``, announced to the order's own parties when it came from the
        stream (never to the ones the step named)."""
        if not announces_refusals(ctx):
            return Refusal(code, reason)
        seller_nib = order["seller_nib"]
        return Refusal(
            code,
            reason,
            outcome=OrderStepRefused(
                order_id=order["order_id"],
                buyer=BuyerRef(id=order["buyer_id"]),
                seller=SellerRef(nib=seller_nib) if seller_nib else None,
                step=step.name,
                order_status=order["status"],
                refused_event_id=ctx.envelope.id,
                reason_code=code,
                reason=reason,
                refused_at=self.clock.now(),
            ),
        )

    async def _move(self, ctx: EventContext, order: repo.Record, step: Step[Any], data: OrderStep) -> None:
        """Apply the step to the order and record, on the stream, that it took effect."""
        now = self.clock.now()
        await repo.transition_order(
            ctx.conn,
            order["order_id"],
            version=order["version"],
            status=step.status.value,
            history=history_entry(ctx, step.status, now),
            fields={column: getattr(data, attribute) for column, attribute in step.record.items()},
        )
        await ctx.emit(
            OrderStatusChanged(
                order_id=order["order_id"],
                buyer=data.buyer,
                seller=data.seller,
                status=step.name,
                previous_status=order["status"],
                version=order["version"] + 1,
                applied_event_id=ctx.envelope.id,
                applied=data,
                changed_at=now,
            )
        )
