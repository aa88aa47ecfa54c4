"""SQL for the monitoring schema, and nowhere else. The read models are described in
``migrations/001_monitoring.sql``; ``READ_MODELS`` are the tables a rebuild empties."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from kumkm_monitoring.domain import ActivityReport, LoanFacts, Months, PartyFacts

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date
    from uuid import UUID

    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    from kumkm_monitoring.domain import Contribution
    from kumkm_monitoring.domain.productive import Delta
    from kumkm_shared.auth.scope import RegionScope

    Conn = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

READ_MODELS: Final = (
    "parties",
    "counts",
    "activity",
    "loans",
    "grades",
    "repayments",
    "orders",
    "restructurings",
)

CLOSED = ("dissolved", "closed")


def clean(name: str | None) -> str:
    """A region name as the monitor keys it: single spaces, trimmed (case kept; compared lower-cased)."""
    return " ".join((name or "").split())


# -- registry ----------------------------------------------------------------------------------------------


async def record_party(
    conn: Conn, kind: str, party_id: str, record: dict[str, Any], as_of: date
) -> asyncpg.Record:
    """Keep the party's latest record by ``as_of`` (a later or equal one replaces it; an older one only
    moves ``first_as_of`` back); the party as it now stands, with its facts (``facts_of``), in the same
    round trip.

    The caller holds the party's lock already (``ctx.lock`` in an earlier statement): the facts are read
    in this statement's snapshot, so it must be taken after every transaction that held the lock has
    committed. The counted contribution comes from the row the upsert wrote, which ON CONFLICT takes from
    the latest committed version in any case."""
    region = record["region"]
    status = record["status"]
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        WITH p AS (
        INSERT INTO parties AS p (kind, party_id, name, province, city, district, region, status, scale, kbli,
                             cooperative_type, member_count, first_as_of, as_of, closed_on)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::text, $9, $10, $11, $12, $13::date, $13::date,
                CASE WHEN $8::text = ANY($14::text[]) THEN $13::date END)
        ON CONFLICT (party_id) DO UPDATE SET
            first_as_of = LEAST(p.first_as_of, EXCLUDED.first_as_of),
            kind = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.kind ELSE p.kind END,
            name = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.name ELSE p.name END,
            province = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.province ELSE p.province END,
            city = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.city ELSE p.city END,
            district = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.district ELSE p.district END,
            region = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.region ELSE p.region END,
            status = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.status ELSE p.status END,
            scale = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.scale ELSE p.scale END,
            kbli = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.kbli ELSE p.kbli END,
            cooperative_type = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.cooperative_type
                                    ELSE p.cooperative_type END,
            member_count = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.member_count
                                ELSE p.member_count END,
            closed_on = CASE WHEN EXCLUDED.as_of >= p.as_of THEN EXCLUDED.closed_on ELSE p.closed_on END,
            as_of = GREATEST(p.as_of, EXCLUDED.as_of)
        RETURNING *
        )
        {_PARTY_WITH_FACTS}
        """,
        kind,
        party_id,
        record["name"],
        clean(region["province"]),
        clean(region["city"]),
        clean(region.get("district")),
        region,
        status,
        record.get("scale"),
        record.get("kbli"),
        record.get("cooperative_type"),
        record.get("member_count"),
        as_of,
        list(CLOSED),
    )
    assert row is not None  # noqa: S101 - an upsert with DO UPDATE always returns its row
    return row


async def load_party(conn: Conn, party_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT *, population::text AS population_text, productive::text AS productive_text "
        "FROM parties WHERE party_id = $1",
        party_id,
    )


async def record_activity(
    conn: Conn, party_id: str, as_of: date, *, operating: bool, revenue_band: str, survey: str | None
) -> asyncpg.Record | None:
    """Keep the report (the last recorded of a day stands); the party with its facts (``facts_of``), the
    report among them, in the same round trip; None when the registry has not told of the party yet.

    The caller holds the party's lock already (see ``record_party``). The statement's own snapshot does
    not see its insert, so its reports are the others of the party's and the one just written."""
    return await conn.fetchrow(
        f"""
        WITH reported AS (
            INSERT INTO activity AS a (party_id, as_of, operating, revenue_band, survey)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (party_id, as_of) DO UPDATE SET
                operating = EXCLUDED.operating, revenue_band = EXCLUDED.revenue_band, survey = EXCLUDED.survey
            RETURNING a.as_of, a.operating
        ), p AS (SELECT * FROM parties WHERE party_id = $1)
        {_party_with_facts(reports=REPORTS_WITH_NEW)}
        """,
        party_id,
        as_of,
        operating,
        revenue_band,
        survey,
    )


