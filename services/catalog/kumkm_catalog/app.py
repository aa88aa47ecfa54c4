"""Wiring: the catalog's consumers, HTTP routes, daily worker and published events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from kumkm_catalog.api import make_router
from kumkm_catalog.clock import Clock, SystemClock, today
from kumkm_catalog.handlers import Catalog
from kumkm_catalog.settings import CatalogSettings
from kumkm_shared import ServiceDefinition
from kumkm_shared.contracts import (
    OrderAccepted,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    OrderStepRefused,
    ProductCurated,
    ProductDelisted,
    ProductStockUpdated,
    ProductSubmitted,
)

if TYPE_CHECKING:
    from kumkm_shared import ServiceRuntime

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: CatalogSettings | None = None, clock: Clock | None = None) -> ServiceDefinition:
    catalog = Catalog(settings or CatalogSettings(), clock or SystemClock())

    async def daily_tick(runtime: ServiceRuntime) -> None:
        """Cancel orders whose seller missed the confirmation deadline, on the injectable clock's date."""
        while True:
            await catalog.tick(runtime.pool, runtime.emit, today(catalog.clock))
            await asyncio.sleep(catalog.settings.tick_interval_seconds)

    return ServiceDefinition(
        name="catalog",
        title="KUMKM catalog service",
        description=(
            "Product curation for the government e-catalog, and the e-purchasing order lifecycle "
            "(placed, accepted or rejected, confirmed or cancelled on seller timeout, shipped, delivered, "
            "paid)."
        ),
        migrations=MIGRATIONS,
        consumers={
            "catalog": {
                ProductSubmitted.event_type: catalog.on_product_submitted,
                ProductStockUpdated.event_type: catalog.on_stock_updated,
                OrderPlaced.event_type: catalog.on_order_placed,
                OrderConfirmed.event_type: catalog.on_order_confirmed,
                OrderShipped.event_type: catalog.on_order_shipped,
                OrderDelivered.event_type: catalog.on_order_delivered,
                OrderPaid.event_type: catalog.on_order_paid,
            }
        },
        routes=lambda runtime: make_router(runtime, catalog),
        workers=[daily_tick],
        publishes=[
            ProductCurated,
            ProductDelisted,
            OrderAccepted,
            OrderRejected,
            OrderStatusChanged,
            OrderStepRefused,
            OrderCancelled,
        ],
        state={"catalog": catalog},
    )
