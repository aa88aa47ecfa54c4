"""SQL for the ``loans`` schema (the pool's search path), and nothing else: the service's only SQL.

The write side (loans, schedules, repayments, grades, requests) and the queries of the progress read model
(``progress.py`` shapes their rows into the report; it holds no SQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kumkm_loans.domain import Installment, Loan
from kumkm_shared.contracts.loans import Borrower, RepaymentMethod

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date, datetime
    from uuid import UUID

    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    from kumkm_shared.auth.scope import RegionScope
    from kumkm_shared.contracts.loans import LoanDisbursed, RepaymentReceived, RestructuringRequested

    Conn = asyncpg.Connection | PoolConnectionProxy


@dataclass
class LoanRecord:
    """A loan row with its current schedule as a domain object."""

    loan: Loan
    borrower: Borrower
    row: asyncpg.Record

    @property
    def active(self) -> bool:
        return bool(self.row["status"] == "active")


_INSTALLMENT_COLUMNS = (
    "schedule_version, no, due_on, principal, interest, capitalised_interest, balance, grace, "
    "paid_principal, paid_interest, overdue_announced"
)


def _installment(row: asyncpg.Record) -> Installment:
    return Installment(
        no=row["no"],
        due_on=row["due_on"],
        principal=row["principal"],
        interest=row["interest"],
        balance=row["balance"],
        capitalised_interest=row["capitalised_interest"],
        grace=row["grace"],
        paid_principal=row["paid_principal"],
        paid_interest=row["paid_interest"],
        overdue_announced=row["overdue_announced"],
        version=row["schedule_version"],
    )


# -- loans ----------------------------------------------------------------------------------------------


async def insert_loan(conn: Conn, data: LoanDisbursed, rows: Sequence[Installment]) -> bool:
    """Insert the loan and its schedule; False when the loan already exists."""
    borrower = data.borrower
    inserted = await conn.fetchval(
        "INSERT INTO loans (loan_id, lender, borrower, borrower_kind, borrower_id, borrower_name, province, "
        "city, principal, original_rate, annual_rate, tenor_months, method, disbursed_on, first_due_on, "
        "maturity_on, outstanding_principal, graded_on) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14, $15, $9, $13) "
        "ON CONFLICT (loan_id) DO NOTHING RETURNING true",
        data.loan_id,
        data.lender,
        borrower.model_dump(mode="json"),
        borrower.kind.value,
        borrower.id,
        borrower.name,
        borrower.region.province,
        borrower.region.city,
        data.principal,
        data.annual_rate,
        data.tenor_months,
        data.method.value,
        data.disbursed_on,
        data.first_due_on,
        rows[-1].due_on,
    )
    if not inserted:
        return False
    await insert_installments(conn, data.loan_id, rows)
    await record_grade(conn, data.loan_id, data.disbursed_on, 1, 0, "disbursed")
    return True


def _arrays(rows: Sequence[Installment], *fields: str) -> list[list[Any]]:
    """One array per field of ``rows``, in order: the arguments of an ``unnest($2::type[], ...)``."""
    return [[getattr(row, field) for row in rows] for field in fields]


async def insert_installments(conn: Conn, loan_id: str, rows: Sequence[Installment]) -> None:
    await conn.execute(
        "INSERT INTO installments (loan_id, schedule_version, no, due_on, principal, interest, "
        "capitalised_interest, balance, grace) "
        "SELECT $1, * FROM unnest($2::int[], $3::int[], $4::date[], $5::numeric[], $6::numeric[], "
        "$7::numeric[], $8::numeric[], $9::bool[])",
        loan_id,
        *_arrays(
            rows,
            "version",
            "no",
            "due_on",
            "principal",
            "interest",
            "capitalised_interest",
            "balance",
            "grace",
        ),
    )


async def load_loan(conn: Conn, loan_id: str, *, lock: bool = False) -> LoanRecord | None:
    row = await conn.fetchrow(
        "SELECT * FROM loans WHERE loan_id = $1" + (" FOR UPDATE" if lock else ""), loan_id
    )
    if row is None:
        return None
    installments = await conn.fetch(
        f"SELECT {_INSTALLMENT_COLUMNS} FROM installments WHERE loan_id = $1 AND NOT superseded "
        "ORDER BY due_on, schedule_version, no",
        loan_id,
    )
    loan = Loan(
        loan_id=row["loan_id"],
        annual_rate=row["annual_rate"],
        method=RepaymentMethod(row["method"]),
        installments=[_installment(r) for r in installments],
        schedule_version=row["schedule_version"],
        restructure_count=row["restructure_count"],
        collectibility=row["collectibility"],
        closed=row["status"] == "closed",
    )
    borrower = Borrower.model_validate(row["borrower"])
    return LoanRecord(loan, borrower, row)


async def loan_exists(conn: Conn, loan_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM loans WHERE loan_id = $1", loan_id))


async def loan_lender(conn: Conn, loan_id: str) -> str | None:
    """The loan's lender, ``None`` when the loan is not on the book."""
    lender: str | None = await conn.fetchval("SELECT lender FROM loans WHERE loan_id = $1", loan_id)
    return lender


