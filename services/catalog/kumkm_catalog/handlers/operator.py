"""Commands on orders that are not integrator events: a buyer's cancellation, and the daily tick that cancels
orders whose seller missed the confirmation deadline (``docs/rules/catalog.md``, "Confirmation deadline").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from kumkm_catalog import repository as repo
from kumkm_catalog.domain.calendar import moment_on
from kumkm_catalog.domain.deadline import last_missed_deadline
from kumkm_catalog.domain.orders import RESERVING, OrderAction, OrderStateMachine, OrderStatus
from kumkm_shared import NotFound
from kumkm_shared.contracts import CancelledBy, GovernmentBuyer, OrderCancelled, OrderLine, SellerSummary

if TYPE_CHECKING:
    from datetime import date, datetime

    from kumkm_shared import Begin, Clock, Work

    # Opens one unit of work (one transaction) of a command that runs in several: ``runtime.command``
    # bound to its origin, e.g. ``lambda: runtime.command(SYSTEM)``.

log = structlog.get_logger(__name__)

TICK_BATCH = 500


@dataclass
class OperatorCommands:
    """Cancel an order, or every order overdue on a business date."""

    clock: Clock
    confirmation_working_days: int

    async def cancel(
        self,
        work: Work,
        order_id: str,
        *,
        by: CancelledBy,
        reason: str,
        at: datetime | None = None,
    ) -> OrderCancelled:
        """Cancel an accepted or confirmed order and release its reserved stock.

        Raises ``IllegalTransition`` for an order in any other status, ``NotFound`` for an unknown one.
        """
        order = await repo.get_order(work.conn, order_id, for_update=True)
        if order is None:
            raise NotFound("order", order_id)
        status = OrderStatus(order["status"])
        action = OrderAction.TIME_OUT if by is CancelledBy.SELLER_TIMEOUT else OrderAction.CANCEL
        OrderStateMachine.apply(status, action)
        lines = await repo.order_lines(work.conn, order_id)
        released = [x for x in lines if status in RESERVING]
        await repo.release(work.conn, [(x["product_id"], x["qty"]) for x in released])
        moment = at or self.clock.now()
        await repo.transition_order(
            work.conn,
            order_id,
            version=order["version"],
            status=OrderStatus.CANCELLED.value,
            history={"status": "cancelled", "at": moment.isoformat(), "by": by.value},
            fields={"cancelled_at": moment, "cancelled_by": by.value, "cancel_reason": reason},
        )
        event = OrderCancelled(
            order_id=order_id,
            buyer=GovernmentBuyer.model_validate(order["buyer"]),
            seller=SellerSummary.model_validate(order["seller"]) if order["seller"] else None,
            by=by,
            reason=reason,
            released=[
                OrderLine(product_id=x["product_id"], qty=x["qty"], unit_price=x["unit_price"])
                for x in released
            ],
            cancelled_at=moment,
        )
        await work.emit(event)
        return event

    async def tick(self, begin: Begin, day: date) -> list[str]:
        """Cancel every accepted order whose seller did not confirm by the deadline, as of business ``day``,
        in batches of ``TICK_BATCH`` orders, each in its own transaction opened with ``begin``.

        Idempotent: an order is cancelled once; running the same day again finds nothing more to do.
        """
        cancelled: list[str] = []
        moment = moment_on(day, self.clock.now())
        last_missed = last_missed_deadline(day)
        while True:
            async with begin() as work:
                rows = await repo.overdue_orders(work.conn, last_missed, TICK_BATCH)
                for row in rows:
                    await self.cancel(
                        work,
                        row["order_id"],
                        by=CancelledBy.SELLER_TIMEOUT,
                        reason=(
                            f"the seller did not confirm within {self.confirmation_working_days} "
                            f"working days (deadline {row['confirm_deadline']})"
                        ),
                        at=moment,
                    )
                    cancelled.append(row["order_id"])
            if len(rows) < TICK_BATCH:
                break
        if cancelled:
            log.info("orders cancelled for seller timeout", day=day.isoformat(), count=len(cancelled))
        return cancelled
