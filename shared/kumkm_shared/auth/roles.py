"""The role names a token's roles claim carries: the vocabulary each service maps its permissions to."""

from __future__ import annotations

from typing import Final

LOANS_OFFICER: Final = "loans-officer"
LOANS_SUPERVISOR: Final = "loans-supervisor"  # the checker; also sees and does what an officer does
CATALOG_CURATOR: Final = "catalog-curator"
MONITORING_VIEWER: Final = "monitoring-viewer"  # national, or limited by the regions claim
OPERATOR: Final = "operator"  # dead letters, resend, reroute, ticks, contacts
AUDITOR: Final = "auditor"  # reads the audit trail
INTEGRATOR: Final = "integrator"  # an organisation's service account (client credentials)

ALL_ROLES: Final = frozenset(
    {LOANS_OFFICER, LOANS_SUPERVISOR, CATALOG_CURATOR, MONITORING_VIEWER, OPERATOR, AUDITOR, INTEGRATOR}
)
