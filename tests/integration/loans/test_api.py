"""The API's errors (an unknown loan over HTTP, and from the stream) and the preview changing nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kumkm_shared.integrators import IntegratorRole, sender_subject
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import TEST_SENDERS, grant_mandate
from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed, repayment_received, to_bytes

if TYPE_CHECKING:
    import httpx

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
    cooperative = TEST_SENDERS[IntegratorRole.COOPERATIVE]
    await grant_mandate(loans.nc, cooperative, IntegratorRole.COOPERATIVE)
    ack = await loans.nc.jetstream().publish(
        sender_subject(request["type"], cooperative),
        to_bytes(request),
        headers={"Nats-Msg-Id": request["id"]},
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


def _names(response: httpx.Response, field: str) -> None:
    """A 422 in the project's error shape, naming ``field``."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    assert field in [e["field"] for e in body["errors"]], body


async def test_input_no_store_can_hold_is_a_422_naming_the_field(loans: Loans) -> None:
    # Each of these once reached Postgres or the schedule arithmetic and answered 500: a NUL character in
    # an id, a filter or free text, an offset past bigint, a preview extension of a million months.
    await loans.publish(loan_disbursed("LN-BAD-INPUT"))
    await loans.settle()
    http = loans.http
    _names(await http.get("/loans/LN%00BAD"), "loan_id")
    _names(await http.get("/restructurings/RR%00BAD"), "request_id")
    decision = {"decision": "approve", "reason": "ok"}
    _names(await http.post("/restructurings/RR%00BAD/decision", json=decision), "request_id")
    _names(await http.get("/restructurings", params={"province": "Jawa\x00Barat"}), "province")
    _names(await http.get("/restructurings", params={"loan_id": "LN\x00"}), "loan_id")
    _names(await http.get("/restructurings", params={"offset": 2**64}), "offset")
    _names(await http.get("/progress", params={"city": "Kota\x00Bekasi"}), "city")
    preview = "/loans/LN-BAD-INPUT/restructurings/preview"
    for scheme in ("extra_months", "grace_months"):
        _names(await http.get(preview, params={"reschedule_from": "2020-05-15", scheme: 1_048_576}), scheme)
    body = restructuring_requested("LN-BAD-INPUT")["data"]
    body["impact"]["note"] = "sepi\x00"
    _names(await http.post("/restructurings", json=body), "impact.note")
    # A body that is not UTF-8 is invalid input like malformed JSON, not FastAPI's bare 400.
    headers = {"content-type": "application/json"}
    _names(await http.post("/tick", content=b'{"date": "\xff"}', headers=headers), "body")
    # The longest preview the bounds allow is still answered.
    longest = {"reschedule_from": "2020-05-15", "extra_months": 360, "grace_months": 360}
    assert (await http.get(preview, params=longest)).status_code == 200
