"""Products: submissions and stock counts from sellers (events), curators' decisions and delisting (commands).

Rules: ``docs/rules/catalog.md``, section "Curation".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from kumkm_catalog import repository as repo
from kumkm_catalog.domain import permissions
from kumkm_catalog.domain.access import check_in_scope
from kumkm_catalog.domain.curation import (
    CurationStep,
    ProductStatus,
    RevisionVerdict,
    Submission,
    approval_price,
    check_can_curate,
    check_can_delist,
    classify_revision,
    curation_step,
    run_prechecks,
    status_after_decision,
    status_after_step,
)
from kumkm_catalog.domain.orders import Verdict
from kumkm_catalog.handlers.strictness import Handling, handling
from kumkm_shared import NotFound, Refusal, Retry
from kumkm_shared.contracts import (
    ChecklistItem,
    CurationDecision,
    DelistReason,
    ProductCurated,
    ProductDelisted,
    ProductStockUpdated,
    ProductSubmitted,
    SanctionLift,
    SellerSummary,
)
from kumkm_shared.contracts.types import Region

if TYPE_CHECKING:
    from decimal import Decimal

    from kumkm_catalog.domain.curation import CurationRules
    from kumkm_shared import Clock, EventContext, Work
    from kumkm_shared.contracts import CatalogTier
    from kumkm_shared.origin import Actor

log = structlog.get_logger(__name__)

POLICY_CURATOR = "policy"


def _summary(row: repo.Record) -> SellerSummary:
    return SellerSummary(
        nib=row["seller_nib"],
        name=row["seller_name"],
        region=Region(province=row["province"], city=row["city"]),
    )


def _checklist(items: list[dict[str, Any]]) -> list[ChecklistItem]:
    return [ChecklistItem(item=i["item"], passed=i["passed"], note=i.get("note", "")) for i in items]


@dataclass
class ProductHandlers:
    """Submission, curation, stock and delisting of products."""

    rules: CurationRules
    clock: Clock

    async def on_product_submitted(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(ProductSubmitted)
        await ctx.require_mandate(data.seller.nib)  # a seller system submits only for its mandate's NIBs
        current = await repo.get_product(ctx.conn, data.product_id, for_update=True)
        current_revision: int | None = None if current is None else current["revision"]
        revision = classify_revision(current_revision, data.revision)
        if revision is not RevisionVerdict.NEW:
            if handling(Verdict.STALE, ctx) is Handling.REFUSE:
                raise Refusal(
                    f"revision_{revision.value}",
                    f"revision {data.revision} is not newer than the current revision {current_revision}",
                )
            log.info(
                "product revision ignored",
                product_id=data.product_id,
                revision=data.revision,
                current_revision=current_revision,
                verdict=revision.value,
            )
            return
        if current is not None and current["seller_nib"] != data.seller.nib:
            raise Refusal("seller_mismatch", f"product {data.product_id} belongs to another seller")
        outcome = run_prechecks(
            Submission(
                nib=data.seller.nib,
                scale=data.seller.scale.value,
                category=data.category,
                unit_price=data.unit_price,
                min_order_qty=data.min_order_qty,
                stock=data.stock,
                tkdn_pct=data.tkdn_pct,
            ),
            self.rules,
        )
        precheck = [
            {"item": r.check.value, "passed": r.passed, "note": r.note, "failure": r.failure}
            for r in outcome.results
        ]
        decision = outcome.decision
        now = self.clock.now()
        curation = None
        if decision is not None:
            curation = {"decision": decision.value, "curator": POLICY_CURATOR, "notes": outcome.summary()}
        status = ProductStatus.PENDING_CURATION if decision is None else status_after_decision(decision)
        await repo.save_submission(
            ctx.conn, data, status=status.value, precheck=precheck, curation=curation, at=now
        )
        if decision is not None:
            await ctx.emit(
                ProductCurated(
                    product_id=data.product_id,
                    revision=data.revision,
                    seller=SellerSummary(
                        nib=data.seller.nib, name=data.seller.name, region=data.seller.region
                    ),
                    name=data.name,
                    category=data.category,
                    decision=decision,
                    checklist=_checklist(precheck),
                    notes=outcome.summary(),
                    curator=POLICY_CURATOR,
                    decided_at=now,
                )
            )

    async def curate(
        self,
        work: Work,
        product_id: str,
        *,
        actor: Actor,
        decision: CurationDecision,
        notes: str,
        tier: CatalogTier | None,
        listed_price: Decimal | None,
        checklist: list[ChecklistItem],
        revision: int | None,
        lift_sanction: bool = False,
    ) -> ProductCurated | None:
        """A curator's decision on the product's current revision, as ``actor`` (the verified token's
        subject is the event's ``curator``). ``None`` when it is the first curator's lift of a sanction: the
        lift is recorded and the product awaits a second curator. ``CurationRefusal`` when the product's
        state does not allow it, ``Forbidden`` outside the actor's regions or for the same curator twice."""
        product = await repo.get_product(work.conn, product_id, for_update=True)
        if product is None:
            raise NotFound("product", product_id)
        check_in_scope(actor.scope, permissions.CURATE, "product", product["province"], product["city"])
        check_can_curate(ProductStatus(product["status"]), product["revision"], revision)
        approved = decision is CurationDecision.APPROVED
        first_lift = product["sanction_lift"]
        curator = actor.subject
        step = curation_step(
            permissions.CURATE,
            curator=curator,
            first_lift_by=None if first_lift is None else first_lift["curator"],
            sanction=product["sanction"],
            approved=approved,
            lift=lift_sanction,
            notes=notes,
        )
        price = approval_price(decision, tier=tier, requested=listed_price, submitted=product["unit_price"])
        now = self.clock.now()
        if step is CurationStep.FIRST_LIFT:
            lift = {
                "curator": curator,
                "at": now.isoformat(),
                "notes": notes,
                "revision": product["revision"],
                "tier": None if tier is None else tier.value,
                "listed_price": None if price is None else str(price),
            }
            await repo.request_sanction_lift(
                work.conn, product_id, status=status_after_step(step, decision).value, lift=lift
            )
            return None
        items = _checklist(product["precheck"]) + list(checklist)
        sanction_lift = None
        if step is CurationStep.SECOND_LIFT:  # on the record, for every subscriber of product.curated
            items.append(ChecklistItem(item="sanction_lifted", passed=True, note=notes))
            sanction_lift = SanctionLift(
                first_curator=first_lift["curator"],
                first_notes=first_lift.get("notes", ""),
                first_decided_at=first_lift["at"],
                second_curator=curator,
            )
        event = ProductCurated(
            product_id=product_id,
            revision=product["revision"],
            seller=_summary(product),
            name=product["name"],
            category=product["category"],
            decision=decision,
            checklist=items,
            notes=notes,
            listed_price=price,
            tier=tier if approved else None,
            curator=curator,
            decided_at=now,
            sanction_lift=sanction_lift,
        )
        curation: dict[str, Any] = {"decision": decision.value, "curator": curator, "notes": notes}
        if first_lift is not None:
            curation["sanction_lift"] = first_lift  # completed or refused by this decision
        await repo.save_curation(
            work.conn,
            product_id,
            status=status_after_step(step, decision).value,
            listed_price=price,
            tier=event.tier.value if event.tier else None,
            curation=curation,
            lift_sanction=step is CurationStep.SECOND_LIFT,
        )
        await work.emit(event)
        return event

    async def on_stock_updated(self, ctx: EventContext) -> None:
        data = ctx.event.data_as(ProductStockUpdated)
        await ctx.require_mandate(data.seller.nib)  # and the stored product's seller is compared below
        product = await repo.get_product(ctx.conn, data.product_id, for_update=True)
        if product is None:
            if handling(Verdict.AHEAD, ctx) is Handling.REFUSE:
                raise NotFound("product", data.product_id)
            raise Retry("product_unknown", f"product {data.product_id} is not known (yet)")
        if product["seller_nib"] != data.seller.nib:
            raise Refusal("seller_mismatch", f"product {data.product_id} belongs to another seller")
        if product["stock_as_of"] is not None and data.as_of <= product["stock_as_of"]:
            if handling(Verdict.STALE, ctx) is Handling.REFUSE:
                raise Refusal(
                    "stale_stock_update",
                    f"a newer stock count (as of {product['stock_as_of'].isoformat()}) is already recorded",
                )
            log.info("older stock update ignored", product_id=data.product_id, as_of=data.as_of.isoformat())
            return
        await repo.set_stock(ctx.conn, data.product_id, data.stock, data.as_of)

    async def delist(
        self, work: Work, product_id: str, *, actor: Actor, reason: DelistReason, note: str
    ) -> ProductDelisted:
        """Take a listed product out of the catalog, as ``actor`` (recorded as ``delisted_by``); a sanction
        is remembered through later revisions."""
        product = await repo.get_product(work.conn, product_id, for_update=True)
        if product is None:
            raise NotFound("product", product_id)
        check_in_scope(actor.scope, permissions.DELIST, "product", product["province"], product["city"])
        check_can_delist(ProductStatus(product["status"]))
        now = self.clock.now()
        sanction = None
        if reason is DelistReason.SANCTIONED:
            sanction = {
                "at": now.isoformat(),
                "note": note,
                "revision": product["revision"],
                "by": actor.subject,
            }
        await repo.delist(work.conn, product_id, reason.value, sanction=sanction)
        event = ProductDelisted(
            product_id=product_id,
            seller=_summary(product),
            reason=reason,
            note=note,
            delisted_at=now,
            delisted_by=actor.subject,
        )
        await work.emit(event)
        return event
