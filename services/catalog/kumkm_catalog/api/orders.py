"""Orders: placing and the lifecycle steps go through ``runtime.submit`` and the same handler as the
stream (strict: a step that does not apply is a 409); a buyer's cancellation is a command."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from kumkm_catalog import repository as repo
from kumkm_catalog.api.bodies import (  # noqa: TC001 - FastAPI reads the annotations at runtime
    CancelRequest,
    ConfirmRequest,
    DeliverRequest,
    PayRequest,
    ShipRequest,
)
from kumkm_catalog.api.deps import CONSUMER, ServiceDep
from kumkm_catalog.api.views import load_order, order_view
from kumkm_catalog.domain.orders import OrderStatus  # noqa: TC001 - a query parameter's type
from kumkm_shared import Refusal, business_date
from kumkm_shared.contracts import (
    BuyerRef,
    CancelledBy,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    SellerRef,
)
from kumkm_shared.service.deps import CommandDep, RuntimeDep  # noqa: TC001 - FastAPI reads them at runtime

router = APIRouter(tags=["orders"])

MAX_PAGE_SIZE = 100
MAX_PAGE = 500  # deeper than 10,000 orders, filter by buyer, seller or status


def _parties(order: dict[str, Any]) -> dict[str, Any]:
    """The order's own parties, for a step sent on their behalf (a rejected order has no seller)."""
    return {
        "order_id": order["order_id"],
        "buyer": BuyerRef(id=order["buyer_id"]),
        "seller": SellerRef(nib=order["seller_nib"] or "0000000000000"),
    }


@router.post("/orders", status_code=201)
async def place_order(body: OrderPlaced, runtime: RuntimeDep, command: CommandDep) -> dict[str, Any]:
    """Place an order (the same path as ``order.placed``); the answer says accepted or rejected, why."""
    await runtime.submit(body, consumer=CONSUMER, origin=command)
    return await load_order(runtime, body.order_id)


@router.get("/orders")
async def list_orders(
    runtime: RuntimeDep,
    buyer: str | None = None,
    seller: str | None = None,
    status: OrderStatus | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> dict[str, Any]:
    async with runtime.pool.acquire() as conn:
        rows, more = await repo.list_orders(
            conn,
            buyer=buyer,
            seller=seller,
            status=status.value if status else None,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        items = [order_view(r, await repo.order_lines(conn, r["order_id"])) for r in rows]
    return {"items": items, "page": page, "page_size": page_size, "has_more": more}


@router.get("/orders/{order_id}")
async def get_order(order_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    return await load_order(runtime, order_id)


@router.post("/orders/{order_id}/confirm")
async def confirm(
    order_id: str, body: ConfirmRequest, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    order = await load_order(runtime, order_id)
    step = OrderConfirmed(
        **_parties(order), confirmed_at=service.clock.now(), expected_ship_on=body.expected_ship_on
    )
    await runtime.submit(step, consumer=CONSUMER, origin=command)
    return await load_order(runtime, order_id)


@router.post("/orders/{order_id}/ship")
async def ship(
    order_id: str, body: ShipRequest, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    order = await load_order(runtime, order_id)
    step = OrderShipped(
        **_parties(order),
        shipped_at=service.clock.now(),
        carrier=body.carrier,
        tracking_number=body.tracking_number,
        expected_delivery_on=body.expected_delivery_on,
    )
    await runtime.submit(step, consumer=CONSUMER, origin=command)
    return await load_order(runtime, order_id)


@router.post("/orders/{order_id}/deliver")
async def deliver(
    order_id: str, body: DeliverRequest, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    order = await load_order(runtime, order_id)
    step = OrderDelivered(
        **_parties(order),
        bast_number=body.bast_number,
        delivered_on=body.delivered_on or business_date(service.clock),
        received_by=body.received_by,
    )
    await runtime.submit(step, consumer=CONSUMER, origin=command)
    return await load_order(runtime, order_id)


@router.post("/orders/{order_id}/pay")
async def pay(
    order_id: str, body: PayRequest, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    order = await load_order(runtime, order_id)
    if body.amount is None and order["total"] is None:
        raise Refusal("illegal_transition", f"order {order_id} is {order['status']} and has nothing to pay")
    step = OrderPaid(
        **_parties(order),
        amount=body.amount if body.amount is not None else Decimal(order["total"]),
        paid_on=body.paid_on or business_date(service.clock),
        payment_reference=body.payment_reference,
        channel=body.channel,
    )
    await runtime.submit(step, consumer=CONSUMER, origin=command)
    return await load_order(runtime, order_id)


@router.post("/orders/{order_id}/cancel")
async def cancel(
    order_id: str, body: CancelRequest, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """The buyer cancels an accepted or confirmed order; its reserved stock is released."""
    async with runtime.command(command) as work:
        await service.cancel(work, order_id, by=CancelledBy.BUYER, reason=body.reason)
    return await load_order(runtime, order_id)