# -- the party's facts and its contribution ----------------------------------------------------------------


REPORTS: Final = "SELECT a.as_of, a.operating FROM activity a WHERE a.party_id = p.party_id"
# The party's reports when the statement writes one (``reported``): the others, and the one written.
REPORTS_WITH_NEW: Final = (
    "SELECT a.as_of, a.operating FROM activity a WHERE a.party_id = p.party_id"
    " AND a.as_of NOT IN (SELECT r.as_of FROM reported r)"
    " UNION ALL SELECT r.as_of, r.operating FROM reported r"
)


# The party ``p`` (the table, or the upsert's RETURNING) with everything the rule reads about it, in one
# statement: its loans, their grade changes and repayments, its sales and its activity reports, each as
# parallel arrays (NULL when there are none). One index lookup per table, as the separate queries did.
def _party_with_facts(reports: str = REPORTS) -> str:
    return f"""
SELECT p.*, p.population::text AS population_text, p.productive::text AS productive_text,
       lo.loan_ids, lo.loan_disbursed, gr.grade_loans, gr.grade_as_of, gr.grade_values,
       rp.paid_loans, rp.paid_on, sa.sale_days, ac.report_as_of, ac.report_operating
FROM p
CROSS JOIN LATERAL (
    SELECT array_agg(l.loan_id ORDER BY l.loan_id) AS loan_ids,
           array_agg(l.disbursed_on ORDER BY l.loan_id) AS loan_disbursed
    FROM loans l WHERE l.borrower_id = p.party_id
) lo
CROSS JOIN LATERAL (
    SELECT array_agg(g.loan_id ORDER BY g.as_of, g.recorded_at) AS grade_loans,
           array_agg(g.as_of ORDER BY g.as_of, g.recorded_at) AS grade_as_of,
           array_agg(g.grade::int ORDER BY g.as_of, g.recorded_at) AS grade_values
    FROM loans l JOIN grades g ON g.loan_id = l.loan_id WHERE l.borrower_id = p.party_id
) gr
CROSS JOIN LATERAL (
    SELECT array_agg(r.loan_id ORDER BY r.payment_id) AS paid_loans,
           array_agg(r.paid_on ORDER BY r.payment_id) AS paid_on
    FROM loans l JOIN repayments r ON r.loan_id = l.loan_id
    WHERE l.borrower_id = p.party_id AND NOT r.pending
) rp
CROSS JOIN LATERAL (
    SELECT array_agg(d ORDER BY o.order_id, n) FILTER (WHERE d IS NOT NULL) AS sale_days
    FROM orders o CROSS JOIN LATERAL unnest(ARRAY[o.delivered_on, o.paid_on]) WITH ORDINALITY AS s(d, n)
    WHERE o.seller_nib = p.party_id
) sa
CROSS JOIN LATERAL (
    SELECT array_agg(a.as_of ORDER BY a.as_of) AS report_as_of,
           array_agg(a.operating ORDER BY a.as_of) AS report_operating
    FROM ({reports}) a
) ac
"""


_PARTY_WITH_FACTS: Final = _party_with_facts()


async def load_party_facts(conn: Conn, party_id: str) -> asyncpg.Record | None:
    """The party (as ``load_party``) with its facts (``facts_of``), in one round trip; None if unknown."""
    return await conn.fetchrow(
        f"WITH p AS (SELECT * FROM parties WHERE party_id = $1) {_PARTY_WITH_FACTS}", party_id
    )


