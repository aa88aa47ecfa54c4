"""The loans HTTP API: commands (tick, restructuring requests, officers' decisions) and the read model.

Who acts is the verified actor (``CommandDep``, ``ActorDep``), never a field of a body. Everyone sees and
decides only their regions (``kumkm_loans.domain.regions``): lists are filtered by the actor's scope in SQL,
and a single loan or request outside it answers 403 ``outside_region``.

A module-level router; each route gets the runtime, the ``LoansService`` and the command's origin by
``Depends``. Routes neither open a command's transaction themselves (``runtime.command`` and
``runtime.submit`` do) nor translate errors: a ``Refusal`` raised below becomes its HTTP answer in
``kumkm_shared.service.http``, and bad input is refused by FastAPI's validation, naming the field.
"""

from __future__ import annotations

import uuid
from datetime import date  # noqa: TC003 - FastAPI reads the route signatures at runtime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from kumkm_loans import progress as progress_model
from kumkm_loans import repository as repo
from kumkm_loans.domain import (
    GRADE_NAMES,
    Terms,
    check_in_scope,
    permissions,
    plan_restructuring,
    progress_region,
)
from kumkm_loans.handlers import LoansService
from kumkm_shared import NotFound
from kumkm_shared.contracts.loans import (
    ArrearsCapitalization,
    GraceOn,
    GracePeriod,
    Impact,
    InterestArrearsReduction,
    PrincipalArrearsReduction,
    RateReduction,
    RestructuringReason,
    RestructuringRequested,
    Scheme,
    TenorExtension,
)
from kumkm_shared.contracts.types import (
    AnnualRate,
    BusinessDate,
    Identifier,
    PositiveMoney,
    RequiredText,
    Text,
)
from kumkm_shared.service.deps import ActorDep, CommandDep, Require, RuntimeDep, service_of
from kumkm_shared.service.http import error_responses, links

if TYPE_CHECKING:
    import asyncpg

    from kumkm_loans.domain import Installment
    from kumkm_shared.origin import Actor

CONSUMER = "loans"
MAX_OFFSET = 1_000_000  # deeper than a million requests, filter by status, region or loan
# The longest extension or grace a preview computes: a loan's longest tenor (``LoanDisbursed.tenor_months``).
MAX_PREVIEW_MONTHS = 360

router = APIRouter()


def _service(request: Request) -> LoansService:
    return cast("LoansService", service_of(request))


ServiceDep = Annotated[LoansService, Depends(_service)]


class TickCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: BusinessDate = Field(description="the business date to grade the book as of (Asia/Jakarta)")


def _new_request_id() -> str:
    return f"RR-{uuid.uuid4()}"


class RestructuringRequestBody(RestructuringRequested):
    """A restructuring request: ``kumkm.loans.restructuring.requested.v1``, with its rules."""

    model_config = ConfigDict(extra="forbid")
    request_id: Identifier = Field(default_factory=_new_request_id, description="generated when left out")


class DecisionBody(BaseModel):
    """A decision; who takes it is the signed-in person (their token), not a field."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    reason: RequiredText
    decided_on: BusinessDate | None = Field(default=None, description="defaults to today (Asia/Jakarta)")


class RequestFilter(BaseModel):
    """The query parameters of ``GET /restructurings``."""

    status: Literal["approved", "rejected", "referred", "awaiting_second_approval"] | None = None
    region: Annotated[Text | None, Field(description="a province or a city")] = None
    province: Text | None = None
    city: Text | None = None
    loan_id: Identifier | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _installment_json(inst: Installment, as_of: date) -> dict[str, Any]:
    if inst.is_paid:
        status = "paid"
    elif inst.due_on < as_of:
        status = "overdue"
    elif inst.is_untouched:
        status = "scheduled"
    else:
        status = "partly_paid"
    return {
        "no": inst.no,
        "due_on": inst.due_on.isoformat(),
        "principal": _money(inst.principal),
        "interest": _money(inst.interest),
        "amount": _money(inst.amount),
        "capitalised_interest": _money(inst.capitalised_interest),
        "balance": _money(inst.balance),
        "grace": inst.grace,
        "paid_principal": _money(inst.paid_principal),
        "paid_interest": _money(inst.paid_interest),
        "status": status,
        "schedule_version": inst.version,
    }


def request_json(row: asyncpg.Record) -> dict[str, Any]:
    """A restructuring request row as the API shows it."""
    return {
        "request_id": row["request_id"],
        "loan_id": row["loan_id"],
        "status": row["status"],
        "borrower": {
            "id": row["borrower_id"],
            "name": row["borrower_name"],
            "region": {"province": row["province"], "city": row["city"]},
        },
        "requested_on": row["requested_on"].isoformat(),
        "reason": row["reason"],
        "impact": row["impact"],
        "proposal": row["proposal"],
        "reschedule_from": row["reschedule_from"].isoformat(),
        "reason_codes": list(row["reason_codes"]),
        "reasons": row["reasons"],
        "outstanding_principal": _money(row["outstanding_principal"]),
        "summary": row["summary"],
        "decided_by": row["decided_by"],
        "decided_at": row["decided_at"].isoformat() if row["decided_at"] else None,
        "decided_on": row["decided_on"].isoformat() if row["decided_on"] else None,
        "decision_note": row["decision_note"],
        "first_approval": _first_approval_json(row),
    }


def _first_approval_json(row: asyncpg.Record) -> dict[str, Any] | None:
    """The maker's approval (maker-checker): who, when, on which business date and why; else ``None``."""
    if row["first_approved_by"] is None:
        return None
    return {
        "by": row["first_approved_by"],
        "at": row["first_approved_at"].isoformat(),
        "on": row["first_approved_on"].isoformat(),
        "reason": row["first_approval_note"],
    }


