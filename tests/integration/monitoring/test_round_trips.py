"""A party's refresh in few round trips, with the same figures: the facts read in one statement are those of
the separate queries (the rule's reference reading), every party's stored contribution is the rule's, and the
counts are exactly the sum of the stored contributions. A registry event costs three statements."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_monitoring import repository as repo
from kumkm_monitoring.domain import (
    ActivityReport,
    LoanFacts,
    Months,
    PartyFacts,
    contribution,
    delta,
)
from kumkm_monitoring.handlers import MonitoringService
from kumkm_monitoring.settings import MonitoringSettings
from kumkm_shared.clock import FixedClock
from kumkm_shared.contracts.parties import ActivityReported, UmkmRegistered, UmkmUpdated
from tests.integration.monitoring.conftest import BEKASI, NOW, region
from tests.integration.monitoring.scenario import seeded
from tests.integration.monitoring.test_recovery import publish

if TYPE_CHECKING:
    from tests.integration.monitoring.conftest import Monitoring

pytestmark = pytest.mark.integration


async def reference_facts(conn: Any, party_id: str) -> PartyFacts:
    """The facts read one table at a time (as the service did before one statement read them all)."""
    party = await conn.fetchrow("SELECT first_as_of, closed_on FROM parties WHERE party_id = $1", party_id)
    loans = await conn.fetch("SELECT loan_id, disbursed_on FROM loans WHERE borrower_id = $1", party_id)
    ids = [r["loan_id"] for r in loans]
    grades: dict[str, list[tuple[date, int]]] = defaultdict(list)
    paid: dict[str, list[date]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT loan_id, as_of, grade FROM grades WHERE loan_id = ANY($1::text[]) "
        "ORDER BY as_of, recorded_at",
        ids,
    ):
        grades[r["loan_id"]].append((r["as_of"], r["grade"]))
    for r in await conn.fetch(
        "SELECT loan_id, paid_on FROM repayments WHERE loan_id = ANY($1::text[]) AND NOT pending", ids
    ):
        paid[r["loan_id"]].append(r["paid_on"])
    sales = await conn.fetch("SELECT delivered_on, paid_on FROM orders WHERE seller_nib = $1", party_id)
    reports = await conn.fetch("SELECT as_of, operating FROM activity WHERE party_id = $1", party_id)
    return PartyFacts(
        first_as_of=party["first_as_of"],
        closed_on=party["closed_on"],
        loans=[
            LoanFacts(r["disbursed_on"], sorted(dict(grades[r["loan_id"]]).items()), paid[r["loan_id"]])
            for r in loans
        ],
        sales=[d for r in sales for d in (r["delivered_on"], r["paid_on"]) if d is not None],
        activity=[ActivityReport(r["as_of"], r["operating"]) for r in reports],
    )


def _canonical(facts: PartyFacts) -> Any:
    """Facts compared as sets where the rule reads them as sets (the order of rows is not specified)."""
    return (
        facts.first_as_of,
        facts.closed_on,
        sorted((lf.disbursed_on, tuple(lf.grades), tuple(sorted(lf.repayments))) for lf in facts.loans),
        sorted(facts.sales),
        sorted((r.as_of, r.operating) for r in facts.activity),
    )


async def test_the_facts_of_one_statement_and_the_counts_are_the_rules(monitoring: Monitoring) -> None:
    scenario = seeded()
    # More than the scenario: a loan graded twice on one day (the last recorded stands), signals of a party
    # before its registration, an order only delivered.
    u5 = "3275010000005"
    scenario.umkm(u5, "Toko Belakangan", region(BEKASI, "Bekasi Timur"), "2021-01-05")
    registration = scenario.events.pop()  # published after the party's signals
    scenario.loan("LN-U5", u5, disbursed_on="2020-06-01")
    scenario.repayment("LN-U5", "2021-02-03", borrower=u5)
    scenario.grade("LN-U5", "2021-02-20", 1, 3)
    scenario.grade("LN-U5", "2021-02-20", 3, 2)
    scenario.order("ORD-U5", u5, "1000000.00", delivered_on="2021-04-09", paid_on=None)
    scenario.events.append(registration)
    await publish(monitoring, scenario)
    rules = MonitoringSettings().rules()
    async with monitoring.runtime.pool.acquire() as conn:
        ids = [r["party_id"] for r in await conn.fetch("SELECT party_id FROM parties ORDER BY party_id")]
        assert u5 in ids
        assert len(ids) == len(scenario.parties)
        total: dict[tuple[tuple[str, str, str, str], int], list[int]] = {}
        for party_id in ids:
            row = await repo.load_party_facts(conn, party_id)
            assert row is not None
            facts = repo.facts_of(row)
            assert _canonical(facts) == _canonical(await reference_facts(conn, party_id)), party_id
            key = (row["province"], row["city"], row["district"], row["kind"])
            expected = contribution(key, facts, rules)
            assert tuple(row["counted_key"]) == key
            assert Months.from_sql(row["population_text"]) == expected.population, party_id
            assert Months.from_sql(row["productive_text"]) == expected.productive, party_id
            for k, (dr, dp) in delta(None, expected).items():
                sums = total.setdefault(k, [0, 0])
                sums[0] += dr
                sums[1] += dp
        u5_loans = (await repo.load_party_facts(conn, u5) or {})["grade_values"]
        assert u5_loans == [3, 2]  # both changes of the day are read; the last one stands
        counts = {
            ((r["province"], r["city"], r["district"], r["kind"]), r["month"]): [
                r["d_registered"],
                r["d_productive"],
            ]
            for r in await conn.fetch("SELECT * FROM counts WHERE d_registered <> 0 OR d_productive <> 0")
        }
    assert counts == {k: v for k, v in total.items() if v != [0, 0]}


@dataclass
class _Counting:
    """A connection that counts the statements sent (each one a round trip)."""

    conn: Any
    sent: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.conn, name)
        if name not in {"execute", "executemany", "fetch", "fetchrow", "fetchval"}:
            return method

        async def counted(query: str, *args: Any) -> Any:
            self.sent.append(" ".join(query.split())[:60])
            return await method(query, *args)

        return counted


@dataclass
class _Event:
    data: Any

    def data_as(self, kind: type[Any]) -> Any:
        assert isinstance(self.data, kind)
        return self.data


@dataclass
class _Context:
    """What the registry handlers use of an ``EventContext``: its connection, event, mandate and lock."""

    conn: Any
    event: _Event

    async def require_mandate(self, party: str | None) -> None:
        assert party is not None

    async def lock(self, key: str) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


async def test_a_registry_event_costs_three_statements(monitoring: Monitoring) -> None:
    service = MonitoringService(MonitoringSettings(), clock=FixedClock(NOW))
    record = {
        "nib": "3275010000099",
        "name": "Usaha Baru",
        "scale": "micro",
        "kbli": "10792",
        "status": "active",
        "region": region(BEKASI, "Bekasi Timur"),
        "as_of": "2021-03-31",
    }
    march = 2021 * 12 + 2
    async with monitoring.runtime.pool.acquire() as raw:
        transaction = raw.transaction()
        await transaction.start()
        try:
            conn = _Counting(raw)
            registered = UmkmRegistered.model_validate(record)
            await service.on_umkm(_Context(conn, _Event(registered)))  # type: ignore[arg-type]
            assert len(conn.sent) == 3, json.dumps(conn.sent)  # lock, the party with its facts, counts + row
            row = await repo.load_party_facts(raw, "3275010000099")
            assert row is not None
            assert Months.from_sql(row["population_text"]) == Months.from_sql(f"{{[{march},)}}")
            assert row["productive_text"] == "{}"
            counted = await raw.fetchrow(
                "SELECT d_registered, d_productive FROM counts WHERE city = $1 AND district = 'Bekasi Timur' "
                "AND kind = 'umkm' AND month = $2",
                BEKASI,
                march,
            )
            assert counted is not None
            assert tuple(counted) == (1, 0)
            # A later record that moves no month (a new name): nothing to write after the read.
            conn.sent.clear()
            renamed = UmkmUpdated.model_validate({**record, "name": "Usaha Baru Sekali"})
            await service.on_umkm(_Context(conn, _Event(renamed)))  # type: ignore[arg-type]
            assert len(conn.sent) == 2, json.dumps(conn.sent)  # lock, the party with its facts
            row = await repo.load_party_facts(raw, "3275010000099")
            assert row is not None
            assert row["name"] == "Usaha Baru Sekali"
            again = await raw.fetchrow(
                "SELECT d_registered, d_productive FROM counts WHERE city = $1 AND district = 'Bekasi Timur' "
                "AND kind = 'umkm' AND month = $2",
                BEKASI,
                march,
            )
            assert again is not None
            assert tuple(again) == (1, 0)
            await _activity_reports(service, conn, march)
        finally:
            await transaction.rollback()  # nothing of this test stays


async def _activity_reports(service: MonitoringService, conn: _Counting, march: int) -> None:
    """Reports of the party registered in March (on the test's transaction), and of one not registered."""
    raw = conn.conn
    # An activity report: lock, the report with the party's facts, counts + row; it counts at once.
    conn.sent.clear()
    report = {"party_kind": "umkm", "party_id": "3275010000099", "revenue_band": "up_to_300m"}
    operating = ActivityReported.model_validate({**report, "operating": True, "as_of": "2021-04-02"})
    await service.on_activity(_Context(conn, _Event(operating)))  # type: ignore[arg-type]
    assert len(conn.sent) == 3, json.dumps(conn.sent)
    row = await repo.load_party_facts(raw, "3275010000099")
    assert row is not None
    assert Months.from_sql(row["productive_text"]) == Months.from_sql(f"{{[{march + 1},)}}")
    # The same day's report again, not operating: it replaces the first (the last of a day stands).
    closed = ActivityReported.model_validate({**report, "operating": False, "as_of": "2021-04-02"})
    await service.on_activity(_Context(conn, _Event(closed)))  # type: ignore[arg-type]
    row = await repo.load_party_facts(raw, "3275010000099")
    assert row is not None
    assert (row["report_as_of"], row["report_operating"]) == ([date(2021, 4, 2)], [False])
    assert row["productive_text"] == "{}"
    assert await raw.fetchval(
        "SELECT sum(d_productive) FROM counts WHERE city = $1 AND district = 'Bekasi Timur' "
        "AND kind = 'umkm' AND month = $2",
        BEKASI,
        march + 1,
    ) == await raw.fetchval(
        "SELECT count(*) FILTER (WHERE productive @> $1::int) "
        "- count(*) FILTER (WHERE productive @> $2::int) "
        "FROM parties WHERE city = $3 AND district = 'Bekasi Timur' AND kind = 'umkm'",
        march + 1,
        march,
        BEKASI,
    )
    # A report of a party the registry has not told of: kept, nothing counted yet.
    conn.sent.clear()
    unknown = ActivityReported.model_validate(
        {**report, "party_id": "3275010000098", "operating": True, "as_of": "2021-04-02"}
    )
    await service.on_activity(_Context(conn, _Event(unknown)))  # type: ignore[arg-type]
    assert len(conn.sent) == 2, json.dumps(conn.sent)  # lock, the report (no party to recount)
    assert await raw.fetchval("SELECT count(*) FROM activity WHERE party_id = '3275010000098'") == 1
