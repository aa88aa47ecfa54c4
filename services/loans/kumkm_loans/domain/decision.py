"""An officer's decision on a referred request: when it can be taken (``docs/rules/loans.md``,
"Restructuring policy").

Only a request the policy referred can be decided by an officer, not before it was made, and an approval
re-checks the rejection rules against the loan as it is now: an officer cannot approve beyond policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumkm_loans.domain.policy import Outcome
from kumkm_shared.errors import Refusal

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from kumkm_loans.domain.policy import PolicyReason

__all__ = ["DecisionRefused", "check_decision", "check_still_eligible"]


class DecisionRefused(Refusal):
    """The officer's decision cannot be taken (HTTP 409): ``not_referred``, ``decided_before_request``,
    ``no_longer_eligible``."""


def check_decision(request_id: str, status: str, *, requested_on: date, decided_on: date) -> None:
    """Refuse a decision on a request that is not referred, or dated before the request."""
    if status != Outcome.REFERRED:
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


def check_still_eligible(rejections: Sequence[PolicyReason]) -> None:
    """Refuse an approval when the policy's rejection rules fail against the loan as it is now."""
    if rejections:
        raise DecisionRefused(
            "no_longer_eligible",
            "the request cannot be approved any more: " + "; ".join(r.text_en for r in rejections),
        )
