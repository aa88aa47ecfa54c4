"""The monitoring service layer: each event in, the read models out (a pure read side: it emits nothing).

Every handler records the fact the event carries, then recomputes the one party the fact is about
(``refresh_party``): its population and productive months before and after, and the difference applied to
the pre-aggregated counts. Registry events, and the loans context's events an integrator organisation
sends, are acted on only within the sender's mandate, by the same rule as the owning service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import structlog

from kumkm_monitoring import repository as repo
from kumkm_monitoring.domain import (
    Contribution,
    Months,
    SignalRules,
    Targets,
    contribution,
    delta,
)
from kumkm_shared import Retry
from kumkm_shared.clock import SystemClock, business_date
from kumkm_shared.contracts.catalog import OrderAccepted, OrderDelivered, OrderPaid, OrderStatusChanged
from kumkm_shared.contracts.loans import (
    LoanCollectibilityChanged,
    LoanDisbursed,
    RepaymentReceived,
    RestructuringApproved,
    RestructuringReferred,
    RestructuringRejected,
    RestructuringRequested,
)
from kumkm_shared.contracts.parties import (
    ActivityReported,
    CooperativeRegistered,
    CooperativeUpdated,
    UmkmRegistered,
    UmkmUpdated,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import date, datetime

    import asyncpg

    from kumkm_monitoring.repository import Conn
    from kumkm_monitoring.settings import MonitoringSettings
    from kumkm_shared import EventContext, Handler
    from kumkm_shared.clock import Clock

log = structlog.get_logger(__name__)

REGISTRY = "monitoring-registry"
LOANS = "monitoring-loans"
CATALOG = "monitoring-catalog"
DURABLES = (REGISTRY, LOANS, CATALOG)


@dataclass
class MonitoringService:
    settings: MonitoringSettings
    clock: Clock = field(default_factory=SystemClock)
    rules: SignalRules = field(init=False)
    targets: Targets = field(init=False)
    timezone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self.rules = self.settings.rules()
        self.targets = self.settings.target_table()
        self.timezone = ZoneInfo(self.settings.business_timezone)

    def today(self) -> date:
        return business_date(self.clock, self.timezone)

    def handlers(self) -> dict[str, Mapping[str, Handler]]:
        """Durable -> event type -> handler."""
        return {
            REGISTRY: {
                CooperativeRegistered.event_type: self.on_cooperative,
                CooperativeUpdated.event_type: self.on_cooperative,
                UmkmRegistered.event_type: self.on_umkm,
                UmkmUpdated.event_type: self.on_umkm,
                ActivityReported.event_type: self.on_activity,
            },
            LOANS: {
                LoanDisbursed.event_type: self.on_disbursed,
                RepaymentReceived.event_type: self.on_repayment,
                LoanCollectibilityChanged.event_type: self.on_collectibility,
                RestructuringRequested.event_type: self.on_restructuring_requested,
                RestructuringReferred.event_type: self.on_restructuring_referred,
                RestructuringApproved.event_type: self.on_restructuring_decided,
                RestructuringRejected.event_type: self.on_restructuring_decided,
            },
            CATALOG: {
                OrderAccepted.event_type: self.on_order_accepted,
                OrderStatusChanged.event_type: self.on_order_status,
            },
        }

    # -- the one recomputation ----------------------------------------------------------------------------

    async def refresh_party(self, conn: Conn, party_id: str) -> None:
        """Recompute one party's months from its facts and apply the change to the counts.

        The contribution counted before (under the key it was counted under: the record may have moved the
        party to another region or kind) is taken out and the new one put in, as one difference. A party
        the registry has not told of contributes nothing yet; its signals are kept and count from its
        registration on. Two round trips: the party with its facts, then the counts and its row.
        """
        party = await repo.load_party_facts(conn, party_id)
        if party is not None:
            await self._recount(conn, party)

    async def _recount(self, conn: Conn, party: asyncpg.Record) -> None:
        """Apply the change of a party (a row with its facts, ``repo.facts_of``) to the counts."""
        counted = party["counted_key"]
        before = (
            None
            if counted is None
            else Contribution(
                (counted[0], counted[1], counted[2], counted[3]),
                Months.from_sql(party["population_text"]),
                Months.from_sql(party["productive_text"]),
            )
        )
        facts = repo.facts_of(party)
        after = contribution(_key(party), facts, self.rules)
        await repo.save_contribution(conn, party, delta(before, after), after, facts)

    # -- registry ----------------------------------------------------------------------------------------

    async def _registry_record(self, ctx: EventContext, kind: str, party_id: str, as_of: date) -> None:
        await ctx.require_mandate(party_id)  # a registry organisation tells only of its mandate's parties
        # The lock is its own statement, before the one that reads the facts: the loans and catalog
        # durables refresh the same party in their own transactions, under the same lock.
        await ctx.lock(f"party:{party_id}")
        record = ctx.event.data.model_dump(mode="json")
        party = await repo.record_party(ctx.conn, kind, party_id, record, as_of)  # with its facts
        await self._recount(ctx.conn, party)

    async def on_cooperative(self, ctx: EventContext) -> None:
        data = ctx.event.data
        assert isinstance(data, CooperativeRegistered | CooperativeUpdated)  # noqa: S101 - routed by type
        await self._registry_record(ctx, "cooperative", data.cooperative_number, data.as_of)

    async def on_umkm(self, ctx: EventContext) -> None:
        data = ctx.event.data
        assert isinstance(data, UmkmRegistered | UmkmUpdated)  # noqa: S101 - routed by type
        await self._registry_record(ctx, "umkm", data.nib, data.as_of)

    async def on_activity(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(ActivityReported)
        await ctx.require_mandate(data.party_id)
        await ctx.lock(f"party:{data.party_id}")
        party = await repo.record_activity(  # with the party's facts, this report among them
            ctx.conn,
            data.party_id,
            data.as_of,
            operating=data.operating,
            revenue_band=data.revenue_band.value,
            survey=data.survey,
        )
        if party is not None:  # a party the registry has not told of yet: the report counts from then on
            await self._recount(ctx.conn, party)

    # -- loans -------------------------------------------------------------------------------------------

    async def on_disbursed(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(LoanDisbursed)
        await ctx.require_mandate(data.lender)  # a lender disburses only in its own name (as loans decides)
        await ctx.lock(f"loan:{data.loan_id}")
        borrower = data.borrower
        await ctx.lock(f"party:{borrower.id}")
        inserted = await repo.insert_loan(
            ctx.conn,
            loan_id=data.loan_id,
            lender=data.lender,
            borrower_kind=borrower.kind.value,
            borrower_id=borrower.id,
            province=borrower.region.province,
            city=borrower.region.city,
            disbursed_on=data.disbursed_on,
            principal=data.principal,
        )
        if not inserted:
            log.info("loan already known; disbursement ignored", loan_id=data.loan_id)
            return
        await repo.place_requests(ctx.conn, data.loan_id, borrower.region.province, borrower.region.city)
        for parked in await repo.pending_repayments(ctx.conn, data.loan_id):
            # Parked before anyone knew the loan's lender: the sender's mandate is checked now, as loans does.
            refusal = await ctx.mandate_refusal(parked["sender"], data.lender, RepaymentReceived.event_type)
            if refusal is not None:
                ctx.count_denial(RepaymentReceived.event_type)
                log.warning("parked repayment refused", code="not_authorised_for_party", reason=refusal)
            await repo.settle_repayment(ctx.conn, parked["payment_id"], accepted=refusal is None)
        await self.refresh_party(ctx.conn, borrower.id)

    async def on_repayment(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(RepaymentReceived)
        await ctx.lock(f"loan:{data.loan_id}")
        loan = await repo.load_loan(ctx.conn, data.loan_id)
        # Only the loan's lender, or a payment channel collecting for it (unknown before the disbursement).
        await ctx.require_mandate(None if loan is None else loan["lender"])
        if loan is not None:
            await ctx.lock(f"party:{loan['borrower_id']}")
        await repo.record_repayment(
            ctx.conn,
            payment_id=data.payment_id,
            loan_id=data.loan_id,
            paid_on=data.paid_on,
            amount=data.amount,
            pending=loan is None,
            sender=ctx.sender,
        )
        if loan is not None:
            await self.refresh_party(ctx.conn, loan["borrower_id"])

    async def on_collectibility(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(LoanCollectibilityChanged)  # the loans service's own outcome
        await ctx.lock(f"party:{data.borrower.id}")
        await repo.record_grade(ctx.conn, ctx.envelope.id, data.loan_id, data.as_of, data.current)
        await self.refresh_party(ctx.conn, data.borrower.id)

    async def on_restructuring_requested(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(RestructuringRequested)
        loan = await repo.load_loan(ctx.conn, data.loan_id)
        if ctx.sender is not None:
            # An organisation's request (``<type>.<org>``) counts only within its mandate, as loans decides:
            # a borrower's system asks for its own loans. The loans service's own copy names no sender.
            if loan is None:
                raise Retry(
                    "loan_unknown", f"no disbursement is known yet for loan {data.loan_id}", delay=1.0
                )
            await ctx.require_mandate(loan["borrower_id"])
        await repo.record_request(
            ctx.conn,
            data.request_id,
            data.loan_id,
            data.requested_on,
            None if loan is None else loan["province"],
            None if loan is None else loan["city"],
        )

    async def on_restructuring_referred(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(RestructuringReferred)
        region = data.borrower.region
        await repo.record_outcome(
            ctx.conn, data.request_id, data.loan_id, region.province, region.city, referred=True
        )

    async def on_restructuring_decided(self, ctx: EventContext) -> None:
        data = ctx.event.data
        assert isinstance(data, RestructuringApproved | RestructuringRejected)  # noqa: S101 - routed by type
        region = data.borrower.region
        approved = isinstance(data, RestructuringApproved)
        await repo.record_outcome(
            ctx.conn,
            data.request_id,
            data.loan_id,
            region.province,
            region.city,
            outcome="approved" if approved else "rejected",
            decided_on=self._business_day(data.decided_at),
            principal=data.summary.outstanding_principal if isinstance(data, RestructuringApproved) else None,
        )

    def _business_day(self, moment: datetime) -> date:
        return moment.astimezone(self.timezone).date()

    # -- catalog -----------------------------------------------------------------------------------------

    async def on_order_accepted(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(OrderAccepted)  # the catalog's own outcome
        # The procurement counts in the buyer's region (who spends), else where it is delivered, else the
        # seller's (docs/rules/monitoring.md, "Procurement").
        region = data.buyer.region or data.delivery.region or data.seller.region
        await repo.record_order(
            ctx.conn, data.order_id, data.seller.nib, region.province, region.city, data.total
        )

    async def on_order_status(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(OrderStatusChanged)  # the catalog's record of an applied step
        step = data.applied
        if isinstance(step, OrderDelivered):
            await ctx.lock(f"party:{data.seller.nib}")
            await repo.record_delivery(ctx.conn, data.order_id, data.seller.nib, step.delivered_on)
        elif isinstance(step, OrderPaid):
            await ctx.lock(f"party:{data.seller.nib}")
            await repo.record_payment(ctx.conn, data.order_id, data.seller.nib, step.paid_on, step.amount)
        else:
            return  # confirmed and shipped are no sale yet
        await self.refresh_party(ctx.conn, data.seller.nib)


def _key(party: asyncpg.Record) -> tuple[str, str, str, str]:
    return (str(party["province"]), str(party["city"]), str(party["district"]), str(party["kind"]))
