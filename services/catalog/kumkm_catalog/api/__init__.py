"""The catalog's HTTP API: one module-level router composed of the products, orders and operations
routers. Routes get the runtime, the ``CatalogService`` and the command's origin by ``Depends``.

Integrator events posted here go through ``runtime.submit`` and the same handler as the stream (strict, see
``handlers.strictness``); curation, delisting, cancellation and the tick are commands run in
``runtime.command``. Refusals raised below are mapped to HTTP in one place (``kumkm_shared.service.http``).
"""

from fastapi import APIRouter

from kumkm_catalog.api import operations, orders, products

router = APIRouter()
router.include_router(products.router)
router.include_router(orders.router)
router.include_router(operations.router)

__all__ = ["router"]
