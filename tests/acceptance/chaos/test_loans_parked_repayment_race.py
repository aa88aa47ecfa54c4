"""Found by the fault suite: a repayment handled concurrently with its loan's disbursement stays parked.

The loans consumer handles a pull batch concurrently. ``on_repayment`` checks ``SELECT ... FROM loans`` and,
not seeing the loan (the disbursement's transaction has not committed), parks the payment in
``parked_repayments``; ``on_disbursed`` looks for parked payments of its loan before that park commits.
Both commit, and the payment is never applied: acknowledged, in the inbox, and lost (READ COMMITTED write
skew). Fix in services/loans: serialise the two handlers on the loan id, e.g. take
``pg_advisory_xact_lock(hashtextextended('loan:' || loan_id, 0))`` first in both ``on_disbursed`` and
``on_repayment`` (or insert the loan row / the parked row and re-check under ``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import nats
import pytest

from bench.chaos.orgs import LENDER_PARTY, Org, record_mandates
from bench.chaos.workload import disbursement, repayment
from kumkm_loans.app import build
from kumkm_loans.settings import LoansSettings
from kumkm_shared.contracts import make_event
from kumkm_shared.integrators import IntegratorRole
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import consumer_idle, running_service

if TYPE_CHECKING:
    from datetime import date

pytestmark = pytest.mark.acceptance

LOANS = 60


async def test_repayment_racing_its_disbursement_is_applied(nats_url: str, database_url: str) -> None:
    from datetime import date as _date

    paid_on: date = _date(2020, 3, 1)
    async with running_service(build(LoansSettings(daily_tick=False)), nats_url, database_url):
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            # the lender's core banking sends both, with a mandate for its own loans only
            lender = Org("lpdb-kumkm-race", IntegratorRole.LENDER, (LENDER_PARTY,))
            await record_mandates(js, [lender])
            for i in range(LOANS):
                loan_id = f"LN-RACE-{i:03d}"
                # back to back, so both land in the same pull batch and are handled concurrently
                for data in (
                    repayment(f"PAY-RACE-{i:03d}", loan_id, paid_on),
                    disbursement(loan_id, "3275000000000001"),
                ):
                    env = make_event(data, source="urn:test")
                    await js.publish(
                        lender.subject(env.type),
                        env.to_json_bytes(),
                        headers={"Nats-Msg-Id": env.msg_id},
                    )
            await wait_for(lambda: consumer_idle(nc, "KUMKM_LOANS", "loans"), timeout=60, interval=0.2)
        finally:
            await nc.drain()
        conn = await asyncpg.connect(database_url)
        try:
            applied = await conn.fetchval(
                "SELECT count(*) FROM loans.repayments WHERE payment_id LIKE 'PAY-RACE-%'"
            )
            parked = await conn.fetch("SELECT payment_id FROM loans.parked_repayments ORDER BY payment_id")
        finally:
            await conn.close()
    assert applied == LOANS, (
        f"{LOANS - applied} repayments never applied; still parked: {[r[0] for r in parked]}"
    )
