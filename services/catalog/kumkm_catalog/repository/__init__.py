"""SQL for the catalog schema, and only here (the pool's search_path is the ``catalog`` schema).

Handlers call these functions with the connection of the transaction the runtime opened for them.
"""

from kumkm_catalog.repository._rows import Record
from kumkm_catalog.repository.orders import (
    get_order,
    insert_lines,
    insert_order,
    list_orders,
    order_lines,
    overdue_orders,
    purchase_facts,
    transition_order,
)
from kumkm_catalog.repository.products import (
    MAX_SEARCH_TERMS,
    ProductQuery,
    curation_queue,
    delist,
    get_product,
    prefix_tsquery,
    request_sanction_lift,
    save_curation,
    save_submission,
    search_products,
    search_sql,
    set_stock,
)
from kumkm_catalog.repository.stock import (
    OrderProduct,
    available,
    products_for_order,
    release,
    reserve,
    reserve_lines,
    ship_out,
)

__all__ = [
    "MAX_SEARCH_TERMS",
    "OrderProduct",
    "ProductQuery",
    "Record",
    "available",
    "curation_queue",
    "delist",
    "get_order",
    "get_product",
    "insert_lines",
    "insert_order",
    "list_orders",
    "order_lines",
    "overdue_orders",
    "prefix_tsquery",
    "products_for_order",
    "purchase_facts",
    "release",
    "request_sanction_lift",
    "reserve",
    "reserve_lines",
    "save_curation",
    "save_submission",
    "search_products",
    "search_sql",
    "set_stock",
    "ship_out",
    "transition_order",
]
