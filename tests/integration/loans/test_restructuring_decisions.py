"""Referral and decisions by officers and supervisors, rejection at the cut-off, duplicates, invalid input."""

from __future__ import annotations

import uuid

import pytest

from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import dead_letters
from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed

pytestmark = pytest.mark.integration


def request_body(loan_id: str, **overrides: object) -> dict[str, object]:
    body = restructuring_requested(loan_id)["data"]
    body.update(overrides)
    return body


async def test_a_request_above_the_limit_is_referred_then_decided_by_two_people(  # noqa: PLR0915
    loans: Loans,
) -> None:
    await loans.publish(loan_disbursed("LN-BIG-1", principal="12000000000.00"))
    await loans.publish(loan_disbursed("LN-BIG-2", principal="15000000000.00"))
    await loans.settle()

    created = await loans.http.post("/restructurings", json=request_body("LN-BIG-1", request_id="RR-BIG-1"))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "referred"
    assert created.json()["reason_codes"] == ["above_auto_approval_limit"]
    second = await loans.http.post("/restructurings", json=request_body("LN-BIG-2", request_id="RR-BIG-2"))
    assert second.json()["status"] == "referred"
    await loans.settle()
    referred = await loans.events("restructuring.referred.v1")
    assert [e["data"]["request_id"] for e in referred] == ["RR-BIG-1", "RR-BIG-2"]
    assert referred[0]["data"]["reasons"][0]["text_id"].startswith("Sisa pokok Rp12.000.000.000")
    # The request event went out on the stream too, and came back as an inbox duplicate.
    assert len(await loans.events("restructuring.requested.v1")) == 2
    listed = (await loans.http.get("/restructurings", params={"status": "referred"})).json()["items"]
    assert {r["request_id"] for r in listed} == {"RR-BIG-1", "RR-BIG-2"}

    # Above the second-approval threshold (Rp1,000,000,000) the officer's approval is the maker's: it
    # waits for a supervisor. A rejection takes one person.
    officer, supervisor = loans.client("officer.bekasi"), loans.client("supervisor.national")
    approve = {"decision": "approve", "reason": "Dampak COVID terverifikasi", "decided_on": "2020-05-04"}
    made = await officer.post("/restructurings/RR-BIG-1/decision", json=approve)
    assert made.status_code == 200, made.text
    assert made.json()["status"] == "awaiting_second_approval"
    assert made.json()["decided_by"] is None
    assert made.json()["first_approval"]["by"] == "officer.bekasi"
    assert made.json()["first_approval"]["on"] == "2020-05-04"
    assert made.json()["first_approval"]["reason"] == "Dampak COVID terverifikasi"
    await loans.settle()
    assert await loans.events("restructuring.approved.v1") == []
    checked = {"decision": "approve", "reason": "Disetujui kedua", "decided_on": "2020-05-05"}
    decided = await supervisor.post("/restructurings/RR-BIG-1/decision", json=checked)
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"
    assert decided.json()["decided_by"] == "supervisor.national"
    assert decided.json()["first_approval"]["by"] == "officer.bekasi"
    reject = {"decision": "reject", "reason": "Usaha sudah tidak beroperasi", "decided_on": "2020-05-24"}
    rejected = await officer.post("/restructurings/RR-BIG-2/decision", json=reject)
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["first_approval"] is None
    await loans.settle()
    [approved] = await loans.events("restructuring.approved.v1")
    assert approved["data"]["decided_by"] == "supervisor.national"
    assert approved["data"]["first_approved_by"] == "officer.bekasi"
    assert approved["data"]["first_approved_at"]
    assert approved["data"]["reason_codes"] == ["above_auto_approval_limit"]
    assert approved["data"]["note"] == "Disetujui kedua"
    assert approved["data"]["summary"]["installments"] == 6 + 50 + 12
    [refused] = await loans.events("restructuring.rejected.v1")
    assert refused["data"]["decided_by"] == "officer.bekasi"
    assert refused["data"]["first_approved_by"] is None
    assert refused["data"]["reason_codes"] == ["officer_rejected"]
    assert "Usaha sudah tidak beroperasi" in refused["data"]["reasons"][0]["text_en"]
    assert "officer.bekasi" in refused["data"]["reasons"][0]["text_en"]

    # Only referred requests take a decision: anything else is a 409 with a clear message.
    again = await supervisor.post("/restructurings/RR-BIG-1/decision", json=approve)
    assert again.status_code == 409
    assert again.json()["error"] == "not_referred"
    assert "RR-BIG-1" in again.json()["message"]
    assert "approved, not referred" in again.json()["message"]
    missing = await officer.post("/restructurings/RR-NOPE/decision", json=approve)
    assert missing.status_code == 404
    # The decider comes from the token: a body naming an officer is refused, naming the field.
    invalid = await officer.post(
        "/restructurings/RR-BIG-2/decision", json={"decision": "maybe", "officer": "x"}
    )
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {"decision", "reason", "officer"}

    progress = (await loans.http.get("/progress")).json()
    assert progress["requests"] == {
        "approved": 1,
        "rejected": 1,
        "referred": 0,
        "awaiting_second_approval": 0,
        "total": 2,
    }
    assert progress["approval_rate"] == 0.5
    assert progress["median_days_to_decision"] == 24.5  # 15 (the checker's date) and 34 days