def facts_of(party: asyncpg.Record) -> PartyFacts:
    """Everything the rule reads about one party (``record_party``'s or ``load_party_facts``'s row): its
    registry dates, loans, sales and reports."""
    grades: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for loan_id, as_of, grade in zip(
        party["grade_loans"] or (), party["grade_as_of"] or (), party["grade_values"] or (), strict=True
    ):
        grades[loan_id].append((as_of, grade))
    paid: dict[str, list[date]] = defaultdict(list)
    for loan_id, paid_on in zip(party["paid_loans"] or (), party["paid_on"] or (), strict=True):
        paid[loan_id].append(paid_on)
    return PartyFacts(
        first_as_of=party["first_as_of"],
        closed_on=party["closed_on"],
        loans=[
            LoanFacts(disbursed_on, _last_of_day(grades[loan_id]), paid[loan_id])
            for loan_id, disbursed_on in zip(
                party["loan_ids"] or (), party["loan_disbursed"] or (), strict=True
            )
        ],
        sales=list(party["sale_days"] or ()),
        activity=[
            ActivityReport(as_of, operating)
            for as_of, operating in zip(
                party["report_as_of"] or (), party["report_operating"] or (), strict=True
            )
        ],
    )


def _last_of_day(changes: list[tuple[date, int]]) -> list[tuple[date, int]]:
    """One grade per day: the change recorded last on that day stands."""
    by_day: dict[date, int] = dict(changes)  # later entries of a day replace earlier ones
    return sorted(by_day.items())


async def save_contribution(
    conn: Conn, party: asyncpg.Record, changes: Delta, after: Contribution, facts: PartyFacts
) -> None:
    """Add the party's change to the counts and keep its new contribution on its row, in one statement.

    The counts rows are written in key order (two transactions never wait on each other in a cycle).
    Nothing is written when neither the counts nor the row would change (a record that moves no month)."""
    repayments = [d for loan in facts.loans for d in loan.repayments]
    last_report = max(facts.activity, key=lambda r: r.as_of, default=None)
    saved = (
        list(after.key),
        after.population,
        after.productive,
        max(repayments, default=None),
        max(facts.sales, default=None),
        last_report.as_of if last_report else None,
        last_report.operating if last_report else None,
    )
    stored = (
        None if party["counted_key"] is None else list(party["counted_key"]),
        Months.from_sql(party["population_text"]),
        Months.from_sql(party["productive_text"]),
        party["last_repayment"],
        party["last_sale"],
        party["last_activity_on"],
        party["last_activity_operating"],
    )
    if not changes and saved == stored:
        return
    rows = [(*key, month, dr, dp) for (key, month), (dr, dp) in sorted(changes.items())]
    columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] if rows else [[]] * 7
    await conn.execute(
        """
        WITH delta AS (
            INSERT INTO counts AS c (province, city, district, kind, month, d_registered, d_productive)
            SELECT d.province, d.city, d.district, d.kind, d.month, d.d_registered, d.d_productive
            FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::int[], $14::bigint[],
                        $15::bigint[])
                 WITH ORDINALITY AS d(province, city, district, kind, month, d_registered, d_productive, n)
            ORDER BY d.n
            ON CONFLICT (province, city, district, kind, month) DO UPDATE SET
                d_registered = c.d_registered + EXCLUDED.d_registered,
                d_productive = c.d_productive + EXCLUDED.d_productive
        )
        UPDATE parties SET population = $2::text::int4multirange, productive = $3::text::int4multirange,
            last_repayment = $4, last_sale = $5, last_activity_on = $6, last_activity_operating = $7,
            counted_key = $8::text[]
        WHERE party_id = $1
        """,
        party["party_id"],
        after.population.to_sql(),
        after.productive.to_sql(),
        saved[3],
        saved[4],
        saved[5],
        saved[6],
        saved[0],
        *columns,
    )


# -- loans -------------------------------------------------------------------------------------------------


async def insert_loan(
    conn: Conn,
    *,
    loan_id: str,
    lender: str,
    borrower_kind: str,
    borrower_id: str,
    province: str,
    city: str,
    disbursed_on: date,
    principal: Decimal,
) -> bool:
    status = await conn.execute(
        """
        INSERT INTO loans (loan_id, lender, borrower_kind, borrower_id, province, city, disbursed_on,
                           principal)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (loan_id) DO NOTHING
        """,
        loan_id,
        lender,
        borrower_kind,
        borrower_id,
        clean(province),
        clean(city),
        disbursed_on,
        principal,
    )
    return bool(status.endswith(" 1"))


