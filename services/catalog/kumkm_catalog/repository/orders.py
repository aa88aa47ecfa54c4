"""Orders: placing, moving through the lifecycle, listing, timeouts and statistics (``catalog.orders``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kumkm_catalog.domain.orders import COMMITTED

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from kumkm_catalog.repository._rows import Record
    from kumkm_shared.auth.scope import RegionScope
    from kumkm_shared.db import Conn


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
    scope: RegionScope,
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
    in_scope, scope_args = scope.sql("region_province", "region_city", len(args) + 1)
    conds.append(in_scope)
    args += scope_args
    where = f"WHERE {' AND '.join(conds)}"
    args += [limit + 1, offset]
    rows = await conn.fetch(
        f"SELECT * FROM orders {where} ORDER BY placed_at DESC, order_id "
        f"LIMIT ${len(args) - 1} OFFSET ${len(args)}",
        *args,
    )
    return rows[:limit], len(rows) > limit


async def overdue_orders(conn: Conn, last_missed: date, limit: int) -> list[Record]:
    """Accepted orders whose confirmation deadline is on or before ``last_missed`` (the date
    ``domain.deadline.last_missed_deadline`` computes), locked for this transaction."""
    return await conn.fetch(
        "SELECT * FROM orders WHERE status = 'accepted' AND confirm_deadline <= $1 "
        "ORDER BY confirm_deadline, order_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        last_missed,
        limit,
    )


async def purchase_facts(conn: Conn, *, province: str | None = None, city: str | None = None) -> list[Record]:
    """Committed purchase value per region, category, seller scale and paid-or-not; only in ``province``
    (and ``city``) when given, compared without regard to case."""
    conds = ["o.status = ANY($1::text[])"]
    args: list[Any] = [sorted(s.value for s in COMMITTED)]
    for column, value in (("o.region_province", province), ("o.region_city", city)):
        if value is not None:
            args.append(value)
            conds.append(f"lower({column}) = lower(${len(args)})")
    return await conn.fetch(
        "SELECT o.region_province AS province, o.region_city AS city, l.category, o.seller_scale AS scale, "
        "o.status = 'paid' AS paid, sum(l.line_total) AS value, count(DISTINCT o.order_id) AS orders "
        f"FROM orders o JOIN order_lines l USING (order_id) WHERE {' AND '.join(conds)} "
        "GROUP BY 1, 2, 3, 4, 5",
        *args,
    )
