"""Who may use the monitoring service: each permission a route declares, and the roles that grant it.

Regions narrow both further (``kumkm_monitoring.domain.regions``): a figure, a list or a party outside the
caller's scope is refused (403 ``outside_region``) or filtered out in SQL.
"""

from __future__ import annotations

from typing import Final

from kumkm_shared.auth.roles import AUDITOR, LOANS_SUPERVISOR, MONITORING_VIEWER, OPERATOR

READ: Final = "monitoring.read"  # the figures: recovery, trend, restructuring, procurement, a party
OUTREACH: Final = "monitoring.outreach"  # the list of parties not yet productive, and its CSV

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    READ: frozenset({MONITORING_VIEWER, LOANS_SUPERVISOR, OPERATOR, AUDITOR}),
    OUTREACH: frozenset({MONITORING_VIEWER, OPERATOR}),
}
