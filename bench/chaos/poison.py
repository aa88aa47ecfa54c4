"""Bad messages, each marked with a ``Kumkm-Poison-Id`` header so the checker finds its dead letter.

Every kind goes to a subject that one or more durables consume; each of them must dead-letter it with a
reason. Oversized payloads are kept rare: each is more than 1 MiB in the stream and again in the DLQ.
Like real integrators' mistakes, each is sent by an organisation of the workload on ``<type>.<organisation>``.

Impersonation attempts are well-formed events that claim a party outside the sender's mandate (another
cooperative's loan, another marketplace's NIB, another buyer's order, a party the registry does not keep),
come from a role that may not send the type (a cooperative reporting a repayment of its own loan), from an
organisation without a mandate, or on the bare type that names no sender. The owning service must
dead-letter each with ``not_authorised_for_party``, audit it once, and change nothing (``Impersonation``).
"""

from __future__ import annotations

import json
import random  # noqa: TC003 - used at run time by the caller
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

from bench.chaos.orgs import Org, Organisations
from bench.chaos.services import CONSUMER_DECLS
from bench.chaos.workload import (
    SOURCE,
    ExpectedNotification,
    ExpectedOutcome,
    Impersonation,
    Integrator,
    Ledger,
    PoisonSent,
    contact,
    disbursement,
    lifecycle,
    order,
    product,
    repayment,
    restructuring,
)
from kumkm_shared.contracts import make_event
from kumkm_shared.integrators import IntegratorRole, split_subject

POISON_HEADER = "Kumkm-Poison-Id"
NOT_AUTHORISED = "not_authorised_for_party"
PAID_ON = date(2020, 5, 1)
OTHER_LENDER = "BANK-LAIN"  # the party a second lender's mandate covers: never LPDB-KUMKM's loans


def consumers_of_subject(subject: str) -> tuple[str, ...]:
    """The durables that consume ``subject``, from the one declaration (their filters are event types,
    each integrator type also with ``<type>.*`` for its sender)."""
    return tuple(
        d.name for d in CONSUMER_DECLS if any(split_subject(subject, t)[0] for t in d.filter_subjects)
    )


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
    "impersonation": 12,
}

