"""The catalog's pure rules: curation, the order state machine, placing an order, the confirmation deadline
and the business-day calendar (``docs/rules/catalog.md``)."""

from kumkm_catalog.domain.calendar import BusinessCalendar
from kumkm_catalog.domain.curation import (
    CurationRefusal,
    CurationRules,
    PriceBand,
    ProductStatus,
    Submission,
    run_prechecks,
)
from kumkm_catalog.domain.deadline import (
    Deadline,
    confirmation_deadline,
    is_confirmation_late,
    last_missed_deadline,
)
from kumkm_catalog.domain.orders import (
    IllegalTransition,
    OrderAction,
    OrderStateMachine,
    OrderStatus,
    Verdict,
)
from kumkm_catalog.domain.placement import (
    Accepted,
    OrderRules,
    Rejected,
    RejectionCode,
    Shortfall,
    assess_order,
    decide_placement,
)

__all__ = [
    "Accepted",
    "BusinessCalendar",
    "CurationRefusal",
    "CurationRules",
    "Deadline",
    "IllegalTransition",
    "OrderAction",
    "OrderRules",
    "OrderStateMachine",
    "OrderStatus",
    "PriceBand",
    "ProductStatus",
    "Rejected",
    "RejectionCode",
    "Shortfall",
    "Submission",
    "Verdict",
    "assess_order",
    "confirmation_deadline",
    "decide_placement",
    "is_confirmation_late",
    "last_missed_deadline",
    "run_prechecks",
]
