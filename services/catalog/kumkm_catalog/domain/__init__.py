"""The catalog's pure rules: curation pre-checks, the order state machine and the business-day calendar."""

from kumkm_catalog.domain.calendar import BusinessCalendar
from kumkm_catalog.domain.curation import CurationRules, PriceBand, ProductStatus, Submission, run_prechecks
from kumkm_catalog.domain.orders import (
    IllegalTransition,
    OrderAction,
    OrderRules,
    OrderStateMachine,
    OrderStatus,
    RejectionCode,
    Verdict,
    assess_order,
)

__all__ = [
    "BusinessCalendar",
    "CurationRules",
    "IllegalTransition",
    "OrderAction",
    "OrderRules",
    "OrderStateMachine",
    "OrderStatus",
    "PriceBand",
    "ProductStatus",
    "RejectionCode",
    "Submission",
    "Verdict",
    "assess_order",
    "run_prechecks",
]
