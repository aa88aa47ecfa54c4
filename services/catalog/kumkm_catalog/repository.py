"""SQL for the catalog schema only (the pool's search_path is the ``catalog`` schema)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumkm_catalog.domain.orders import COMMITTED
from kumkm_catalog.domain.placement import ListedProduct

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date, datetime
    from decimal import Decimal

    from kumkm_shared.contracts import ProductSubmitted
    from kumkm_shared.db import Conn

Record = Any  # asyncpg.Record; typed loosely because its values are heterogeneous

# ----------------------------------------------------------------------------------------------------------
# products

_PRODUCT_COLUMNS = """product_id, revision, status, seller_nib, seller_name, seller_scale,
    seller_cooperative_id, province, city, name, category, unit, unit_price, listed_price, tier,
    min_order_qty, stock_available, stock_reserved, stock_as_of, tkdn_pct, certifications, description,
    precheck, curation, delist_reason, sanction, submitted_at, updated_at"""


async def get_product(conn: Conn, product_id: str, *, for_update: bool = False) -> Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE product_id = $1{lock}", product_id
    )


async def save_submission(
    conn: Conn,
    data: ProductSubmitted,
    *,
    status: str,
    precheck: list[dict[str, Any]],
    curation: dict[str, Any] | None,
    at: datetime,
) -> None:
    """Insert the product, or replace its data with a newer revision (which clears any listing)."""
    await conn.execute(
        """
        INSERT INTO products (product_id, revision, status, seller_nib, seller_name, seller_scale,
            seller_cooperative_id, province, city, province_key, city_key, name, category, unit, unit_price,
            min_order_qty, stock_available, tkdn_pct, certifications, description, precheck, curation,
            search_tsv, submitted_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, lower($8), lower($9), $10, $11, $12, $13, $14, $15, $16,
            $17, $18, $19, $20, to_tsvector('simple', $10 || ' ' || $18), $21, $21)
        ON CONFLICT (product_id) DO UPDATE SET
            revision = EXCLUDED.revision, status = EXCLUDED.status, seller_nib = EXCLUDED.seller_nib,
            seller_name = EXCLUDED.seller_name, seller_scale = EXCLUDED.seller_scale,
            seller_cooperative_id = EXCLUDED.seller_cooperative_id, province = EXCLUDED.province,
            city = EXCLUDED.city, province_key = EXCLUDED.province_key, city_key = EXCLUDED.city_key,
            name = EXCLUDED.name, category = EXCLUDED.category, unit = EXCLUDED.unit,
            unit_price = EXCLUDED.unit_price, listed_price = NULL, tier = NULL,
            min_order_qty = EXCLUDED.min_order_qty, stock_available = EXCLUDED.stock_available,
            tkdn_pct = EXCLUDED.tkdn_pct, certifications = EXCLUDED.certifications,
            description = EXCLUDED.description, precheck = EXCLUDED.precheck, curation = EXCLUDED.curation,
            delist_reason = NULL, search_tsv = EXCLUDED.search_tsv, submitted_at = EXCLUDED.submitted_at,
            updated_at = EXCLUDED.updated_at
        """,
        data.product_id,
        data.revision,
        status,
        data.seller.nib,
        data.seller.name,
        data.seller.scale.value,
        data.seller.cooperative_id,
        data.seller.region.province,
        data.seller.region.city,
        data.name,
        data.category,
        data.unit,
        data.unit_price,
        data.min_order_qty,
        data.stock,
        data.tkdn_pct,
        list(data.certifications),
        data.description,
        precheck,
        curation,
        at,
    )


async def save_curation(
    conn: Conn,
    product_id: str,
    *,
    status: str,
    listed_price: Decimal | None,
    tier: str | None,
    curation: dict[str, Any],
    lift_sanction: bool = False,
) -> None:
    await conn.execute(
        "UPDATE products SET status = $2, listed_price = $3, tier = $4, curation = $5, updated_at = now(), "
        "sanction = CASE WHEN $6 THEN NULL ELSE sanction END "
        "WHERE product_id = $1",
        product_id,
        status,
        listed_price,
        tier,
        curation,
        lift_sanction,
    )


async def set_stock(conn: Conn, product_id: str, stock: int, as_of: datetime) -> None:
    await conn.execute(
        "UPDATE products SET stock_available = $2, stock_as_of = $3, updated_at = now() "
        "WHERE product_id = $1",
        product_id,
        stock,
        as_of,
    )


async def delist(conn: Conn, product_id: str, reason: str, *, sanction: dict[str, Any] | None = None) -> None:
    """Delist; a ``sanction`` record (when the reason is a sanction) outlives later revisions."""
    await conn.execute(
        "UPDATE products SET status = 'delisted', delist_reason = $2, updated_at = now(), "
        "sanction = COALESCE($3::jsonb, sanction) WHERE product_id = $1",
        product_id,
        reason,
        sanction,
    )


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


@dataclass(frozen=True)
class ProductQuery:
    category: str | None = None
    region: str | None = None
    q: str | None = None
    scale: str | None = None
    after: str | None = None
    offset: int = 0
    limit: int = 20


_WORD = re.compile(r"\w+", re.UNICODE)
MAX_SEARCH_TERMS = 8


def prefix_tsquery(text: str) -> str | None:
    """``"meja kayu"`` -> ``"meja:* & kayu:*"``: every word must match, as a prefix. Only \\w characters
    reach ``to_tsquery``, so user input can never be tsquery syntax."""
    words = _WORD.findall(text.lower())[:MAX_SEARCH_TERMS]
    return " & ".join(f"{w}:*" for w in words) or None


def search_sql(query: ProductQuery) -> tuple[str, list[Any]]:
    conds = ["status = 'listed'"]
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.category:
        conds.append(f"category = {arg(query.category)}")
    if query.region:
        key = arg(query.region.strip().lower())
        conds.append(f"(city_key = {key} OR province_key = {key})")
    if query.scale:
        conds.append(f"seller_scale = {arg(query.scale)}")
    if query.q and (tsq := prefix_tsquery(query.q)):
        conds.append(f"search_tsv @@ to_tsquery('simple', {arg(tsq)})")
    if query.after:
        conds.append(f"product_id > {arg(query.after)}")
    sql = (
        f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE {' AND '.join(conds)} "
        f"ORDER BY product_id LIMIT {arg(query.limit + 1)} OFFSET {arg(query.offset)}"
    )
    return sql, args


async def search_products(conn: Conn, query: ProductQuery) -> tuple[list[Record], bool]:
    sql, args = search_sql(query)
    rows = await conn.fetch(sql, *args)
    return rows[: query.limit], len(rows) > query.limit


async def curation_queue(conn: Conn, limit: int) -> list[Record]:
    return await conn.fetch(
        f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE status = 'pending_curation' "
        "ORDER BY submitted_at, product_id LIMIT $1",
        limit,
    )


# ----------------------------------------------------------------------------------------------------------
# orders


async def get_order(conn: Conn, order_id: str, *, for_update: bool = False) -> Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM orders WHERE order_id = $1{lock}", order_id)


async def insert_order(conn: Conn, row: dict[str, Any]) -> None:
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(
        f"INSERT INTO orders ({', '.join(columns)}) VALUES ({placeholders})", *(row[c] for c in columns)
    )


async def insert_lines(conn: Conn, order_id: str, lines: Sequence[tuple[Any, ...]]) -> None:
    """``lines``: (product_id, name, category, qty, unit_price, line_total) per line."""
    await conn.execute(
        "INSERT INTO order_lines "
        "(order_id, line_no, product_id, name, category, qty, unit_price, line_total) "
        "SELECT $1, n, p, nm, c, q, u, t FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], "
        "$6::numeric[], $7::numeric[]) WITH ORDINALITY AS l(p, nm, c, q, u, t, n)",
        order_id,
        [x[0] for x in lines],
        [x[1] for x in lines],
        [x[2] for x in lines],
        [x[3] for x in lines],
        [x[4] for x in lines],
        [x[5] for x in lines],
    )


async def order_lines(conn: Conn, order_id: str) -> list[Record]:
    return await conn.fetch(
        "SELECT product_id, name, category, qty, unit_price, line_total FROM order_lines "
        "WHERE order_id = $1 ORDER BY line_no",
        order_id,
    )


_ORDER_FIELDS = frozenset(
    {
        "confirmed_at",
        "expected_ship_on",
        "shipped_at",
        "carrier",
        "tracking_number",
        "delivered_on",
        "bast_number",
        "received_by",
        "paid_on",
        "paid_amount",
        "payment_reference",
        "cancelled_at",
        "cancelled_by",
        "cancel_reason",
    }
)


async def transition_order(
    conn: Conn,
    order_id: str,
    *,
    version: int,
    status: str,
    history: dict[str, Any],
    fields: dict[str, Any],
) -> None:
    """Move the order to ``status``; the version check guards against a concurrent writer."""
    unknown = set(fields) - _ORDER_FIELDS
    if unknown:
        raise ValueError(f"not order fields: {sorted(unknown)}")
    names = list(fields)
    sets = "".join(f", {name} = ${i}" for i, name in enumerate(names, start=5))
    result: str = await conn.execute(
        f"UPDATE orders SET status = $3, version = version + 1, history = history || $4::jsonb, "
        f"updated_at = now(){sets} WHERE order_id = $1 AND version = $2",
        order_id,
        version,
        status,
        [history],
        *(fields[n] for n in names),
    )
    if result != "UPDATE 1":
        raise RuntimeError(f"order {order_id} changed concurrently (expected version {version})")


async def list_orders(
    conn: Conn,
    *,
    buyer: str | None,
    seller: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Record], bool]:
    conds: list[str] = []
    args: list[Any] = []
    for column, value in (("buyer_id", buyer), ("seller_nib", seller), ("status", status)):
        if value:
            args.append(value)
            conds.append(f"{column} = ${len(args)}")
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    args += [limit + 1, offset]
    rows = await conn.fetch(
        f"SELECT * FROM orders {where} ORDER BY placed_at DESC, order_id "
        f"LIMIT ${len(args) - 1} OFFSET ${len(args)}",
        *args,
    )
    return rows[:limit], len(rows) > limit


async def overdue_orders(conn: Conn, today: date, limit: int) -> list[Record]:
    """Accepted orders whose confirmation deadline is before ``today``, locked for this transaction."""
    return await conn.fetch(
        "SELECT * FROM orders WHERE status = 'accepted' AND confirm_deadline < $1 "
        "ORDER BY confirm_deadline, order_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        today,
        limit,
    )


async def purchase_facts(conn: Conn) -> list[Record]:
    """Committed purchase value per region, category, seller scale and paid-or-not."""
    return await conn.fetch(
        "SELECT o.region_province AS province, o.region_city AS city, l.category, o.seller_scale AS scale, "
        "o.status = 'paid' AS paid, sum(l.line_total) AS value, count(DISTINCT o.order_id) AS orders "
        "FROM orders o JOIN order_lines l USING (order_id) WHERE o.status = ANY($1::text[]) "
        "GROUP BY 1, 2, 3, 4, 5",
        sorted(s.value for s in COMMITTED),
    )
