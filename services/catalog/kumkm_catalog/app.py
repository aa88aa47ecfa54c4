"""Wiring: the catalog's consumers, HTTP routes, daily worker and published events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from kumkm_catalog import api
from kumkm_catalog.domain import permissions
from kumkm_catalog.handlers import CatalogService
from kumkm_catalog.settings import CatalogSettings
from kumkm_shared import SYSTEM, ServiceDefinition, SystemClock, business_date
from kumkm_shared.contracts import (
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderStatusChanged,
    OrderStepRefused,
    ProductCurated,
    ProductDelisted,
)

if TYPE_CHECKING:
    from kumkm_shared import Clock, ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: CatalogSettings | None = None, *, clock: Clock | None = None) -> ServiceDefinition:
    service = CatalogService(settings or CatalogSettings(), clock or SystemClock())

    async def daily_tick(runtime: ServiceRuntime) -> None:
        """Cancel orders whose seller missed the confirmation deadline, on the injected clock's date."""
        while True:
            await service.tick(lambda: runtime.command(SYSTEM), business_date(service.clock))
            await asyncio.sleep(service.settings.tick_interval_seconds)

    return ServiceDefinition(
        name="catalog",
        title="KUMKM catalog service",
        description=(
            "Product curation for the government e-catalog, and the e-purchasing order lifecycle "
            "(placed, accepted or rejected, confirmed or cancelled on seller timeout, shipped, delivered, "
            "paid)."
        ),
        migrations=MIGRATIONS,
        consumers={"catalog": service.handlers()},
        routes=api.router,
        permissions=permissions.PERMISSIONS,
        service=service,
        leader_workers=[daily_tick],
        publishes=[
            ProductCurated,
            ProductDelisted,
            OrderAccepted,
            OrderRejected,
            OrderStatusChanged,
            OrderStepRefused,
            OrderCancelled,
        ],
    )
