"""The consumer guarantees for the toy service, the consumer wrapper's own reference durable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from kumkm_shared.testing.guarantees import ConsumerGuarantees, RefusalCase, RetryCase
from tests.support.events import loan_disbursed, repayment_received
from tests.support.toy import OVERDUE, Toy, toy_service

if TYPE_CHECKING:
    from kumkm_shared import ServiceDefinition
    from kumkm_shared.testing.guarantees import Sample
    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration


async def refused_repayment(_harness: ServiceHarness) -> Sample:
    return repayment_received("LN-TOY-REFUSED", reference="refuse-announced")


async def repayment_never_ready(_harness: ServiceHarness) -> Sample:
    return repayment_received("LN-TOY-RETRY", reference="retry")


class TestToyGuarantees(ConsumerGuarantees):
    durable = "toy"
    max_deliver = 4
    refusal = RefusalCase(event=refused_repayment, code="illegal_transition", announces=OVERDUE)
    retry = RetryCase(event=repayment_never_ready, code="toy_not_yet")

    def definition(self) -> ServiceDefinition:
        return toy_service(Toy())

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return loan_disbursed()

    def poison(self) -> dict[str, Any]:
        return loan_disbursed(principal="-5")

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        count: int = await harness.runtime.pool.fetchval(
            "SELECT count(*) FROM toy.effects WHERE event_id = $1::uuid", event["id"]
        )
        return count


class TestToyBatchGuarantees(TestToyGuarantees):
    """The same guarantees with the durable run as a batch durable (one transaction per pull batch)."""

    batch = True