async def load_loan(conn: Conn, loan_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM loans WHERE loan_id = $1", loan_id)


async def record_grade(conn: Conn, event_id: UUID, loan_id: str, as_of: date, grade: int) -> None:
    await conn.execute(
        "INSERT INTO grades (event_id, loan_id, as_of, grade) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (event_id) DO NOTHING",
        event_id,
        loan_id,
        as_of,
        grade,
    )


async def record_repayment(
    conn: Conn,
    *,
    payment_id: str,
    loan_id: str,
    paid_on: date,
    amount: Decimal,
    pending: bool,
    sender: str | None,
) -> bool:
    status = await conn.execute(
        """
        INSERT INTO repayments (payment_id, loan_id, paid_on, amount, pending, sender)
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (payment_id) DO NOTHING
        """,
        payment_id,
        loan_id,
        paid_on,
        amount,
        pending,
        sender,
    )
    return bool(status.endswith(" 1"))


async def pending_repayments(conn: Conn, loan_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT payment_id, sender FROM repayments WHERE loan_id = $1 AND pending ORDER BY payment_id",
            loan_id,
        )
    )


async def settle_repayment(conn: Conn, payment_id: str, *, accepted: bool) -> None:
    if accepted:
        await conn.execute("UPDATE repayments SET pending = false WHERE payment_id = $1", payment_id)
    else:
        await conn.execute("DELETE FROM repayments WHERE payment_id = $1", payment_id)


# -- catalog -----------------------------------------------------------------------------------------------


async def record_order(
    conn: Conn, order_id: str, seller_nib: str, province: str | None, city: str | None, total: Decimal
) -> None:
    await conn.execute(
        """
        INSERT INTO orders (order_id, seller_nib, province, city, total) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (order_id) DO UPDATE SET
            province = EXCLUDED.province, city = EXCLUDED.city, total = EXCLUDED.total
        """,
        order_id,
        seller_nib,
        clean(province) or None,
        clean(city) or None,
        total,
    )


async def record_delivery(conn: Conn, order_id: str, seller_nib: str, delivered_on: date) -> None:
    await conn.execute(
        """
        INSERT INTO orders (order_id, seller_nib, delivered_on) VALUES ($1, $2, $3)
        ON CONFLICT (order_id) DO UPDATE SET delivered_on = EXCLUDED.delivered_on
        """,
        order_id,
        seller_nib,
        delivered_on,
    )


async def record_payment(conn: Conn, order_id: str, seller_nib: str, paid_on: date, amount: Decimal) -> None:
    await conn.execute(
        """
        INSERT INTO orders (order_id, seller_nib, paid_on, paid_amount) VALUES ($1, $2, $3, $4)
        ON CONFLICT (order_id) DO UPDATE SET paid_on = EXCLUDED.paid_on, paid_amount = EXCLUDED.paid_amount
        """,
        order_id,
        seller_nib,
        paid_on,
        amount,
    )


# -- restructuring -----------------------------------------------------------------------------------------


async def record_request(
    conn: Conn, request_id: str, loan_id: str, requested_on: date, province: str | None, city: str | None
) -> None:
    await conn.execute(
        """
        INSERT INTO restructurings AS r (request_id, loan_id, requested_on, province, city)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (request_id) DO UPDATE SET
            requested_on = EXCLUDED.requested_on,
            province = COALESCE(r.province, EXCLUDED.province),
            city = COALESCE(r.city, EXCLUDED.city)
        """,
        request_id,
        loan_id,
        requested_on,
        clean(province) or None,
        clean(city) or None,
    )


async def record_outcome(
    conn: Conn,
    request_id: str,
    loan_id: str,
    province: str,
    city: str,
    *,
    referred: bool = False,
    outcome: str | None = None,
    decided_on: date | None = None,
    principal: Decimal | None = None,
) -> None:
    """A referral or a decision; the borrower's region on the outcome is the request's."""
    await conn.execute(
        """
        INSERT INTO restructurings AS r (request_id, loan_id, province, city, referred, outcome, decided_on,
                                         principal)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (request_id) DO UPDATE SET
            province = EXCLUDED.province,
            city = EXCLUDED.city,
            referred = r.referred OR EXCLUDED.referred,
            outcome = COALESCE(EXCLUDED.outcome, r.outcome),
            decided_on = COALESCE(EXCLUDED.decided_on, r.decided_on),
            principal = COALESCE(EXCLUDED.principal, r.principal)
        """,
        request_id,
        loan_id,
        clean(province),
        clean(city),
        referred,
        outcome,
        decided_on,
        principal,
    )


