"""The monitoring service on real NATS JetStream and Postgres, and the events of a seeded scenario.

``Scenario`` publishes registry, loans and catalog events and keeps, beside them, its own plain record of
each party's facts, from which ``expected`` computes the figures independently of the service: day by day,
with none of the service's interval arithmetic.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest_asyncio

from kumkm_monitoring.app import build
from kumkm_monitoring.settings import MonitoringSettings
from kumkm_shared.clock import FixedClock
from kumkm_shared.testing.harness import ServiceHarness
from tests.support.events import contract_event, envelope

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

JABAR, BEKASI = "Jawa Barat", "Kota Bekasi"
JATIM, SURABAYA = "Jawa Timur", "Kota Surabaya"
NOW = datetime(2021, 6, 15, 3, 0, tzinfo=UTC)  # the service's clock: this month is 2021-06
WINDOW = 90


class Monitoring(ServiceHarness):
    async def get(self, path: str, user: str | None = None, **params: Any) -> Any:
        client = self.client(user) if user else self.http
        response = await client.get(path, params={k: v for k, v in params.items() if v is not None})
        assert response.status_code == 200, response.text
        return response.json()


def definition() -> Any:
    return build(settings=MonitoringSettings(), clock=FixedClock(NOW))


@pytest_asyncio.fixture
async def monitoring(nats_url: str, database_url: str) -> AsyncIterator[Monitoring]:
    async with Monitoring.start(definition(), nats_url, database_url, consumer_batch=16) as harness:
        yield harness


def region(city: str = BEKASI, district: str | None = None, province: str = JABAR) -> dict[str, Any]:
    out: dict[str, Any] = {"province": province, "city": city}
    if district:
        out["district"] = district
    return out


@dataclass
class Party:
    kind: str
    party_id: str
    name: str
    region: dict[str, Any]
    records: list[tuple[date, str]] = field(default_factory=list)  # (as_of, status)
    repayments: list[tuple[str, date]] = field(default_factory=list)  # (loan_id, paid_on)
    sales: list[date] = field(default_factory=list)
    reports: list[tuple[date, bool]] = field(default_factory=list)
    scale: str = "micro"


@dataclass
class Scenario:
    """Events to publish, and the test's own record of what they say."""

    events: list[dict[str, Any]] = field(default_factory=list)
    parties: dict[str, Party] = field(default_factory=dict)
    loans: dict[str, str] = field(default_factory=dict)  # loan -> borrower
    grades: dict[str, list[tuple[date, int]]] = field(default_factory=dict)
    disbursed: dict[str, date] = field(default_factory=dict)
    paid_orders: list[tuple[str, str, str]] = field(default_factory=list)  # (order, seller, amount)

    # -- registry ------------------------------------------------------------------------------------
    def cooperative(
        self, number: str, name: str, where: dict[str, Any], as_of: str, status: str = "active"
    ) -> None:
        party = self.parties.setdefault(number, Party("cooperative", number, name, where))
        party.records.append((date.fromisoformat(as_of), status))
        kind = "registered" if len(party.records) == 1 else "updated"
        self.events.append(
            envelope(
                f"kumkm.registry.cooperative.{kind}.v1",
                {
                    "cooperative_number": number,
                    "name": name,
                    "cooperative_type": "market_traders",
                    "status": status,
                    "member_count": 100,
                    "region": where,
                    "as_of": as_of,
                },
            )
        )

    def umkm(
        self,
        nib: str,
        name: str,
        where: dict[str, Any],
        as_of: str,
        scale: str = "micro",
        status: str = "active",
    ) -> None:
        party = self.parties.setdefault(nib, Party("umkm", nib, name, where, scale=scale))
        party.records.append((date.fromisoformat(as_of), status))
        kind = "registered" if len(party.records) == 1 else "updated"
        self.events.append(
            envelope(
                f"kumkm.registry.umkm.{kind}.v1",
                {
                    "nib": nib,
                    "name": name,
                    "scale": scale,
                    "kbli": "10792",
                    "status": status,
                    "region": where,
                    "as_of": as_of,
                },
            )
        )

    def activity(self, party_id: str, as_of: str, *, operating: bool) -> None:
        party = self.parties[party_id]
        party.reports.append((date.fromisoformat(as_of), operating))
        self.events.append(
            envelope(
                "kumkm.registry.activity.reported.v1",
                {
                    "party_kind": party.kind,
                    "party_id": party_id,
                    "operating": operating,
                    "revenue_band": "up_to_300m" if operating else "none",
                    "as_of": as_of,
                    "survey": "BEKASI-2021-Q1",
                },
            )
        )

    # -- loans ---------------------------------------------------------------------------------------
    def borrower(self, party_id: str) -> dict[str, Any]:
        party = self.parties[party_id]
        return {"kind": party.kind, "id": party_id, "name": party.name, "region": party.region}

    def loan(self, loan_id: str, party_id: str, disbursed_on: str = "2019-06-15") -> None:
        self.loans[loan_id] = party_id
        self.disbursed[loan_id] = date.fromisoformat(disbursed_on)
        first_due = date.fromisoformat(disbursed_on) + timedelta(days=30)
        self.events.append(
            contract_event(
                "kumkm.loans.loan.disbursed.v1",
                loan_id=loan_id,
                lender="LPDB-KUMKM",
                borrower=self.borrower(party_id),
                disbursed_on=disbursed_on,
                first_due_on=first_due.isoformat(),
            )
        )

    def repayment(self, loan_id: str, paid_on: str, *, borrower: str | None = None) -> None:
        self.parties[borrower or self.loans[loan_id]].repayments.append(
            (loan_id, date.fromisoformat(paid_on))
        )
        self.events.append(
            contract_event(
                "kumkm.loans.repayment.received.v1",
                payment_id=f"PAY-{uuid.uuid4().hex[:10]}",
                loan_id=loan_id,
                paid_on=paid_on,
            )
        )

    def grade(self, loan_id: str, as_of: str, previous: int, current: int) -> None:
        self.grades.setdefault(loan_id, []).append((date.fromisoformat(as_of), current))
        self.events.append(
            contract_event(
                "kumkm.loans.loan.collectibility_changed.v1",
                loan_id=loan_id,
                borrower=self.borrower(self.loans[loan_id]),
                previous=previous,
                current=current,
                days_past_due=100 if current == 3 else 0,
                as_of=as_of,
            )
        )

    # -- catalog -------------------------------------------------------------------------------------
    def order(
        self, order_id: str, seller: str, amount: str, *, delivered_on: str | None, paid_on: str | None
    ) -> None:
        party = self.parties.get(seller)
        seller_name = party.name if party else "Penjual Lain"
        where = party.region if party else region()
        buyer = {
            "id": "PEMKOT-BEKASI",
            "name": "Pemerintah Kota Bekasi",
            "kind": "local_government",
            "work_unit": "Dinas Koperasi",
            "commitment_official": "Siti Rahma",
            "region": region(),
        }
        self.events.append(
            contract_event(
                "kumkm.catalog.order.accepted.v1",
                order_id=order_id,
                buyer=buyer,
                seller={"nib": seller, "name": seller_name, "region": where},
                lines=[
                    {
                        "product_id": "PRD-0001",
                        "name": "Kue basah",
                        "qty": 1,
                        "unit_price": amount,
                        "line_total": amount,
                    }
                ],
                total=amount,
            )
        )
        refs = {"order_id": order_id, "buyer": {"id": "PEMKOT-BEKASI"}, "seller": {"nib": seller}}
        version = 3
        if delivered_on:
            if party:
                party.sales.append(date.fromisoformat(delivered_on))
            delivered = {**refs, "bast_number": f"BAST-{order_id}", "delivered_on": delivered_on}
            self.events.append(_status(order_id, refs, "delivered", "shipped", version, delivered))
            version += 1
        if paid_on:
            if party:
                party.sales.append(date.fromisoformat(paid_on))
            self.paid_orders.append((order_id, seller, amount))
            paid = {**refs, "amount": amount, "paid_on": paid_on, "payment_reference": f"SP2D-{order_id}"}
            self.events.append(_status(order_id, refs, "paid", "delivered", version, paid))

    # -- the test's own figures ----------------------------------------------------------------------
    def in_population(self, party: Party, year: int, month: int) -> bool:
        first = min(d for d, _ in party.records)
        start = date(year, month, 1)
        end = date(year, month, calendar.monthrange(year, month)[1])
        latest = max(party.records, key=lambda r: r[0])
        closed_before = latest[1] in {"dissolved", "closed"} and latest[0] < start
        return first <= end and not closed_before

    def performing(self, loan_id: str, day: date) -> bool:
        grade = 1
        for as_of, g in sorted(self.grades.get(loan_id, [])):
            if as_of <= day:
                grade = g
        return grade <= 2

    def productive_on(self, party: Party, day: date) -> bool:
        for loan_id, paid in party.repayments:
            if paid <= day < paid + timedelta(days=WINDOW) and self.performing(loan_id, day):
                return True
        if any(d <= day < d + timedelta(days=WINDOW) for d in party.sales):
            return True
        reports = [r for r in sorted(party.reports) if r[0] <= day]
        return bool(reports) and reports[-1][1]

    def productive(self, party: Party, year: int, month: int) -> bool:
        if not self.in_population(party, year, month):
            return False
        days = calendar.monthrange(year, month)[1]
        return any(self.productive_on(party, date(year, month, d)) for d in range(1, days + 1))

    def expected(self, year: int, month: int, **where: str) -> dict[tuple[str, str], tuple[int, int]]:
        """(district, kind) -> (registered, productive), for parties whose region matches ``where``."""
        out: dict[tuple[str, str], list[int]] = {}
        for party in self.parties.values():
            if any(party.region.get(k) != v for k, v in where.items()):
                continue
            if not self.in_population(party, year, month):
                continue
            cell = out.setdefault((party.region.get("district", ""), party.kind), [0, 0])
            cell[0] += 1
            cell[1] += self.productive(party, year, month)
        return {k: (v[0], v[1]) for k, v in out.items()}


def _status(
    order_id: str, refs: dict[str, Any], status: str, previous: str, version: int, applied: dict[str, Any]
) -> dict[str, Any]:
    return contract_event(
        "kumkm.catalog.order.status_changed.v1",
        **refs,
        status=status,
        previous_status=previous,
        version=version,
        applied_event_id=str(uuid.uuid4()),
        applied=applied,
        changed_at="2021-03-25T03:00:00Z",
    )
