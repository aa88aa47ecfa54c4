"""The loans domain: pure rules and data, no I/O."""

from kumkm_loans.domain.collectibility import GRADE_NAMES, days_past_due, grade_for
from kumkm_loans.domain.decision import (
    AWAITING_SECOND_APPROVAL,
    SECOND_APPROVAL_ABOVE,
    DecisionRefused,
    Step,
    check_decision,
    check_still_eligible,
    decision_step,
)
from kumkm_loans.domain.loan import Arrears, Loan, RepaymentAllocation
from kumkm_loans.domain.policy import (
    Assessment,
    Outcome,
    PolicyLimits,
    PolicyReason,
    RequestFacts,
    RestructuringPolicy,
)
from kumkm_loans.domain.regions import check_in_scope, progress_region
from kumkm_loans.domain.restructuring import (
    LoanPosition,
    RestructuringPlan,
    Terms,
    plan_restructuring,
    position_at,
)
from kumkm_loans.domain.schedule import (
    ZERO,
    Installment,
    Schedule,
    add_months,
    build_schedule,
    floor_rupiah,
    round_rupiah,
)

__all__ = [
    "AWAITING_SECOND_APPROVAL",
    "GRADE_NAMES",
    "SECOND_APPROVAL_ABOVE",
    "ZERO",
    "Arrears",
    "Assessment",
    "DecisionRefused",
    "Installment",
    "Loan",
    "LoanPosition",
    "Outcome",
    "PolicyLimits",
    "PolicyReason",
    "RepaymentAllocation",
    "RequestFacts",
    "RestructuringPlan",
    "RestructuringPolicy",
    "Schedule",
    "Step",
    "Terms",
    "add_months",
    "build_schedule",
    "check_decision",
    "check_in_scope",
    "check_still_eligible",
    "days_past_due",
    "decision_step",
    "floor_rupiah",
    "grade_for",
    "plan_restructuring",
    "position_at",
    "progress_region",
    "round_rupiah",
]
