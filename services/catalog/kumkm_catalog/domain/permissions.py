"""Who may use the catalog service: each permission a route declares, and the roles that grant it.

Sellers' and buyers' systems act through service accounts with the ``integrator`` role; curators decide
products; operators run the tick and cancel orders. Regions narrow every permission further
(``kumkm_catalog.domain.access``; ``docs/rules/catalog.md``, section "Who may do what").
"""

from __future__ import annotations

from typing import Final

from kumkm_shared.auth.roles import CATALOG_CURATOR, INTEGRATOR, MONITORING_VIEWER, OPERATOR

SUBMIT_PRODUCT: Final = "catalog.products.submit"
READ_PRODUCTS: Final = "catalog.products.read"
CURATION_QUEUE: Final = "catalog.curation.queue"
CURATE: Final = "catalog.products.curate"
STOCK: Final = "catalog.products.stock"
DELIST: Final = "catalog.products.delist"
PLACE_ORDER: Final = "catalog.orders.place"
READ_ORDERS: Final = "catalog.orders.read"
ORDER_STEP: Final = "catalog.orders.step"  # confirm, ship (the seller's); deliver, pay (the buyer's)
CANCEL_ORDER: Final = "catalog.orders.cancel"
STATS: Final = "catalog.stats.read"
TICK: Final = "catalog.tick"

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    SUBMIT_PRODUCT: frozenset({INTEGRATOR}),
    READ_PRODUCTS: frozenset({CATALOG_CURATOR, INTEGRATOR, OPERATOR}),
    CURATION_QUEUE: frozenset({CATALOG_CURATOR}),
    CURATE: frozenset({CATALOG_CURATOR}),
    STOCK: frozenset({INTEGRATOR}),
    DELIST: frozenset({CATALOG_CURATOR}),
    PLACE_ORDER: frozenset({INTEGRATOR}),
    READ_ORDERS: frozenset({CATALOG_CURATOR, INTEGRATOR, OPERATOR}),
    ORDER_STEP: frozenset({INTEGRATOR}),
    CANCEL_ORDER: frozenset({OPERATOR, INTEGRATOR}),
    STATS: frozenset({CATALOG_CURATOR, MONITORING_VIEWER, OPERATOR}),
    TICK: frozenset({OPERATOR}),
}
