"""The seeded scenario: Kota Bekasi parties in two kecamatan and one Surabaya party, with every signal."""

from __future__ import annotations

from tests.integration.monitoring.conftest import JATIM, SURABAYA, Scenario, region
from tests.support.events import contract_event

C1, C2, C3, C4 = "3275100000000001", "3275100000000002", "3275100000000003", "3275100000000004"
U1, U2, U3, U4 = "3275010000001", "3275010000002", "3275010000003", "3275010000004"
S1 = "3578010000001"
JATISAMPURNA = region(district="Jatisampurna")
BEKASI_TIMUR = region(district="Bekasi Timur")


def seeded() -> Scenario:
    s = Scenario()
    s.cooperative(C1, "Koperasi Pedagang Pasar Kranggan", JATISAMPURNA, "2020-01-15")
    s.cooperative(C2, "Koperasi Serba Usaha Jati", JATISAMPURNA, "2020-01-15")
    s.cooperative(C3, "Koperasi Simpan Pinjam Lama", JATISAMPURNA, "2020-01-15")
    s.cooperative(C4, "Koperasi Konsumen Sepi", JATISAMPURNA, "2020-01-15")
    s.umkm(U1, "Kue Basah Bu Sari", BEKASI_TIMUR, "2020-02-01")
    s.umkm(U2, "Bengkel Pak Darto", BEKASI_TIMUR, "2020-02-01")
    s.umkm(U3, "Warung Baru", BEKASI_TIMUR, "2021-04-20")
    s.umkm(U4, "PT Besar Sekali", BEKASI_TIMUR, "2020-02-01", scale="large")
    s.umkm(S1, "Sambal Bu Tini", region(SURABAYA, "Genteng", JATIM), "2020-03-01")
    # C1: a loan repaid in January, downgraded to 3 on 1 March: productive January and February only.
    s.loan("LN-C1", C1)
    s.repayment("LN-C1", "2021-01-10")
    s.grade("LN-C1", "2021-03-01", 2, 3)
    # C2: a repayment that comes before its loan's disbursement (parked, then counted).
    s.repayment("LN-C2", "2021-05-05", borrower=C2)
    s.loan("LN-C2", C2)
    # C2 also reports operating from mid-February, and not operating from May.
    s.activity(C2, "2021-02-15", operating=True)
    s.activity(C2, "2021-05-01", operating=False)
    # C3 is dissolved in February: in the population until February.
    s.activity(C3, "2020-12-01", operating=True)
    s.cooperative(C3, "Koperasi Simpan Pinjam Lama", JATISAMPURNA, "2021-02-10", status="dissolved")
    # U1 sells to the city: delivered 5 March, paid 25 March.
    s.order("ORD-U1", U1, "7400000.00", delivered_on="2021-03-05", paid_on="2021-03-25")
    # U4 is large: its sale is a signal, but not UMKM procurement.
    s.order("ORD-U4", U4, "2600000.00", delivered_on=None, paid_on="2021-04-02")
    s.umkm(U2, "Bengkel Pak Darto", BEKASI_TIMUR, "2021-03-31")  # an update of the same record
    s.activity(U2, "2021-03-31", operating=True)
    s.activity(S1, "2021-01-01", operating=True)
    # Restructuring: C1's request approved after 5 days; C2's referred, then rejected after 6 days; C4's
    # loan has one pending.
    s.loan("LN-C4", C4)
    requested = "kumkm.loans.restructuring.requested.v1"
    s.events.append(contract_event(requested, request_id="RR-1", loan_id="LN-C1", requested_on="2021-01-20"))
    s.events.append(
        contract_event(
            "kumkm.loans.restructuring.approved.v1",
            request_id="RR-1",
            loan_id="LN-C1",
            borrower=s.borrower(C1),
            decided_at="2021-01-25T03:00:00Z",
        )
    )
    s.events.append(contract_event(requested, request_id="RR-2", loan_id="LN-C2", requested_on="2021-01-30"))
    s.events.append(
        contract_event(
            "kumkm.loans.restructuring.referred.v1",
            request_id="RR-2",
            loan_id="LN-C2",
            borrower=s.borrower(C2),
        )
    )
    s.events.append(
        contract_event(
            "kumkm.loans.restructuring.rejected.v1",
            request_id="RR-2",
            loan_id="LN-C2",
            borrower=s.borrower(C2),
            decided_at="2021-02-05T03:00:00Z",
        )
    )
    s.events.append(contract_event(requested, request_id="RR-3", loan_id="LN-C4", requested_on="2021-02-01"))
    return s
