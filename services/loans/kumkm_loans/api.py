"""The loans HTTP API: commands (tick, restructuring requests, officers' decisions) and the read model."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kumkm_loans import progress as progress_model
from kumkm_loans import repository as repo
from kumkm_loans.domain import GRADE_NAMES, Terms, plan_restructuring
from kumkm_shared import NotFound, Retry
from kumkm_shared.contracts.loans import (
    GraceOn,
    Impact,
    RestructuringReason,
    RestructuringRequested,
    Scheme,
)
from kumkm_shared.contracts.types import BusinessDate, Identifier, Text

if TYPE_CHECKING:
    from decimal import Decimal

    from kumkm_loans.domain import Installment
    from kumkm_loans.handlers import LoansService
    from kumkm_shared import ServiceRuntime

CONSUMER = "loans"


class TickCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: BusinessDate = Field(description="the business date to grade the book as of (Asia/Jakarta)")


class RestructuringRequestBody(BaseModel):
    """A restructuring request; the same fields as `kumkm.loans.restructuring.requested.v1`."""

    model_config = ConfigDict(extra="forbid")
    request_id: Identifier | None = Field(default=None, description="generated when left out")
    loan_id: Identifier
    requested_on: BusinessDate
    reason: RestructuringReason
    impact: Impact
    proposal: Annotated[list[Scheme], Field(min_length=1)]
    reschedule_from: BusinessDate


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    reason: Annotated[Text, Field(min_length=1)]
    officer: Identifier
    decided_on: BusinessDate | None = Field(default=None, description="defaults to today (Asia/Jakarta)")


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


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


def make_router(runtime: ServiceRuntime, service: LoansService) -> APIRouter:  # noqa: C901, PLR0915 - one route each
    router = APIRouter()
    tz = ZoneInfo(service.settings.business_timezone)

    def today() -> date:
        return datetime.now(tz).date()

    @router.post("/tick", tags=["collectibility"])
    async def tick(command: TickCommand) -> dict[str, Any]:
        """Grade the book as of a business date: overdue installments and grade changes are announced once."""
        result = await service.tick(runtime.pool, command.date, runtime.emit)
        return {
            "as_of": result.as_of.isoformat(),
            "loans_checked": result.loans_checked,
            "overdue_announced": result.overdue_announced,
            "grade_changes": result.grade_changes,
        }

    @router.get("/loans/{loan_id}", tags=["loans"])
    async def get_loan(
        loan_id: str,
        as_of: Annotated[date | None, Query(description="arrears as of (default: last tick)")] = None,
    ) -> dict[str, Any]:
        """The loan with its current schedule and its arrears."""
        async with runtime.pool.acquire() as conn:
            record = await repo.load_loan(conn, loan_id)
            if record is None:
                raise NotFound("loan", loan_id)
            when = as_of or await repo.last_tick(conn) or today()
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

    @router.get("/loans/{loan_id}/restructurings/preview", tags=["restructuring"])
    async def preview(  # noqa: PLR0917 - one query parameter per scheme
        loan_id: str,
        reschedule_from: date,
        extra_months: Annotated[int | None, Query(ge=1)] = None,
        grace_months: Annotated[int | None, Query(ge=1)] = None,
        grace_on: GraceOn = GraceOn.PRINCIPAL,
        new_annual_rate: str | None = None,
        capitalise_arrears: bool = False,
        principal_arrears_reduction: str | None = None,
        interest_arrears_reduction: str | None = None,
        reason: RestructuringReason = RestructuringReason.COVID19_DIRECT,
        requested_on: Annotated[date | None, Query(description="default: today (Asia/Jakarta)")] = None,
    ) -> dict[str, Any]:
        """The schedule a proposal would give, and how the policy would assess it. Nothing is changed."""
        proposal: list[dict[str, Any]] = []
        if extra_months:
            proposal.append({"scheme": "tenor_extension", "extra_months": extra_months})
        if grace_months:
            proposal.append({"scheme": "grace_period", "months": grace_months, "on": grace_on.value})
        if new_annual_rate is not None:
            proposal.append({"scheme": "rate_reduction", "new_annual_rate": new_annual_rate})
        if capitalise_arrears:
            proposal.append({"scheme": "arrears_capitalization"})
        if principal_arrears_reduction is not None:
            proposal.append({"scheme": "principal_arrears_reduction", "amount": principal_arrears_reduction})
        if interest_arrears_reduction is not None:
            proposal.append({"scheme": "interest_arrears_reduction", "amount": interest_arrears_reduction})
        try:
            data = RestructuringRequested.model_validate(
                {
                    "request_id": "preview",
                    "loan_id": loan_id,
                    "requested_on": (requested_on or min(today(), reschedule_from)).isoformat(),
                    "reason": reason.value,
                    "impact": {"revenue_drop_pct": "0"},
                    "proposal": proposal,
                    "reschedule_from": reschedule_from.isoformat(),
                }
            )
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]) from None
        async with runtime.pool.acquire() as conn:
            record = await repo.load_loan(conn, loan_id)
            if record is None:
                raise NotFound("loan", loan_id)
            assessment, facts = await service.assess(conn, record, data)
        response: dict[str, Any] = {
            "loan_id": loan_id,
            "reschedule_from": reschedule_from.isoformat(),
            "proposal": proposal,
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

    @router.post("/restructurings", tags=["restructuring"], status_code=201)
    async def request_restructuring(body: RestructuringRequestBody, response: Response) -> dict[str, Any]:
        """Ask for a restructuring; handled exactly like the event, and decided at once by the policy."""
        request_id = body.request_id or f"RR-{uuid.uuid4()}"
        async with runtime.pool.acquire() as conn:
            existing = await repo.load_request(conn, request_id)
        if existing is None:
            fields = body.model_dump(mode="json", exclude={"request_id"})
            try:
                data = RestructuringRequested.model_validate({**fields, "request_id": request_id})
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                ) from None
            try:
                await runtime.submit(data, consumer=CONSUMER)
            except Retry as exc:
                if exc.code == "loan_unknown":
                    raise NotFound("loan", body.loan_id) from None
                raise
        else:
            response.status_code = 200
        async with runtime.pool.acquire() as conn:
            row = await repo.load_request(conn, request_id)
        if row is None:  # pragma: no cover - written just above
            raise NotFound("restructuring request", request_id)
        return repo.request_json(row)

    @router.get("/restructurings", tags=["restructuring"])
    async def list_restructurings(
        status: Literal["approved", "rejected", "referred"] | None = None,
        region: Annotated[str | None, Query(description="a province or a city")] = None,
        province: str | None = None,
        city: str | None = None,
        loan_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            items = await repo.list_requests(
                conn,
                status=status,
                region=region,
                province=province,
                city=city,
                loan_id=loan_id,
                limit=limit,
                offset=offset,
            )
        return {"items": items, "limit": limit, "offset": offset}

    @router.get("/restructurings/{request_id}", tags=["restructuring"])
    async def get_restructuring(request_id: str) -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            row = await repo.load_request(conn, request_id)
        if row is None:
            raise NotFound("restructuring request", request_id)
        return repo.request_json(row)

    @router.post("/restructurings/{request_id}/decision", tags=["restructuring"])
    async def decide(request_id: str, body: DecisionBody) -> dict[str, Any]:
        """An officer approves or rejects a referred request, with a reason. Other states get 409."""
        await service.decide(
            runtime.pool,
            runtime.emit,
            request_id,
            approve=body.decision == "approve",
            reason=body.reason,
            officer=body.officer,
            decided_on=body.decided_on or today(),
        )
        async with runtime.pool.acquire() as conn:
            row = await repo.load_request(conn, request_id)
        assert row is not None  # noqa: S101 - decide() found it
        return repo.request_json(row)

    @router.get("/progress", tags=["progress"])
    async def get_progress(province: str | None = None, city: str | None = None) -> dict[str, Any]:
        """Restructuring progress: requests by status, principal restructured, approval rate, median days
        to decision and the share of restructured borrowers performing now; by region and by cooperative."""
        async with runtime.pool.acquire() as conn:
            return await progress_model.progress(conn, province, city)

    return router