async def update_loan_state(conn: Conn, loan: Loan, *, unapplied: Decimal = Decimal(0), **extra: Any) -> None:
    """Write the loan's derived columns; ``extra`` names more columns to set (trusted names only)."""
    columns = {
        "outstanding_principal": loan.outstanding_principal,
        "status": "closed" if loan.closed else "active",
        "collectibility": loan.collectibility,
        "annual_rate": loan.annual_rate,
        "maturity_on": loan.maturity_on,
        "schedule_version": loan.schedule_version,
        "restructure_count": loan.restructure_count,
        **extra,
    }
    sets = ", ".join(f"{name} = ${n}" for n, name in enumerate(columns, start=2))
    await conn.execute(
        f"UPDATE loans SET {sets}, unapplied = unapplied + ${len(columns) + 2}, updated_at = now() "
        "WHERE loan_id = $1",
        loan.loan_id,
        *columns.values(),
        unapplied,
    )


async def save_payments(conn: Conn, loan_id: str, rows: Sequence[Installment]) -> None:
    """Store the paid amounts and announcement flags of ``rows``."""
    if not rows:
        return
    await conn.execute(
        "UPDATE installments AS i SET paid_principal = u.pp, paid_interest = u.pi, overdue_announced = u.ann "
        "FROM unnest($2::int[], $3::int[], $4::numeric[], $5::numeric[], $6::bool[]) "
        "AS u(v, no, pp, pi, ann) "
        "WHERE i.loan_id = $1 AND i.schedule_version = u.v AND i.no = u.no",
        loan_id,
        *_arrays(rows, "version", "no", "paid_principal", "paid_interest", "overdue_announced"),
    )


async def replace_tail(
    conn: Conn, loan_id: str, version: int, first_no: int, rows: Sequence[Installment]
) -> None:
    """Replace the current installments of ``version`` numbered ``first_no`` and later (a prepayment)."""
    await conn.execute(
        "DELETE FROM installments "
        "WHERE loan_id = $1 AND schedule_version = $2 AND no >= $3 AND NOT superseded",
        loan_id,
        version,
        first_no,
    )
    if rows:
        await insert_installments(conn, loan_id, rows)


async def supersede(conn: Conn, loan_id: str, keep: Sequence[Installment]) -> None:
    """Mark every current installment superseded except ``keep``."""
    await conn.execute(
        "UPDATE installments SET superseded = true WHERE loan_id = $1 AND NOT superseded "
        "AND (schedule_version, no) NOT IN (SELECT * FROM unnest($2::int[], $3::int[]))",
        loan_id,
        *_arrays(keep, "version", "no"),
    )


# -- repayments -----------------------------------------------------------------------------------------


async def claim_payment(conn: Conn, data: RepaymentReceived, event_id: UUID) -> bool:
    """Record the payment once by its payment id; False when it was seen before."""
    inserted = await conn.fetchval(
        "INSERT INTO repayments (payment_id, loan_id, event_id, amount, paid_on, channel, reference) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (payment_id) DO NOTHING RETURNING true",
        data.payment_id,
        data.loan_id,
        event_id,
        data.amount,
        data.paid_on,
        data.channel,
        data.reference,
    )
    return bool(inserted)