async def place_requests(conn: Conn, loan_id: str, province: str, city: str) -> None:
    """Requests that came before their loan's disbursement take the borrower's region from it."""
    await conn.execute(
        "UPDATE restructurings SET province = $2, city = $3 WHERE loan_id = $1 AND province IS NULL",
        loan_id,
        clean(province),
        clean(city),
    )


# -- reads -------------------------------------------------------------------------------------------------


def _where(
    scope: RegionScope,
    province: str | None,
    city: str | None,
    *,
    district: str | None = None,
    kind: str | None = None,
    params: list[Any],
    prefix: str = "",
) -> str:
    """The WHERE conditions of a region filter inside a scope, appending their parameters to ``params``."""
    fragment, scope_params = scope.sql(f"{prefix}province", f"{prefix}city", len(params) + 1)
    params.extend(scope_params)
    conditions = [fragment]
    for column, value in (
        (f"{prefix}province", province),
        (f"{prefix}city", city),
        (f"{prefix}district", district),
    ):
        if value is not None:
            params.append(clean(value).lower())
            conditions.append(f"lower({column}) = ${len(params)}")
    if kind is not None:
        params.append(kind)
        conditions.append(f"{prefix}kind = ${len(params)}")
    return " AND ".join(conditions)


async def display_region(conn: Conn, province: str | None, city: str | None) -> tuple[str | None, str | None]:
    """The names a region is written with in the read models (a scope holds them case-folded)."""
    if province is None:
        return None, None
    row = await conn.fetchrow(
        "SELECT province, city FROM counts "
        "WHERE lower(province) = $1 AND ($2::text IS NULL OR lower(city) = $2) LIMIT 1",
        clean(province).lower(),
        None if city is None else clean(city).lower(),
    )
    if row is None:
        return province, city
    return row["province"], None if city is None else row["city"]


LEVEL_COLUMNS: Final = {
    "province": ("province",),
    "city": ("province", "city"),
    "district": ("province", "city", "district"),
}


async def recovery_rows(
    conn: Conn,
    scope: RegionScope,
    *,
    month: int,
    level: str,
    province: str | None,
    city: str | None,
    kind: str | None,
) -> list[asyncpg.Record]:
    """Registered and productive parties in ``month`` by region at ``level`` and by kind: the running sums
    of the pre-aggregated differences (never a scan of the parties)."""
    params: list[Any] = [month]
    where = _where(scope, province, city, kind=kind, params=params)
    columns = ", ".join(LEVEL_COLUMNS[level])
    return list(
        await conn.fetch(
            f"""
            SELECT {columns}, kind, sum(d_registered)::bigint AS registered,
                   sum(d_productive)::bigint AS productive
            FROM counts WHERE month <= $1 AND {where}
            GROUP BY {columns}, kind
            HAVING sum(d_registered) <> 0 OR sum(d_productive) <> 0
            ORDER BY {columns}, kind
            """,
            *params,
        )
    )


async def trend(
    conn: Conn,
    scope: RegionScope,
    *,
    until: int,
    province: str | None,
    city: str | None,
    district: str | None,
    kind: str | None,
) -> list[asyncpg.Record]:
    """The differences per month up to ``until`` (the caller runs the sums)."""
    params: list[Any] = [until]
    where = _where(scope, province, city, district=district, kind=kind, params=params)
    return list(
        await conn.fetch(
            f"""
            SELECT month, sum(d_registered)::bigint AS d_registered, sum(d_productive)::bigint AS d_productive
            FROM counts WHERE month <= $1 AND {where} GROUP BY month ORDER BY month
            """,
            *params,
        )
    )


