"""KUMKM event contracts: CloudEvents envelope, event data models, the event catalog and JSON Schemas.

Typical use::

    from kumkm_shared.contracts import LoanDisbursed, decode_event, make_event

    envelope = make_event(LoanDisbursed(...), source="kumkm/loans")
    body = envelope.to_json_bytes()              # publish with Nats-Msg-Id = envelope.msg_id
    event = decode_event(body)                   # raises ContractError(code, message, errors)
    loan = event.data_as(LoanDisbursed)

The package exports the ``__all__`` of each of its modules, so a name is exported where it is declared.
"""

from kumkm_shared.contracts import (
    base,
    catalog,
    envelope,
    errors,
    loans,
    notifications,
    parties,
    regions,
    registry,
    types,
)
from kumkm_shared.contracts.base import *  # noqa: F403 - the package is the union of its modules
from kumkm_shared.contracts.catalog import *  # noqa: F403
from kumkm_shared.contracts.envelope import *  # noqa: F403
from kumkm_shared.contracts.errors import *  # noqa: F403
from kumkm_shared.contracts.loans import *  # noqa: F403
from kumkm_shared.contracts.notifications import *  # noqa: F403
from kumkm_shared.contracts.parties import *  # noqa: F403
from kumkm_shared.contracts.regions import *  # noqa: F403
from kumkm_shared.contracts.registry import *  # noqa: F403
from kumkm_shared.contracts.types import *  # noqa: F403

__all__ = (
    base.__all__
    + catalog.__all__
    + envelope.__all__
    + errors.__all__
    + loans.__all__
    + notifications.__all__
    + parties.__all__
    + regions.__all__
    + registry.__all__
    + types.__all__
)
