"""The Kranggan flow, end to end on real NATS JetStream and Postgres: the cooperative of Pasar Kranggan,
its loan, its arrears and its restructuring."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed, repayment_received

pytestmark = pytest.mark.integration

INSTALLMENT = "48332004.00"  # PMT(0.5%, 60, Rp2.5 bn), rounded to whole rupiah
DUE_DATES = [
    f"{y}-{m:02d}-15"
    for y, m in [(2019, 7), (2019, 8), (2019, 9), (2019, 10), (2019, 11), (2019, 12), (2020, 1)]
]


PRINCIPAL = Decimal(2_500_000_000)
MONTHLY_RATE = Decimal("0.005")  # 6% a year


def annuity(principal: Decimal, annual_rate: Fraction, months: int) -> Decimal:
    i = annual_rate / 12
    exact = Fraction(principal) * i * (1 + i) ** months / ((1 + i) ** months - 1)
    return (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(Decimal(1), ROUND_HALF_UP)


def whole(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal(1), ROUND_HALF_UP)


def amortising(balance: Decimal, payment: Decimal, months: int) -> list[tuple[Decimal, Decimal, Decimal]]:
    """(principal, interest, balance after) of each month of an annuity paying ``payment``: interest is the
    balance times 0.5%, rounded to whole rupiah; principal is the rest; the last month repays what is left."""
    rows = []
    for month in range(months):
        interest = whole(balance * MONTHLY_RATE)
        principal = balance if month == months - 1 else payment - interest
        balance -= principal
        rows.append((principal, interest, balance))
    return rows


async def test_kranggan_loan_is_restructured_and_progress_reflects_it(loans: Loans) -> None:  # noqa: PLR0915
    # 1. LPDB-KUMKM disburses Rp2.5 bn over 60 months at 6% annuity to the Kranggan market cooperative.
    #    The first repayment arrives before the disbursement: it is parked, not lost.
    disbursed = loan_disbursed("LN-KRANGGAN-001")
    early = repayment_received("LN-KRANGGAN-001", INSTALLMENT, paid_on=DUE_DATES[0], payment_id="PAY-001")
    await loans.publish(early)
    await loans.settle()
    await loans.publish(disbursed)
    # 2. Repayments come in on time for seven months, then stop.
    for n, due in enumerate(DUE_DATES[1:], start=2):
        await loans.publish(
            repayment_received("LN-KRANGGAN-001", INSTALLMENT, paid_on=due, payment_id=f"PAY-{n:03d}")
        )
    await loans.settle()
    loan = (await loans.http.get("/loans/LN-KRANGGAN-001", params={"as_of": "2020-02-01"})).json()
    assert [i["status"] for i in loan["schedule"][:8]] == ["paid"] * 7 + ["scheduled"]
    assert loan["arrears"]["total"] == "0.00"
    assert loan["collectibility"]["grade"] == 1

    # 3. Ticks cross the due dates; the grade moves to 2 (DPK), each event once even when ticked twice.
    first = await loans.tick("2020-02-29")
    assert (first["overdue_announced"], first["grade_changes"]) == (1, 1)
    again = await loans.tick("2020-02-29")
    assert (again["overdue_announced"], again["grade_changes"]) == (0, 0)
    later = await loans.tick("2020-04-16")
    assert (later["overdue_announced"], later["grade_changes"]) == (2, 0)
    overdue = await loans.events("installment.overdue.v1")
    assert [e["data"]["installment_no"] for e in overdue] == [8, 9, 10]
    assert overdue[0]["data"]["days_past_due"] == 14
    assert overdue[0]["data"]["collectibility"] == 2
    changed = await loans.events("collectibility_changed.v1")
    assert [(e["data"]["previous"], e["data"]["current"], e["data"]["cause"]) for e in changed] == [
        (1, 2, "days_past_due")
    ]
    before = (await loans.http.get("/loans/LN-KRANGGAN-001", params={"as_of": "2020-04-20"})).json()
    assert before["collectibility"]["grade"] == 2
    assert before["arrears"]["installments"] == 3
    # The original schedule, by hand: installments 1-7 paid, 8-10 (Feb-Apr 2020) in arrears, 11-60 ahead.
    assert annuity(PRINCIPAL, Fraction(6, 100), 60) == Decimal(INSTALLMENT)
    original = amortising(PRINCIPAL, Decimal(INSTALLMENT), 60)
    outstanding = original[6][2]  # the balance after the seventh installment
    interest_arrears = sum((interest for _, interest, _ in original[7:10]), Decimal(0))
    assert Decimal(before["outstanding_principal"]) == outstanding
    assert Decimal(before["arrears"]["interest"]) == interest_arrears

    # The preview shows the new schedule and changes nothing.
    preview = await loans.http.get(
        "/loans/LN-KRANGGAN-001/restructurings/preview",
        params={
            "reschedule_from": "2020-05-15",
            "grace_months": 6,
            "extra_months": 12,
            "requested_on": "2020-04-20",
        },
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["assessment"]["outcome"] == "approved"
    assert (await loans.http.get("/loans/LN-KRANGGAN-001", params={"as_of": "2020-04-20"})).json() == before

    # 4. A COVID-19 request: 6 months' grace on principal and a 12-month extension.
    request = restructuring_requested("LN-KRANGGAN-001", request_id="RR-KRANGGAN-1")
    await loans.publish(request)
    await loans.settle()

    # 5. Approved automatically, with the right new schedule.
    approved = await loans.events("restructuring.approved.v1")
    assert len(approved) == 1
    data = approved[0]["data"]
    assert approved[0]["causationid"] == request["id"]
    assert data["decided_by"] == "policy"
    summary = data["summary"]
    # The new schedule, by hand: from 15 May 2020, 6 interest-only months on the outstanding principal,
    # then the 50 remaining months plus 12 as an annuity; the arrears' interest is owed with the first.
    regular = annuity(outstanding, Fraction(6, 100), 50 + 12)
    grace_interest = whole(outstanding * MONTHLY_RATE)
    rescheduled = [(Decimal(0), grace_interest, outstanding)] * 6 + amortising(outstanding, regular, 62)
    # Before: the interest still to pay on every installment the new schedule replaces (8 to 60, none of
    # them paid). After: the interest of the new schedule, the carried arrears' interest included.
    interest_before = sum((interest for _, interest, _ in original[7:]), Decimal(0))
    interest_after = sum((interest for _, interest, _ in rescheduled), Decimal(0)) + interest_arrears
    assert summary == {
        "installments": 68,
        "regular_installment": f"{regular:.2f}",
        "grace_months": 6,
        "annual_rate": "0.06",
        "first_due_on": "2020-05-15",
        "maturity_on": "2025-12-15",
        "outstanding_principal": f"{outstanding:.2f}",
        "total_interest_before": f"{interest_before:.2f}",
        "total_interest_after": f"{interest_after:.2f}",
    }
    assert preview.json()["summary"] == {**summary, "carried_interest_arrears": f"{interest_arrears:.2f}"}
    after = (await loans.http.get("/loans/LN-KRANGGAN-001", params={"as_of": "2020-05-01"})).json()
    schedule = after["schedule"]
    assert len(schedule) == 7 + 68
    new = schedule[7:]
    assert [(Decimal(r["principal"]), Decimal(r["interest"])) for r in new[1:]] == [
        (principal, interest) for principal, interest, _ in rescheduled[1:]
    ]
    assert Decimal(new[0]["interest"]) == grace_interest + interest_arrears  # arrears owed with the first
    assert all(Decimal(r["interest"]) == grace_interest and r["principal"] == "0.00" for r in new[1:6])
    assert all(Decimal(r["amount"]) == regular for r in new[6:-1])
    assert sum(Decimal(r["principal"]) for r in new) == outstanding
    assert new[-1]["balance"] == "0.00"
    assert after["collectibility"]["grade"] == 1
    assert after["arrears"]["total"] == "0.00"
    assert after["restructure_count"] == 1
    reset = (await loans.events("collectibility_changed.v1"))[-1]["data"]
    assert (reset["previous"], reset["current"], reset["cause"]) == (2, 1, "restructuring")

    # A tick after the restructuring finds nothing overdue: the loan is lancar again.
    calm = await loans.tick("2020-05-10")
    assert (calm["overdue_announced"], calm["grade_changes"]) == (0, 0)

    # 6. The progress read model reflects it.
    progress = (await loans.http.get("/progress", params={"city": "Kota Bekasi"})).json()
    assert progress["requests"] == {
        "approved": 1,
        "rejected": 0,
        "referred": 0,
        "awaiting_second_approval": 0,
        "total": 1,
    }
    assert progress["outstanding_principal_restructured"] == f"{outstanding:.2f}"
    assert progress["approval_rate"] == 1.0
    assert progress["median_days_to_decision"] == 0
    assert progress["performing_share"] == 1.0
    assert [(r["province"], r["city"]) for r in progress["by_region"]] == [("Jawa Barat", "Kota Bekasi")]
    [cooperative] = progress["by_cooperative"]
    assert cooperative["name"] == "Koperasi Pedagang Pasar Kranggan"
    assert cooperative["requests"]["approved"] == 1
    elsewhere = (await loans.http.get("/progress", params={"city": "Kota Bandung"})).json()
    assert elsewhere["requests"]["total"] == 0
    listed = (
        await loans.http.get("/restructurings", params={"status": "approved", "region": "kota bekasi"})
    ).json()
    assert [r["request_id"] for r in listed["items"]] == ["RR-KRANGGAN-1"]
    assert await loans.events("dlq") == []
