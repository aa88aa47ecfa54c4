"""One valid event per subscribed type, around the Kranggan cooperative (for every notification test)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from kumkm_shared.contracts import (
    EventData,
    OrderConfirmed,
    OrderDelivered,
    OrderPaid,
    OrderShipped,
    OrderStatusChanged,
    spec_for,
)
from tests.support import samples as contract_samples

KRANGGAN_ID = "3275010203040001"
KRANGGAN = {
    "kind": "cooperative",
    "id": KRANGGAN_ID,
    "name": "Koperasi Pedagang Pasar Kranggan",
    "region": {"province": "Jawa Barat", "city": "Kota Bekasi"},
}
SELLER_NIB = "9120001234567"
SELLER = {
    "nib": SELLER_NIB,
    "name": "CV Meubel Jati Bekasi",
    "region": {"province": "Jawa Barat", "city": "Kota Bekasi"},
}
BUYER_ID = "KEMENKOPUKM"
BUYER = {
    "id": BUYER_ID,
    "name": "Kementerian Koperasi dan UKM",
    "kind": "ministry",
    "work_unit": "Biro Umum",
    "commitment_official": "Budi Santoso",
}
REASONS = [
    {
        "code": "collectibility_before_pandemic",
        "text_id": "Kolektibilitas 4 sebelum pandemi",
        "text_en": "Collectibility 4 before the pandemic",
    }
]
LOAN_ID = "LN-2019-0001"
# The order every lifecycle step sample is about, and its parties as the step names them.
STEP_PARTIES = {"order_id": "ORD-0001", "buyer": {"id": BUYER_ID}, "seller": {"nib": SELLER_NIB}}

SAMPLES: dict[str, dict[str, Any]] = {
    "kumkm.loans.restructuring.requested.v1": {
        "request_id": "RR-2020-0001",
        "loan_id": LOAN_ID,
        "requested_on": "2020-05-04",
        "reason": "covid19_direct",
        "impact": {"revenue_drop_pct": "60", "note": "pasar sepi"},
        "proposal": [{"scheme": "tenor_extension", "extra_months": 12}],
        "reschedule_from": "2020-06-15",
    },
    "kumkm.loans.restructuring.approved.v1": {
        "request_id": "RR-2020-0001",
        "loan_id": LOAN_ID,
        "borrower": KRANGGAN,
        "decided_by": "policy",
        "decided_at": "2020-05-05T03:00:00Z",
        "terms": [
            {"scheme": "tenor_extension", "extra_months": 12},
            {"scheme": "grace_period", "months": 6, "on": "principal"},
        ],
        "reschedule_from": "2020-06-15",
        "summary": {
            "installments": 60,
            "regular_installment": "48330000.00",
            "grace_months": 6,
            "annual_rate": "0.06",
            "first_due_on": "2020-06-15",
            "maturity_on": "2026-11-26",
            "outstanding_principal": "2500000000.00",
            "total_interest_before": "400000000.00",
            "total_interest_after": "455000000.00",
        },
    },
    "kumkm.loans.restructuring.rejected.v1": {
        "request_id": "RR-2020-0002",
        "loan_id": LOAN_ID,
        "borrower": KRANGGAN,
        "decided_by": "policy",
        "decided_at": "2020-05-05T03:00:00Z",
        "reason_codes": ["collectibility_before_pandemic"],
        "reasons": REASONS,
    },
    "kumkm.loans.restructuring.referred.v1": {
        "request_id": "RR-2020-0003",
        "loan_id": LOAN_ID,
        "borrower": KRANGGAN,
        "referred_at": "2020-05-05T03:00:00Z",
        "reason_codes": ["collectibility_before_pandemic"],
        "reasons": REASONS,
    },
    "kumkm.loans.installment.overdue.v1": {
        "loan_id": LOAN_ID,
        "borrower": KRANGGAN,
        "installment_no": 3,
        "due_on": "2020-09-15",
        "amount_due": "48330000.00",
        "days_past_due": 10,
        "collectibility": 2,
        "as_of": "2020-09-25",
    },
    "kumkm.loans.loan.collectibility_changed.v1": {
        "loan_id": LOAN_ID,
        "borrower": KRANGGAN,
        "previous": 1,
        "current": 2,
        "days_past_due": 10,
        "as_of": "2020-09-25",
    },
    "kumkm.catalog.product.curated.v1": {
        "product_id": "PRD-0001",
        "revision": 1,
        "seller": SELLER,
        "name": "Meja rapat jati",
        "category": "furniture",
        "decision": "approved",
        "checklist": [{"item": "tkdn_min", "passed": True}],
        "listed_price": "2500000.00",
        "tier": "local",
        "curator": "CUR-01",
        "decided_at": "2022-08-01T02:00:00Z",
    },
    "kumkm.catalog.order.accepted.v1": {
        "order_id": "ORD-0001",
        "buyer": BUYER,
        "seller": SELLER,
        "lines": [
            {
                "product_id": "PRD-0001",
                "name": "Meja rapat jati",
                "qty": 4,
                "unit_price": "2500000.00",
                "line_total": "10000000.00",
            }
        ],
        "total": "10000000.00",
        "delivery": {"address": "Jl. H.R. Rasuna Said Kav. 3-4, Jakarta", "needed_by": "2022-09-01"},
        "accepted_at": "2022-08-10T02:00:00Z",
        "confirm_by": "2022-08-15T02:00:00Z",
    },
    "kumkm.catalog.order.rejected.v1": {
        "order_id": "ORD-0002",
        "buyer": BUYER,
        "reason_codes": ["insufficient_stock"],
        "reasons": contract_samples.SAMPLES["kumkm.catalog.order.rejected.v1"]["reasons"],
        "rejected_at": "2022-08-10T02:00:00Z",
    },
    "kumkm.catalog.order.cancelled.v1": {
        "order_id": "ORD-0003",
        "buyer": BUYER,
        "seller": SELLER,
        "by": "seller_timeout",
        "reason": "not confirmed in 3 working days",
        "released": [{"product_id": "PRD-0001", "qty": 4, "unit_price": "2500000.00"}],
        "cancelled_at": "2022-08-15T02:00:01Z",
    },
    "kumkm.catalog.order.confirmed.v1": {
        **STEP_PARTIES,
        "confirmed_at": "2022-08-16T03:00:00Z",
        "expected_ship_on": "2022-08-22",
    },
    "kumkm.catalog.order.shipped.v1": {
        **STEP_PARTIES,
        "shipped_at": "2022-08-22T02:00:00Z",
        "carrier": "JNE",
        "tracking_number": "JNE0012345678",
        "expected_delivery_on": "2022-08-25",
    },
    "kumkm.catalog.order.delivered.v1": {
        **STEP_PARTIES,
        "bast_number": "BAST-2022-0001",
        "delivered_on": "2022-08-30",
        "received_by": "Budi Santoso",
    },
    "kumkm.catalog.order.step_refused.v1": {
        **STEP_PARTIES,
        "step": "paid",
        "order_status": "shipped",
        "refused_event_id": "5a1f0c1e-2b7d-4f0e-8c1a-3d2e4f5a6b7c",
        "reason_code": "out_of_order",
        "reason": "order ORD-0001: the order is shipped; it must be delivered before it can be paid",
        "refused_at": "2022-09-01T03:00:00Z",
    },
    "kumkm.catalog.order.paid.v1": {
        **STEP_PARTIES,
        "amount": "10000000.00",
        "paid_on": "2022-09-10",
        "payment_reference": "SP2D-0001",
    },
}


def sample(event_type: str, **overrides: Any) -> EventData:
    """The sample of ``event_type`` as its contract model, with top-level fields replaced."""
    return spec_for(event_type).model.model_validate({**SAMPLES[event_type], **overrides})


def recorded(step_type: str, **overrides: Any) -> OrderStatusChanged:
    """The catalog's record that the sample step ``step_type`` (order confirmed, shipped, delivered or paid)
    took effect: what the service consumes for those steps, never the integrator's event itself."""
    data = SAMPLES.get(step_type) or contract_samples.SAMPLES[step_type]
    step = spec_for(step_type).model.model_validate({**data, **overrides})
    assert isinstance(step, OrderConfirmed | OrderShipped | OrderDelivered | OrderPaid)
    status = step_type.split(".")[3]
    previous = {"confirmed": "accepted", "shipped": "confirmed", "delivered": "shipped", "paid": "delivered"}
    return OrderStatusChanged(
        order_id=step.order_id,
        buyer=step.buyer,
        seller=step.seller,
        status=status,  # type: ignore[arg-type]
        previous_status=previous[status],
        version=2 + list(previous).index(status),
        applied_event_id=uuid.uuid4(),
        applied=step,
        changed_at=datetime.now(UTC),
    )
