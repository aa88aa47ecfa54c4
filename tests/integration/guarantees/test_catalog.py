"""The consumer guarantees for the ``catalog`` durable (product submissions and the order lifecycle)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_catalog.app import build
from kumkm_catalog.settings import Band, CatalogSettings
from kumkm_shared import FixedClock
from kumkm_shared.testing.guarantees import ConsumerGuarantees, RefusalCase, RetryCase
from tests.support.events import contract_event
from tests.support.orders import accepted_order

if TYPE_CHECKING:
    from kumkm_shared import ServiceDefinition
    from kumkm_shared.testing.guarantees import Sample
    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration

SUBMITTED = "kumkm.catalog.product.submitted.v1"
STOCK_UPDATED = "kumkm.catalog.product.stock_updated.v1"
CONFIRMED = "kumkm.catalog.order.confirmed.v1"
STEP_REFUSED = "kumkm.catalog.order.step_refused.v1"
# Thursday 12 September 2024, 10:00 in Jakarta: orders accepted now have a confirmation deadline ahead.
THURSDAY = datetime(2024, 9, 12, 3, 0, tzinfo=UTC)
ANOTHER_SELLER = "8120009876543"


def _product_id() -> str:
    return f"PRD-{uuid.uuid4().hex[:10]}"


async def confirmed_by_another_seller(harness: ServiceHarness) -> Sample:
    """An accepted order, then its confirmation from a seller who is not the order's: refused for good."""
    _, order_id = await accepted_order(harness.http)
    return contract_event(
        CONFIRMED,
        order_id=order_id,
        seller={"nib": ANOTHER_SELLER},
        confirmed_at="2024-09-13T02:00:00Z",
    )


async def stock_of_an_unknown_product(_harness: ServiceHarness) -> Sample:
    """A stock count for a product the catalog has not seen: its submission may be in flight (Retry)."""
    return contract_event(STOCK_UPDATED, product_id=_product_id())


class TestCatalogGuarantees(ConsumerGuarantees):
    durable = "catalog"
    refusal = RefusalCase(event=confirmed_by_another_seller, code="seller_mismatch", announces=STEP_REFUSED)
    retry = RetryCase(event=stock_of_an_unknown_product, code="product_unknown")

    def definition(self) -> ServiceDefinition:
        settings = CatalogSettings(
            price_bands={"furniture": Band(low=Decimal(50_000), high=Decimal(25_000_000))},
            tick_interval_seconds=3600,
        )
        return build(settings=settings, clock=FixedClock(THURSDAY))

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return contract_event(SUBMITTED, product_id=_product_id())

    def poison(self) -> dict[str, Any]:
        return contract_event(SUBMITTED, product_id=_product_id(), unit_price="-1850000.00")

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        if event["type"] not in {SUBMITTED, STOCK_UPDATED}:
            raise AssertionError(f"no effect defined for {event['type']}")
        count: int = await harness.runtime.pool.fetchval(
            "SELECT count(*) FROM catalog.products WHERE product_id = $1", event["data"]["product_id"]
        )
        return count