# The impersonation attempts, drawn evenly. Each is refused by the durable of the service that owns its type
# (``OWNERS``); whatever any other consumer of the type does with it is checked as "changes nothing".
IMPERSONATIONS: tuple[str, ...] = (
    "foreign_lender_disbursement",  # a second lender disburses in LPDB-KUMKM's name
    "foreign_lender_repayment",  # a second lender reports a repayment of LPDB-KUMKM's loan
    "cooperative_repayment",  # a cooperative reports a repayment of its own loan (the headline)
    "other_cooperative_restructuring",  # a cooperative asks to restructure another cooperative's loan
    "foreign_seller_product",  # a marketplace submits a product for another marketplace's NIB
    "foreign_seller_step",  # a marketplace confirms or ships for another marketplace's NIB
    "foreign_buyer_order",  # a buyer's system orders as another buyer
    "foreign_buyer_step",  # a buyer's system reports delivery or payment of another buyer's order
    "foreign_registry_contact",  # the registry upserts a party it holds no mandate for
    "unmandated_org",  # an organisation without any mandate
    "bare_subject",  # an integrator type on the bare type: names no sender
)


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
    def __init__(
        self,
        rng: random.Random,
        rejected_orders: list[tuple[str, str, str]],
        orgs: Organisations,
        target_loans: list[tuple[str, str]],
        *,
        tag: str = "C",
    ) -> None:
        """``rejected_orders``: (order id, buyer id, seller NIB) of orders the catalog rejected;
        ``target_loans``: (loan id, borrower) of loans on the book that impersonators aim at."""
        self.rng = rng
        self.rejected_orders = rejected_orders
        self.orgs = orgs
        self.target_loans = target_loans
        self.tag = tag
        self.n = 0
        # Mandated, but for other parties than the ones the impersonations claim.
        self.other_lender = Org(
            f"bank-lain-{tag.lower()}", IntegratorRole.LENDER, (OTHER_LENDER,), "Another lender"
        )
        self.unmandated = f"ghost-org-{tag.lower()}"  # no mandate at all

    def own_orgs(self) -> list[Org]:
        """The organisations only the impersonations use, to be mandated with the workload's."""
        return [self.other_lender]

    def sender(self, event_type: str) -> Org:
        """An organisation of the workload that may send ``event_type`` (for poison of that type)."""
        o, rng = self.orgs, self.rng
        if event_type.startswith(("kumkm.loans.loan.", "kumkm.loans.repayment.")):
            return o.lender
        if event_type.startswith("kumkm.loans."):
            return rng.choice(list(o.cooperatives.values()))
        if event_type.startswith("kumkm.notifications."):
            return o.registry
        if event_type.split(".")[3] in {"placed", "delivered", "paid"}:
            return rng.choice(list(o.buyers.values()))
        return rng.choice(o.marketplaces())

    def on(self, event_type: str) -> str:
        return self.sender(event_type).subject(event_type)

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
            return self.on(subject), body, ("undecodable",)
        if kind == "malformed_json":
            subject = rng.choice(["kumkm.loans.repayment.received.v1", "kumkm.catalog.order.placed.v1"])
            good = json.dumps(_envelope(subject, {"loan_id": "LN-X"}))
            cut = rng.randint(1, len(good) - 2)
            variants = [good[:cut], good.replace(":", "=", 1), "{" + good, good + ",]", "NaN", "[1, 2,"]
            return self.on(subject), rng.choice(variants).encode(), ("undecodable",)
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
                self.on(subject),
                json.dumps(_envelope(subject, data)).encode(),
                ("schema_violation", "invalid_envelope"),
            )
        if kind == "unknown_type":
            subject = "kumkm.catalog.order.confirmed.v1"
            body = json.dumps(_envelope("kumkm.catalog.order.teleported.v1", {"order_id": "ORD-1"})).encode()
            return self.on(subject), body, ("unknown_type", "subject_mismatch")
        if kind == "wrong_version":
            subject = "kumkm.loans.repayment.received.v1"
            body = json.dumps(
                _envelope("kumkm.loans.repayment.received.v7", {"payment_id": "PAY-1", "loan_id": "LN-1"})
            ).encode()
            return self.on(subject), body, ("unsupported_version", "unknown_type", "subject_mismatch")
        if kind == "oversized":
            subject = "kumkm.catalog.product.stock_updated.v1"
            data = {"product_id": "PRD-1", "padding": "x" * (1_100_000 + rng.randint(0, 1000))}
            return self.on(subject), json.dumps(_envelope(subject, data)).encode(), ("oversized",)
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
            # sent by the order's own parties' systems: the mandate holds, the order's state refuses it
            sender = (
                self.orgs.seller(seller_nib) if step in {"confirmed", "shipped"} else self.orgs.buyer(buyer)
            )
            return sender.subject(subject), body, ("order_rejected", "illegal_transition")
        # unknown aggregates: parked with Retry, dead-lettered when max_deliver is exhausted
        if rng.random() < 0.5:
            subject = "kumkm.catalog.order.confirmed.v1"
            order_id = f"ORD-GHOST-{self.n}"
            seller_nib = rng.choice(sorted(self.orgs.sellers))  # a NIB its marketplace holds a mandate for
            data = {
                "order_id": order_id,
                "buyer": {"id": "BUYER-GHOST"},
                "seller": {"nib": seller_nib},
                "confirmed_at": datetime.now(UTC).isoformat(),
                "expected_ship_on": "2027-01-10",
            }
            sender = self.orgs.seller(seller_nib)
            return sender.subject(subject), json.dumps(_envelope(subject, data, order_id)).encode(), ()
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
        return self.on(subject), json.dumps(_envelope(subject, ghost, request_id)).encode(), ()

    def impersonate(self, what: str | None = None) -> tuple[str, bytes, Impersonation]:  # noqa: C901, PLR0912, PLR0915 - one branch per attempt
        """(subject, body, what must not change) of one impersonation attempt."""
        self.n += 1
        rng, o, n, tag = self.rng, self.orgs, self.n, self.tag
        what = what or rng.choice(IMPERSONATIONS)
        if what == "foreign_seller_step" and len(o.marketplaces()) < 2:
            what = "foreign_seller_product"
        loan_id, borrower = rng.choice(self.target_loans)
        absent: list[tuple[str, str, str]] = []
        hook = "http://127.0.0.1:9/hooks"  # never called: the contact must not be stored
        if what == "foreign_lender_disbursement":
            data: Any = disbursement(f"LN-{tag}-IMP-{n:05d}", borrower)  # names LPDB-KUMKM as its lender
            sender = self.other_lender
            absent.append(("loans.loans", "loan_id", data.loan_id))
            absent.append(("notifications.loan_borrowers", "loan_id", data.loan_id))
        elif what == "foreign_lender_repayment":
            data = repayment(f"PAY-{tag}-IMP-{n:05d}", loan_id, PAID_ON)
            sender = self.other_lender
            absent.append(("loans.repayments", "payment_id", data.payment_id))
        elif what == "cooperative_repayment":
            data = repayment(f"PAY-{tag}-IMP-{n:05d}", loan_id, PAID_ON)
            sender = o.cooperative(borrower)  # its own loan: a cooperative never reports repayments
            absent.append(("loans.repayments", "payment_id", data.payment_id))
        elif what == "other_cooperative_restructuring":
            data = restructuring(f"RR-{tag}-IMP-{n:05d}", loan_id)
            sender = rng.choice([org for c, org in o.cooperatives.items() if c != borrower])
            absent.append(("loans.restructuring_requests", "request_id", data.request_id))
        elif what in {"foreign_seller_product", "bare_subject"}:
            nib = rng.choice(sorted(o.sellers))
            data = product(f"PRD-{tag}-IMP-{n:05d}", nib)
            others = [m for m in o.marketplaces() if not m.covers(nib)]
            sender = rng.choice(others) if others else self.other_lender
            absent.append(("catalog.products", "product_id", data.product_id))
        elif what == "foreign_seller_step":
            order_id, buyer, nib = rng.choice(self.rejected_orders)
            data = lifecycle(rng.choice(["confirm", "ship"]), order_id, buyer, nib)
            sender = rng.choice([m for m in o.marketplaces() if not m.covers(nib)])
        elif what == "foreign_buyer_order":
            buyer = rng.choice(sorted(o.buyers))
            product_id = f"PRD-{tag}-UNLISTED-IMP"
            data = order(f"ORD-{tag}-IMP-{n:05d}", buyer, product_id, 2)
            sender = rng.choice([org for b, org in o.buyers.items() if b != buyer])
            absent.append(("catalog.orders", "order_id", data.order_id))
        elif what == "foreign_buyer_step":
            order_id, buyer, nib = rng.choice(self.rejected_orders)
            data = lifecycle(rng.choice(["deliver", "pay"]), order_id, buyer, nib)
            sender = rng.choice([org for b, org in o.buyers.items() if b != buyer])
        elif what == "foreign_registry_contact":
            party = f"IMP-{tag}-{n:05d}"
            data = contact(party, "umkm", "Bukan Mitra", hook)
            sender = o.registry
            absent.append(("notifications.contacts", "party_id", party))
        else:  # unmandated_org
            party = rng.choice(sorted(o.registry.parties))  # a party the registry keeps: not this org
            data = contact(party, "umkm", "Kontak Palsu", hook)
            sender = None
        envelope = make_event(data, source=SOURCE)
        if envelope.type == "kumkm.notifications.contact.upserted.v1":
            absent.append(("notifications.contacts", "event_id", str(envelope.id)))
        if what == "bare_subject":
            subject = envelope.type
        elif sender is None:
            subject = f"{envelope.type}.{self.unmandated}"
        else:
            # Its own token. The deploy's server would refuse a type outside the role's templates (a
            # cooperative's repayment) before any service saw it; the bench's NATS has no operator JWTs, so
            # here the mandate check is the only guard, as it is for a party outside the mandate.
            subject = f"{envelope.type}.{sender.id}"
        owner = OWNERS[envelope.type.split(".")[1]]
        return (
            subject,
            envelope.to_json_bytes(),
            Impersonation(what, str(envelope.id), owner, tuple(absent)),
        )


# The durable of the service that owns each context's integrator types, and checks their sender's mandate.
OWNERS = {"loans": "loans", "catalog": "catalog", "notifications": "notifications-contacts"}


async def send_poison(
    integrator: Integrator, ledger: Ledger, maker: PoisonMaker, kind: str | None = None
) -> None:
    kind = kind or maker.kind()
    if kind == "illegal_transition" and not maker.rejected_orders:
        kind = "unknown_aggregate"
    poison_id = f"poison-{uuid4()}"
    if kind == "impersonation":
        subject, body, attempt = maker.impersonate()
        sent = PoisonSent(poison_id, kind, subject, (attempt.consumer,), (NOT_AUTHORISED,), attempt)
        ledger.poison[poison_id] = sent
        _, ack = await integrator.publish_acked(
            subject, body, {"Nats-Msg-Id": poison_id, POISON_HEADER: poison_id}
        )
        attempt.stream_message = (ack.stream, ack.seq)
        return
    subject, body, reasons = maker.make(kind)
    if kind == "illegal_transition":
        expect_refusal(ledger, json.loads(body))
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
