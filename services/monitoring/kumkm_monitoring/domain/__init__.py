"""The recovery monitor's rules: pure functions and data (``docs/rules/monitoring.md``)."""

from kumkm_monitoring.domain.months import (
    DayInterval,
    MonthRange,
    Months,
    month_label,
    month_of,
    month_start,
    parse_month,
)
from kumkm_monitoring.domain.productive import (
    ActivityReport,
    Contribution,
    LoanFacts,
    PartyFacts,
    Signal,
    SignalRules,
    contribution,
    delta,
    population_months,
    productive_months,
    signal_months,
)
from kumkm_monitoring.domain.regions import check_in_scope, region_filter
from kumkm_monitoring.domain.targets import DEFAULT_TARGETS, Target, Targets, ratio, share_text

__all__ = [
    "DEFAULT_TARGETS",
    "ActivityReport",
    "Contribution",
    "DayInterval",
    "LoanFacts",
    "MonthRange",
    "Months",
    "PartyFacts",
    "Signal",
    "SignalRules",
    "Target",
    "Targets",
    "check_in_scope",
    "contribution",
    "delta",
    "month_label",
    "month_of",
    "month_start",
    "parse_month",
    "population_months",
    "productive_months",
    "ratio",
    "region_filter",
    "share_text",
    "signal_months",
]
