"""The loans service acts on an organisation's event only for the parties its mandate names: a lender for
its own loans, a payment channel for the lenders it collects for, a cooperative for its own loans
(docs/rules/access.md, "Integrator organisations"). A refusal is dead-lettered with
``not_authorised_for_party``, counted, audited, and changes nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import asyncpg
import pytest
from prometheus_client import REGISTRY

from kumkm_shared.integrators import IntegratorRole
from kumkm_shared.mandates import MandateBook
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import grant_mandate
from tests.integration.loans.conftest import restructuring_requested
from tests.support.events import KRANGGAN_COOPERATIVE, loan_disbursed, repayment_received

if TYPE_CHECKING:
    from tests.integration.loans.conftest import Loans

pytestmark = pytest.mark.integration

BANK = "bank-bjb"  # lends as "BANK BJB"
CHANNEL = "pos-indonesia"  # collects repayments for LPDB-KUMKM only
COOP = "kop-kranggan"  # the Kranggan cooperative's own system
OTHER_COOPERATIVE = KRANGGAN_COOPERATIVE | {"id": "3275010203049999", "name": "Koperasi Lain"}


def _denied(service: str, event_type: str) -> float:
    labels = {"service": service, "event_type": event_type, "via": "bus"}
    return REGISTRY.get_sample_value("kumkm_not_authorised_for_party_total", labels) or 0.0


async def _mandates(loans: Loans) -> None:
    await grant_mandate(loans.nc, BANK, IntegratorRole.LENDER, parties=("BANK BJB",))
    await grant_mandate(loans.nc, CHANNEL, IntegratorRole.PAYMENT_CHANNEL, parties=("LPDB-KUMKM",))
    await grant_mandate(loans.nc, COOP, IntegratorRole.COOPERATIVE, parties=(KRANGGAN_COOPERATIVE["id"],))


async def _letters(loans: Loans, event_id: str) -> list[str]:
    """The reason codes of the dead letters of one event."""
    return [d.reason_code for d in await loans.dead_letters() if json.loads(d.original)["id"] == event_id]


async def test_each_organisation_acts_only_for_its_own_parties(loans: Loans, database_url: str) -> None:
    await _mandates(loans)
    lpdb_loan = await loans.publish(loan_disbursed("LN-M-LPDB"))  # by the test lender (every lender)
    await loans.settle()
    before = _denied("loans", "kumkm.loans.loan.disbursed.v1")

    # A lender disburses only in its own name.
    forged = await loans.publish(loan_disbursed("LN-M-FORGED"), sender=BANK)
    own = await loans.publish(loan_disbursed("LN-M-BJB", lender="BANK BJB"), sender=BANK)
    # Repayments: the bank is not LPDB-KUMKM's lender; the payment channel collects for LPDB-KUMKM.
    bank_pays = await loans.publish(repayment_received("LN-M-LPDB"), sender=BANK)
    channel_pays = await loans.publish(repayment_received("LN-M-LPDB"), sender=CHANNEL)
    # A borrower's system can never report a repayment, not even of its own loan.
    coop_pays = await loans.publish(repayment_received("LN-M-LPDB"), sender=COOP)
    # The cooperative asks for its own loan, not another cooperative's.
    await loans.publish(loan_disbursed("LN-M-OTHER", borrower=OTHER_COOPERATIVE))
    await loans.settle()
    own_request = await loans.publish(
        restructuring_requested("LN-M-LPDB", request_id="RR-M-OWN"), sender=COOP
    )
    other_request = await loans.publish(
        restructuring_requested("LN-M-OTHER", request_id="RR-M-OTHER"), sender=COOP
    )
    unnamed = await loans.publish(repayment_received("LN-M-LPDB"), sender=None)  # a bare subject names nobody
    await loans.settle()

    for event in (forged, bank_pays, coop_pays, other_request, unnamed):
        assert await _letters(loans, event["id"]) == ["not_authorised_for_party"], event["type"]
    for event in (own, channel_pays, own_request):
        assert await _letters(loans, event["id"]) == [], event["type"]
    assert _denied("loans", "kumkm.loans.loan.disbursed.v1") == before + 1

    conn = await asyncpg.connect(database_url)
    try:
        loans_on_book = {r["loan_id"] for r in await conn.fetch("SELECT loan_id FROM loans.loans")}
        assert loans_on_book == {"LN-M-LPDB", "LN-M-BJB", "LN-M-OTHER"}
        paid = {r["payment_id"] for r in await conn.fetch("SELECT payment_id FROM loans.repayments")}
        assert paid == {channel_pays["data"]["payment_id"]}
        requests = {
            r["request_id"] for r in await conn.fetch("SELECT request_id FROM loans.restructuring_requests")
        }
        assert requests == {"RR-M-OWN"}
        audit = await conn.fetch(
            "SELECT organisation, method, route, status FROM loans.audit_trail "
            "WHERE outcome = 'not_authorised_for_party' ORDER BY id"
        )
    finally:
        await conn.close()
    # One record per refused event (handled concurrently, so in any order).
    refused_by = sorted((str(r["organisation"]), r["method"], r["status"]) for r in audit)
    expected = [BANK, BANK, "None", COOP, COOP]
    assert refused_by == sorted((org, "PUBLISH", 403) for org in expected)
    assert f"kumkm.loans.loan.disbursed.v1.{BANK}" in {r["route"] for r in audit}
    assert lpdb_loan["data"]["lender"] == "LPDB-KUMKM"


async def test_a_parked_repayment_is_checked_against_the_loan_that_arrives(
    loans: Loans, database_url: str
) -> None:
    await _mandates(loans)
    # Both arrive before their loans: the channel's for an LPDB loan (its mandate), and for a BJB loan (not).
    kept = await loans.publish(repayment_received("LN-P-LPDB"), sender=CHANNEL)
    refused = await loans.publish(repayment_received("LN-P-BJB"), sender=CHANNEL)
    await loans.settle()
    await loans.publish(loan_disbursed("LN-P-LPDB"))
    await loans.publish(loan_disbursed("LN-P-BJB", lender="BANK BJB"), sender=BANK)
    await loans.settle()

    conn = await asyncpg.connect(database_url)
    try:

        async def both_taken() -> bool:
            return not await conn.fetchval("SELECT count(*) FROM loans.parked_repayments")

        await wait_for(both_taken, timeout=10)
        paid = {r["payment_id"] for r in await conn.fetch("SELECT payment_id FROM loans.repayments")}
        refusals = await conn.fetch("SELECT payment_id, sender, code FROM loans.refused_repayments")
        audited = await conn.fetchval(
            "SELECT count(*) FROM loans.audit_trail WHERE outcome = 'not_authorised_for_party'"
        )
    finally:
        await conn.close()
    assert paid == {kept["data"]["payment_id"]}
    assert [(r["payment_id"], r["sender"], r["code"]) for r in refusals] == [
        (refused["data"]["payment_id"], CHANNEL, "not_authorised_for_party")
    ]
    assert audited == 1


async def test_every_refused_event_is_audited_even_when_senders_reuse_an_envelope_id(
    loans: Loans, database_url: str
) -> None:
    """Review 12, finding 4: the audit of a refusal is keyed on the stream message, not the envelope id the
    sender chose (one id reused across forged events used to leave only the first in the audit trail)."""
    await _mandates(loans)
    first = loan_disbursed("LN-A-FORGED-1")  # LPDB-KUMKM's name: not the bank's
    second = loan_disbursed("LN-A-FORGED-2") | {"id": first["id"]}
    await loans.publish(first, sender=BANK, msg_id="forged-1")
    await loans.publish(second, sender=BANK, msg_id="forged-2")
    await loans.settle()
    assert await _letters(loans, first["id"]) == ["not_authorised_for_party"] * 2
    conn = await asyncpg.connect(database_url)
    try:
        audited = await conn.fetch(
            "SELECT organisation, request_id FROM loans.audit_trail "
            "WHERE outcome = 'not_authorised_for_party'"
        )
    finally:
        await conn.close()
    assert [str(r["organisation"]) for r in audited] == [BANK, BANK]
    assert len({r["request_id"] for r in audited}) == 2  # stream:sequence of each


async def test_a_restructuring_request_checks_the_senders_mandate_before_anything_else(
    loans: Loans, database_url: str
) -> None:
    """Review 12, finding 5: without a (valid) mandate, a replayed request id is not silently acked and an
    unknown loan is not retried as `loan_unknown`: both are refused at once as `not_authorised_for_party`."""
    await _mandates(loans)
    await loans.publish(loan_disbursed("LN-R-OWN"))
    await loans.settle()
    own = await loans.publish(restructuring_requested("LN-R-OWN", request_id="RR-R-OWN"), sender=COOP)
    await loans.settle()
    assert await _letters(loans, own["id"]) == []
    # An organisation with no mandate at all: an unknown loan, and the known request replayed.
    unknown = await loans.publish(
        restructuring_requested("LN-R-NOWHERE", request_id="RR-R-NOWHERE"), sender="kop-tanpa-mandat"
    )
    replayed = await loans.publish(
        restructuring_requested("LN-R-OWN", request_id="RR-R-OWN"), sender="kop-tanpa-mandat"
    )
    # The cooperative itself, once its mandate is revoked, replaying its own request.
    mandate = MandateBook(loans.nc.jetstream())
    current = await mandate.get(COOP)
    assert current is not None
    await mandate.put(current.model_copy(update={"status": "revoked"}))
    own_again = await loans.publish(restructuring_requested("LN-R-OWN", request_id="RR-R-OWN"), sender=COOP)
    await loans.settle()
    for event in (unknown, replayed, own_again):
        assert await _letters(loans, event["id"]) == ["not_authorised_for_party"], event["data"]
