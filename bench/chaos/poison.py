"""Bad messages, each marked with a ``Kumkm-Poison-Id`` header so the checker finds its dead letter.

Every kind goes to a subject that one or more durables consume; each of them must dead-letter it with a
reason. Oversized payloads are kept rare: each is more than 1 MiB in the stream and again in the DLQ.
"""

from __future__ import annotations

import json
import random  # noqa: TC003 - used at run time by the caller
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from bench.chaos.workload import (
    SOURCE,
    ExpectedNotification,
    ExpectedOutcome,
    Integrator,
    Ledger,
    PoisonSent,
)
from kumkm_shared.messaging.topology import CONSUMER_DECLS

POISON_HEADER = "Kumkm-Poison-Id"


def consumers_of_subject(subject: str) -> tuple[str, ...]:
    """The durables that consume ``subject``, from the one declaration (their filters are event types)."""
    return tuple(d.name for d in CONSUMER_DECLS if subject in d.filter_subjects)


# kind -> weight (share of the mix)
KINDS: dict[str, int] = {
    "random_bytes": 15,
    "malformed_json": 15,
    "schema_violation": 20,
    "unknown_type": 10,
    "wrong_version": 10,
    "oversized": 2,
    "illegal_transition": 14,
    "unknown_aggregate": 14,
}


def _envelope(event_type: str, data: dict[str, Any], subject: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": SOURCE,
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "subject": subject or "x",
        "data": data,
    }


class PoisonMaker:
    def __init__(self, rng: random.Random, rejected_orders: list[tuple[str, str, str]]) -> None:
        """``rejected_orders``: (order id, buyer id, seller NIB) of orders the catalog rejected."""
        self.rng = rng
        self.rejected_orders = rejected_orders
        self.n = 0

    def kind(self) -> str:
        kinds = list(KINDS)
        return self.rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0]

    def make(self, kind: str) -> tuple[str, bytes, tuple[str, ...]]:  # noqa: C901, PLR0911 - one branch per kind
        """(subject, body, acceptable reason codes)."""
        self.n += 1
        rng = self.rng
        if kind == "random_bytes":
            subject = rng.choice(
                [
                    "kumkm.loans.loan.disbursed.v1",
                    "kumkm.catalog.product.submitted.v1",
                    "kumkm.notifications.contact.upserted.v1",
                ]
            )
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
            return subject, body, ("undecodable",)
        if kind == "malformed_json":
            subject = rng.choice(["kumkm.loans.repayment.received.v1", "kumkm.catalog.order.placed.v1"])
            good = json.dumps(_envelope(subject, {"loan_id": "LN-X"}))
            cut = rng.randint(1, len(good) - 2)
            variants = [good[:cut], good.replace(":", "=", 1), "{" + good, good + ",]", "NaN", "[1, 2,"]
            return subject, rng.choice(variants).encode(), ("undecodable",)
        if kind == "schema_violation":
            choice = rng.randrange(3)
            if choice == 0:
                subject = "kumkm.catalog.order.placed.v1"
                data = {"order_id": f"ORD-BAD-{self.n}", "buyer": {"id": "B"}, "lines": [], "budget": {}}
            elif choice == 1:
                subject = "kumkm.notifications.contact.upserted.v1"
                data = {
                    "party_id": f"P-{self.n}",
                    "name": "No Hook",
                    "channels": ["webhook"],
                    "updated_at": "2026-01-01T00:00:00Z",
                }
            else:
                subject = "kumkm.loans.repayment.received.v1"
                data = {"payment_id": f"PAY-BAD-{self.n}", "loan_id": "LN-1", "amount": "abc"}
            return (
                subject,
                json.dumps(_envelope(subject, data)).encode(),
                ("schema_violation", "invalid_envelope"),
            )
        if kind == "unknown_type":
            subject = "kumkm.catalog.order.confirmed.v1"
            body = json.dumps(_envelope("kumkm.catalog.order.teleported.v1", {"order_id": "ORD-1"})).encode()
            return subject, body, ("unknown_type", "subject_mismatch")
        if kind == "wrong_version":
            subject = "kumkm.loans.repayment.received.v1"
            body = json.dumps(
                _envelope("kumkm.loans.repayment.received.v7", {"payment_id": "PAY-1", "loan_id": "LN-1"})
            ).encode()
            return subject, body, ("unsupported_version", "unknown_type", "subject_mismatch")
        if kind == "oversized":
            subject = "kumkm.catalog.product.stock_updated.v1"
            data = {"product_id": "PRD-1", "padding": "x" * (1_100_000 + rng.randint(0, 1000))}
            return subject, json.dumps(_envelope(subject, data)).encode(), ("oversized",)
        if kind == "illegal_transition" and self.rejected_orders:
            order_id, buyer, seller_nib = rng.choice(self.rejected_orders)
            # Every step, paid and delivered too: a refused step must not reach the seller as a notification.
            step = rng.choice(["confirmed", "shipped", "delivered", "paid"])
            subject = f"kumkm.catalog.order.{step}.v1"
            refs = {"order_id": order_id, "buyer": {"id": buyer}, "seller": {"nib": seller_nib}}
            now = datetime.now(UTC)
            data = {
                "confirmed": {**refs, "confirmed_at": now.isoformat(), "expected_ship_on": "2027-01-10"},
                "shipped": {**refs, "shipped_at": now.isoformat(), "carrier": "JNE"},
                "delivered": {**refs, "bast_number": "BAST/X/1", "delivered_on": now.date().isoformat()},
                "paid": {
                    **refs,
                    "amount": "7400000.00",
                    "paid_on": now.date().isoformat(),
                    "payment_reference": "SP2D/X/1",
                },
            }[step]
            body = json.dumps(_envelope(subject, data, order_id)).encode()
            return subject, body, ("order_rejected", "illegal_transition")
        # unknown aggregates: parked with Retry, dead-lettered when max_deliver is exhausted
        if rng.random() < 0.5:
            subject = "kumkm.catalog.order.confirmed.v1"
            order_id = f"ORD-GHOST-{self.n}"
            data = {
                "order_id": order_id,
                "buyer": {"id": "BUYER-GHOST"},
                "seller": {"nib": "9100000000000"},
                "confirmed_at": datetime.now(UTC).isoformat(),
                "expected_ship_on": "2027-01-10",
            }
            return subject, json.dumps(_envelope(subject, data, order_id)).encode(), ()
        subject = "kumkm.loans.restructuring.requested.v1"
        request_id = f"RR-GHOST-{self.n}"
        ghost: dict[str, Any] = {
            "request_id": request_id,
            "loan_id": f"LN-GHOST-{self.n}",
            "requested_on": "2020-04-15",
            "reason": "covid19_direct",
            "impact": {"revenue_drop_pct": "45", "note": "x"},
            "proposal": [{"scheme": "tenor_extension", "extra_months": 6}],
            "reschedule_from": "2020-05-01",
        }
        return subject, json.dumps(_envelope(subject, ghost, request_id)).encode(), ()