async def record_allocation(
    conn: Conn,
    payment_id: str,
    *,
    interest: Decimal,
    principal: Decimal,
    prepaid: Decimal,
    unapplied: Decimal,
) -> None:
    await conn.execute(
        "UPDATE repayments SET applied_interest = $2, applied_principal = $3, prepaid_principal = $4, "
        "unapplied = $5, applied_at = now() WHERE payment_id = $1",
        payment_id,
        interest,
        principal,
        prepaid,
        unapplied,
    )


async def payment_loan(conn: Conn, payment_id: str) -> str | None:
    """The loan an applied payment id belongs to (``None``: the id is not taken)."""
    loan_id: str | None = await conn.fetchval(
        "SELECT loan_id FROM repayments WHERE payment_id = $1", payment_id
    )
    return loan_id


async def park_repayment(conn: Conn, data: RepaymentReceived, event_id: UUID, sender: str | None) -> bool:
    """Keep the repayment until its loan arrives; False when its payment id is already taken by another
    loan or another sender (applied, or parked), True when parked now or already parked the same."""
    if (await payment_loan(conn, data.payment_id)) not in {None, data.loan_id}:
        return False
    inserted = await conn.fetchval(
        "INSERT INTO parked_repayments (payment_id, loan_id, event_id, data, sender) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_id) DO NOTHING RETURNING true",
        data.payment_id,
        data.loan_id,
        event_id,
        data.model_dump(mode="json"),
        sender,
    )
    if inserted:
        return True
    first = await conn.fetchrow(
        "SELECT loan_id, sender FROM parked_repayments WHERE payment_id = $1", data.payment_id
    )
    return first is None or (first["loan_id"], first["sender"]) == (data.loan_id, sender)


@dataclass(frozen=True)
class ParkedRepayment:
    event_id: UUID
    data: dict[str, Any]
    sender: str | None  # the organisation that sent it; None for a repayment that came with a command


async def take_parked(conn: Conn, loan_id: str) -> list[ParkedRepayment]:
    rows = await conn.fetch(
        "DELETE FROM parked_repayments WHERE loan_id = $1 RETURNING event_id, data, sender, parked_at",
        loan_id,
    )
    ordered = sorted(rows, key=lambda r: (r["data"]["paid_on"], r["parked_at"]))
    return [ParkedRepayment(r["event_id"], r["data"], r["sender"]) for r in ordered]


async def record_refused_repayment(conn: Conn, parked: ParkedRepayment, code: str, reason: str) -> None:
    await conn.execute(
        "INSERT INTO refused_repayments (payment_id, loan_id, event_id, data, sender, code, reason) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
        parked.data["payment_id"],
        parked.data["loan_id"],
        parked.event_id,
        parked.data,
        parked.sender,
        code,
        reason,
    )


# -- collectibility -------------------------------------------------------------------------------------


async def record_grade(
    conn: Conn, loan_id: str, as_of: date, grade: int, days_past_due: int, cause: str
) -> None:
    await conn.execute(
        "INSERT INTO collectibility_history (loan_id, as_of, grade, days_past_due, cause) "
        "VALUES ($1, $2, $3, $4, $5)",
        loan_id,
        as_of,
        grade,
        days_past_due,
        cause,
    )


async def grade_as_of(conn: Conn, loan_id: str, as_of: date) -> int | None:
    grade: int | None = await conn.fetchval(
        "SELECT grade FROM collectibility_history WHERE loan_id = $1 AND as_of <= $2 "
        "ORDER BY as_of DESC, id DESC LIMIT 1",
        loan_id,
        as_of,
    )
    return grade


async def save_grade(conn: Conn, loan_id: str, grade: int, days_past_due: int, graded_on: date) -> None:
    """Store the loan's grade as of ``graded_on``."""
    await conn.execute(
        "UPDATE loans SET collectibility = $2, days_past_due = $3, graded_on = $4, updated_at = now() "
        "WHERE loan_id = $1",
        loan_id,
        grade,
        days_past_due,
        graded_on,
    )


