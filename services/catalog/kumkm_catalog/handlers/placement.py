"""Placing an order: load the facts, let the domain decide, reserve, persist and announce the outcome.

The decision is the domain's (``domain.placement``): ``assess_order`` on the listings as read, then the
repository reserves the assessed lines atomically (all or none), then ``decide_placement`` gives the outcome
from both, with the confirmation deadline of an accepted order. Rules: ``docs/rules/catalog.md``, sections
"E-purchasing rules" and "Confirmation deadline".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from kumkm_catalog import repository as repo
from kumkm_catalog.domain.orders import OrderStatus, Verdict
from kumkm_catalog.domain.placement import (
    Accepted,
    RequestedLine,
    assess_order,
    decide_placement,
    purchase_region,
)
from kumkm_catalog.handlers.common import history_entry
from kumkm_catalog.handlers.strictness import Handling, handling
from kumkm_shared import Refusal
from kumkm_shared.contracts import (
    OrderAccepted,
    OrderPlaced,
    OrderRejected,
    PricedLine,
    Reason,
    SellerSummary,
)
from kumkm_shared.contracts.types import Region

if TYPE_CHECKING:
    from datetime import datetime

    from kumkm_catalog.domain.placement import OrderRules, Rejected
    from kumkm_catalog.repository import OrderProduct
    from kumkm_shared import Clock, EventContext

log = structlog.get_logger(__name__)


def _seller(product: OrderProduct) -> SellerSummary:
    return SellerSummary(
        nib=product.listing.seller_nib,
        name=product.seller_name,
        region=Region(province=product.province, city=product.city),
    )


async def _insert_order(
    ctx: EventContext, row: dict[str, Any], status: OrderStatus, now: datetime, **columns: Any
) -> None:
    """Insert the placed order at the status its placement decided, its history starting there."""
    history = [history_entry(ctx, status, now)]
    await repo.insert_order(ctx.conn, row | {"status": status.value, **columns, "history": history})


@dataclass
class OrderPlacement:
    """``order.placed``: accepted (stock reserved, deadline set) or rejected with every reason."""

    rules: OrderRules
    clock: Clock

    async def on_order_placed(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(OrderPlaced)
        await ctx.require_mandate(data.buyer.id)  # a buyer's system orders only as its own buyer
        conn = ctx.conn
        if await repo.get_order(conn, data.order_id) is not None:
            if handling(Verdict.STALE, ctx) is Handling.REFUSE:
                raise Refusal("order_exists", f"order {data.order_id} was already placed")
            log.info("order placed again under another event id; ignored", order_id=data.order_id)
            return
        products = await repo.products_for_order(conn, [line.product_id for line in data.lines])
        assessment = assess_order(
            [RequestedLine(line.product_id, line.qty, line.unit_price) for line in data.lines],
            {pid: p.listing for pid, p in products.items()},
            self.rules,
        )
        shortfall = None
        if assessment.accepted:
            shortfall = await repo.reserve_lines(conn, [(x.product_id, x.qty) for x in assessment.lines])
        now = self.clock.now()
        placement = decide_placement(assessment, shortfall, accepted_at=now, rules=self.rules)
        by_seller: dict[str, OrderProduct] = {}
        for product in products.values():  # the seller as the first of their products names them
            by_seller.setdefault(product.listing.seller_nib, product)
        seller_product = by_seller.get(assessment.seller_nib) if assessment.seller_nib else None
        seller = _seller(seller_product) if seller_product else None
        region = purchase_region(data.buyer.region, data.delivery.region, seller.region if seller else None)
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
        if isinstance(placement, Accepted):
            categories = {pid: p.category for pid, p in products.items()}
            accepted_by = _seller(by_seller[placement.seller_nib])
            await self._accept(ctx, data, row, placement, accepted_by, categories, now)
        else:
            await self._reject(ctx, data, row, placement, seller, now)

    async def _accept(
        self,
        ctx: EventContext,
        data: OrderPlaced,
        row: dict[str, Any],
        accepted: Accepted,
        seller: SellerSummary,
        categories: dict[str, str],
        now: datetime,
    ) -> None:
        lines = [
            PricedLine(
                product_id=x.product_id,
                name=x.name,
                qty=x.qty,
                unit_price=x.unit_price,
                line_total=x.line_total,
            )
            for x in accepted.lines
        ]
        await _insert_order(
            ctx,
            row,
            OrderStatus.ACCEPTED,
            now,
            total=accepted.total,
            accepted_at=now,
            confirm_deadline=accepted.deadline.date,
            confirm_by=accepted.deadline.confirm_by,
        )
        await repo.insert_lines(
            ctx.conn,
            data.order_id,
            [
                (x.product_id, x.name, categories[x.product_id], x.qty, x.unit_price, x.line_total)
                for x in lines
            ],
        )
        await ctx.emit(
            OrderAccepted(
                order_id=data.order_id,
                buyer=data.buyer,
                seller=seller,
                lines=lines,
                total=accepted.total,
                delivery=data.delivery,
                accepted_at=now,
                confirm_by=accepted.deadline.confirm_by,
            )
        )

    async def _reject(
        self,
        ctx: EventContext,
        data: OrderPlaced,
        row: dict[str, Any],
        rejected: Rejected,
        seller: SellerSummary | None,
        now: datetime,
    ) -> None:
        codes = rejected.codes
        reasons = [
            Reason(code=p.code.value, text_en=p.text_en, text_id=p.text_id, ref=p.ref)
            for p in rejected.problems
        ]
        await _insert_order(
            ctx,
            row,
            OrderStatus.REJECTED,
            now,
            reason_codes=codes,
            reasons=[r.model_dump(mode="json") for r in reasons],
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
