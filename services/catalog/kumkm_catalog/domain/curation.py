"""Curation: the automatic pre-checks that run before a curator decides, and the product lifecycle.

Rules: ``docs/rules/catalog.md``, section "Curation". Which failures end a submission and which only send it
back for revision:

- the seller is not eligible (``invalid_nib``, ``scale_not_eligible``) or the product does not carry enough
  local content (``tkdn_below_minimum``): **rejected**; the e-catalog's small-business track is closed to it;
- the offer itself needs fixing (``price_not_positive``, ``price_outside_band``, ``stock_below_min_order``):
  **revision_requested**; the seller corrects it and submits a higher revision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kumkm_shared.contracts import CatalogTier, CurationDecision
from kumkm_shared.errors import Forbidden, Refusal

if TYPE_CHECKING:
    from collections.abc import Mapping

NIB_PATTERN = re.compile(r"^\d{13}$")


class Check(StrEnum):
    """The pre-check checklist items, in the order they run."""

    VALID_NIB = "valid_nib"
    ELIGIBLE_SCALE = "eligible_scale"
    TKDN_MINIMUM = "tkdn_minimum"
    PRICE_POSITIVE = "price_positive"
    PRICE_IN_BAND = "price_in_band"
    STOCK_COVERS_MIN_ORDER = "stock_covers_min_order"


class PrecheckFailure(StrEnum):
    """Machine-readable codes of failed pre-checks."""

    INVALID_NIB = "invalid_nib"
    SCALE_NOT_ELIGIBLE = "scale_not_eligible"
    TKDN_BELOW_MINIMUM = "tkdn_below_minimum"
    PRICE_NOT_POSITIVE = "price_not_positive"
    PRICE_OUTSIDE_BAND = "price_outside_band"
    STOCK_BELOW_MIN_ORDER = "stock_below_min_order"


REJECTING_FAILURES = frozenset(
    {PrecheckFailure.INVALID_NIB, PrecheckFailure.SCALE_NOT_ELIGIBLE, PrecheckFailure.TKDN_BELOW_MINIMUM}
)
ELIGIBLE_SCALES = frozenset({"micro", "small", "medium"})


@dataclass(frozen=True)
class PriceBand:
    """The reference unit-price band of a category (both ends inclusive)."""

    low: Decimal
    high: Decimal

    def __post_init__(self) -> None:
        if not Decimal(0) < self.low <= self.high:
            raise ValueError(f"a price band needs 0 < low <= high, got {self.low}..{self.high}")


@dataclass(frozen=True)
class CurationRules:
    tkdn_min_pct: Decimal = Decimal(25)
    price_bands: Mapping[str, PriceBand] = field(default_factory=dict)
    eligible_scales: frozenset[str] = ELIGIBLE_SCALES


@dataclass(frozen=True)
class Submission:
    """What the pre-checks look at: a product revision as submitted."""

    nib: str
    scale: str
    category: str
    unit_price: Decimal
    min_order_qty: int
    stock: int
    tkdn_pct: Decimal


@dataclass(frozen=True)
class CheckResult:
    check: Check
    passed: bool
    note: str = ""
    failure: PrecheckFailure | None = None


@dataclass(frozen=True)
class PrecheckOutcome:
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[PrecheckFailure]:
        return [r.failure for r in self.results if r.failure is not None]

    @property
    def decision(self) -> CurationDecision | None:
        """The automatic decision, or ``None`` when the product waits for a curator."""
        failures = set(self.failures)
        if not failures:
            return None
        if failures & REJECTING_FAILURES:
            return CurationDecision.REJECTED
        return CurationDecision.REVISION_REQUESTED

    def summary(self) -> str:
        failed = [r for r in self.results if not r.passed]
        if not failed:
            return "All automatic pre-checks passed; waiting for a curator."
        return "Automatic pre-checks failed: " + "; ".join(f"{r.failure}: {r.note}" for r in failed)


def _ok(check: Check, note: str = "") -> CheckResult:
    return CheckResult(check, passed=True, note=note)


def _fail(check: Check, failure: PrecheckFailure, note: str) -> CheckResult:
    return CheckResult(check, passed=False, note=note, failure=failure)


def check_nib(nib: str) -> CheckResult:
    # 13 digits; a run of one repeated digit is a placeholder, not an OSS-issued number.
    if not NIB_PATTERN.match(nib) or len(set(nib)) == 1:
        return _fail(Check.VALID_NIB, PrecheckFailure.INVALID_NIB, f"NIB {nib!r} is not a valid 13-digit NIB")
    return _ok(Check.VALID_NIB)


def check_scale(scale: str, rules: CurationRules) -> CheckResult:
    if scale not in rules.eligible_scales:
        allowed = ", ".join(sorted(rules.eligible_scales))
        return _fail(
            Check.ELIGIBLE_SCALE,
            PrecheckFailure.SCALE_NOT_ELIGIBLE,
            f"seller scale {scale!r} is not eligible (allowed: {allowed})",
        )
    return _ok(Check.ELIGIBLE_SCALE, scale)


def check_tkdn(tkdn_pct: Decimal, rules: CurationRules) -> CheckResult:
    if tkdn_pct < rules.tkdn_min_pct:
        return _fail(
            Check.TKDN_MINIMUM,
            PrecheckFailure.TKDN_BELOW_MINIMUM,
            f"TKDN {tkdn_pct}% is below the minimum of {rules.tkdn_min_pct}%",
        )
    return _ok(Check.TKDN_MINIMUM, f"{tkdn_pct}%")


def check_price_positive(unit_price: Decimal) -> CheckResult:
    if unit_price <= 0:
        return _fail(
            Check.PRICE_POSITIVE,
            PrecheckFailure.PRICE_NOT_POSITIVE,
            f"unit price {unit_price} must be above 0",
        )
    return _ok(Check.PRICE_POSITIVE)


def check_price_band(category: str, unit_price: Decimal, rules: CurationRules) -> CheckResult:
    band = rules.price_bands.get(category)
    if band is None:
        return _ok(Check.PRICE_IN_BAND, f"no reference band for {category}")
    if not band.low <= unit_price <= band.high:
        return _fail(
            Check.PRICE_IN_BAND,
            PrecheckFailure.PRICE_OUTSIDE_BAND,
            f"unit price {unit_price} is outside the {category} reference band {band.low}..{band.high}",
        )
    return _ok(Check.PRICE_IN_BAND, f"{band.low}..{band.high}")


def check_stock(stock: int, min_order_qty: int) -> CheckResult:
    if stock < min_order_qty:
        return _fail(
            Check.STOCK_COVERS_MIN_ORDER,
            PrecheckFailure.STOCK_BELOW_MIN_ORDER,
            f"stock {stock} is below the minimum order quantity {min_order_qty}",
        )
    return _ok(Check.STOCK_COVERS_MIN_ORDER)


def run_prechecks(submission: Submission, rules: CurationRules) -> PrecheckOutcome:
    """Run every pre-check (all of them, so the seller sees every problem at once)."""
    results = [
        check_nib(submission.nib),
        check_scale(submission.scale, rules),
        check_tkdn(submission.tkdn_pct, rules),
        check_price_positive(submission.unit_price),
    ]
    if submission.unit_price > 0:
        results.append(check_price_band(submission.category, submission.unit_price, rules))
    results.append(check_stock(submission.stock, submission.min_order_qty))
    return PrecheckOutcome(tuple(results))


# ----------------------------------------------------------------------------------------------------------
# the product lifecycle


class ProductStatus(StrEnum):
    PENDING_CURATION = "pending_curation"
    AWAITING_SECOND_CURATOR = "awaiting_second_curator"  # one curator lifted a sanction; a second must agree
    LISTED = "listed"
    REVISION_REQUESTED = "revision_requested"
    REJECTED = "rejected"
    DELISTED = "delisted"


class RevisionVerdict(StrEnum):
    NEW = "new"  # first submission, or a higher revision: goes (back) through curation
    SAME = "same"  # the revision we already hold, re-sent under another event id: ignored
    OLDER = "older"  # a late, superseded revision: ignored with a log line


def classify_revision(current: int | None, incoming: int) -> RevisionVerdict:
    if current is None or incoming > current:
        return RevisionVerdict.NEW
    if incoming == current:
        return RevisionVerdict.SAME
    return RevisionVerdict.OLDER


def status_after_decision(decision: CurationDecision) -> ProductStatus:
    return {
        CurationDecision.APPROVED: ProductStatus.LISTED,
        CurationDecision.REVISION_REQUESTED: ProductStatus.REVISION_REQUESTED,
        CurationDecision.REJECTED: ProductStatus.REJECTED,
    }[decision]


class CurationRefusal(Refusal):
    """A curation or delisting decision the product's state does not allow (409 over HTTP)."""


