"""A person's decision on a referred request: when it can be taken, and by whom (``docs/rules/loans.md``,
"Officer decisions" and "Maker-checker").

Only a request the policy referred (or one waiting for its second approval) can be decided, not before it
was made, and an approval re-checks the rejection rules against the loan as it is now: nobody can approve
beyond policy.

Maker-checker: approving a request whose outstanding principal is above the second-approval threshold takes
two people. The first approval (the maker's) does not approve: the request waits in
``awaiting_second_approval``. Then a different person holding ``loans.restructuring.approve_second`` (a
supervisor) approves or rejects it. Below the threshold one approval suffices; a rejection of a referred
request always takes one person.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from kumkm_loans.domain.permissions import APPROVE_SECOND, PERMISSIONS
from kumkm_loans.domain.policy import Outcome
from kumkm_shared.errors import Forbidden, Refusal

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from kumkm_loans.domain.policy import PolicyReason

__all__ = [
    "AWAITING_SECOND_APPROVAL",
    "DECIDABLE",
    "SECOND_APPROVAL_ABOVE",
    "DecisionRefused",
    "Step",
    "check_decision",
    "check_still_eligible",
    "decision_step",
]

AWAITING_SECOND_APPROVAL: Final = "awaiting_second_approval"
DECIDABLE: Final = frozenset({Outcome.REFERRED.value, AWAITING_SECOND_APPROVAL})
# The default threshold (``LoansSettings.second_approval_above``): approvals above it take two people.
SECOND_APPROVAL_ABOVE: Final = Decimal(1_000_000_000)


class DecisionRefused(Refusal):
    """The decision cannot be taken (HTTP 409): ``not_referred``, ``decided_before_request``,
    ``decided_before_first_approval``, ``no_longer_eligible``."""


class Step(StrEnum):
    """What a decision does."""

    APPROVE = "approve"  # the restructuring is approved now
    FIRST_APPROVAL = "first_approval"  # the maker's approval is recorded; a checker must follow
    REJECT = "reject"  # the request is rejected now


def check_decision(
    request_id: str,
    status: str,
    *,
    requested_on: date,
    decided_on: date,
    first_approved_on: date | None = None,
) -> None:
    """Refuse a decision on a request that is not waiting for one, or dated before the request (or before
    the first approval it completes)."""
    if status not in DECIDABLE:
        raise DecisionRefused(
            "not_referred",
            f"restructuring request {request_id!r} is {status}, not referred: "
            "only a request referred to an officer can be decided",
        )
    if decided_on < requested_on:
        raise DecisionRefused(
            "decided_before_request",
            f"decided_on {decided_on} is before the request date {requested_on}",
        )
    if first_approved_on is not None and decided_on < first_approved_on:
        raise DecisionRefused(
            "decided_before_first_approval",
            f"decided_on {decided_on} is before the first approval on {first_approved_on}",
        )


def decision_step(
    *,
    status: str,
    approve: bool,
    outstanding_principal: Decimal,
    second_approval_above: Decimal,
    decider: str,
    decider_roles: frozenset[str],
    maker: str | None,
) -> Step:
    """What ``decider`` (a subject with ``decider_roles``) deciding a request in ``status`` does.

    - ``referred``: a rejection rejects; an approval approves when ``outstanding_principal`` is at most
      ``second_approval_above``, and is the maker's first approval above it.
    - ``awaiting_second_approval`` (``maker`` approved first): the decider is the checker. The maker is
      refused whatever roles they hold (403 ``maker_is_checker``); so is anyone without
      ``loans.restructuring.approve_second`` (403 naming it). Otherwise the decision is final either way.

    The status itself is checked first by ``check_decision``.
    """
    if status == AWAITING_SECOND_APPROVAL:
        if maker is not None and decider == maker:
            raise Forbidden(
                APPROVE_SECOND,
                f"{decider} made the first approval of this request: the second decision must be taken by "
                "another person (maker-checker)",
                code="maker_is_checker",
            )
        if not decider_roles & PERMISSIONS[APPROVE_SECOND]:
            roles = ", ".join(sorted(PERMISSIONS[APPROVE_SECOND]))
            raise Forbidden(
                APPROVE_SECOND,
                f"the second decision on a request approved once needs the permission {APPROVE_SECOND!r} "
                f"(role {roles})",
            )
        return Step.APPROVE if approve else Step.REJECT
    if not approve:
        return Step.REJECT
    if outstanding_principal > second_approval_above:
        return Step.FIRST_APPROVAL
    return Step.APPROVE


def check_still_eligible(rejections: Sequence[PolicyReason]) -> None:
    """Refuse an approval when the policy's rejection rules fail against the loan as it is now."""
    if rejections:
        raise DecisionRefused(
            "no_longer_eligible",
            "the request cannot be approved any more: " + "; ".join(r.text_en for r in rejections),
        )
