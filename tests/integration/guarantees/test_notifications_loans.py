"""The consumer guarantees for the ``notifications-loans`` durable (outcome events of the loans context)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_notifications.app import build
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared.testing.guarantees import ConsumerGuarantees, NotApplicable, RetryCase
from tests.support.events import contract_event, restructuring_of_a_loan_never_disbursed
from tests.support.samples import COOPERATIVE_BORROWER

if TYPE_CHECKING:
    from kumkm_shared import ServiceDefinition
    from kumkm_shared.testing.guarantees import Sample
    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration

APPROVED = "kumkm.loans.restructuring.approved.v1"
REQUESTED = "kumkm.loans.restructuring.requested.v1"


def _approved(**overrides: Any) -> dict[str, Any]:
    """A restructuring approval for a borrower nobody has a contact for: one ``no_contact`` delivery."""
    borrower = {**COOPERATIVE_BORROWER, "id": f"32750{uuid.uuid4().int % 10**11:011d}"}
    return contract_event(
        APPROVED,
        request_id=f"RR-{uuid.uuid4().hex[:10]}",
        loan_id=f"LN-{uuid.uuid4().hex[:10]}",
        borrower=borrower,
        **overrides,
    )


async def request_for_a_loan_never_disbursed(_harness: ServiceHarness) -> Sample:
    """A request names only its loan; with no disbursement seen, its borrower is unknown: Retry."""
    return restructuring_of_a_loan_never_disbursed()


class TestNotificationsLoansGuarantees(ConsumerGuarantees):
    durable = "notifications-loans"
    refusal = NotApplicable(
        "notifications refuses nothing on the bus: an outcome of the loans context is recorded as one "
        "delivery per recipient and channel (no_contact or suppressed when nobody can be reached), or "
        "waits with Retry for the borrower of a loan it has not seen disbursed"
    )
    retry = RetryCase(event=request_for_a_loan_never_disbursed, code="borrower_unknown")

    def definition(self) -> ServiceDefinition:
        return build(settings=NotificationsSettings())

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return _approved()

    def poison(self) -> dict[str, Any]:
        return _approved(decided_at="the day after tomorrow")

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        count: int = await harness.runtime.pool.fetchval(
            "SELECT count(*) FROM notifications.deliveries WHERE event_id = $1::uuid", event["id"]
        )
        return count