DECIDABLE = frozenset({ProductStatus.PENDING_CURATION, ProductStatus.AWAITING_SECOND_CURATOR})


def check_can_curate(status: ProductStatus, product_revision: int, decided_revision: int | None) -> None:
    """A curator decides only a revision that waits for curation (or for a second curator), and only the
    current one."""
    if status not in DECIDABLE:
        raise CurationRefusal("not_pending_curation", f"the product is {status.value}, not pending curation")
    if decided_revision is not None and decided_revision != product_revision:
        raise CurationRefusal(
            "stale_revision",
            f"revision {decided_revision} was superseded; the current revision is {product_revision}",
        )


def check_can_delist(status: ProductStatus) -> None:
    if status is not ProductStatus.LISTED:
        raise CurationRefusal(
            "not_listed", f"only a listed product can be delisted; this one is {status.value}"
        )


def check_sanction(sanction: Mapping[str, Any] | None, *, approved: bool, lift: bool, notes: str) -> None:
    """A product once delisted as sanctioned is approved again only when the curator lifts the sanction
    explicitly, with a note saying why; other decisions need no lifting. Lifting an absent sanction is a
    mistake worth refusing too, so a curator never believes they lifted something that was not there."""
    if sanction is None:
        if lift:
            raise CurationRefusal("not_sanctioned", "the product carries no sanction to lift")
        return
    if lift and not approved:
        raise CurationRefusal("lift_needs_approval", "a sanction is lifted only by approving the product")
    if approved and not lift:
        raise CurationRefusal(
            "sanctioned",
            f"the product was delisted as sanctioned on {str(sanction.get('at', '?'))[:10]}"
            f" ({sanction.get('note') or 'no note'}); approve with lift_sanction and a note to lift it",
        )
    if lift and not notes.strip():
        raise CurationRefusal("note_required", "lifting a sanction needs a note saying why")


