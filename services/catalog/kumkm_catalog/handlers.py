"""Events and commands in, decisions from the domain, state and outbox out, in one transaction.

Integrator events arrive through the ``catalog`` durable, or over HTTP through ``runtime.submit``; both
paths run the same handler. They differ only in what a non-applicable lifecycle event does:

- from the stream, an event that is *ahead* of the order (``shipped`` while still ``accepted``) is parked
  with ``Retry`` (the missing event may be in flight) and dead-lettered after ``max_deliver``; a *stale* one
  (``confirmed`` when already ``shipped``) is ignored with a log line; an *illegal* one is ``Refusal`` (DLQ);
- over HTTP every one of them is refused (409) and nothing is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any, Protocol, cast

import structlog

from kumkm_catalog import repository as repo
from kumkm_catalog.domain.calendar import (
    JAKARTA,
    end_of_business_date,
    jakarta_date,
)
from kumkm_catalog.domain.curation import (
    CurationRefusal,
    ProductStatus,
    RevisionVerdict,
    Submission,
    check_can_curate,
    check_can_delist,
    check_sanction,
    classify_revision,
    run_prechecks,
    status_after_decision,
)
from kumkm_catalog.domain.orders import (
    RESERVING,
    OrderAction,
    OrderStateMachine,
    OrderStatus,
    Transition,
    Verdict,
)
from kumkm_catalog.domain.placement import Problem, RequestedLine, assess_order, insufficient_stock
from kumkm_shared import Refusal, Retry
from kumkm_shared.contracts import (
    BuyerRef,
    CancelledBy,
    CatalogTier,
    ChecklistItem,
    CurationDecision,
    DelistReason,
    GovernmentBuyer,
    OrderAccepted,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    OrderStepRefused,
    PricedLine,
    ProductCurated,
    ProductDelisted,
    ProductStockUpdated,
    ProductSubmitted,
    Reason,
    SellerRef,
    SellerSummary,
)
from kumkm_shared.contracts.types import Region

if TYPE_CHECKING:
    from decimal import Decimal

    import asyncpg

    from kumkm_catalog.clock import Clock
    from kumkm_catalog.settings import CatalogSettings
    from kumkm_shared import Emit, EventContext
    from kumkm_shared.contracts import Envelope, EventData
    from kumkm_shared.contracts.catalog import OrderStep, StepStatus
    from kumkm_shared.db import Conn

log = structlog.get_logger(__name__)

STEP_OF_TYPE: dict[str, StepStatus] = {
    OrderConfirmed.event_type: "confirmed",
    OrderShipped.event_type: "shipped",
    OrderDelivered.event_type: "delivered",
    OrderPaid.event_type: "paid",
}

POLICY_CURATOR = "policy"
TICK_BATCH = 500


def _summary(row: repo.Record) -> SellerSummary:
    return SellerSummary(
        nib=row["seller_nib"],
        name=row["seller_name"],
        region=Region(province=row["province"], city=row["city"]),
    )


def _checklist(items: list[dict[str, Any]]) -> list[ChecklistItem]:
    return [ChecklistItem(item=i["item"], passed=i["passed"], note=i.get("note", "")) for i in items]


@dataclass
class Catalog:
    """The catalog's handlers and commands, with their dependencies."""

    settings: CatalogSettings
    clock: Clock

    def __post_init__(self) -> None:
        self.curation_rules = self.settings.curation_rules()
        self.order_rules = self.settings.order_rules()
        self.calendar = self.settings.calendar()

    # ------------------------------------------------------------------------------------------------------
    # products

    async def on_product_submitted(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(ProductSubmitted)
        conn = ctx.conn
        current = await repo.get_product(conn, data.product_id, for_update=True)
        current_revision: int | None = None if current is None else current["revision"]
        verdict = classify_revision(current_revision, data.revision)
        if verdict is not RevisionVerdict.NEW:
            if ctx.is_command:
                raise Refusal(
                    f"revision_{verdict.value}",
                    f"revision {data.revision} is not newer than the current revision {current_revision}",
                )
            log.info(
                "product revision ignored",
                product_id=data.product_id,
                revision=data.revision,
                current_revision=current_revision,
                verdict=verdict.value,
            )
            return
        if current is not None and current["seller_nib"] != data.seller.nib:
            raise Refusal("seller_mismatch", f"product {data.product_id} belongs to another seller")
        outcome = run_prechecks(
            Submission(
                nib=data.seller.nib,
                scale=data.seller.scale.value,
                category=data.category,
                unit_price=data.unit_price,
                min_order_qty=data.min_order_qty,
                stock=data.stock,
                tkdn_pct=data.tkdn_pct,
            ),
            self.curation_rules,
        )
        precheck = [
            {"item": r.check.value, "passed": r.passed, "note": r.note, "failure": r.failure}
            for r in outcome.results
        ]
        decision = outcome.decision
        now = self.clock.now()
        curation = None
        if decision is not None:
            curation = {"decision": decision.value, "curator": POLICY_CURATOR, "notes": outcome.summary()}
        status = ProductStatus.PENDING_CURATION if decision is None else status_after_decision(decision)
        await repo.save_submission(
            conn, data, status=status.value, precheck=precheck, curation=curation, at=now
        )
        if decision is not None:
            await ctx.emit(
                ProductCurated(
                    product_id=data.product_id,
                    revision=data.revision,
                    seller=SellerSummary(
                        nib=data.seller.nib, name=data.seller.name, region=data.seller.region
                    ),
                    name=data.name,
                    category=data.category,
                    decision=decision,
                    checklist=_checklist(precheck),
                    notes=outcome.summary(),
                    curator=POLICY_CURATOR,
                    decided_at=now,
                )
            )

    async def curate(
        self,
        conn: Conn,
        emit: Emit,
        product_id: str,
        *,
        decision: CurationDecision,
        curator: str,
        notes: str,
        tier: CatalogTier | None,
        listed_price: Decimal | None,
        checklist: list[ChecklistItem],
        revision: int | None,
        lift_sanction: bool = False,
    ) -> ProductCurated:
        product = await repo.get_product(conn, product_id, for_update=True)
        if product is None:
            raise LookupError(product_id)
        check_can_curate(ProductStatus(product["status"]), product["revision"], revision)
        approved = decision is CurationDecision.APPROVED
        check_sanction(product["sanction"], approved=approved, lift=lift_sanction, notes=notes)
        if approved and tier is None:
            raise CurationRefusal(
                "tier_required", "an approval needs a catalog tier (national, sectoral or local)"
            )
        price = (listed_price or product["unit_price"]) if approved else None
        if price is not None and price <= 0:
            raise CurationRefusal("price_not_positive", "the listed price must be above 0")
        items = _checklist(product["precheck"]) + list(checklist)
        if approved and lift_sanction:  # on the record, for every subscriber of product.curated
            items.append(ChecklistItem(item="sanction_lifted", passed=True, note=notes))
        event = ProductCurated(
            product_id=product_id,
            revision=product["revision"],
            seller=_summary(product),
            name=product["name"],
            category=product["category"],
            decision=decision,
            checklist=items,
            notes=notes,
            listed_price=price,
            tier=tier if approved else None,
            curator=curator,
            decided_at=self.clock.now(),
        )
        await repo.save_curation(
            conn,
            product_id,
            status=status_after_decision(decision).value,
            listed_price=price,
            tier=event.tier.value if event.tier else None,
            curation={"decision": decision.value, "curator": curator, "notes": notes},
            lift_sanction=approved and lift_sanction,
        )
        await emit(event)
        return event

    async def on_stock_updated(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(ProductStockUpdated)
        product = await repo.get_product(ctx.conn, data.product_id, for_update=True)
        if product is None:
            if ctx.is_command:
                raise Refusal("product_unknown", f"product {data.product_id} is not known")
            raise Retry("product_unknown", f"product {data.product_id} is not known (yet)")
        if product["seller_nib"] != data.seller.nib:
            raise Refusal("seller_mismatch", f"product {data.product_id} belongs to another seller")
        if product["stock_as_of"] is not None and data.as_of <= product["stock_as_of"]:
            if ctx.is_command:
                raise Refusal(
                    "stale_stock_update",
                    f"a newer stock count (as of {product['stock_as_of'].isoformat()}) is already recorded",
                )
            log.info("older stock update ignored", product_id=data.product_id, as_of=data.as_of.isoformat())
            return
        await repo.set_stock(ctx.conn, data.product_id, data.stock, data.as_of)

    async def delist(
        self, conn: Conn, emit: Emit, product_id: str, *, reason: DelistReason, note: str
    ) -> ProductDelisted:
        product = await repo.get_product(conn, product_id, for_update=True)
        if product is None:
            raise LookupError(product_id)
        check_can_delist(ProductStatus(product["status"]))
        now = self.clock.now()
        sanction = None
        if reason is DelistReason.SANCTIONED:
            sanction = {"at": now.isoformat(), "note": note, "revision": product["revision"]}
        await repo.delist(conn, product_id, reason.value, sanction=sanction)
        event = ProductDelisted(
            product_id=product_id,
            seller=_summary(product),
            reason=reason,
            note=note,
            delisted_at=now,
        )
        await emit(event)
        return event

    # ------------------------------------------------------------------------------------------------------
    # orders, placing

    async def on_order_placed(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(OrderPlaced)
        conn = ctx.conn
        if await repo.get_order(conn, data.order_id) is not None:
            if ctx.is_command:
                raise Refusal("order_exists", f"order {data.order_id} was already placed")
            log.info("order placed again under another event id; ignored", order_id=data.order_id)
            return
        products = await repo.products_for_order(conn, [line.product_id for line in data.lines])
        assessment = assess_order(
            [RequestedLine(line.product_id, line.qty, line.unit_price) for line in data.lines],
            {pid: p.listing for pid, p in products.items()},
            self.order_rules,
        )
        problems = list(assessment.problems)
        if not problems:
            problems = await self._reserve(conn, [(line.product_id, line.qty) for line in assessment.lines])
        now = self.clock.now()
        seller_product = next(
            (
                p
                for p in products.values()
                if assessment.seller_nib and p.listing.seller_nib == assessment.seller_nib
            ),
            None,
        )
        seller = (
            SellerSummary(
                nib=seller_product.listing.seller_nib,
                name=seller_product.seller_name,
                region=Region(province=seller_product.province, city=seller_product.city),
            )
            if seller_product is not None
            else None
        )
        region = data.buyer.region or data.delivery.region or (seller.region if seller else None)
        row: dict[str, Any] = {
            "order_id": data.order_id,
            "buyer_id": data.buyer.id,
            "buyer": data.buyer.model_dump(mode="json"),
            "budget": data.budget.model_dump(mode="json"),
            "delivery": data.delivery.model_dump(mode="json"),
            "requested_lines": [line.model_dump(mode="json") for line in data.lines],
            "seller_nib": seller.nib if seller else None,
            "seller": seller.model_dump(mode="json") if seller else None,
            "seller_scale": seller_product.seller_scale if seller_product else None,
            "region_province": region.province if region else None,
            "region_city": region.city if region else None,
            "placed_at": ctx.envelope.time,
        }
        if problems:
            await self._reject(ctx, data, row, problems, seller, now)
            return
        assert seller is not None  # noqa: S101 - an accepted order has exactly one seller
        accepted_on = jakarta_date(now)
        deadline = self.calendar.add_working_days(accepted_on, self.settings.confirmation_working_days)
        confirm_by = end_of_business_date(deadline)
        lines = [
            PricedLine(
                product_id=line.product_id,
                name=line.name,
                qty=line.qty,
                unit_price=line.unit_price,
                line_total=line.line_total,
            )
            for line in assessment.lines
        ]
        await repo.insert_order(
            conn,
            row
            | {
                "status": OrderStatus.ACCEPTED.value,
                "total": assessment.total,
                "accepted_at": now,
                "confirm_deadline": deadline,
                "confirm_by": confirm_by,
                "history": [_history(ctx, OrderStatus.ACCEPTED, now)],
            },
        )
        await repo.insert_lines(
            conn,
            data.order_id,
            [
                (x.product_id, x.name, products[x.product_id].category, x.qty, x.unit_price, x.line_total)
                for x in lines
            ],
        )
        await ctx.emit(
            OrderAccepted(
                order_id=data.order_id,
                buyer=data.buyer,
                seller=seller,
                lines=lines,
                total=assessment.total,
                delivery=data.delivery,
                accepted_at=now,
                confirm_by=confirm_by,
            )
        )

    async def _reserve(self, conn: Conn, lines: list[tuple[str, int]]) -> list[Problem]:
        # A savepoint, so that a failed line undoes the lines reserved before it but not the inbox row.
        # Lines are locked in product_id order, so two multi-line orders cannot deadlock.
        try:
            async with conn.transaction():
                for product_id, qty in sorted(lines):
                    if await repo.reserve(conn, product_id, qty) is None:
                        left = await repo.available(conn, product_id)
                        raise _ReservationFailedError(insufficient_stock(product_id, qty, left))  # noqa: TRY301
        except _ReservationFailedError as exc:
            return [exc.problem]
        return []

    async def _reject(
        self,
        ctx: EventContext,
        data: OrderPlaced,
        row: dict[str, Any],
        problems: list[Problem],
        seller: SellerSummary | None,
        now: datetime,
    ) -> None:
        codes = list(dict.fromkeys(p.code.value for p in problems))
        reasons = [
            Reason(code=p.code.value, text_en=p.text_en, text_id=p.text_id, ref=p.ref) for p in problems
        ]
        await repo.insert_order(
            ctx.conn,
            row
            | {
                "status": OrderStatus.REJECTED.value,
                "reason_codes": codes,
                "reasons": [r.model_dump(mode="json") for r in reasons],
                "history": [_history(ctx, OrderStatus.REJECTED, now)],
            },
        )
        await ctx.emit(
            OrderRejected(
                order_id=data.order_id,
                buyer=data.buyer,
                seller=seller,
                reason_codes=codes,
                reasons=reasons,
                rejected_at=now,
            )
        )

    # ------------------------------------------------------------------------------------------------------
    # orders, the lifecycle events an integrator (or the API) sends

    async def _load_for(
        self, ctx: EventContext, order_id: str, action: OrderAction
    ) -> tuple[repo.Record, bool]:
        """The locked order and whether ``action`` applies; parks, ignores or refuses otherwise."""
        order = await repo.get_order(ctx.conn, order_id, for_update=True)
        http = ctx.is_command
        if order is None:
            if http:
                raise Refusal("order_unknown", f"order {order_id} is not known")
            raise Retry(
                "order_unknown", f"order {order_id} is not known (yet); its order.placed may be in flight"
            )
        transition = OrderStateMachine.decide(OrderStatus(order["status"]), action)
        if transition.verdict is Verdict.APPLY:
            return order, True
        self._settle_refusal(ctx, order, transition, action)
        return order, False

    def _settle_refusal(
        self, ctx: EventContext, order: repo.Record, transition: Transition, action: OrderAction
    ) -> None:
        """What a step that does not apply does: refuse (HTTP, illegal), park (ahead) or nothing (stale)."""
        order_id = order["order_id"]
        if ctx.is_command or transition.verdict is Verdict.ILLEGAL:
            code = "illegal_transition" if transition.verdict is Verdict.AHEAD else transition.code
            reason = f"cannot {action.value} order {order_id}: {transition.reason}"
            raise self._refused(ctx, order, code, reason)
        if transition.verdict is Verdict.AHEAD:
            reason = f"order {order_id}: {transition.reason}"
            if ctx.last_attempt:  # given up on: the parties hear of it, as of any other refusal
                raise self._refused(ctx, order, transition.code, f"{reason}; the missing step never came")
            raise Retry(transition.code, f"{reason}; parked until the missing event")
        log.info(
            "stale order event ignored", order_id=order_id, action=action.value, reason=transition.reason
        )

    def _check_parties(self, ctx: EventContext, order: repo.Record, seller_nib: str, buyer_id: str) -> None:
        order_id = order["order_id"]
        if order["seller_nib"] != seller_nib:
            raise self._refused(ctx, order, "seller_mismatch", f"order {order_id} is with another seller")
        if order["buyer_id"] != buyer_id:
            raise self._refused(ctx, order, "buyer_mismatch", f"order {order_id} was placed by another buyer")

    def _refused(self, ctx: EventContext, order: repo.Record, code: str, reason: str) -> Refusal:
        """The refusal of the step in ``ctx``. From the stream it carries ``order.step_refused`` for the
        order's own parties (an HTTP caller gets a 409 instead)."""
        if ctx.is_command:
            return Refusal(code, reason)
        seller_nib = order["seller_nib"]
        return Refusal(
            code,
            reason,
            outcome=OrderStepRefused(
                order_id=order["order_id"],
                buyer=BuyerRef(id=order["buyer_id"]),
                seller=SellerRef(nib=seller_nib) if seller_nib else None,
                step=STEP_OF_TYPE[ctx.envelope.type],
                order_status=order["status"],
                refused_event_id=ctx.envelope.id,
                reason_code=code,
                reason=reason,
                refused_at=self.clock.now(),
            ),
        )

    async def on_order_confirmed(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(OrderConfirmed)
        order, applies = await self._load_for(ctx, data.order_id, OrderAction.CONFIRM)
        if not applies:
            return
        self._check_parties(ctx, order, data.seller.nib, data.buyer.id)
        if jakarta_date(data.confirmed_at) > order["confirm_deadline"]:
            raise self._refused(
                ctx,
                order,
                "confirmation_too_late",
                f"the seller had to confirm by {order['confirm_deadline']} (Asia/Jakarta); the order will be "
                "cancelled for seller timeout",
            )
        await self._move(
            ctx,
            order,
            data,
            OrderStatus.CONFIRMED,
            {"confirmed_at": data.confirmed_at, "expected_ship_on": data.expected_ship_on},
        )

    async def on_order_shipped(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(OrderShipped)
        order, applies = await self._load_for(ctx, data.order_id, OrderAction.SHIP)
        if not applies:
            return
        self._check_parties(ctx, order, data.seller.nib, data.buyer.id)
        lines = await repo.order_lines(ctx.conn, data.order_id)
        await repo.ship_out(ctx.conn, [(x["product_id"], x["qty"]) for x in lines])
        await self._move(
            ctx,
            order,
            data,
            OrderStatus.SHIPPED,
            {"shipped_at": data.shipped_at, "carrier": data.carrier, "tracking_number": data.tracking_number},
        )

    async def on_order_delivered(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(OrderDelivered)
        order, applies = await self._load_for(ctx, data.order_id, OrderAction.DELIVER)
        if not applies:
            return
        self._check_parties(ctx, order, data.seller.nib, data.buyer.id)
        await self._move(
            ctx,
            order,
            data,
            OrderStatus.DELIVERED,
            {
                "bast_number": data.bast_number,
                "delivered_on": data.delivered_on,
                "received_by": data.received_by,
            },
        )

    async def on_order_paid(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(OrderPaid)
        order, applies = await self._load_for(ctx, data.order_id, OrderAction.PAY)
        if not applies:
            return
        self._check_parties(ctx, order, data.seller.nib, data.buyer.id)
        await self._move(
            ctx,
            order,
            data,
            OrderStatus.PAID,
            {
                "paid_on": data.paid_on,
                "paid_amount": data.amount,
                "payment_reference": data.payment_reference,
            },
        )

    async def _move(
        self,
        ctx: EventContext,
        order: repo.Record,
        step: OrderStep,
        status: OrderStatus,
        fields: dict[str, Any],
    ) -> None:
        """Apply an integrator's step to the order and record, on the stream, that it took effect."""
        now = self.clock.now()
        await repo.transition_order(
            ctx.conn,
            order["order_id"],
            version=order["version"],
            status=status.value,
            history=_history(ctx, status, now),
            fields=fields,
        )
        await ctx.emit(
            OrderStatusChanged(
                order_id=order["order_id"],
                buyer=step.buyer,
                seller=step.seller,
                status=cast("StepStatus", status.value),
                previous_status=order["status"],
                version=order["version"] + 1,
                applied_event_id=ctx.envelope.id,
                applied=step,
                changed_at=now,
            )
        )

    # ------------------------------------------------------------------------------------------------------
    # orders, commands that are not integrator events

    async def cancel(
        self,
        conn: Conn,
        emit: Emit,
        order_id: str,
        *,
        by: CancelledBy,
        reason: str,
        at: datetime | None = None,
    ) -> OrderCancelled:
        """Cancel an accepted or confirmed order and release its reserved stock.

        Raises ``IllegalTransition`` for an order in any other status.
        """
        order = await repo.get_order(conn, order_id, for_update=True)
        if order is None:
            raise LookupError(order_id)
        status = OrderStatus(order["status"])
        action = OrderAction.TIME_OUT if by is CancelledBy.SELLER_TIMEOUT else OrderAction.CANCEL
        OrderStateMachine.apply(status, action)
        lines = await repo.order_lines(conn, order_id)
        released = [(x["product_id"], x["qty"]) for x in lines] if status in RESERVING else []
        await repo.release(conn, released)
        moment = at or self.clock.now()
        await repo.transition_order(
            conn,
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
                for x in lines
                if status in RESERVING
            ],
            cancelled_at=moment,
        )
        await emit(event)
        return event

    async def tick(self, pool: asyncpg.Pool, emit_in: EmitIn, day: date) -> list[str]:
        """Cancel every accepted order whose seller did not confirm by the deadline, as of business ``day``.

        Idempotent: an order is cancelled once; running the same day again finds nothing more to do.
        """
        cancelled: list[str] = []
        moment = self._moment_of(day)
        while True:
            async with pool.acquire() as conn, conn.transaction():
                rows = await repo.overdue_orders(conn, day, TICK_BATCH)
                emit = _bound(emit_in, conn)
                for row in rows:
                    await self.cancel(
                        conn,
                        emit,
                        row["order_id"],
                        by=CancelledBy.SELLER_TIMEOUT,
                        reason=(
                            f"the seller did not confirm within {self.settings.confirmation_working_days} "
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

    def _moment_of(self, day: date) -> datetime:
        now = self.clock.now()
        if jakarta_date(now) == day:
            return now
        # A tick for another day (a catch-up run or a simulation) happens at the start of that day.
        return datetime.combine(day, time(0), JAKARTA).astimezone(UTC)


class EmitIn(Protocol):
    async def __call__(self, conn: Conn, data: EventData, /) -> Envelope: ...


def _bound(emit_in: EmitIn, conn: Conn) -> Emit:
    async def emit(data: EventData) -> Envelope:
        return await emit_in(conn, data)

    return emit


class _ReservationFailedError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.text_en)
        self.problem = problem


def _history(ctx: EventContext, status: OrderStatus, at: datetime) -> dict[str, Any]:
    return {
        "status": status.value,
        "at": at.isoformat(),
        "event_id": str(ctx.envelope.id),
        "event": ctx.envelope.type,
    }
