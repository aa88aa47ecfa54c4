"""The consumer guarantees for the ``notifications-catalog`` durable (outcome events of the catalog)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_notifications.app import build
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared.testing.guarantees import ConsumerGuarantees, NotApplicable
from tests.support.events import contract_event
from tests.support.samples import SELLER_SUMMARY

if TYPE_CHECKING:
    from kumkm_shared import ServiceDefinition
    from kumkm_shared.testing.guarantees import Sample
    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration

CURATED = "kumkm.catalog.product.curated.v1"


def _curated(**overrides: Any) -> dict[str, Any]:
    """A curation decision for a seller nobody has a contact for: one ``no_contact`` delivery."""
    seller = {**SELLER_SUMMARY, "nib": f"9{uuid.uuid4().int % 10**12:012d}"}
    return contract_event(CURATED, product_id=f"PRD-{uuid.uuid4().hex[:10]}", seller=seller, **overrides)


class TestNotificationsCatalogGuarantees(ConsumerGuarantees):
    durable = "notifications-catalog"
    refusal = NotApplicable(
        "notifications refuses nothing on the bus: an outcome of the catalog is recorded as one delivery "
        "per recipient and channel, no_contact or suppressed when nobody can be reached"
    )
    retry = NotApplicable(
        "every catalog outcome names its recipients itself (the seller's NIB, the buyer's id), so no "
        "notification of the catalog waits for another event: nothing answers Retry"
    )

    def definition(self) -> ServiceDefinition:
        return build(settings=NotificationsSettings())

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return _curated()

    def poison(self) -> dict[str, Any]:
        return _curated(decision="maybe later")

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        count: int = await harness.runtime.pool.fetchval(
            "SELECT count(*) FROM notifications.deliveries WHERE event_id = $1::uuid", event["id"]
        )
        return count
