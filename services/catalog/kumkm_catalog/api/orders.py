"""Orders: placing and the lifecycle steps go through ``runtime.submit`` and the same handler as the
stream (strict: a step that does not apply is a 409); a buyer's cancellation is a command.

The four lifecycle routes (confirm, ship, deliver, pay) share one shape, so they come from one table,
``_STEP_ROUTES``: each names its request body and how that body becomes the step event for the order."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, cast

from fastapi import APIRouter, Query

from kumkm_catalog import repository as repo
from kumkm_catalog.api.bodies import (
    CancelRequest,
    ConfirmRequest,
    DeliverRequest,
    PayRequest,
    ShipRequest,
)
from kumkm_catalog.api.deps import CONSUMER, ServiceDep
from kumkm_catalog.api.views import load_order, order_view
from kumkm_catalog.domain import permissions
from kumkm_catalog.domain.access import check_in_scope
from kumkm_catalog.domain.orders import OrderStatus  # noqa: TC001 - a query parameter's type
from kumkm_catalog.domain.placement import purchase_region
from kumkm_shared import Refusal, business_date
from kumkm_shared.auth.roles import INTEGRATOR
from kumkm_shared.contracts import (
    BuyerRef,
    CancelledBy,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    SellerRef,
)
from kumkm_shared.contracts.types import Identifier, Nib  # noqa: TC001 - FastAPI reads them at runtime
from kumkm_shared.errors import Forbidden
from kumkm_shared.mandates import refusal
from kumkm_shared.messaging.consumer import NOT_AUTHORISED, NOT_AUTHORISED_FOR_PARTY
from kumkm_shared.service.deps import ActorDep, CommandDep, Require, RuntimeDep
from kumkm_shared.service.http import links

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from pydantic import BaseModel

    from kumkm_shared import Clock
    from kumkm_shared.contracts.catalog import OrderStep
    from kumkm_shared.origin import Actor

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


def _order_in_scope(actor: Actor, permission: str, order: dict[str, Any]) -> dict[str, Any]:
    """The order, or 403 ``outside_region`` when its purchase region is outside the actor's regions."""
    check_in_scope(actor.scope, permission, "order", order["region_province"], order["region_city"])
    return order


@router.post(
    "/orders",
    status_code=201,
    dependencies=[Require(permissions.PLACE_ORDER)],
    openapi_extra=links(
        201,
        "order_id",
        ("GET", "/orders/{order_id}"),
        *(
            ("POST", f"/orders/{{order_id}}/{step}")
            for step in ("confirm", "ship", "deliver", "pay", "cancel")
        ),
    ),
)
async def place_order(body: OrderPlaced, runtime: RuntimeDep, command: CommandDep) -> dict[str, Any]:
    """Place an order (the same path as ``order.placed``); the answer says accepted or rejected, why.

    The order must be in the integrator's regions by the buyer's or the delivery's region (national
    integrators place any order). Which buyers an integrator may order for is its organisation's mandate,
    not checked here yet (``docs/rules/catalog.md``, section "Who may do what")."""
    region = purchase_region(body.buyer.region, body.delivery.region)
    check_in_scope(
        command.actor.scope,
        permissions.PLACE_ORDER,
        "order",
        region.province if region else None,
        region.city if region else None,
    )
    await runtime.submit(body, consumer=CONSUMER, origin=command)
    return await load_order(runtime, body.order_id)


