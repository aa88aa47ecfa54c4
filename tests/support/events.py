"""Sample integrator events as plain JSON, the way integrators send them."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.support.samples import SAMPLES

KRANGGAN_COOPERATIVE = {
    "kind": "cooperative",
    "id": "3275010203040001",
    "name": "Koperasi Pedagang Pasar Kranggan",
    "region": {"province": "Jawa Barat", "city": "Kota Bekasi"},
}


def envelope(
    event_type: str, data: dict[str, Any], *, event_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "tests/integrator",
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
        **extra,
    }


def loan_disbursed(loan_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    data = {
        "loan_id": loan_id or f"LN-{uuid.uuid4().hex[:10]}",
        "lender": "LPDB-KUMKM",
        "borrower": copy.deepcopy(KRANGGAN_COOPERATIVE),
        "principal": "2500000000.00",
        "annual_rate": "0.06",
        "tenor_months": 60,
        "method": "annuity",
        "disbursed_on": "2019-06-15",
        "first_due_on": "2019-07-15",
    }
    data.update(overrides)
    return envelope("kumkm.loans.loan.disbursed.v1", data)


def repayment_received(loan_id: str, amount: str = "48330000.00", **overrides: Any) -> dict[str, Any]:
    data = {
        "payment_id": f"PAY-{uuid.uuid4().hex[:10]}",
        "loan_id": loan_id,
        "amount": amount,
        "paid_on": "2019-07-15",
        "channel": "bank_transfer",
        "reference": "BRI-0001",
    }
    data.update(overrides)
    return envelope("kumkm.loans.repayment.received.v1", data)


def contract_event(event_type: str, *, event_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid event of any contract type: its sample data (``tests/support/samples.py``) with overrides."""
    data = copy.deepcopy(SAMPLES[event_type])
    data.update(overrides)
    return envelope(event_type, data, event_id=event_id)


def restructuring_of_a_loan_never_disbursed() -> dict[str, Any]:
    """A restructuring request for a loan no service has seen disbursed (new ids each call)."""
    return contract_event(
        "kumkm.loans.restructuring.requested.v1",
        request_id=f"RR-{uuid.uuid4().hex[:10]}",
        loan_id=f"LN-NOWHERE-{uuid.uuid4().hex[:6]}",
    )


def to_bytes(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()
