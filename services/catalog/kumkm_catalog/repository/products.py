"""Products: submissions, curation, stock counts, delisting and search (SQL for ``catalog.products``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime
    from decimal import Decimal

    from kumkm_catalog.repository._rows import Record
    from kumkm_shared.auth.scope import RegionScope
    from kumkm_shared.contracts import ProductSubmitted
    from kumkm_shared.db import Conn

_PRODUCT_COLUMNS = """product_id, revision, status, seller_nib, seller_name, seller_scale,
    seller_cooperative_id, province, city, name, category, unit, unit_price, listed_price, tier,
    min_order_qty, stock_available, stock_reserved, stock_as_of, tkdn_pct, certifications, description,
    precheck, curation, delist_reason, sanction, sanction_lift, submitted_at, updated_at"""


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
            delist_reason = NULL, sanction_lift = NULL, search_tsv = EXCLUDED.search_tsv,
            submitted_at = EXCLUDED.submitted_at, updated_at = EXCLUDED.updated_at
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
    """Record a decision; any first curator's lift waiting on the product is completed or refused by it."""
    await conn.execute(
        "UPDATE products SET status = $2, listed_price = $3, tier = $4, curation = $5, updated_at = now(), "
        "sanction = CASE WHEN $6 THEN NULL ELSE sanction END, sanction_lift = NULL "
        "WHERE product_id = $1",
        product_id,
        status,
        listed_price,
        tier,
        curation,
        lift_sanction,
    )


async def request_sanction_lift(conn: Conn, product_id: str, *, status: str, lift: dict[str, Any]) -> None:
    """Record the first curator's lift of a sanction; the product waits for a second curator."""
    await conn.execute(
        "UPDATE products SET status = $2, sanction_lift = $3, updated_at = now() WHERE product_id = $1",
        product_id,
        status,
        lift,
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
class ProductQuery:
    scope: RegionScope  # the reader's regions: only products whose seller is in them
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
    in_scope, scope_args = query.scope.sql("province", "city", len(args) + 1)
    conds.append(in_scope)
    args += scope_args
    sql = (
        f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE {' AND '.join(conds)} "
        f"ORDER BY product_id LIMIT {arg(query.limit + 1)} OFFSET {arg(query.offset)}"
    )
    return sql, args


async def search_products(conn: Conn, query: ProductQuery) -> tuple[list[Record], bool]:
    sql, args = search_sql(query)
    rows = await conn.fetch(sql, *args)
    return rows[: query.limit], len(rows) > query.limit


async def curation_queue(conn: Conn, scope: RegionScope, limit: int) -> list[Record]:
    """Products waiting for a curator (or for a second curator's lift) inside ``scope``, oldest first."""
    in_scope, scope_args = scope.sql("province", "city", 2)
    return await conn.fetch(
        f"SELECT {_PRODUCT_COLUMNS} FROM products "
        f"WHERE status IN ('pending_curation', 'awaiting_second_curator') AND {in_scope} "
        f"ORDER BY submitted_at, product_id LIMIT $1",
        limit,
        *scope_args,
    )
