"""The consumer guarantees for the ``loans`` durable (disbursements, repayments, restructuring requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from kumkm_loans.app import build
from kumkm_loans.settings import LoansSettings
from kumkm_shared.testing.guarantees import ConsumerGuarantees, NotApplicable, RetryCase
from tests.support.events import loan_disbursed, restructuring_of_a_loan_never_disbursed

if TYPE_CHECKING:
    from kumkm_shared import ServiceDefinition
    from kumkm_shared.testing.guarantees import Sample
    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration

DISBURSED = "kumkm.loans.loan.disbursed.v1"
REQUESTED = "kumkm.loans.restructuring.requested.v1"


async def restructuring_of_an_unknown_loan(_harness: ServiceHarness) -> Sample:
    """A request for a loan that is not on the book: it may be in flight, so the handler answers Retry."""
    return restructuring_of_a_loan_never_disbursed()


class TestLoansGuarantees(ConsumerGuarantees):
    durable = "loans"
    refusal = NotApplicable(
        "loans has no business refusal on the bus: a disbursement or a repayment is applied, ignored as "
        "already seen, or parked until its loan arrives; a restructuring request for a loan on the book is "
        "decided (approved, rejected or referred, each an event) and one for a loan not yet on the book "
        "waits with Retry; its refusals (not_referred, no_longer_eligible) answer an officer's HTTP decision"
    )
    retry = RetryCase(event=restructuring_of_an_unknown_loan, code="loan_unknown")

    def definition(self) -> ServiceDefinition:
        return build(settings=LoansSettings(daily_tick=False))

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return loan_disbursed()

    def poison(self) -> dict[str, Any]:
        return loan_disbursed(principal="-5")

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        data = event["data"]
        if event["type"] == DISBURSED:
            sql, key = "SELECT count(*) FROM loans.loans WHERE loan_id = $1", data["loan_id"]
        elif event["type"] == REQUESTED:
            sql, key = (
                "SELECT count(*) FROM loans.restructuring_requests WHERE request_id = $1",
                data["request_id"],
            )
        else:
            raise AssertionError(f"no effect defined for {event['type']}")
        count: int = await harness.runtime.pool.fetchval(sql, key)
        return count
