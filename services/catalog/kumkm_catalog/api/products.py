"""Products: submissions and stock counts (the same path as the stream), search, the curation queue, and
curators' and operators' commands (curate, delist)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Response

from kumkm_catalog import repository as repo
from kumkm_catalog.api.bodies import (  # noqa: TC001 - FastAPI reads the annotations at runtime
    CurationRequest,
    DelistRequest,
    StockRequest,
)
from kumkm_catalog.api.deps import CONSUMER, ServiceDep
from kumkm_catalog.api.views import load_product, product_view
from kumkm_catalog.domain import permissions
from kumkm_catalog.domain.access import check_in_scope
from kumkm_shared import Refusal
from kumkm_shared.contracts import ProductStockUpdated, ProductSubmitted, SellerRef, SellerScale
from kumkm_shared.contracts.catalog import Category  # noqa: TC001 - FastAPI reads it at runtime
from kumkm_shared.contracts.types import Identifier, Text  # noqa: TC001 - FastAPI reads them at runtime
from kumkm_shared.service.deps import ActorDep, CommandDep, Require, RuntimeDep
from kumkm_shared.service.http import error_responses, links

if TYPE_CHECKING:
    from kumkm_shared.origin import Actor

router = APIRouter(tags=["products"])

MAX_PAGE_SIZE = 100
MAX_OFFSET = 10_000  # deeper than this, use the ``after`` cursor (keyset pagination)


def _in_scope(actor: Actor, permission: str, product: repo.Record) -> repo.Record:
    """The product, or 403 ``outside_region`` when its seller is outside the actor's regions."""
    check_in_scope(actor.scope, permission, "product", product["province"], product["city"])
    return product


@router.post(
    "/products",
    status_code=201,
    dependencies=[Require(permissions.SUBMIT_PRODUCT)],
    openapi_extra=links(
        201,
        "product_id",
        ("GET", "/products/{product_id}"),
        ("POST", "/products/{product_id}/curation"),
        ("POST", "/products/{product_id}/stock"),
        ("POST", "/products/{product_id}/delist"),
    ),
)
async def submit_product(body: ProductSubmitted, runtime: RuntimeDep, command: CommandDep) -> dict[str, Any]:
    """Submit a product or a new revision (the same path as ``product.submitted`` from the stream), for a
    seller in the integrator's regions. Which sellers an integrator may act for is its organisation's
    mandate, not checked here yet (``docs/rules/catalog.md``, section "Who may do what")."""
    region = body.seller.region
    check_in_scope(command.actor.scope, permissions.SUBMIT_PRODUCT, "seller", region.province, region.city)
    async with runtime.pool.acquire() as conn:
        current = await repo.get_product(conn, body.product_id)
    if current is not None:  # a revision may not take another region's product into one's own
        _in_scope(command.actor, permissions.SUBMIT_PRODUCT, current)
    await runtime.submit(body, consumer=CONSUMER, origin=command)
    return product_view(await load_product(runtime, body.product_id))


@router.get(
    "/products",
    dependencies=[Require(permissions.READ_PRODUCTS)],
    responses=error_responses(409),  # a page beyond MAX_OFFSET results: page_too_deep
)
async def search_products(  # noqa: PLR0917 - one query parameter per filter
    runtime: RuntimeDep,
    actor: ActorDep,
    category: Category | None = None,
    region: Annotated[Text | None, Query(description="city or province, case-insensitive")] = None,
    q: Annotated[str | None, Query(max_length=200, description="words in the name or description")] = None,
    scale: SellerScale | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    after: Annotated[
        Identifier | None, Query(description="keyset cursor: the last product_id of the previous page")
    ] = None,
) -> dict[str, Any]:
    """Search listed products whose seller is in the reader's regions, in product id order. Use
    ``next_after`` to page deeply."""
    offset = 0 if after else (page - 1) * page_size
    if offset > MAX_OFFSET:
        raise Refusal("page_too_deep", f"page beyond {MAX_OFFSET} results; continue with the 'after' cursor")
    query = repo.ProductQuery(
        scope=actor.scope,
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


@router.get("/products/{product_id}", dependencies=[Require(permissions.READ_PRODUCTS)])
async def get_product(product_id: Identifier, runtime: RuntimeDep, actor: ActorDep) -> dict[str, Any]:
    return product_view(_in_scope(actor, permissions.READ_PRODUCTS, await load_product(runtime, product_id)))


@router.get("/curation/queue", dependencies=[Require(permissions.CURATION_QUEUE)])
async def curation_queue(
    runtime: RuntimeDep, actor: ActorDep, limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50
) -> dict[str, Any]:
    """Products in the curator's regions that passed the pre-checks and wait for a curator (status
    ``pending_curation``) or for a second curator to lift a sanction (``awaiting_second_curator``), oldest
    first."""
    async with runtime.pool.acquire() as conn:
        rows = await repo.curation_queue(conn, actor.scope, limit)
    return {"items": [product_view(r) for r in rows]}


@router.post("/products/{product_id}/curation", dependencies=[Require(permissions.CURATE)])
async def curate(
    product_id: Identifier,
    body: CurationRequest,
    runtime: RuntimeDep,
    service: ServiceDep,
    command: CommandDep,
    response: Response,
) -> dict[str, Any]:
    """A curator's decision: approved (with a tier), revision_requested or rejected; the curator is the
    signed-in actor. The answer is the ``product.curated`` event; or, for the first curator's lift of a
    sanction, 202 with the product, awaiting a second curator."""
    async with runtime.command(command) as work:
        event = await service.curate(
            work,
            product_id,
            actor=command.actor,
            decision=body.decision,
            notes=body.notes,
            tier=body.tier,
            listed_price=body.listed_price,
            checklist=body.checklist,
            revision=body.revision,
            lift_sanction=body.lift_sanction,
        )
    if event is None:
        response.status_code = 202
        return product_view(await load_product(runtime, product_id))
    return event.model_dump(mode="json")


@router.post("/products/{product_id}/stock", dependencies=[Require(permissions.STOCK)])
async def update_stock(
    product_id: Identifier, body: StockRequest, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """The seller sets the stock available to new orders (``product.stock_updated``)."""
    product = _in_scope(command.actor, permissions.STOCK, await load_product(runtime, product_id))
    stock = ProductStockUpdated(
        product_id=product_id,
        seller=SellerRef(nib=product["seller_nib"], name=product["seller_name"]),
        stock=body.stock,
        as_of=body.as_of or service.clock.now(),
    )
    await runtime.submit(stock, consumer=CONSUMER, origin=command)
    return product_view(await load_product(runtime, product_id))


@router.post("/products/{product_id}/delist", dependencies=[Require(permissions.DELIST)])
async def delist(
    product_id: Identifier, body: DelistRequest, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """Take a listed product out of the catalog, as the signed-in curator (``delisted_by``); the answer is
    the ``product.delisted`` event."""
    async with runtime.command(command) as work:
        event = await service.delist(
            work, product_id, actor=command.actor, reason=body.reason, note=body.note
        )
    return event.model_dump(mode="json")