MAKER_IS_CHECKER = "maker_is_checker"


class CurationStep(StrEnum):
    """What a curator's decision does, given the product's sanction and a first curator's lift."""

    DECIDE = "decide"  # an ordinary decision: the product's status follows it, product.curated now
    FIRST_LIFT = "first_lift"  # the first curator lifts the sanction: recorded, the product awaits a second
    SECOND_LIFT = "second_lift"  # a different curator lifts it too: approved and listed, both named


def curation_step(
    permission: str,
    *,
    curator: str,
    first_lift_by: str | None,
    sanction: Mapping[str, Any] | None,
    approved: bool,
    lift: bool,
    notes: str,
) -> CurationStep:
    """The two-curator rule for lifting a sanction (maker and checker).

    A sanction is lifted by two different curators: the first curator's lift (an approval with
    ``lift_sanction`` and a note) only records them and leaves the product awaiting a second curator; a
    different curator's lift completes it. While a lift waits, the curator who made it decides nothing more
    on the product (403 ``maker_is_checker``, whatever roles they hold); another curator may complete the
    lift, or refuse it by requesting a revision or rejecting. ``first_lift_by`` is the subject of the first
    curator, ``None`` when no lift waits. ``check_sanction``'s refusals apply to every lift.
    """
    if first_lift_by is not None and first_lift_by == curator:
        raise Forbidden(
            permission,
            "you lifted this sanction already; a second, different curator must decide it",
            code=MAKER_IS_CHECKER,
        )
    check_sanction(sanction, approved=approved, lift=lift, notes=notes)
    if not (approved and lift):
        return CurationStep.DECIDE
    return CurationStep.FIRST_LIFT if first_lift_by is None else CurationStep.SECOND_LIFT


def status_after_step(step: CurationStep, decision: CurationDecision) -> ProductStatus:
    if step is CurationStep.FIRST_LIFT:
        return ProductStatus.AWAITING_SECOND_CURATOR
    return status_after_decision(decision)


def approval_price(
    decision: CurationDecision, *, tier: CatalogTier | None, requested: Decimal | None, submitted: Decimal
) -> Decimal | None:
    """The price an approval lists the product at (the curator's, else the submitted one); ``None`` for any
    other decision. An approval needs a catalog tier and a price above 0."""
    if decision is not CurationDecision.APPROVED:
        return None
    if tier is None:
        raise CurationRefusal(
            "tier_required", "an approval needs a catalog tier (national, sectoral or local)"
        )
    price = requested or submitted
    if price <= 0:
        raise CurationRefusal("price_not_positive", "the listed price must be above 0")
    return price
