"""Ids are chosen by the senders: a second sender's loan id or payment id that is already taken by another
lender or another loan is refused (dead-lettered with `loan_id_taken` / `payment_id_taken`), never silently
ignored as if it were a duplicate (review 12, finding 6). A true duplicate (the same lender's loan, the same
loan's payment) is still ignored."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import asyncpg
import pytest

from kumkm_shared.integrators import IntegratorRole
from kumkm_shared.testing.harness import grant_mandate
from tests.support.events import loan_disbursed, repayment_received

if TYPE_CHECKING:
    from tests.integration.loans.conftest import Loans

pytestmark = pytest.mark.integration

BANK = "bank-bjb"
CHANNEL = "pos-indonesia"


async def _letters(loans: Loans, event_id: str) -> list[str]:
    return [d.reason_code for d in await loans.dead_letters() if json.loads(d.original)["id"] == event_id]


async def test_a_loan_id_taken_by_another_lender_is_refused(loans: Loans, database_url: str) -> None:
    await grant_mandate(loans.nc, BANK, IntegratorRole.LENDER, parties=("BANK BJB",))
    bank = await loans.publish(loan_disbursed("LN-X-TAKEN", lender="BANK BJB"), sender=BANK)
    await loans.settle()
    # Another lender (the test lender acts for every lender) disburses the same id in its own name.
    other = await loans.publish(loan_disbursed("LN-X-TAKEN", lender="LPDB-KUMKM"))
    # The bank's own disbursement again (a new event id): a duplicate, ignored.
    again = await loans.publish(loan_disbursed("LN-X-TAKEN", lender="BANK BJB"), sender=BANK)
    await loans.settle()
    assert await _letters(loans, bank["id"]) == []
    assert await _letters(loans, other["id"]) == ["loan_id_taken"]
    assert await _letters(loans, again["id"]) == []
    conn = await asyncpg.connect(database_url)
    try:
        lender = await conn.fetchval("SELECT lender FROM loans.loans WHERE loan_id = 'LN-X-TAKEN'")
    finally:
        await conn.close()
    assert lender == "BANK BJB"


async def test_a_payment_id_taken_by_another_loan_is_refused(loans: Loans, database_url: str) -> None:
    await grant_mandate(loans.nc, CHANNEL, IntegratorRole.PAYMENT_CHANNEL, parties=("LPDB-KUMKM",))
    await loans.publish(loan_disbursed("LN-X-A"))
    await loans.publish(loan_disbursed("LN-X-B"))
    await loans.settle()
    applied = await loans.publish(repayment_received("LN-X-A", payment_id="PAY-X-APPLIED"))
    await loans.settle()
    # The applied payment's id, for another loan on the book, and for a loan not on the book yet.
    on_book = await loans.publish(repayment_received("LN-X-B", payment_id="PAY-X-APPLIED"), sender=CHANNEL)
    parked = await loans.publish(repayment_received("LN-X-LATER", payment_id="PAY-X-APPLIED"), sender=CHANNEL)
    # Two parked repayments with one id for two loans not on the book: the second is refused.
    first_parked = await loans.publish(repayment_received("LN-X-P1", payment_id="PAY-X-PARKED"))
    await loans.settle()
    second_parked = await loans.publish(
        repayment_received("LN-X-P2", payment_id="PAY-X-PARKED"), sender=CHANNEL
    )
    # The same payment of the same loan again: a duplicate, ignored.
    duplicate = await loans.publish(repayment_received("LN-X-A", payment_id="PAY-X-APPLIED"))
    await loans.settle()
    assert await _letters(loans, applied["id"]) == []
    assert await _letters(loans, on_book["id"]) == ["payment_id_taken"]
    assert await _letters(loans, parked["id"]) == ["payment_id_taken"]
    assert await _letters(loans, first_parked["id"]) == []
    assert await _letters(loans, second_parked["id"]) == ["payment_id_taken"]
    assert await _letters(loans, duplicate["id"]) == []
    conn = await asyncpg.connect(database_url)
    try:
        parked_rows = await conn.fetch("SELECT payment_id, loan_id FROM loans.parked_repayments")
        paid = await conn.fetch("SELECT payment_id, loan_id FROM loans.repayments")
    finally:
        await conn.close()
    assert [(r["payment_id"], r["loan_id"]) for r in parked_rows] == [("PAY-X-PARKED", "LN-X-P1")]
    assert [(r["payment_id"], r["loan_id"]) for r in paid] == [("PAY-X-APPLIED", "LN-X-A")]
