"""The catalog's HTTP API. Integrator events posted here go through ``runtime.submit`` and the same handler
as the stream; curator, delisting, cancellation and tick commands write their outcome events to the outbox.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from kumkm_catalog import repository as repo
from kumkm_catalog.clock import today
from kumkm_catalog.domain.curation import CurationRefusal
from kumkm_catalog.domain.orders import IllegalTransition, OrderStatus
from kumkm_catalog.domain.stats import PurchaseFact, summarize
from kumkm_shared import NotFound, Refusal
from kumkm_shared.contracts import (
    BuyerRef,
    CancelledBy,
    CatalogTier,
    ChecklistItem,
    CurationDecision,
    DelistReason,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ProductStockUpdated,
    ProductSubmitted,
    SellerRef,
    SellerScale,
)
from kumkm_shared.contracts.types import Identifier, Money, Name, PositiveMoney, Text

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from kumkm_catalog.handlers import Catalog
    from kumkm_shared import Emit, ServiceRuntime
    from kumkm_shared.contracts import Envelope, EventData
    from kumkm_shared.db import Conn

CONSUMER = "catalog"
MAX_PAGE_SIZE = 100
MAX_OFFSET = 10_000  # deeper than this, use the ``after`` cursor (keyset pagination)

_BODY = ConfigDict(extra="forbid")


class CurationRequest(BaseModel):
    model_config = _BODY
    decision: CurationDecision
    curator: Identifier
    tier: CatalogTier | None = None
    notes: Text = ""
    listed_price: PositiveMoney | None = None
    checklist: list[ChecklistItem] = Field(default_factory=list)
    revision: int | None = Field(
        default=None, ge=1, description="The revision decided; refused if superseded"
    )
    lift_sanction: bool = Field(
        default=False,
        description="Approve a product once delisted as sanctioned, lifting the sanction (needs notes)",
    )


class StockRequest(BaseModel):
    model_config = _BODY
    stock: int = Field(ge=0)
    as_of: datetime | None = None


class DelistRequest(BaseModel):
    model_config = _BODY
    reason: DelistReason
    note: Text = ""


class ConfirmRequest(BaseModel):
    model_config = _BODY
    expected_ship_on: date | None = None


class ShipRequest(BaseModel):
    model_config = _BODY
    carrier: Name | None = None
    tracking_number: Name | None = None
    expected_delivery_on: date | None = None


class DeliverRequest(BaseModel):
    model_config = _BODY
    bast_number: Identifier = Field(description="The handover record (BAST) number; required")
    delivered_on: date | None = None
    received_by: Name | None = None


class PayRequest(BaseModel):
    model_config = _BODY
    payment_reference: Name
    amount: Money | None = Field(default=None, description="Defaults to the order total")
    paid_on: date | None = None
    channel: Name | None = None


class CancelRequest(BaseModel):
    model_config = _BODY
    reason: Annotated[Text, Field(min_length=1)]


class TickRequest(BaseModel):
    model_config = _BODY
    date: dt.date | None = Field(default=None, description="The business date to run; defaults to today")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def product_view(row: repo.Record) -> dict[str, Any]:
    view = {key: _plain(row[key]) for key in row.keys()}  # noqa: SIM118 - asyncpg.Record
    view["tkdn_pct"] = str(row["tkdn_pct"].normalize())
    view["seller"] = {
        "nib": view.pop("seller_nib"),
        "name": view.pop("seller_name"),
        "scale": view.pop("seller_scale"),
        "cooperative_id": view.pop("seller_cooperative_id"),
        "region": {"province": view.pop("province"), "city": view.pop("city")},
    }
    return view


def order_view(row: repo.Record, lines: list[repo.Record]) -> dict[str, Any]:
    view = {key: _plain(row[key]) for key in row.keys()}  # noqa: SIM118 - asyncpg.Record
    view["lines"] = [{key: _plain(line[key]) for key in line.keys()} for line in lines]  # noqa: SIM118
    return view


@contextlib.contextmanager
def _as_http_errors() -> Iterator[None]:
    try:
        yield
    except (CurationRefusal, IllegalTransition) as exc:
        raise Refusal(exc.code, exc.reason) from exc


def make_router(runtime: ServiceRuntime, catalog: Catalog) -> APIRouter:  # noqa: C901, PLR0915 - one flat list of routes
    router = APIRouter()

    async def submit(data: EventData) -> None:
        await runtime.submit(data, consumer=CONSUMER)

    async def product_command(
        product_id: str, command: Callable[[Conn, Emit], Awaitable[EventData]]
    ) -> dict[str, Any]:
        """A curator's or operator's command on a product, in one transaction: its event is the answer;
        a refusal is a 409, an unknown product a 404."""
        with _as_http_errors():
            async with runtime.pool.acquire() as conn, conn.transaction():

                async def emit(data: EventData) -> Envelope:
                    return await runtime.emit(conn, data)

                try:
                    event = await command(conn, emit)
                except LookupError:
                    raise NotFound("product", product_id) from None
        return event.model_dump(mode="json")

    async def load_product(product_id: str) -> repo.Record:
        row = await repo.get_product(runtime.pool, product_id)  # type: ignore[arg-type]
        if row is None:
            raise NotFound("product", product_id)
        return row

    async def load_order(order_id: str) -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            row = await repo.get_order(conn, order_id)
            if row is None:
                raise NotFound("order", order_id)
            return order_view(row, await repo.order_lines(conn, order_id))

    # -- products ---------------------------------------------------------------------------------------
    @router.post("/products", status_code=201, tags=["products"])
    async def submit_product(body: ProductSubmitted) -> dict[str, Any]:
        """Submit a product or a new revision (the same path as ``product.submitted`` from the stream)."""
        await submit(body)
        return product_view(await load_product(body.product_id))

    @router.get("/products", tags=["products"])
    async def search_products(
        category: str | None = None,
        region: Annotated[str | None, Query(description="city or province, case-insensitive")] = None,
        q: Annotated[
            str | None, Query(max_length=200, description="words in the name or description")
        ] = None,
        scale: SellerScale | None = None,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        after: Annotated[
            str | None, Query(description="keyset cursor: the last product_id of the previous page")
        ] = None,
    ) -> dict[str, Any]:
        """Search listed products, in product id order. Use ``next_after`` to page deeply."""
        offset = 0 if after else (page - 1) * page_size
        if offset > MAX_OFFSET:
            raise Refusal(
                "page_too_deep", f"page beyond {MAX_OFFSET} results; continue with the 'after' cursor"
            )
        query = repo.ProductQuery(
            category=category,
            region=region,
            q=q,
            scale=scale.value if scale else None,
            after=after,
            offset=offset,
            limit=page_size,
        )
        async with runtime.pool.acquire() as conn:
            rows, more = await repo.search_products(conn, query)
        items = [product_view(r) for r in rows]
        return {
            "items": items,
            "page": None if after else page,
            "page_size": page_size,
            "has_more": more,
            "next_after": items[-1]["product_id"] if more and items else None,
        }

    @router.get("/products/{product_id}", tags=["products"])
    async def get_product(product_id: str) -> dict[str, Any]:
        return product_view(await load_product(product_id))

    @router.get("/curation/queue", tags=["products"])
    async def curation_queue(limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50) -> dict[str, Any]:
        """Products that passed the pre-checks and wait for a curator, oldest first."""
        async with runtime.pool.acquire() as conn:
            rows = await repo.curation_queue(conn, limit)
        return {"items": [product_view(r) for r in rows]}

    @router.post("/products/{product_id}/curation", tags=["products"])
    async def curate(product_id: str, body: CurationRequest) -> dict[str, Any]:
        """A curator's decision: approved (with a tier), revision_requested or rejected."""
        return await product_command(
            product_id,
            lambda conn, emit: catalog.curate(
                conn,
                emit,
                product_id,
                decision=body.decision,
                curator=body.curator,
                notes=body.notes,
                tier=body.tier,
                listed_price=body.listed_price,
                checklist=body.checklist,
                revision=body.revision,
                lift_sanction=body.lift_sanction,
            ),
        )

    @router.post("/products/{product_id}/stock", tags=["products"])
    async def update_stock(product_id: str, body: StockRequest) -> dict[str, Any]:
        """The seller sets the stock available to new orders (``product.stock_updated``)."""
        product = await load_product(product_id)
        await submit(
            ProductStockUpdated(
                product_id=product_id,
                seller=SellerRef(nib=product["seller_nib"], name=product["seller_name"]),
                stock=body.stock,
                as_of=body.as_of or catalog.clock.now(),
            )
        )
        return product_view(await load_product(product_id))

    @router.post("/products/{product_id}/delist", tags=["products"])
    async def delist(product_id: str, body: DelistRequest) -> dict[str, Any]:
        return await product_command(
            product_id,
            lambda conn, emit: catalog.delist(conn, emit, product_id, reason=body.reason, note=body.note),
        )

    # -- orders -----------------------------------------------------------------------------------------
    @router.post("/orders", status_code=201, tags=["orders"])
    async def place_order(body: OrderPlaced) -> dict[str, Any]:
        """Place an order (the same path as ``order.placed``); the answer says accepted or rejected, why."""
        await submit(body)
        return await load_order(body.order_id)

    @router.get("/orders", tags=["orders"])
    async def list_orders(
        buyer: str | None = None,
        seller: str | None = None,
        status: OrderStatus | None = None,
        page: Annotated[int, Query(ge=1, le=MAX_OFFSET // 20)] = 1,
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

    @router.get("/orders/{order_id}", tags=["orders"])
    async def get_order(order_id: str) -> dict[str, Any]:
        return await load_order(order_id)

    def parties(order: dict[str, Any]) -> dict[str, Any]:
        return {
            "order_id": order["order_id"],
            "buyer": BuyerRef(id=order["buyer_id"]),
            "seller": SellerRef(nib=order["seller_nib"])
            if order["seller_nib"]
            else SellerRef(nib="0000000000000"),
        }

    @router.post("/orders/{order_id}/confirm", tags=["orders"])
    async def confirm(order_id: str, body: ConfirmRequest) -> dict[str, Any]:
        order = await load_order(order_id)
        await submit(
            OrderConfirmed(
                **parties(order), confirmed_at=catalog.clock.now(), expected_ship_on=body.expected_ship_on
            )
        )
        return await load_order(order_id)

    @router.post("/orders/{order_id}/ship", tags=["orders"])
    async def ship(order_id: str, body: ShipRequest) -> dict[str, Any]:
        order = await load_order(order_id)
        await submit(
            OrderShipped(
                **parties(order),
                shipped_at=catalog.clock.now(),
                carrier=body.carrier,
                tracking_number=body.tracking_number,
                expected_delivery_on=body.expected_delivery_on,
            )
        )
        return await load_order(order_id)

    @router.post("/orders/{order_id}/deliver", tags=["orders"])
    async def deliver(order_id: str, body: DeliverRequest) -> dict[str, Any]:
        order = await load_order(order_id)
        await submit(
            OrderDelivered(
                **parties(order),
                bast_number=body.bast_number,
                delivered_on=body.delivered_on or today(catalog.clock),
                received_by=body.received_by,
            )
        )
        return await load_order(order_id)

    @router.post("/orders/{order_id}/pay", tags=["orders"])
    async def pay(order_id: str, body: PayRequest) -> dict[str, Any]:
        order = await load_order(order_id)
        if body.amount is None and order["total"] is None:
            raise Refusal(
                "illegal_transition", f"order {order_id} is {order['status']} and has nothing to pay"
            )
        await submit(
            OrderPaid(
                **parties(order),
                amount=body.amount if body.amount is not None else Decimal(order["total"]),
                paid_on=body.paid_on or today(catalog.clock),
                payment_reference=body.payment_reference,
                channel=body.channel,
            )
        )
        return await load_order(order_id)

    @router.post("/orders/{order_id}/cancel", tags=["orders"])
    async def cancel(order_id: str, body: CancelRequest) -> dict[str, Any]:
        """The buyer cancels an accepted or confirmed order; its reserved stock is released."""
        with _as_http_errors():
            async with runtime.pool.acquire() as conn, conn.transaction():
                try:
                    await catalog.cancel(
                        conn,
                        lambda data: runtime.emit(conn, data),
                        order_id,
                        by=CancelledBy.BUYER,
                        reason=body.reason,
                    )
                except LookupError:
                    raise NotFound("order", order_id) from None
        return await load_order(order_id)

    # -- time and statistics ----------------------------------------------------------------------------
    @router.post("/tick", tags=["operations"])
    async def tick(body: TickRequest | None = None) -> dict[str, Any]:
        """Run the day's seller-confirmation timeouts as of ``date`` (idempotent)."""
        day = (body.date if body else None) or today(catalog.clock)
        cancelled = await catalog.tick(runtime.pool, runtime.emit, day)
        return {"date": day.isoformat(), "cancelled": cancelled}

    @router.get("/stats", tags=["statistics"])
    async def stats() -> dict[str, Any]:
        """UMKM share of committed e-catalog purchase value, overall, by region and by category."""
        async with runtime.pool.acquire() as conn:
            rows = await repo.purchase_facts(conn)
        facts = [
            PurchaseFact(
                province=r["province"] or "unknown",
                city=r["city"] or "unknown",
                category=r["category"],
                scale=r["scale"] or "unknown",
                paid=r["paid"],
                value=r["value"],
            )
            for r in rows
        ]
        return summarize(facts, catalog.settings.umkm_target_pct)

    return router
