"""The loans service layer: each event or command in, a domain decision, state and outbox out.

The runtime owns every transaction: event handlers get the consumer's ``EventContext`` (the inbox row
commits with them), an officer's decision gets the ``CommandContext`` of ``runtime.command``, and the tick,
which runs one transaction per loan, gets ``begin`` to open each. Both contexts are a ``Work``; nothing here
opens a connection or a transaction. Times and business dates come from the injected ``Clock``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog

from kumkm_loans import repository as repo
from kumkm_loans.domain import (
    AWAITING_SECOND_APPROVAL,
    Assessment,
    Outcome,
    PolicyReason,
    RequestFacts,
    RestructuringPolicy,
    Step,
    Terms,
    build_schedule,
    check_decision,
    check_in_scope,
    check_still_eligible,
    decision_step,
    permissions,
    plan_restructuring,
    position_at,
)
from kumkm_shared import NotFound, Refusal, Retry
from kumkm_shared.clock import SystemClock, business_date
from kumkm_shared.contracts import Reason
from kumkm_shared.contracts.loans import (
    CollectibilityChangeCause,
    InstallmentOverdue,
    LoanCollectibilityChanged,
    LoanDisbursed,
    RepaymentReceived,
    RestructuringApproved,
    RestructuringReferred,
    RestructuringRejected,
    RestructuringRequested,
    ScheduleSummary,
)
from kumkm_shared.messaging.consumer import NOT_AUTHORISED_FOR_PARTY, audit_denial

if TYPE_CHECKING:
    from datetime import date, datetime

    from kumkm_loans.repository import Conn, LoanRecord
    from kumkm_loans.settings import LoansSettings
    from kumkm_shared import Begin, EventContext, Work
    from kumkm_shared.clock import Clock
    from kumkm_shared.origin import Actor

log = structlog.get_logger(__name__)

POLICY = "policy"
# A sender's id already taken by another lender's loan, or by another loan's (or sender's) payment.
LOAN_ID_TAKEN = "loan_id_taken"
PAYMENT_ID_TAKEN = "payment_id_taken"


@dataclass(frozen=True, slots=True)
class TickResult:
    as_of: date
    loans_checked: int
    overdue_announced: int
    grade_changes: int


@dataclass
class LoansService:
    settings: LoansSettings
    clock: Clock = field(default_factory=SystemClock)
    policy: RestructuringPolicy = field(init=False)
    timezone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self.policy = RestructuringPolicy(self.settings.policy_limits())
        self.timezone = ZoneInfo(self.settings.business_timezone)

    def today(self) -> date:
        """Today's business date (the settings' time zone, Asia/Jakarta), on the service's clock."""
        return business_date(self.clock, self.timezone)

    # -- loan book ------------------------------------------------------------------------------------

    async def on_disbursed(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(LoanDisbursed)
        await ctx.require_mandate(data.lender)  # a lender disburses only in its own name
        # A repayment handled concurrently would otherwise park after this looked for parked payments.
        await ctx.lock(f"loan:{data.loan_id}")
        schedule = build_schedule(
            data.principal, data.annual_rate, data.tenor_months, data.method, data.first_due_on
        )
        if not await repo.insert_loan(ctx.conn, data, schedule.installments):
            lender = await repo.loan_lender(ctx.conn, data.loan_id)
            if lender != data.lender:
                # Ids are the senders' choice: another lender's loan id is not a duplicate of this one.
                raise Refusal(LOAN_ID_TAKEN, f"loan id {data.loan_id!r} is on the book for another lender")
            log.info("loan already on the book; disbursement ignored", loan_id=data.loan_id)
            return
        for parked in await repo.take_parked(ctx.conn, data.loan_id):
            repayment = RepaymentReceived.model_validate(parked.data)
            if parked.sender is not None:
                # Parked before anyone knew the loan's lender: the sender's mandate is checked now.
                refusal = await ctx.mandate_refusal(parked.sender, data.lender, RepaymentReceived.event_type)
                if refusal is not None:
                    await self._refuse_parked(ctx, parked, refusal)
                    continue
            try:
                await self._apply_repayment(ctx.conn, repayment, parked.event_id)
            except Refusal as exc:  # its payment id was taken meanwhile: kept as refused, never applied
                await repo.record_refused_repayment(ctx.conn, parked, exc.code, exc.reason)
                log.warning("parked repayment refused", code=exc.code, reason=exc.reason)

    async def _refuse_parked(self, ctx: EventContext, parked: repo.ParkedRepayment, reason: str) -> None:
        """A parked repayment whose sender turned out not to act for the loan's lender: never applied."""
        ctx.count_denial(RepaymentReceived.event_type)
        await repo.record_refused_repayment(ctx.conn, parked, NOT_AUTHORISED_FOR_PARTY, reason)
        await audit_denial(
            ctx.conn,
            subject=f"{RepaymentReceived.event_type}.{parked.sender}",
            request_id=f"parked:{parked.event_id}",
            sender=parked.sender,
            event_type=RepaymentReceived.event_type,
            target=str(parked.data["loan_id"]),
            reason=f"parked repayment {parked.data['payment_id']}: {reason}",
        )
        log.warning("parked repayment refused", code=NOT_AUTHORISED_FOR_PARTY, reason=reason)

    async def on_repayment(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(RepaymentReceived)
        await ctx.lock(f"loan:{data.loan_id}")
        lender = await repo.loan_lender(ctx.conn, data.loan_id)
        # Only the loan's lender, or a payment channel collecting for it, reports repayments.
        await ctx.require_mandate(lender)
        if lender is None:
            # It may arrive before the disbursement: kept, and applied when the loan arrives (its sender's
            # mandate for the loan's lender is checked then).
            if not await repo.park_repayment(ctx.conn, data, ctx.envelope.id, ctx.sender):
                raise Refusal(
                    PAYMENT_ID_TAKEN,
                    f"payment id {data.payment_id!r} is taken by another loan's or sender's repayment",
                )
            log.info(
                "repayment parked until its loan is disbursed",
                loan_id=data.loan_id,
                payment_id=data.payment_id,
            )
            return
        await self._apply_repayment(ctx.conn, data, ctx.envelope.id)

    async def _apply_repayment(self, conn: Conn, data: RepaymentReceived, event_id: Any) -> None:
        if not await repo.claim_payment(conn, data, event_id):
            if await repo.payment_loan(conn, data.payment_id) != data.loan_id:
                raise Refusal(PAYMENT_ID_TAKEN, f"payment id {data.payment_id!r} is applied to another loan")
            log.info("payment already applied", payment_id=data.payment_id)
            return
        record = await repo.load_loan(conn, data.loan_id, lock=True)
        if record is None:  # pragma: no cover - checked by the callers
            raise Retry("loan_unknown", f"loan {data.loan_id!r} is not on the book yet")
        loan = record.loan
        if loan.closed:
            nothing = Decimal(0)
            await repo.record_allocation(
                conn,
                data.payment_id,
                interest=nothing,
                principal=nothing,
                prepaid=nothing,
                unapplied=data.amount,
            )
            await repo.update_loan_state(conn, loan, unapplied=data.amount)
            return
        version = loan.schedule_version
        allocation = loan.apply_repayment(data.amount, data.paid_on)
        touched = [loan.installments[i] for i in allocation.touched]
        await repo.save_payments(conn, loan.loan_id, touched)
        if allocation.reamortised_from is not None:
            first_no = (
                loan.installments[allocation.reamortised_from].no
                if allocation.reamortised_from < len(loan.installments)
                else touched[-1].no + 1
            )
            for inst in loan.installments[allocation.reamortised_from :]:
                inst.version = version
            await repo.replace_tail(
                conn, loan.loan_id, version, first_no, loan.installments[allocation.reamortised_from :]
            )
        await repo.record_allocation(
            conn,
            data.payment_id,
            interest=allocation.interest,
            principal=allocation.principal,
            prepaid=allocation.prepaid_principal,
            unapplied=allocation.unapplied,
        )
        await repo.update_loan_state(conn, loan, unapplied=allocation.unapplied)

    # -- collectibility -------------------------------------------------------------------------------

    def past_hour(self, hour: int) -> bool:
        """Whether today's ``hour`` o'clock in the business time zone has passed, on the service's clock."""
        return self.clock.now().astimezone(self.timezone).hour >= hour

    async def ticked(self, begin: Begin, as_of: date) -> bool:
        """Whether a tick for ``as_of`` has been recorded (by any replica, any run)."""
        async with begin() as work:
            return await repo.ticked(work.conn, as_of)

    async def tick(self, begin: Begin, as_of: date) -> TickResult:
        """Grade every active loan as of ``as_of``; each overdue installment and grade change is told once.

        ``begin`` opens one transaction (``runtime.command``): one for the candidates, one per loan, so a
        loan's events commit with its grade, and one to record the tick.
        """
        async with begin() as work:
            candidates = await repo.tick_candidates(work.conn, as_of)
        overdue = changes = 0
        for loan_id in candidates:
            async with begin() as work:
                o, c = await self._tick_loan(work, loan_id, as_of)
            overdue += o
            changes += c
        async with begin() as work:
            await repo.record_tick(work.conn, as_of, overdue, changes)
        log.info("tick done", as_of=str(as_of), loans=len(candidates), overdue=overdue, grade_changes=changes)
        return TickResult(as_of, len(candidates), overdue, changes)

    async def _tick_loan(self, work: Work, loan_id: str, as_of: date) -> tuple[int, int]:
        conn = work.conn
        record = await repo.load_loan(conn, loan_id, lock=True)
        if record is None or not record.active:
            return 0, 0
        loan = record.loan
        dpd = loan.days_past_due(as_of)
        grade = loan.grade(as_of)
        announced = []
        for inst in loan.installments:
            if inst.due_on >= as_of:
                break
            if inst.is_paid or inst.overdue_announced:
                continue
            inst.overdue_announced = True
            announced.append(inst)
            await work.emit(
                InstallmentOverdue(
                    loan_id=loan_id,
                    borrower=record.borrower,
                    installment_no=inst.no,
                    due_on=inst.due_on,
                    amount_due=inst.unpaid,
                    days_past_due=(as_of - inst.due_on).days,
                    collectibility=grade,
                    as_of=as_of,
                ),
            )
        await repo.save_payments(conn, loan_id, announced)
        changed = 0
        if grade != loan.collectibility:
            await work.emit(
                LoanCollectibilityChanged(
                    loan_id=loan_id,
                    borrower=record.borrower,
                    previous=loan.collectibility,
                    current=grade,
                    days_past_due=dpd,
                    as_of=as_of,
                    cause=CollectibilityChangeCause.DAYS_PAST_DUE,
                ),
            )
            await repo.record_grade(conn, loan_id, as_of, grade, dpd, "tick")
            loan.collectibility = grade
            changed = 1
        await repo.save_grade(conn, loan_id, grade, dpd, as_of)
        return len(announced), changed

    # -- restructuring --------------------------------------------------------------------------------

    async def on_restructuring_requested(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(RestructuringRequested)
        conn = ctx.conn
        # The sender first (its role, an active mandate): before a replayed request id is acked as a
        # duplicate or an unknown loan is retried. Its borrower is checked once the loan is read.
        await ctx.require_mandate(None)
        if not await repo.claim_request(conn, data, ctx.envelope.id):
            log.info("restructuring request already decided; duplicate ignored", request_id=data.request_id)
            return
        record = await repo.load_loan(conn, data.loan_id, lock=True)
        if record is None:
            if ctx.is_command:
                # Asked over HTTP: the answer is final now (nothing is stored, the transaction rolls back).
                raise NotFound("loan", data.loan_id)
            # From the stream the disbursement may still be on its way; its outcome events need the borrower.
            raise Retry("loan_unknown", f"loan {data.loan_id!r} is not on the book (yet)")
        # A cooperative's system asks only for its own loans.
        await ctx.require_mandate(record.borrower.id)
        if ctx.actor is not None:
            # A person asks for their own region's borrowers only; the stream's integrators are not limited.
            region = record.borrower.region
            what = f"loan {data.loan_id!r}"
            check_in_scope(
                ctx.actor.scope, permissions.REQUEST_RESTRUCTURING, what, region.province, region.city
            )
        terms = Terms.from_schemes(data.proposal)
        facts = await self._facts(conn, record, data, terms)
        assessment = self.policy.assess(facts)
        if assessment.outcome == Outcome.APPROVED:
            await self._approve(
                ctx,
                record,
                data.request_id,
                terms,
                data.reschedule_from,
                decided_by=POLICY,
                decided_on=data.requested_on,
                reason_codes=[],
                note="",
                proposal=list(data.proposal),
            )
            return
        reasons = _reasons(assessment)
        now = self.clock.now()
        if assessment.outcome == Outcome.REJECTED:
            await ctx.emit(
                RestructuringRejected(
                    request_id=data.request_id,
                    loan_id=data.loan_id,
                    borrower=record.borrower,
                    decided_by=POLICY,
                    decided_at=now,
                    reason_codes=assessment.codes,
                    reasons=reasons,
                ),
            )
        else:
            await ctx.emit(
                RestructuringReferred(
                    request_id=data.request_id,
                    loan_id=data.loan_id,
                    borrower=record.borrower,
                    referred_at=now,
                    reason_codes=assessment.codes,
                    reasons=reasons,
                ),
            )
        await repo.record_decision(
            conn,
            data.request_id,
            status=assessment.outcome.value,
            borrower=record.borrower,
            reasons=[r.model_dump(mode="json", exclude_none=True) for r in reasons],
            outstanding_principal=facts.position.outstanding_principal,
            decided_by=POLICY,
            decided_at=now,
            decided_on=data.requested_on,
        )

    async def _facts(
        self, conn: Conn, record: LoanRecord, data: RestructuringRequested, terms: Terms
    ) -> RequestFacts:
        cutoff = self.policy.limits.collectibility_cutoff
        grade_at_cutoff = await repo.grade_as_of(conn, data.loan_id, cutoff)
        return RequestFacts(
            loan_active=record.active,
            reason=data.reason,
            requested_on=data.requested_on,
            reschedule_from=data.reschedule_from,
            # A loan disbursed after the cut-off was not non-performing before the pandemic.
            grade_at_cutoff=grade_at_cutoff or 1,
            open_requests=await repo.open_requests(conn, data.loan_id, other_than=data.request_id),
            prior_restructurings=record.loan.restructure_count,
            current_rate=record.loan.annual_rate,
            position=position_at(record.loan, data.reschedule_from),
            terms=terms,
        )

    async def assess(
        self, conn: Conn, record: LoanRecord, data: RestructuringRequested
    ) -> tuple[Assessment, RequestFacts]:
        terms = Terms.from_schemes(data.proposal)
        facts = await self._facts(conn, record, data, terms)
        return self.policy.assess(facts), facts

    async def _approve(
        self,
        work: Work,
        record: LoanRecord,
        request_id: str,
        terms: Terms,
        reschedule_from: date,
        *,
        decided_by: str,
        decided_on: date,
        reason_codes: list[str],
        note: str,
        proposal: list[Any],
        maker: FirstApproval | None = None,
    ) -> None:
        conn, loan = work.conn, record.loan
        plan = plan_restructuring(loan, terms, reschedule_from)
        kept = [i for i in loan.installments if i.due_on < reschedule_from and i.is_paid]
        new_version = loan.schedule_version + 1
        for inst in plan.schedule.installments:
            inst.version = new_version
        await repo.supersede(conn, loan.loan_id, kept)
        await repo.insert_installments(conn, loan.loan_id, plan.schedule.installments)
        previous_grade = loan.collectibility
        loan.installments = kept + plan.schedule.installments
        loan.schedule_version = new_version
        loan.restructure_count += 1
        loan.annual_rate = plan.schedule.annual_rate
        loan.collectibility = 1
        await repo.update_loan_state(conn, loan, days_past_due=0, graded_on=decided_on)
        summary = ScheduleSummary(
            installments=len(plan.schedule.installments),
            regular_installment=plan.schedule.regular_installment,
            grace_months=plan.schedule.grace_months,
            annual_rate=plan.schedule.annual_rate,
            first_due_on=plan.schedule.first_due_on,
            maturity_on=plan.schedule.maturity_on,
            outstanding_principal=plan.base_principal,
            total_interest_before=plan.total_interest_before,
            total_interest_after=plan.total_interest_after,
        )
        now = self.clock.now()
        await work.emit(
            RestructuringApproved(
                request_id=request_id,
                loan_id=loan.loan_id,
                borrower=record.borrower,
                decided_by=decided_by,
                decided_at=now,
                reason_codes=reason_codes,
                terms=proposal,
                reschedule_from=reschedule_from,
                summary=summary,
                note=note,
                first_approved_by=maker.subject if maker else None,
                first_approved_at=maker.at if maker else None,
            ),
        )
        if previous_grade != 1:
            # POJK 11/2020: a restructured loan is graded lancar from the restructuring.
            await work.emit(
                LoanCollectibilityChanged(
                    loan_id=loan.loan_id,
                    borrower=record.borrower,
                    previous=previous_grade,
                    current=1,
                    days_past_due=0,
                    as_of=decided_on,
                    cause=CollectibilityChangeCause.RESTRUCTURING,
                ),
            )
        await repo.record_grade(conn, loan.loan_id, decided_on, 1, 0, "restructuring")
        await repo.record_decision(
            conn,
            request_id,
            status=Outcome.APPROVED.value,
            borrower=record.borrower,
            reasons=[],
            outstanding_principal=plan.base_principal,
            summary=summary.model_dump(mode="json"),
            decided_by=decided_by,
            decided_at=now,
            decided_on=decided_on,
            note=note or None,
        )

    async def decide(
        self,
        work: Work,
        request_id: str,
        *,
        approve: bool,
        reason: str,
        actor: Actor,
        decided_on: date,
    ) -> None:
        """A person's decision on a request waiting for one, in the command's transaction (``work``).

        The decider is the verified ``actor``; their region must cover the request, and above the
        second-approval threshold an approval takes two people (``decision_step``).
        """
        conn = work.conn
        row = await repo.load_request(conn, request_id, lock=True)
        if row is None:
            raise NotFound("restructuring request", request_id)
        what = f"restructuring request {request_id!r}"
        check_in_scope(actor.scope, permissions.DECIDE, what, row["province"], row["city"])
        maker = _first_approval(row)
        check_decision(
            request_id,
            row["status"],
            requested_on=row["requested_on"],
            decided_on=decided_on,
            first_approved_on=maker.on if maker else None,
        )
        step = decision_step(
            status=row["status"],
            approve=approve,
            outstanding_principal=row["outstanding_principal"],
            second_approval_above=self.settings.second_approval_above,
            decider=actor.subject,
            decider_roles=actor.roles,
            maker=maker.subject if maker else None,
        )
        record = await repo.load_loan(conn, row["loan_id"], lock=True)
        if record is None:  # pragma: no cover - a referred request has a loan
            raise NotFound("loan", row["loan_id"])
        data = RestructuringRequested(
            request_id=request_id,
            loan_id=row["loan_id"],
            requested_on=row["requested_on"],
            reason=row["reason"],
            impact=row["impact"],
            proposal=row["proposal"],
            reschedule_from=row["reschedule_from"],
        )
        referral_codes = list(row["reason_codes"])
        decider = actor.subject
        if step is not Step.REJECT:
            terms = Terms.from_schemes(data.proposal)
            facts = await self._facts(conn, record, data, terms)
            check_still_eligible(self.policy.rejections(facts))
            if step is Step.FIRST_APPROVAL:
                await repo.record_first_approval(
                    conn, request_id, by=decider, at=self.clock.now(), on=decided_on, note=reason
                )
                log.info("first approval recorded; waiting for a checker", request_id=request_id)
                return
            await self._approve(
                work,
                record,
                request_id,
                terms,
                data.reschedule_from,
                decided_by=decider,
                decided_on=decided_on,
                reason_codes=referral_codes,
                note=reason,
                proposal=list(data.proposal),
                maker=maker,
            )
            return
        officer_reason = Reason(
            code="officer_rejected",
            text_id=_clip(f"Ditolak oleh petugas {decider}: {reason}"),
            text_en=_clip(f"Rejected by officer {decider}: {reason}"),
        )
        now = self.clock.now()
        await work.emit(
            RestructuringRejected(
                request_id=request_id,
                loan_id=record.loan.loan_id,
                borrower=record.borrower,
                decided_by=decider,
                decided_at=now,
                reason_codes=["officer_rejected"],
                reasons=[officer_reason],
                first_approved_by=maker.subject if maker else None,
                first_approved_at=maker.at if maker else None,
            ),
        )
        await repo.record_decision(
            conn,
            request_id,
            status=Outcome.REJECTED.value,
            borrower=record.borrower,
            reasons=[officer_reason.model_dump(mode="json", exclude_none=True)],
            outstanding_principal=row["outstanding_principal"],
            decided_by=decider,
            decided_at=now,
            decided_on=decided_on,
            note=reason,
        )


@dataclass(frozen=True, slots=True)
class FirstApproval:
    """The maker's approval a request waiting for its second approval carries."""

    subject: str
    at: datetime
    on: date


def _first_approval(row: Any) -> FirstApproval | None:
    if row["status"] != AWAITING_SECOND_APPROVAL or row["first_approved_by"] is None:
        return None
    return FirstApproval(row["first_approved_by"], row["first_approved_at"], row["first_approved_on"])


def _reasons(assessment: Assessment) -> list[Reason]:
    return [_reason(r) for r in assessment.reasons]


def _reason(reason: PolicyReason) -> Reason:
    return Reason(code=reason.code, text_id=_clip(reason.text_id), text_en=_clip(reason.text_en))


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
