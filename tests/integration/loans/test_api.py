"""The API's errors (an unknown loan over HTTP, and from the stream) and the preview changing nothing."""

from __future__ import annotations

import pytest

from kumkm_shared.testing import wait_for
from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed, repayment_received, to_bytes

pytestmark = pytest.mark.integration


async def test_errors_are_structured_json(loans: Loans) -> None:
    missing = await loans.http.get("/loans/LN-NONE")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "loan 'LN-NONE' not found", "errors": []}
    bad_tick = await loans.http.post("/tick", json={"date": "2020-02-30"})
    assert bad_tick.status_code == 422
    assert bad_tick.json()["errors"][0]["field"] == "date"
    await loans.publish(loan_disbursed("LN-API", method="declining", tenor_months=24))
    await loans.settle()
    no_scheme = await loans.http.get(
        "/loans/LN-API/restructurings/preview", params={"reschedule_from": "2020-05-15"}
    )
    assert no_scheme.status_code == 422
    assert no_scheme.json()["errors"][0]["field"] == "proposal"
    bad_rate = await loans.http.get(
        "/loans/LN-API/restructurings/preview",
        params={"reschedule_from": "2020-05-15", "new_annual_rate": "0.5%"},
    )
    assert bad_rate.status_code == 422
    assert "new_annual_rate" in bad_rate.json()["errors"][0]["field"]
    # The body is held to the event's own rules: a scheme named twice is a 422, never a 5xx.
    twice = {"scheme": "tenor_extension", "extra_months": 6}
    duplicate = await loans.http.post(
        "/restructurings", json=restructuring_requested("LN-API", proposal=[twice, twice])["data"]
    )
    assert duplicate.status_code == 422
    assert "appears twice" in duplicate.json()["message"]


async def test_preview_of_every_scheme_changes_nothing_and_overpayment_prepays(loans: Loans) -> None:
    await loans.publish(loan_disbursed("LN-PRE", method="flat", principal="600000000.00", tenor_months=36))
    await loans.settle()
    # An overpayment on the first due date prepays principal: later installments fall, the tenor stays.
    await loans.publish(repayment_received("LN-PRE", "120000000.00", paid_on="2019-07-15"))
    await loans.settle()
    loan = (await loans.http.get("/loans/LN-PRE", params={"as_of": "2019-07-16"})).json()
    assert len(loan["schedule"]) == 36
    assert loan["schedule"][0]["status"] == "paid"
    first_amount = 600_000_000 / 36 + 3_000_000
    assert float(loan["schedule"][1]["amount"]) < first_amount
    assert loan["outstanding_principal"] == f"{600_000_000 - 120_000_000 + 3_000_000:.2f}"
    params = {
        "reschedule_from": "2020-05-15",
        "requested_on": "2020-04-20",
        "grace_months": 3,
        "grace_on": "principal_and_interest",
        "extra_months": 6,
        "new_annual_rate": "0.04",
        "capitalise_arrears": "true",
        "principal_arrears_reduction": "1000000",
        "interest_arrears_reduction": "100000",
    }
    preview = await loans.http.get("/loans/LN-PRE/restructurings/preview", params=params)
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["assessment"]["outcome"] == "approved"
    assert body["summary"]["installments"] == 3 + 26 + 6
    assert all(r["amount"] == "0.00" for r in body["schedule"][:3])
    assert (await loans.http.get("/loans/LN-PRE", params={"as_of": "2019-07-16"})).json() == loan
    assert (await loans.http.get("/restructurings")).json()["items"] == []


async def test_a_request_for_an_unknown_loan_is_404_over_http_and_retried_from_the_stream(
    loans: Loans,
) -> None:
    # Over HTTP the handler knows the request came with a command: the answer is final, and nothing stays.
    body = restructuring_requested("LN-LATE", request_id="RR-LATE-HTTP")["data"]
    response = await loans.http.post("/restructurings", json=body)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "loan 'LN-LATE' not found", "errors": []}
    assert (await loans.http.get("/restructurings/RR-LATE-HTTP")).status_code == 404
    assert await loans.events("restructuring.requested.v1") == []

    # From the stream the disbursement may still be on its way: retried, then decided once it arrives.
    request = restructuring_requested("LN-LATE", request_id="RR-LATE")
    ack = await loans.nc.jetstream().publish(
        request["type"], to_bytes(request), headers={"Nats-Msg-Id": request["id"]}
    )

    async def tried() -> bool:
        info = await loans.nc.jetstream().consumer_info("KUMKM_LOANS", "loans")
        return info.delivered is not None and (info.delivered.stream_seq or 0) >= ack.seq

    await wait_for(tried, timeout=10)
    await loans.publish(loan_disbursed("LN-LATE"))
    await loans.settle()

    async def approved() -> bool:
        return bool(await loans.events("restructuring.approved.v1"))

    await wait_for(approved, timeout=15)
    [event] = await loans.events("restructuring.approved.v1")
    assert event["data"]["request_id"] == "RR-LATE"
    assert event["causationid"] == request["id"]
    assert await loans.dead_letters() == []
