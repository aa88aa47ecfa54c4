"""What the API answers: products and orders as JSON, read through the repository."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kumkm_catalog import repository as repo
from kumkm_shared import NotFound

if TYPE_CHECKING:
    from kumkm_shared import ServiceRuntime


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


async def load_product(runtime: ServiceRuntime, product_id: str) -> repo.Record:
    async with runtime.pool.acquire() as conn:
        row = await repo.get_product(conn, product_id)
    if row is None:
        raise NotFound("product", product_id)
    return row


async def load_order(runtime: ServiceRuntime, order_id: str) -> dict[str, Any]:
    async with runtime.pool.acquire() as conn:
        row = await repo.get_order(conn, order_id)
        if row is None:
            raise NotFound("order", order_id)
        return order_view(row, await repo.order_lines(conn, order_id))
