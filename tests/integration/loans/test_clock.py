"""Every moment and business date the service stamps comes from its injected clock, not the machine's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from kumkm_loans.app import build
from kumkm_loans.settings import LoansSettings
from kumkm_shared.clock import FixedClock
from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration

MOMENT = datetime(2020, 5, 3, 18, 30, tzinfo=UTC)  # 2020-05-04 01:30 in Asia/Jakarta


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)  # Python 3.11 reads the "Z" of UTC


@pytest_asyncio.fixture
async def clocked(nats_url: str, database_url: str) -> AsyncIterator[tuple[Loans, FixedClock]]:
    clock = FixedClock(MOMENT)
    definition = build(settings=LoansSettings(daily_tick=False), clock=clock)
    async with Loans.start(definition, nats_url, database_url, consumer_batch=16) as harness:
        yield harness, clock


async def test_decisions_are_stamped_by_the_injected_clock(clocked: tuple[Loans, FixedClock]) -> None:
    loans, clock = clocked
    await loans.publish(loan_disbursed("LN-CLOCK"))
    await loans.publish(loan_disbursed("LN-CLOCK-BIG", principal="12000000000.00"))
    await loans.settle()

    # Decided by the policy at once: the event and the stored request carry the clock's moment.
    auto = await loans.http.post("/restructurings", json=restructuring_requested("LN-CLOCK")["data"])
    assert auto.status_code == 201, auto.text
    assert auto.json()["status"] == "approved"
    assert moment(auto.json()["decided_at"]) == MOMENT
    referred = restructuring_requested("LN-CLOCK-BIG", request_id="RR-CLOCK-BIG")["data"]
    assert (await loans.http.post("/restructurings", json=referred)).json()["status"] == "referred"

    # A day later an officer decides without a date: today is the clock's business date in Jakarta
    # (2020-05-05 there, while it is still 2020-05-04 in UTC).
    clock.advance(days=1)
    # Above the second-approval threshold: the maker's approval and the checker's, both stamped by the clock.
    decision = {"decision": "approve", "reason": "Dampak COVID terverifikasi"}
    made = await loans.client("officer.bekasi").post("/restructurings/RR-CLOCK-BIG/decision", json=decision)
    assert made.status_code == 200, made.text
    assert made.json()["first_approval"]["on"] == "2020-05-05"
    assert moment(made.json()["first_approval"]["at"]) == clock.now()
    checker = loans.client("supervisor.bekasi")
    decided = await checker.post("/restructurings/RR-CLOCK-BIG/decision", json=decision)
    assert decided.status_code == 200, decided.text
    assert decided.json()["decided_on"] == "2020-05-05"
    assert moment(decided.json()["decided_at"]) == clock.now()

    await loans.settle()
    approved = {e["data"]["loan_id"]: e["data"] for e in await loans.events("restructuring.approved.v1")}
    assert moment(approved["LN-CLOCK"]["decided_at"]) == MOMENT
    assert moment(approved["LN-CLOCK-BIG"]["decided_at"]) == clock.now()
    [referral] = await loans.events("restructuring.referred.v1")
    assert moment(referral["data"]["referred_at"]) == MOMENT


async def test_a_loan_read_without_a_date_or_a_tick_is_as_of_the_clocks_business_date(
    clocked: tuple[Loans, FixedClock],
) -> None:
    loans, _ = clocked
    await loans.publish(loan_disbursed("LN-CLOCK-READ"))
    await loans.settle()
    loan = (await loans.http.get("/loans/LN-CLOCK-READ")).json()
    assert loan["as_of"] == "2020-05-04"
    # The installments due 2019-07-15 .. 2020-04-15 are unpaid as of that day.
    assert loan["arrears"]["installments"] == 10
