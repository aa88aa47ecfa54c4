"""The consumer guarantees for the monitoring durables (registry, loans and catalog events)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_monitoring.app import build
from kumkm_monitoring.settings import MonitoringSettings
from kumkm_shared.testing.guarantees import ConsumerGuarantees, NotApplicable, RetryCase
from tests.support.events import contract_event, restructuring_of_a_loan_never_disbursed

if TYPE_CHECKING:
    from kumkm_shared import ServiceDefinition
    from kumkm_shared.testing.guarantees import Sample
    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration

MANDATE_REFUSALS = (
    "; its one refusal is an organisation's claim outside its mandate (not_authorised_for_party, the same "
    "rule as the owning service's), tested with named organisations in tests/integration/monitoring/"
    "test_dead_letters.py, since this suite publishes as the test organisation mandated for every party"
)


def _cooperative(**overrides: Any) -> dict[str, Any]:
    number = f"3275{uuid.uuid4().int % 10**12:012d}"
    return contract_event("kumkm.registry.cooperative.registered.v1", cooperative_number=number, **overrides)


def _disbursed(**overrides: Any) -> dict[str, Any]:
    return contract_event("kumkm.loans.loan.disbursed.v1", loan_id=f"LN-{uuid.uuid4().hex[:10]}", **overrides)


def _accepted(**overrides: Any) -> dict[str, Any]:
    return contract_event(
        "kumkm.catalog.order.accepted.v1", order_id=f"ORD-{uuid.uuid4().hex[:10]}", **overrides
    )


async def _count(harness: ServiceHarness, sql: str, value: str) -> int:
    count: int = await harness.runtime.pool.fetchval(sql, value)
    return count


class _Monitoring(ConsumerGuarantees):
    def definition(self) -> ServiceDefinition:
        return build(settings=MonitoringSettings())


class TestMonitoringRegistryGuarantees(_Monitoring):
    durable = "monitoring-registry"
    refusal = NotApplicable(
        "a registry record is kept when it is the party's latest by as_of (an older one only moves the "
        "first registration date back) and an activity report replaces that day's: nothing is refused on "
        "its content" + MANDATE_REFUSALS
    )
    retry = NotApplicable(
        "a registry record or an activity report depends on no other event (a report before its party's "
        "registration is kept and counts from the registration on): nothing answers Retry"
    )

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return _cooperative()

    def poison(self) -> dict[str, Any]:
        return _cooperative(member_count=-3)

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        sql = "SELECT count(*) FROM monitoring.parties WHERE party_id = $1"
        return await _count(harness, sql, event["data"]["cooperative_number"])


async def request_for_a_loan_never_disbursed(_harness: ServiceHarness) -> Sample:
    """An organisation's request names only its loan: with no disbursement seen, its borrower (whose
    mandate decides) is unknown: Retry."""
    return restructuring_of_a_loan_never_disbursed()


class TestMonitoringLoansGuarantees(_Monitoring):
    durable = "monitoring-loans"
    refusal = NotApplicable(
        "the loans context's events are recorded as facts: a disbursement seen twice is ignored, a "
        "repayment before its loan is parked until the disbursement, an outcome fills in its request"
        + MANDATE_REFUSALS
    )
    retry = RetryCase(event=request_for_a_loan_never_disbursed, code="loan_unknown")

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return _disbursed()

    def poison(self) -> dict[str, Any]:
        return _disbursed(tenor_months=0)

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        sql = "SELECT count(*) FROM monitoring.loans WHERE loan_id = $1"
        return await _count(harness, sql, event["data"]["loan_id"])


class TestMonitoringCatalogGuarantees(_Monitoring):
    durable = "monitoring-catalog"
    refusal = NotApplicable(
        "the catalog's own outcomes (an accepted order, an applied delivery or payment) are recorded as "
        "facts; monitoring refuses none and follows no integrator's claim of a step"
    )
    retry = NotApplicable(
        "an applied step carries its order and seller, so it never waits for the acceptance: nothing "
        "answers Retry"
    )

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return _accepted()

    def poison(self) -> dict[str, Any]:
        return _accepted(total="-1")

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        sql = "SELECT count(*) FROM monitoring.orders WHERE order_id = $1"
        return await _count(harness, sql, event["data"]["order_id"])