async def tick_candidates(conn: Conn, as_of: date) -> list[str]:
    """Active loans whose grade would change, or with an overdue installment not yet announced."""
    rows = await conn.fetch(
        """
        WITH open AS (
            SELECT loan_id, min(due_on) AS oldest, bool_or(NOT overdue_announced) AS unannounced
            FROM installments
            WHERE NOT superseded AND paid_principal + paid_interest < principal + interest AND due_on < $1
            GROUP BY loan_id
        )
        SELECT l.loan_id
        FROM loans l LEFT JOIN open o USING (loan_id)
        WHERE l.status = 'active' AND (
            coalesce(o.unannounced, false)
            OR l.collectibility <> CASE
                WHEN o.oldest IS NULL THEN 1
                WHEN $1 - o.oldest <= 90 THEN 2
                WHEN $1 - o.oldest <= 120 THEN 3
                WHEN $1 - o.oldest <= 180 THEN 4
                ELSE 5 END
        )
        ORDER BY l.loan_id
        """,
        as_of,
    )
    return [r["loan_id"] for r in rows]


async def record_tick(conn: Conn, as_of: date, overdue: int, changes: int) -> None:
    await conn.execute(
        "INSERT INTO ticks (as_of, overdue_announced, grade_changes) VALUES ($1, $2, $3) "
        "ON CONFLICT (as_of) DO UPDATE SET runs = ticks.runs + 1, last_run_at = now(), "
        "overdue_announced = ticks.overdue_announced + $2, grade_changes = ticks.grade_changes + $3",
        as_of,
        overdue,
        changes,
    )


async def ticked(conn: Conn, as_of: date) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ticks WHERE as_of = $1)", as_of))


async def last_tick(conn: Conn) -> date | None:
    value: date | None = await conn.fetchval("SELECT max(as_of) FROM ticks")
    return value


# -- restructuring requests -----------------------------------------------------------------------------


async def claim_request(conn: Conn, data: RestructuringRequested, event_id: UUID) -> bool:
    """Record the request once by its request id; False when the request id was seen before."""
    inserted = await conn.fetchval(
        "INSERT INTO restructuring_requests (request_id, loan_id, event_id, requested_on, reason, impact, "
        "proposal, reschedule_from, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'received') "
        "ON CONFLICT (request_id) DO NOTHING RETURNING true",
        data.request_id,
        data.loan_id,
        event_id,
        data.requested_on,
        data.reason.value,
        data.impact.model_dump(mode="json"),
        [s.model_dump(mode="json") for s in data.proposal],
        data.reschedule_from,
    )
    return bool(inserted)


async def open_requests(conn: Conn, loan_id: str, *, other_than: str) -> int:
    """The loan's other requests waiting for a person: referred, or approved once, waiting for a checker."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM restructuring_requests "
        "WHERE loan_id = $1 AND status IN ('referred', 'awaiting_second_approval') AND request_id <> $2",
        loan_id,
        other_than,
    )
    return count


async def load_request(conn: Conn, request_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM restructuring_requests WHERE request_id = $1" + (" FOR UPDATE" if lock else ""),
        request_id,
    )
    return row


async def record_decision(
    conn: Conn,
    request_id: str,
    *,
    status: str,
    borrower: Borrower,
    reasons: Sequence[dict[str, str]],
    outstanding_principal: Decimal | None,
    summary: dict[str, Any] | None = None,
    decided_by: str | None = None,
    decided_at: datetime | None = None,
    decided_on: date | None = None,
    note: str | None = None,
) -> None:
    """Store the request's outcome; a referred request keeps no decider, moment or date."""
    decided = status != "referred"
    await conn.execute(
        "UPDATE restructuring_requests SET status = $2, borrower_id = $3, borrower_name = $4, province = $5, "
        "city = $6, reason_codes = $7, reasons = $8, outstanding_principal = $9, summary = $10, "
        "decided_by = $11, decided_at = $12, decided_on = $13, decision_note = $14 "
        "WHERE request_id = $1",
        request_id,
        status,
        borrower.id,
        borrower.name,
        borrower.region.province,
        borrower.region.city,
        [r["code"] for r in reasons],
        list(reasons),
        outstanding_principal,
        summary,
        decided_by if decided else None,
        decided_at if decided else None,
        decided_on if decided else None,
        note,
    )