@router.get("/orders", dependencies=[Require(permissions.READ_ORDERS)])
async def list_orders(
    runtime: RuntimeDep,
    actor: ActorDep,
    buyer: Identifier | None = None,
    seller: Nib | None = None,
    status: OrderStatus | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> dict[str, Any]:
    """Orders in the reader's regions (by purchase region), newest first."""
    async with runtime.pool.acquire() as conn:
        rows, more = await repo.list_orders(
            conn,
            scope=actor.scope,
            buyer=buyer,
            seller=seller,
            status=status.value if status else None,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        items = [order_view(r, await repo.order_lines(conn, r["order_id"])) for r in rows]
    return {"items": items, "page": page, "page_size": page_size, "has_more": more}


@router.get("/orders/{order_id}", dependencies=[Require(permissions.READ_ORDERS)])
async def get_order(order_id: Identifier, runtime: RuntimeDep, actor: ActorDep) -> dict[str, Any]:
    return _order_in_scope(actor, permissions.READ_ORDERS, await load_order(runtime, order_id))


def _confirmed(body: ConfirmRequest, order: dict[str, Any], clock: Clock) -> OrderStep:
    return OrderConfirmed(**_parties(order), confirmed_at=clock.now(), expected_ship_on=body.expected_ship_on)


def _shipped(body: ShipRequest, order: dict[str, Any], clock: Clock) -> OrderStep:
    return OrderShipped(
        **_parties(order),
        shipped_at=clock.now(),
        carrier=body.carrier,
        tracking_number=body.tracking_number,
        expected_delivery_on=body.expected_delivery_on,
    )


def _delivered(body: DeliverRequest, order: dict[str, Any], clock: Clock) -> OrderStep:
    return OrderDelivered(
        **_parties(order),
        bast_number=body.bast_number,
        delivered_on=body.delivered_on or business_date(clock),
        received_by=body.received_by,
    )


def _paid(body: PayRequest, order: dict[str, Any], clock: Clock) -> OrderStep:
    if body.amount is None and order["total"] is None:
        raise Refusal(
            "illegal_transition", f"order {order['order_id']} is {order['status']} and has nothing to pay"
        )
    return OrderPaid(
        **_parties(order),
        amount=body.amount if body.amount is not None else Decimal(order["total"]),
        paid_on=body.paid_on or business_date(clock),
        payment_reference=body.payment_reference,
        channel=body.channel,
    )


StepBody = TypeVar("StepBody", ConfirmRequest, ShipRequest, DeliverRequest, PayRequest)


@dataclass(frozen=True)
class _StepRoute(Generic[StepBody]):
    """``POST /orders/{order_id}/<name>``: the body, and the lifecycle step it asks for on the order."""

    name: str
    body: type[StepBody]
    step: Callable[[StepBody, dict[str, Any], Clock], OrderStep]

    def endpoint(self) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def submit_step(
            order_id: Identifier,
            body: BaseModel,
            runtime: RuntimeDep,
            service: ServiceDep,
            command: CommandDep,
        ) -> dict[str, Any]:
            order = _order_in_scope(
                command.actor, permissions.ORDER_STEP, await load_order(runtime, order_id)
            )
            step = self.step(cast("StepBody", body), order, service.clock)
            await runtime.submit(step, consumer=CONSUMER, origin=command)
            return await load_order(runtime, order_id)

        # FastAPI validates the body against the annotated model: this route's own.
        submit_step.__annotations__["body"] = self.body
        return submit_step


_STEP_ROUTES: tuple[_StepRoute[Any], ...] = (
    _StepRoute("confirm", ConfirmRequest, _confirmed),
    _StepRoute("ship", ShipRequest, _shipped),
    _StepRoute("deliver", DeliverRequest, _delivered),
    _StepRoute("pay", PayRequest, _paid),
)
for _route in _STEP_ROUTES:
    router.add_api_route(
        f"/orders/{{order_id}}/{_route.name}",
        _route.endpoint(),
        methods=["POST"],
        name=_route.name,
        dependencies=[Require(permissions.ORDER_STEP)],
    )


async def _require_buyer_mandate(runtime: RuntimeDep, actor: Actor, order: dict[str, Any]) -> None:
    """An integrator (a service account, or a token with the integrator role) cancels only for a buyer its
    organisation's mandate names in the buyer role; an operator is governed by role and region alone."""
    if actor.kind != "service" and INTEGRATOR not in actor.roles:
        return
    if actor.organisation is None:
        reason: str | None = f"the service account {actor.subject!r} belongs to no organisation"
    else:
        reason = await refusal(
            runtime.mandates, actor.organisation, order["buyer_id"], OrderPlaced.event_type
        )
    if reason is not None:
        NOT_AUTHORISED.labels("catalog", OrderCancelled.event_type, "http").inc()
        raise Forbidden("mandate", reason, code=NOT_AUTHORISED_FOR_PARTY)


@router.post("/orders/{order_id}/cancel", dependencies=[Require(permissions.CANCEL_ORDER)])
async def cancel(
    order_id: Identifier, body: CancelRequest, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """The buyer cancels an accepted or confirmed order; its reserved stock is released. An integrator
    must hold a buyer mandate for the order's buyer (``docs/rules/catalog.md``, "Cancelling")."""
    order = _order_in_scope(command.actor, permissions.CANCEL_ORDER, await load_order(runtime, order_id))
    await _require_buyer_mandate(runtime, command.actor, order)
    async with runtime.command(command) as work:
        await service.cancel(work, order_id, by=CancelledBy.BUYER, reason=body.reason)
    return await load_order(runtime, order_id)