async def send_poison(
    integrator: Integrator, ledger: Ledger, maker: PoisonMaker, kind: str | None = None
) -> None:
    kind = kind or maker.kind()
    if kind == "illegal_transition" and not maker.rejected_orders:
        kind = "unknown_aggregate"
    subject, body, reasons = maker.make(kind)
    if kind == "illegal_transition":
        expect_refusal(ledger, json.loads(body))
    poison_id = f"poison-{uuid4()}"
    ledger.poison[poison_id] = PoisonSent(poison_id, kind, subject, consumers_of_subject(subject), reasons)
    await integrator.publish_raw(subject, body, {"Nats-Msg-Id": poison_id, POISON_HEADER: poison_id})


STEP_REFUSED = "kumkm.catalog.order.step_refused.v1"


def expect_refusal(ledger: Ledger, envelope: dict[str, Any]) -> None:
    """A step for a rejected order is refused once, as ``order.step_refused``; the order's buyer hears of a
    refused handover or payment on every channel. A rejected order has no seller, so a refused confirmation
    or shipment reaches nobody."""
    refused_id = str(envelope["id"])
    ledger.outcomes.append(ExpectedOutcome((STEP_REFUSED,), "refused_event_id", refused_id))
    if envelope["type"].split(".")[3] in {"delivered", "paid"}:
        for channel in ("email", "webhook", "inbox"):
            ledger.notifications.append(
                ExpectedNotification(
                    envelope["data"]["buyer"]["id"],
                    channel,
                    cause_type=STEP_REFUSED,
                    cause_key=("refused_event_id", refused_id),
                )
            )