def _check_request_in_scope(actor: Actor, permission: str, row: asyncpg.Record) -> None:
    what = f"restructuring request {row['request_id']!r}"
    check_in_scope(actor.scope, permission, what, row["province"], row["city"])


def _check_loan_in_scope(actor: Actor, permission: str, record: repo.LoanRecord) -> None:
    region = record.borrower.region
    check_in_scope(actor.scope, permission, f"loan {record.loan.loan_id!r}", region.province, region.city)


@router.post("/tick", tags=["collectibility"], dependencies=[Require(permissions.TICK)])
async def tick(
    body: TickCommand, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """Grade the book as of a business date: overdue installments and grade changes are announced once."""
    result = await service.tick(partial(runtime.command, command), body.date)
    return {
        "as_of": result.as_of.isoformat(),
        "loans_checked": result.loans_checked,
        "overdue_announced": result.overdue_announced,
        "grade_changes": result.grade_changes,
    }


@router.get("/loans/{loan_id}", tags=["loans"], dependencies=[Require(permissions.READ)])
async def get_loan(
    loan_id: Identifier,
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
    as_of: Annotated[date | None, Query(description="arrears as of (default: last tick)")] = None,
) -> dict[str, Any]:
    """The loan with its current schedule and its arrears."""
    async with runtime.pool.acquire() as conn:
        record = await repo.load_loan(conn, loan_id)
        if record is None:
            raise NotFound("loan", loan_id)
        _check_loan_in_scope(actor, permissions.READ, record)
        when = as_of or await repo.last_tick(conn) or service.today()
    row, loan = record.row, record.loan
    arrears = loan.arrears(when)
    dpd = loan.days_past_due(when)
    return {
        "loan_id": loan_id,
        "lender": row["lender"],
        "borrower": record.borrower.model_dump(mode="json"),
        "principal": _money(row["principal"]),
        "original_rate": str(row["original_rate"].normalize()),
        "annual_rate": str(row["annual_rate"].normalize()),
        "tenor_months": row["tenor_months"],
        "method": row["method"],
        "disbursed_on": row["disbursed_on"].isoformat(),
        "first_due_on": row["first_due_on"].isoformat(),
        "maturity_on": loan.maturity_on.isoformat(),
        "status": row["status"],
        "outstanding_principal": _money(loan.outstanding_principal),
        "unapplied": _money(row["unapplied"]),
        "restructure_count": loan.restructure_count,
        "collectibility": {
            "grade": row["collectibility"],
            "name": GRADE_NAMES[row["collectibility"]],
            "days_past_due": row["days_past_due"],
            "graded_on": row["graded_on"].isoformat() if row["graded_on"] else None,
        },
        "as_of": when.isoformat(),
        "arrears": {
            "principal": _money(arrears.principal),
            "interest": _money(arrears.interest),
            "total": _money(arrears.total),
            "installments": arrears.installments,
            "days_past_due": dpd,
        },
        "schedule": [_installment_json(i, when) for i in loan.installments],
    }


_NO_SCHEME = {
    "type": "too_short",
    "loc": ("query", "proposal"),
    "msg": "give at least one scheme: extra_months, grace_months, new_annual_rate, capitalise_arrears, "
    "principal_arrears_reduction or interest_arrears_reduction",
    "input": None,
}


@router.get(
    "/loans/{loan_id}/restructurings/preview",
    tags=["restructuring"],
    dependencies=[Require(permissions.READ)],
)
async def preview(  # noqa: PLR0917 - one query parameter per scheme
    loan_id: Identifier,
    reschedule_from: BusinessDate,
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
    extra_months: Annotated[int | None, Query(ge=1, le=MAX_PREVIEW_MONTHS)] = None,
    grace_months: Annotated[int | None, Query(ge=1, le=MAX_PREVIEW_MONTHS)] = None,
    grace_on: GraceOn = GraceOn.PRINCIPAL,
    new_annual_rate: Annotated[AnnualRate | None, Query()] = None,
    capitalise_arrears: bool = False,
    principal_arrears_reduction: Annotated[PositiveMoney | None, Query()] = None,
    interest_arrears_reduction: Annotated[PositiveMoney | None, Query()] = None,
    reason: RestructuringReason = RestructuringReason.COVID19_DIRECT,
    requested_on: Annotated[BusinessDate | None, Query(description="default: today (Asia/Jakarta)")] = None,
) -> dict[str, Any]:
    """The schedule a proposal would give, and how the policy would assess it. Nothing is changed."""
    proposal: list[Scheme] = []
    if extra_months:
        proposal.append(TenorExtension(extra_months=extra_months))
    if grace_months:
        proposal.append(GracePeriod(months=grace_months, on=grace_on))
    if new_annual_rate is not None:
        proposal.append(RateReduction(new_annual_rate=new_annual_rate))
    if capitalise_arrears:
        proposal.append(ArrearsCapitalization())
    if principal_arrears_reduction is not None:
        proposal.append(PrincipalArrearsReduction(amount=principal_arrears_reduction))
    if interest_arrears_reduction is not None:
        proposal.append(InterestArrearsReduction(amount=interest_arrears_reduction))
    if not proposal:
        # Each scheme's own value was validated as a query parameter; what is left is naming none.
        raise RequestValidationError([_NO_SCHEME])
    data = RestructuringRequested(
        request_id="preview",
        loan_id=loan_id,
        requested_on=requested_on or min(service.today(), reschedule_from),
        reason=reason,
        impact=Impact(revenue_drop_pct=Decimal(0)),
        proposal=proposal,
        reschedule_from=reschedule_from,
    )
    async with runtime.pool.acquire() as conn:
        record = await repo.load_loan(conn, loan_id)
        if record is None:
            raise NotFound("loan", loan_id)
        _check_loan_in_scope(actor, permissions.READ, record)
        assessment, facts = await service.assess(conn, record, data)
    response: dict[str, Any] = {
        "loan_id": loan_id,
        "reschedule_from": reschedule_from.isoformat(),
        "proposal": [scheme.model_dump(mode="json") for scheme in proposal],
        "assessment": {
            "outcome": assessment.outcome.value,
            "reason_codes": assessment.codes,
            "reasons": [
                {"code": r.code, "text_id": r.text_id, "text_en": r.text_en} for r in assessment.reasons
            ],
        },
        "position": {
            "outstanding_principal": _money(facts.position.outstanding_principal),
            "principal_arrears": _money(facts.position.principal_arrears),
            "interest_arrears": _money(facts.position.interest_arrears),
            "remaining_installments": facts.position.remaining_installments,
        },
    }
    if facts.position.remaining_installments < 1:
        response["schedule"] = None
        return response
    plan = plan_restructuring(record.loan, Terms.from_schemes(data.proposal), reschedule_from)
    schedule = plan.schedule
    response["summary"] = {
        "installments": len(schedule.installments),
        "regular_installment": _money(schedule.regular_installment),
        "grace_months": schedule.grace_months,
        "annual_rate": str(schedule.annual_rate.normalize()),
        "first_due_on": schedule.first_due_on.isoformat(),
        "maturity_on": schedule.maturity_on.isoformat(),
        "outstanding_principal": _money(plan.base_principal),
        "carried_interest_arrears": _money(plan.carried_interest),
        "total_interest_before": _money(plan.total_interest_before),
        "total_interest_after": _money(plan.total_interest_after),
    }
    response["schedule"] = [_installment_json(i, reschedule_from) for i in schedule.installments]
    return response


@router.post(
    "/restructurings",
    tags=["restructuring"],
    status_code=201,
    dependencies=[Require(permissions.REQUEST_RESTRUCTURING)],
    responses=error_responses(404),  # the loan the body names may not exist
    openapi_extra=links(
        201,
        "request_id",
        ("GET", "/restructurings/{request_id}"),
        ("POST", "/restructurings/{request_id}/decision"),
    ),
)
async def request_restructuring(
    body: RestructuringRequestBody, response: Response, runtime: RuntimeDep, command: CommandDep
) -> dict[str, Any]:
    """Ask for a restructuring; handled exactly like the event, and decided at once by the policy.

    An unknown loan is a 404 here (the handler knows the request came with a command); the same event
    from the stream is retried until the disbursement arrives. A loan outside the asker's regions is a 403
    (the handler checks the command's actor).
    """
    async with runtime.pool.acquire() as conn:
        existing = await repo.load_request(conn, body.request_id)
    if existing is None:
        data = RestructuringRequested.model_validate(body.model_dump())
        await runtime.submit(data, consumer=CONSUMER, origin=command)
    else:
        _check_request_in_scope(command.actor, permissions.REQUEST_RESTRUCTURING, existing)
        response.status_code = 200
    async with runtime.pool.acquire() as conn:
        row = await repo.load_request(conn, body.request_id)
    if row is None:  # pragma: no cover - written just above
        raise NotFound("restructuring request", body.request_id)
    return request_json(row)


@router.get("/restructurings", tags=["restructuring"], dependencies=[Require(permissions.READ)])
async def list_restructurings(
    runtime: RuntimeDep, actor: ActorDep, query: Annotated[RequestFilter, Query()]
) -> dict[str, Any]:
    """Restructuring requests inside the caller's regions, filtered by status, region or loan."""
    async with runtime.pool.acquire() as conn:
        rows = await repo.list_requests(conn, scope=actor.scope, **query.model_dump())
    return {"items": [request_json(r) for r in rows], "limit": query.limit, "offset": query.offset}


@router.get("/restructurings/{request_id}", tags=["restructuring"], dependencies=[Require(permissions.READ)])
async def get_restructuring(request_id: Identifier, runtime: RuntimeDep, actor: ActorDep) -> dict[str, Any]:
    """A request with its status, the decider and, after a first approval, the maker."""
    async with runtime.pool.acquire() as conn:
        row = await repo.load_request(conn, request_id)
    if row is None:
        raise NotFound("restructuring request", request_id)
    _check_request_in_scope(actor, permissions.READ, row)
    return request_json(row)


@router.post(
    "/restructurings/{request_id}/decision",
    tags=["restructuring"],
    dependencies=[Require(permissions.DECIDE)],
)
async def decide(
    request_id: Identifier, body: DecisionBody, runtime: RuntimeDep, service: ServiceDep, command: CommandDep
) -> dict[str, Any]:
    """The signed-in officer approves or rejects a referred request, with a reason; above the
    second-approval threshold an approval waits for a second person, a supervisor (maker-checker).
    Other states get 409; a request outside the caller's regions, or the maker as checker, 403."""
    async with runtime.command(command) as work:
        await service.decide(
            work,
            request_id,
            approve=body.decision == "approve",
            reason=body.reason,
            actor=command.actor,
            decided_on=body.decided_on or service.today(),
        )
        row = await repo.load_request(work.conn, request_id)
    if row is None:  # pragma: no cover - decide() found it
        raise NotFound("restructuring request", request_id)
    return request_json(row)


@router.get("/progress", tags=["progress"], dependencies=[Require(permissions.PROGRESS)])
async def get_progress(
    runtime: RuntimeDep, actor: ActorDep, province: Text | None = None, city: Text | None = None
) -> dict[str, Any]:
    """Restructuring progress: requests by status, principal restructured, approval rate, median days
    to decision and the share of restructured borrowers performing now; by region and by cooperative.

    Only for a region inside the caller's scope; the whole country (no province) for a national scope. A
    caller whose scope is one province or one city gets that region when asking for none."""
    province, city = progress_region(actor.scope, permissions.PROGRESS, province, city)
    async with runtime.pool.acquire() as conn:
        requests = await repo.progress_of_requests(conn, province, city)
        borrowers = await repo.progress_of_borrowers(conn, province, city)
    return progress_model.report(requests, borrowers, province=province, city=city)