async def test_a_loan_graded_4_at_the_cutoff_is_rejected_with_its_code(loans: Loans) -> None:
    # Never repaid: on 2020-02-29 the first installment (2019-09-15) is 167 days past due, grade 4.
    await loans.publish(loan_disbursed("LN-NPL", disbursed_on="2019-08-15", first_due_on="2019-09-15"))
    await loans.settle()
    result = await loans.tick("2020-02-29")
    assert result["grade_changes"] == 1
    await loans.publish(restructuring_requested("LN-NPL", request_id="RR-NPL"))
    await loans.settle()
    [rejected] = await loans.events("restructuring.rejected.v1")
    assert rejected["data"]["reason_codes"] == ["collectibility_at_cutoff"]
    assert rejected["data"]["decided_by"] == "policy"
    assert "2020-02-29" in rejected["data"]["reasons"][0]["text_en"]
    assert await loans.events("restructuring.approved.v1") == []
    stored = (await loans.http.get("/restructurings/RR-NPL")).json()
    assert stored["status"] == "rejected"


async def test_the_same_request_delivered_twice_gives_one_decision(loans: Loans) -> None:
    await loans.publish(loan_disbursed("LN-DUP"))
    await loans.settle()
    request = restructuring_requested("LN-DUP", request_id="RR-DUP")
    await loans.publish(request, msg_id="first")
    await loans.publish(request, msg_id="second")  # the same event again, past the broker's de-duplication
    resent = restructuring_requested("LN-DUP", request_id="RR-DUP")  # a new event with the same request id
    await loans.publish(resent)
    await loans.settle()
    over_http = await loans.http.post("/restructurings", json=request_body("LN-DUP", request_id="RR-DUP"))
    assert over_http.status_code == 200
    assert over_http.json()["status"] == "approved"
    await loans.settle()
    assert len(await loans.events("restructuring.approved.v1")) == 1
    loan = (await loans.http.get("/loans/LN-DUP")).json()
    assert loan["restructure_count"] == 1


async def test_an_invalid_request_goes_to_the_dlq_with_a_reason(loans: Loans) -> None:
    await loans.publish(loan_disbursed("LN-BAD"))
    await loans.settle()
    bad = restructuring_requested(
        "LN-BAD",
        proposal=[{"scheme": "grace_period", "months": 0, "on": "principal"}, {"scheme": "debt_forgiveness"}],
    )
    await loans.publish(bad)
    await loans.settle()

    async def one_letter() -> bool:
        return len(await dead_letters(loans.nc)) == 1

    await wait_for(one_letter, timeout=10)
    [letter] = await dead_letters(loans.nc)
    assert letter.reason_code == "schema_violation"
    assert letter.consumer == "loans"
    assert letter.reason
    assert any(e["field"].startswith("data.proposal") for e in letter.errors), letter.errors
    outcomes = [
        e
        for e in await loans.events()
        if e["type"].rsplit(".", 2)[-2] in {"approved", "rejected", "referred"}
    ]
    assert outcomes == []

    # Over HTTP the same mistake is a structured 422 naming the field.
    response = await loans.http.post(
        "/restructurings",
        json=request_body("LN-BAD", proposal=[{"scheme": "grace_period", "months": 0, "on": "principal"}]),
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert any(e["field"].startswith("proposal.0") for e in body["errors"]), body
    unknown = await loans.http.post("/restructurings", json=request_body(f"LN-{uuid.uuid4().hex[:6]}"))
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
