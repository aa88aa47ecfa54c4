"""Who may use the loans service: each permission a route declares, and the roles that grant it.

A supervisor is the checker and also sees and does what an officer does. Regions narrow every permission
further (``kumkm_loans.domain.regions``). ``APPROVE_SECOND`` is declared by no route: the decision route
(``DECIDE``) checks it in code when a request waits for its second approval (``decision_step``).
"""

from __future__ import annotations

from typing import Final

from kumkm_shared.auth.roles import LOANS_OFFICER, LOANS_SUPERVISOR, MONITORING_VIEWER, OPERATOR

READ: Final = "loans.read"
REQUEST_RESTRUCTURING: Final = "loans.restructuring.request"
DECIDE: Final = "loans.restructuring.decide"
APPROVE_SECOND: Final = "loans.restructuring.approve_second"
PROGRESS: Final = "loans.progress.read"
TICK: Final = "loans.tick"

_STAFF = frozenset({LOANS_OFFICER, LOANS_SUPERVISOR})

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    READ: _STAFF,
    REQUEST_RESTRUCTURING: _STAFF,
    DECIDE: _STAFF,
    APPROVE_SECOND: frozenset({LOANS_SUPERVISOR}),
    PROGRESS: _STAFF | {MONITORING_VIEWER},
    TICK: frozenset({OPERATOR}),
}
