"""OJK collectibility: the grade of a loan from its days past due (POJK 40/2019).

Rules: ``docs/rules/loans.md``, section "Collectibility".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date

    from kumkm_loans.domain.schedule import Installment

__all__ = ["GRADE_NAMES", "days_past_due", "grade_for"]

GRADE_NAMES = {1: "lancar", 2: "dalam perhatian khusus", 3: "kurang lancar", 4: "diragukan", 5: "macet"}

# (highest days past due of the grade, grade): 0 lancar, 1-90 DPK, 91-120 kurang lancar, 121-180 diragukan.
_BANDS = ((0, 1), (90, 2), (120, 3), (180, 4))


def grade_for(days: int) -> int:
    """The OJK grade for ``days`` past due: 1 lancar (0), 2 DPK (1-90), 3 (91-120), 4 (121-180), 5 (>180)."""
    for upper, grade in _BANDS:
        if days <= upper:
            return grade
    return 5


def days_past_due(installments: Iterable[Installment], as_of: date) -> int:
    """Days since the oldest installment that fell due before ``as_of`` and is still not fully paid."""
    for installment in installments:
        if installment.due_on >= as_of:
            return 0
        if not installment.is_paid:
            return (as_of - installment.due_on).days
    return 0