async def outreach(
    conn: Conn,
    scope: RegionScope,
    *,
    month: int,
    province: str | None,
    city: str | None,
    district: str | None,
    kind: str | None,
    after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Parties of the month's population not productive in it, by party id after ``after``."""
    params: list[Any] = [month]
    where = _where(scope, province, city, district=district, kind=kind, params=params)
    if after is not None:
        params.append(after)
        where += f" AND party_id > ${len(params)}"
    params.append(limit)
    return list(
        await conn.fetch(
            f"""
            SELECT kind, party_id, name, region, province, city, district, last_repayment, last_sale,
                   last_activity_on, last_activity_operating
            FROM parties
            WHERE population @> $1::int AND NOT productive @> $1::int AND {where}
            ORDER BY party_id LIMIT ${len(params)}
            """,
            *params,
        )
    )


async def restructuring(conn: Conn, scope: RegionScope, province: str | None, city: str | None) -> Any:
    params: list[Any] = []
    where = _where(scope, province, city, params=params, prefix="r.")
    row = await conn.fetchrow(
        f"""
        SELECT count(*) AS requested,
               count(*) FILTER (WHERE r.referred) AS referred,
               count(*) FILTER (WHERE r.outcome = 'approved') AS approved,
               count(*) FILTER (WHERE r.outcome = 'rejected') AS rejected,
               count(*) FILTER (WHERE r.outcome IS NULL) AS pending,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY r.decided_on - r.requested_on)
                   FILTER (WHERE r.outcome IS NOT NULL AND r.requested_on IS NOT NULL) AS median_days,
               COALESCE(sum(r.principal) FILTER (WHERE r.outcome = 'approved'), 0) AS principal
        FROM restructurings r WHERE {where}
        """,
        *params,
    )
    assert row is not None  # noqa: S101 - an aggregate always answers one row
    performing = await conn.fetchrow(
        f"""
        WITH restructured AS (
            SELECT DISTINCT r.loan_id FROM restructurings r WHERE r.outcome = 'approved' AND {where}
        ), latest AS (
            SELECT x.loan_id,
                   (SELECT g.grade FROM grades g WHERE g.loan_id = x.loan_id
                    ORDER BY g.as_of DESC, g.recorded_at DESC LIMIT 1) AS grade
            FROM restructured x
        )
        SELECT count(*) AS loans, count(*) FILTER (WHERE COALESCE(grade, 1) <= 2) AS performing FROM latest
        """,
        *params,
    )
    assert performing is not None  # noqa: S101 - an aggregate always answers one row
    return _merge(row, performing)


def _merge(a: asyncpg.Record, b: asyncpg.Record) -> Any:
    return {**dict(a), **dict(b)}


async def procurement(conn: Conn, scope: RegionScope, province: str | None, city: str | None) -> Any:
    params: list[Any] = [["micro", "small", "medium"]]
    where = _where(scope, province, city, params=params, prefix="o.")
    row = await conn.fetchrow(
        f"""
        SELECT COALESCE(sum(o.paid_amount), 0) AS total_paid,
               COALESCE(sum(o.paid_amount) FILTER (WHERE p.kind = 'umkm' AND p.scale = ANY($1::text[])), 0)
                   AS umkm_paid
        FROM orders o LEFT JOIN parties p ON p.party_id = o.seller_nib
        WHERE o.paid_amount IS NOT NULL AND {where}
        """,
        *params,
    )
    return dict(row) if row is not None else {"total_paid": Decimal(0), "umkm_paid": Decimal(0)}


async def party_detail(conn: Conn, party_id: str) -> dict[str, Sequence[asyncpg.Record]]:
    loans = await conn.fetch(
        """
        SELECT l.loan_id, l.lender, l.disbursed_on,
               (SELECT g.grade FROM grades g WHERE g.loan_id = l.loan_id
                ORDER BY g.as_of DESC, g.recorded_at DESC LIMIT 1) AS grade,
               (SELECT max(r.paid_on) FROM repayments r WHERE r.loan_id = l.loan_id AND NOT r.pending)
                   AS last_repayment
        FROM loans l WHERE l.borrower_id = $1 ORDER BY l.loan_id
        """,
        party_id,
    )
    orders = await conn.fetch(
        "SELECT order_id, delivered_on, paid_on, paid_amount FROM orders WHERE seller_nib = $1 "
        "ORDER BY order_id",
        party_id,
    )
    activity = await conn.fetch(
        "SELECT as_of, operating, revenue_band, survey FROM activity WHERE party_id = $1 ORDER BY as_of",
        party_id,
    )
    return {"loans": loans, "orders": orders, "activity": activity}


async def truncate_read_models(conn: Conn, durables: Sequence[str]) -> None:
    """Empty every read model and forget which events the durables handled (their inbox rows)."""
    await conn.execute(f"TRUNCATE {', '.join(READ_MODELS)}")
    await conn.execute("DELETE FROM inbox WHERE consumer = ANY($1::text[])", list(durables))
