"""Stock for orders: the listings an order is assessed against, and reserving, releasing and shipping out
units (``catalog.products``). The conditional updates and CHECK constraints keep stock from going negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kumkm_catalog.domain.placement import ListedProduct, Shortfall

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kumkm_shared.db import Conn


@dataclass(frozen=True)
class OrderProduct:
    listing: ListedProduct
    category: str
    seller_name: str
    seller_scale: str
    province: str
    city: str


async def products_for_order(conn: Conn, product_ids: Sequence[str]) -> dict[str, OrderProduct]:
    rows = await conn.fetch(
        "SELECT product_id, name, status, seller_nib, seller_name, seller_scale, province, city, category, "
        "listed_price, min_order_qty, stock_available FROM products WHERE product_id = ANY($1::text[])",
        list(product_ids),
    )
    return {
        r["product_id"]: OrderProduct(
            listing=ListedProduct(
                product_id=r["product_id"],
                name=r["name"],
                listed=r["status"] == "listed",
                seller_nib=r["seller_nib"],
                listed_price=r["listed_price"],
                min_order_qty=r["min_order_qty"],
                stock_available=r["stock_available"],
            ),
            category=r["category"],
            seller_name=r["seller_name"],
            seller_scale=r["seller_scale"],
            province=r["province"],
            city=r["city"],
        )
        for r in rows
    }


async def reserve(conn: Conn, product_id: str, qty: int) -> int | None:
    """Reserve ``qty`` units atomically; ``None`` when the product is no longer listed or too few remain.

    The condition is re-evaluated after waiting for a concurrent reservation's row lock (READ COMMITTED),
    so two orders racing for the last units can never both succeed.
    """
    left: int | None = await conn.fetchval(
        "UPDATE products SET stock_available = stock_available - $2, stock_reserved = stock_reserved + $2 "
        "WHERE product_id = $1 AND status = 'listed' AND stock_available >= $2 RETURNING stock_available",
        product_id,
        qty,
    )
    return left


async def reserve_lines(conn: Conn, lines: Sequence[tuple[str, int]]) -> Shortfall | None:
    """Reserve every ``(product_id, qty)`` line, or none: the first line that cannot be covered is the
    ``Shortfall`` and the lines reserved before it are given back (a savepoint, so the caller's transaction
    and its inbox row stay). Lines are locked in product_id order, so two multi-line orders cannot deadlock.
    """
    savepoint = conn.transaction()
    await savepoint.start()
    try:
        shortfall = await _reserve_each(conn, sorted(lines))
    except BaseException:
        await savepoint.rollback()
        raise
    if shortfall is None:
        await savepoint.commit()
    else:
        await savepoint.rollback()
    return shortfall


async def _reserve_each(conn: Conn, lines: Sequence[tuple[str, int]]) -> Shortfall | None:
    for product_id, qty in lines:
        if await reserve(conn, product_id, qty) is None:
            return Shortfall(product_id, qty, await available(conn, product_id))
    return None


async def available(conn: Conn, product_id: str) -> int:
    value: int | None = await conn.fetchval(
        "SELECT stock_available FROM products WHERE product_id = $1", product_id
    )
    return value or 0


async def release(conn: Conn, lines: Sequence[tuple[str, int]]) -> None:
    """Give reserved units back to the available stock (cancellation)."""
    for product_id, qty in sorted(lines):
        await conn.execute(
            "UPDATE products SET stock_available = stock_available + $2, "
            "stock_reserved = greatest(stock_reserved - $2, 0) WHERE product_id = $1",
            product_id,
            qty,
        )


async def ship_out(conn: Conn, lines: Sequence[tuple[str, int]]) -> None:
    """Shipped units leave the warehouse: they are no longer reserved."""
    for product_id, qty in sorted(lines):
        await conn.execute(
            "UPDATE products SET stock_reserved = greatest(stock_reserved - $2, 0) WHERE product_id = $1",
            product_id,
            qty,
        )