async def record_first_approval(
    conn: Conn, request_id: str, *, by: str, at: datetime, on: date, note: str
) -> None:
    """The maker's approval: the request waits for a second person (``awaiting_second_approval``)."""
    await conn.execute(
        "UPDATE restructuring_requests SET status = 'awaiting_second_approval', first_approved_by = $2, "
        "first_approved_at = $3, first_approved_on = $4, first_approval_note = $5 WHERE request_id = $1",
        request_id,
        by,
        at,
        on,
        note,
    )


async def list_requests(
    conn: Conn,
    *,
    scope: RegionScope,
    status: str | None,
    region: str | None,
    province: str | None,
    city: str | None,
    loan_id: str | None,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    """Requests matching the filters, inside ``scope`` only."""
    in_scope, scope_params = scope.sql("province", "city", 8)
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM restructuring_requests WHERE ($1::text IS NULL OR status = $1) "
        "AND ($2::text IS NULL OR lower(province) = lower($2) OR lower(city) = lower($2)) "
        "AND ($3::text IS NULL OR lower(province) = lower($3)) "
        "AND ($4::text IS NULL OR lower(city) = lower($4)) "
        "AND ($5::text IS NULL OR loan_id = $5) "
        f"AND {in_scope} "
        "ORDER BY received_at, request_id LIMIT $6 OFFSET $7",
        status,
        region,
        province,
        city,
        loan_id,
        limit,
        offset,
        *scope_params,
    )
    return rows


# -- the progress read model ----------------------------------------------------------------------------

_REGION_FILTER = (
    "($1::text IS NULL OR lower(province) = lower($1)) AND ($2::text IS NULL OR lower(city) = lower($2))"
)

_PROGRESS_REQUESTS = f"""
SELECT grouping(province, city) AS all_regions, grouping(borrower_id) AS all_borrowers,
       province, city, borrower_id, max(borrower_name) AS borrower_name,
       count(*) FILTER (WHERE status = 'approved') AS approved,
       count(*) FILTER (WHERE status = 'rejected') AS rejected,
       count(*) FILTER (WHERE status = 'referred') AS referred,
       count(*) FILTER (WHERE status = 'awaiting_second_approval') AS awaiting_second_approval,
       coalesce(sum(outstanding_principal) FILTER (WHERE status = 'approved'), 0) AS restructured_principal,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY decided_on - requested_on)
           FILTER (WHERE status IN ('approved', 'rejected')) AS median_days
FROM restructuring_requests
WHERE status <> 'received' AND {_REGION_FILTER}
GROUP BY GROUPING SETS ((), (province, city), (province, city, borrower_id))
"""

_PROGRESS_PERFORMING = f"""
WITH borrowers AS (
    SELECT borrower_id, max(borrower_name) AS borrower_name, province, city,
           bool_and(collectibility = 1) AS performing
    FROM loans WHERE restructure_count > 0 AND {_REGION_FILTER}
    GROUP BY borrower_id, province, city
)
SELECT grouping(province, city) AS all_regions, grouping(borrower_id) AS all_borrowers,
       province, city, borrower_id, max(borrower_name) AS borrower_name,
       count(*) AS restructured_borrowers, count(*) FILTER (WHERE performing) AS performing_borrowers
FROM borrowers
GROUP BY GROUPING SETS ((), (province, city), (province, city, borrower_id))
"""


async def progress_of_requests(conn: Conn, province: str | None, city: str | None) -> list[asyncpg.Record]:
    """Decided and referred requests, in total, by region and by cooperative (``GROUPING SETS``)."""
    rows: list[asyncpg.Record] = await conn.fetch(_PROGRESS_REQUESTS, province, city)
    return rows


async def progress_of_borrowers(conn: Conn, province: str | None, city: str | None) -> list[asyncpg.Record]:
    """Restructured borrowers and those whose restructured loans are all grade 1, grouped the same way."""
    rows: list[asyncpg.Record] = await conn.fetch(_PROGRESS_PERFORMING, province, city)
    return rows
