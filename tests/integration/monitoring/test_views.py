"""The monitor's other views on the seeded scenario: the outreach list and its CSV, restructuring progress,
the UMKM share of procurement and a party's page; each scoped by the caller's region."""

from __future__ import annotations

import csv
import io

import pytest

from tests.integration.monitoring.conftest import BEKASI, JABAR, JATIM, SURABAYA, Monitoring
from tests.integration.monitoring.scenario import C1, C4, S1, seeded
from tests.integration.monitoring.test_recovery import publish

pytestmark = pytest.mark.integration

VIEWER, OTHER_VIEWER = "it-viewer-bekasi", "it-viewer-sby"


async def test_outreach_lists_the_parties_not_yet_productive_with_what_they_lack(
    monitoring: Monitoring,
) -> None:
    scenario = seeded()
    await publish(monitoring, scenario)
    expected = sorted(
        p.party_id
        for p in scenario.parties.values()
        if p.region["city"] == BEKASI
        and scenario.in_population(p, 2021, 3)
        and not scenario.productive(p, 2021, 3)
    )
    assert len(expected) >= 3
    page = await monitoring.get("/outreach", VIEWER, month="2021-03")
    assert [i["party_id"] for i in page["items"]] == expected
    assert page["next"] is None
    item = next(i for i in page["items"] if i["party_id"] == C1)
    assert item["kind"] == "cooperative"
    assert item["lacks"] == ["loan", "sale", "activity"]
    assert item["last_signal"] == {"loan": "2021-01-10", "sale": None, "activity": None}
    assert item["region"]["district"] == "Jatisampurna"
    # Paging: one at a time, following `next`.
    seen, after = [], None
    while True:
        page = await monitoring.get("/outreach", VIEWER, month="2021-03", limit=1, after=after)
        seen += [i["party_id"] for i in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == expected
    # Filters: a kecamatan, a kind.
    coops = await monitoring.get("/outreach", VIEWER, month="2021-03", kind="cooperative")
    assert [i["party_id"] for i in coops["items"]] == [p for p in expected if len(p) == 16]
    district = await monitoring.get(
        "/outreach", VIEWER, month="2021-03", province=JABAR, city=BEKASI, district="Jatisampurna"
    )
    assert {i["party_id"] for i in district["items"]} == {C1, C4}
    # The CSV: the same list, with its header.
    response = await monitoring.client(VIEWER).get("/outreach.csv", params={"month": "2021-03"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["party_id"] for r in rows] == expected
    assert list(rows[0]) == [
        "kind",
        "party_id",
        "name",
        "province",
        "city",
        "district",
        "lacks",
        "last_repayment",
        "last_sale",
        "last_activity_as_of",
        "last_activity_operating",
    ]
    c1 = next(r for r in rows if r["party_id"] == C1)
    assert (c1["lacks"], c1["last_repayment"], c1["district"]) == (
        "loan;sale;activity",
        "2021-01-10",
        "Jatisampurna",
    )


async def test_restructuring_and_procurement_from_the_events(monitoring: Monitoring) -> None:
    await publish(monitoring, seeded())
    progress = await monitoring.get("/restructuring", VIEWER)
    assert progress == {
        "province": JABAR,
        "city": BEKASI,
        "requested": 3,
        "referred": 1,
        "approved": 1,
        "rejected": 1,
        "pending": 1,
        "median_days_to_decision": 5.5,  # 5 days (RR-1) and 6 days (RR-2)
        "principal_restructured": "1500000000.00",  # the approved schedule's outstanding principal
        "restructured_loans": 1,
        "performing_loans": 0,  # LN-C1 fell to grade 3 on 1 March
        "performing_share": "0.0000",
    }
    procurement = await monitoring.get("/procurement", VIEWER)
    assert procurement == {
        "province": JABAR,
        "city": BEKASI,
        "total_paid": "10000000.00",
        "umkm_paid": "7400000.00",  # U4 is large: not UMKM
        "umkm_share": "0.7400",
        "target_share": "0.4000",
    }
    national = await monitoring.get("/procurement", province=JABAR, city=BEKASI)  # it-all, national
    assert national["umkm_share"] == "0.7400"


async def test_a_party_page(monitoring: Monitoring) -> None:
    await publish(monitoring, seeded())
    party = await monitoring.get(f"/parties/{C1}", VIEWER)
    assert party["kind"] == "cooperative"
    assert party["productive"] == [{"from": "2021-01", "until": "2021-02"}]
    assert party["population"] == [{"from": "2020-01", "until": None}]
    assert party["signals"]["loans"][0]["collectibility"] == 3
    response = await monitoring.client(VIEWER).get("/parties/3275109999999999")
    assert response.status_code == 404, response.text
    response = await monitoring.client(VIEWER).get("/parties/not-a-number")
    assert response.status_code == 422, response.text


async def test_each_viewer_sees_only_their_region(monitoring: Monitoring) -> None:
    await publish(monitoring, seeded())
    other = monitoring.client(OTHER_VIEWER)
    for path in (
        "/recovery",
        "/recovery/trend",
        "/outreach",
        "/outreach.csv",
        "/restructuring",
        "/procurement",
    ):
        response = await other.get(path, params={"province": JABAR, "city": BEKASI})
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"] == "outside_region", path
    response = await other.get(f"/parties/{C1}")
    assert response.status_code == 403, response.text
    # Asking for nothing, the Surabaya viewer gets Surabaya: nothing of Kota Bekasi.
    mine = await monitoring.get("/recovery", OTHER_VIEWER, month="2021-03")
    assert {(r["province"], r["city"]) for r in mine["rows"]} == {(JATIM, SURABAYA)}
    outreach = await monitoring.get("/outreach", OTHER_VIEWER, month="2021-03")
    assert all(i["region"]["city"] == SURABAYA for i in outreach["items"])
    assert (await monitoring.get(f"/parties/{S1}", OTHER_VIEWER))["party_id"] == S1
    # The Bekasi viewer sees Bekasi and not Surabaya; the national user sees both provinces.
    bekasi = await monitoring.get("/recovery", VIEWER, month="2021-03", level="city")
    assert {(r["province"], r["city"]) for r in bekasi["rows"]} == {(JABAR, BEKASI)}
    response = await monitoring.client(VIEWER).get("/recovery", params={"province": JATIM})
    assert response.status_code == 403, response.text
    national = await monitoring.get("/recovery", month="2021-03")
    assert {r["province"] for r in national["rows"]} == {JABAR, JATIM}
    # No role, no figures.
    response = await monitoring.client("it-nobody").get("/recovery")
    assert response.status_code == 403, response.text
