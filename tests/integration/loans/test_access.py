"""Who may decide and see what, signed in as the demo and test users through the real provider:
maker-checker above the second-approval threshold, and regions on lists, items, decisions and progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.integration

SURABAYA_COOPERATIVE = {
    "kind": "cooperative",
    "id": "3578010203040002",
    "name": "Koperasi Pasar Wonokromo",
    "region": {"province": "Jawa Timur", "city": "Kota Surabaya"},
}
APPROVE = {"decision": "approve", "reason": "Dampak COVID terverifikasi", "decided_on": "2020-05-04"}
REJECT = {"decision": "reject", "reason": "Dokumen tidak lengkap", "decided_on": "2020-05-04"}


async def referred(loans: Loans, loan_id: str, *, principal: str, **loan: Any) -> str:
    """A request the policy refers (a non-COVID reason), for a loan of ``principal``; its request id."""
    await loans.publish(loan_disbursed(loan_id, principal=principal, **loan))
    await loans.settle()
    request_id = f"RR-{loan_id}"
    body = restructuring_requested(loan_id, request_id=request_id, reason="other")["data"]
    created = await loans.http.post("/restructurings", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "referred"
    return request_id


async def decide(client: httpx.AsyncClient, request_id: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"/restructurings/{request_id}/decision", json=body)


async def test_two_different_people_approve_and_the_event_names_both(loans: Loans) -> None:
    request_id = await referred(loans, "LN-MC-1", principal="2500000000.00")
    made = await decide(loans.client("officer.bekasi"), request_id, APPROVE)
    assert made.status_code == 200, made.text
    assert made.json()["status"] == "awaiting_second_approval"
    shown = (await loans.client("supervisor.bekasi").get(f"/restructurings/{request_id}")).json()
    assert shown["status"] == "awaiting_second_approval"
    assert shown["first_approval"]["by"] == "officer.bekasi"
    assert shown["first_approval"]["reason"] == "Dampak COVID terverifikasi"
    assert shown["decided_by"] is None
    waiting = await loans.http.get("/restructurings", params={"status": "awaiting_second_approval"})
    assert [r["request_id"] for r in waiting.json()["items"]] == [request_id]
    # The loan is not rescheduled yet, and another request of the same loan is refused as open.
    assert (await loans.http.get("/loans/LN-MC-1")).json()["restructure_count"] == 0
    other = restructuring_requested("LN-MC-1", request_id="RR-MC-1-B")["data"]
    second = await loans.http.post("/restructurings", json=other)
    assert "open_request_exists" in second.json()["reason_codes"]

    checked = await decide(loans.client("supervisor.bekasi"), request_id, {**APPROVE, "reason": "Setuju"})
    assert checked.status_code == 200, checked.text
    body = checked.json()
    assert body["status"] == "approved"
    assert body["decided_by"] == "supervisor.bekasi"
    assert body["first_approval"]["by"] == "officer.bekasi"
    await loans.settle()
    [approved] = await loans.events("restructuring.approved.v1")
    assert approved["data"]["request_id"] == request_id
    assert approved["data"]["decided_by"] == "supervisor.bekasi"
    assert approved["data"]["first_approved_by"] == "officer.bekasi"
    assert approved["data"]["first_approved_at"]
    assert approved["data"]["note"] == "Setuju"
    assert (await loans.http.get("/loans/LN-MC-1")).json()["restructure_count"] == 1
    # The audit trail has both people's commands.
    audit = (await loans.http.get("/audit")).json()
    actors = {item["subject"] for item in audit["items"]}
    assert {"officer.bekasi", "supervisor.bekasi"} <= actors, audit


async def test_the_same_person_twice_is_refused_whatever_their_roles(loans: Loans) -> None:
    request_id = await referred(loans, "LN-MC-2", principal="2500000000.00")
    supervisor = loans.client("supervisor.bekasi")
    made = await decide(supervisor, request_id, APPROVE)
    assert made.json()["status"] == "awaiting_second_approval"
    for body in (APPROVE, REJECT):
        again = await decide(supervisor, request_id, body)
        assert again.status_code == 403
        assert again.json()["error"] == "maker_is_checker"
        assert again.json()["permission"] == "loans.restructuring.approve_second"
        assert "another person" in again.json()["message"]
    # it-all holds every role, and still cannot check its own approval.
    request_2 = await referred(loans, "LN-MC-2B", principal="2500000000.00")
    assert (await decide(loans.http, request_2, APPROVE)).json()["status"] == "awaiting_second_approval"
    own = await decide(loans.http, request_2, APPROVE)
    assert own.status_code == 403
    assert own.json()["error"] == "maker_is_checker"

    # A supervisor as maker, another supervisor as checker.
    checked = await decide(loans.client("supervisor.national"), request_id, APPROVE)
    assert checked.status_code == 200, checked.text
    await loans.settle()
    [approved] = await loans.events("restructuring.approved.v1")
    assert (approved["data"]["first_approved_by"], approved["data"]["decided_by"]) == (
        "supervisor.bekasi",
        "supervisor.national",
    )


async def test_an_officer_cannot_be_the_checker_and_a_supervisor_may_reject(loans: Loans) -> None:
    request_id = await referred(loans, "LN-MC-3", principal="2500000000.00")
    assert (await decide(loans.client("officer.bekasi"), request_id, APPROVE)).status_code == 200
    refused = await decide(loans.client("it-officer-2"), request_id, APPROVE)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert refused.json()["permission"] == "loans.restructuring.approve_second"
    assert "loans.restructuring.approve_second" in refused.json()["message"]
    still = (await loans.http.get(f"/restructurings/{request_id}")).json()
    assert still["status"] == "awaiting_second_approval"

    rejected = await decide(loans.client("it-supervisor-2"), request_id, REJECT)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    await loans.settle()
    [event] = await loans.events("restructuring.rejected.v1")
    assert (event["data"]["decided_by"], event["data"]["first_approved_by"]) == (
        "it-supervisor-2",
        "officer.bekasi",
    )


async def test_below_the_threshold_one_officer_approves_and_one_rejects(loans: Loans) -> None:
    small = await referred(loans, "LN-MC-4", principal="900000000.00")
    approved = await decide(loans.client("officer.bekasi"), small, APPROVE)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == "officer.bekasi"
    assert approved.json()["first_approval"] is None
    big = await referred(loans, "LN-MC-5", principal="2500000000.00")
    rejected = await decide(loans.client("it-officer-2"), big, REJECT)
    assert rejected.json()["status"] == "rejected"
    await loans.settle()
    [event] = await loans.events("restructuring.approved.v1")
    assert event["data"]["decided_by"] == "officer.bekasi"
    assert event["data"].get("first_approved_by") is None


async def test_people_see_and_decide_only_their_regions(loans: Loans) -> None:
    bekasi = await referred(loans, "LN-RG-BKS", principal="900000000.00")
    surabaya = await referred(loans, "LN-RG-SBY", principal="900000000.00", borrower=SURABAYA_COOPERATIVE)
    officer_bks, officer_sby = loans.client("officer.bekasi"), loans.client("officer.surabaya")

    # Lists are filtered by the region scope.
    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return sorted(r["request_id"] for r in response.json()["items"])

    assert ids(await officer_bks.get("/restructurings")) == [bekasi]
    assert ids(await officer_sby.get("/restructurings")) == [surabaya]
    assert ids(await loans.client("supervisor.national").get("/restructurings")) == sorted([bekasi, surabaya])
    assert ids(await officer_bks.get("/restructurings", params={"province": "Jawa Timur"})) == []

    # A single item, its loan and its preview outside the scope: 403 naming the region.
    for path in (
        f"/restructurings/{bekasi}",
        "/loans/LN-RG-BKS",
        "/loans/LN-RG-BKS/restructurings/preview?reschedule_from=2020-05-15&extra_months=6",
    ):
        outside = await officer_sby.get(path)
        assert outside.status_code == 403, (path, outside.text)
        assert outside.json()["error"] == "outside_region"
        assert "Jawa Barat/Kota Bekasi" in outside.json()["message"]
    assert (await officer_bks.get(f"/restructurings/{bekasi}")).status_code == 200

    # Decisions and new requests outside the scope are refused, and change nothing.
    refused = await decide(officer_sby, bekasi, APPROVE)
    assert refused.status_code == 403
    assert refused.json()["error"] == "outside_region"
    assert refused.json()["permission"] == "loans.restructuring.decide"
    assert (await loans.http.get(f"/restructurings/{bekasi}")).json()["status"] == "referred"
    asked = restructuring_requested("LN-RG-BKS", request_id="RR-RG-OUT")["data"]
    new = await officer_sby.post("/restructurings", json=asked)
    assert new.status_code == 403
    assert new.json()["error"] == "outside_region"
    assert (await loans.http.get("/restructurings/RR-RG-OUT")).status_code == 404
    # The same request id sent again by someone outside the region does not show the stored request.
    again = restructuring_requested("LN-RG-BKS", request_id=bekasi)["data"]
    assert (await officer_sby.post("/restructurings", json=again)).status_code == 403
    # Inside the region, the officer decides.
    assert (await decide(officer_bks, bekasi, APPROVE)).json()["status"] == "approved"


async def test_progress_only_for_a_region_inside_the_scope(loans: Loans) -> None:
    await referred(loans, "LN-PG-BKS", principal="900000000.00")
    await referred(loans, "LN-PG-SBY", principal="900000000.00", borrower=SURABAYA_COOPERATIVE)
    city = loans.client("city.bekasi")

    # A city's viewer asking for nothing gets their city.
    own = await city.get("/progress")
    assert own.status_code == 200, own.text
    assert own.json()["requests"]["referred"] == 1
    assert [r["city"] for r in own.json()["by_region"]] == ["Kota Bekasi"]
    asked = await city.get("/progress", params={"province": "Jawa Barat", "city": "Kota Bekasi"})
    assert asked.json()["requests"]["referred"] == 1
    for params in ({"province": "Jawa Barat"}, {"province": "Jawa Timur", "city": "Kota Surabaya"}):
        outside = await city.get("/progress", params=params)
        assert outside.status_code == 403, params
        assert outside.json()["error"] == "outside_region"
        assert outside.json()["permission"] == "loans.progress.read"

    # The ministry sees the country, and any region in it.
    ministry = loans.client("ministry")
    national = (await ministry.get("/progress")).json()
    assert national["requests"]["referred"] == 2
    east = (await ministry.get("/progress", params={"province": "Jawa Timur"})).json()
    assert east["requests"]["referred"] == 1
    # An officer of one city is a regional viewer too.
    assert (await loans.client("officer.surabaya").get("/progress")).json()["requests"]["referred"] == 1
