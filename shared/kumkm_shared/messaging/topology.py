"""The one declaration of every JetStream stream and durable consumer.

The provisioner (`kumkm provision`) creates and updates exactly these. Services bind to their durables
with ``declare=False`` and never create anything themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import api

from kumkm_shared.integrators import roles_for

DUPLICATE_WINDOW_SECONDS = 120.0


def with_senders(subjects: tuple[str, ...]) -> tuple[str, ...]:
    """Each type, and for a type integrators publish also ``<type>.*``: the same type sent by an
    organisation (``kumkm_shared.integrators``). The bare type is what a service's own relay publishes."""
    out: list[str] = []
    for subject in subjects:
        out.append(subject)
        if roles_for(subject):
            out.append(f"{subject}.*")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class StreamDecl:
    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_days: float = 0  # 0 = keep forever (limits retention by size only)
    max_bytes: int = -1

    def config(self, replicas: int) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_age=self.max_age_days * 86400.0,
            max_bytes=self.max_bytes,
            allow_direct=True,
        )


@dataclass(frozen=True, slots=True)
class ConsumerDecl:
    """A durable pull consumer owned by one service.

    ``batch`` (every declared durable): the service applies each pull batch in one transaction, a savepoint
    per message (``EventProcessor.process_batch``; ``docs/rules/messaging.md``, "Batch durables"), so a
    commit, and its fsync, is paid per batch, not per event. ``batch=False`` handles one message per
    transaction with several workers (the test suites' toy durable keeps that path proven). Client-side
    only: the server's consumer configuration is the same.
    """

    name: str
    stream: str
    service: str
    filter_subjects: tuple[str, ...]
    description: str
    ack_wait_seconds: float = 30.0
    max_deliver: int = 8
    max_ack_pending: int = 1000
    batch: bool = True

    def config(self) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            description=self.description,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_seconds,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            filter_subjects=list(with_senders(self.filter_subjects)),
            replay_policy=api.ReplayPolicy.INSTANT,
        )


def _loans(*events: str) -> tuple[str, ...]:
    return tuple(f"kumkm.loans.{e}.v1" for e in events)


def _catalog(*events: str) -> tuple[str, ...]:
    return tuple(f"kumkm.catalog.{e}.v1" for e in events)


def _registry(*events: str) -> tuple[str, ...]:
    return tuple(f"kumkm.registry.{e}.v1" for e in events)


STREAM_DECLS: tuple[StreamDecl, ...] = (
    StreamDecl("KUMKM_LOANS", ("kumkm.loans.>",), "Loans context: loans, repayments, restructuring"),
    StreamDecl("KUMKM_CATALOG", ("kumkm.catalog.>",), "Catalog context: products and e-purchasing orders"),
    StreamDecl("KUMKM_NOTIFICATIONS", ("kumkm.notifications.>",), "Notifications context"),
    StreamDecl(
        "KUMKM_REGISTRY",
        ("kumkm.registry.>",),
        "Registry context: cooperatives, UMKM and activity surveys, published by registry organisations",
    ),
    StreamDecl("KUMKM_DLQ", ("kumkm.dlq.>",), "Dead letters: messages a service could not accept"),
)

CONSUMER_DECLS: tuple[ConsumerDecl, ...] = (
    ConsumerDecl(
        name="loans",
        stream="KUMKM_LOANS",
        service="loans",
        filter_subjects=_loans("loan.disbursed", "repayment.received", "restructuring.requested"),
        description="Loans service: disbursements, repayments and restructuring requests",
    ),
    ConsumerDecl(
        name="catalog",
        stream="KUMKM_CATALOG",
        service="catalog",
        filter_subjects=_catalog(
            "product.submitted",
            "product.stock_updated",
            "order.placed",
            "order.confirmed",
            "order.shipped",
            "order.delivered",
            "order.paid",
        ),
        description="Catalog service: product submissions and the order lifecycle",
    ),
    ConsumerDecl(
        name="notifications-loans",
        stream="KUMKM_LOANS",
        service="notifications",
        filter_subjects=_loans(
            "loan.disbursed",  # who borrowed: a restructuring request names only its loan
            "restructuring.requested",
            "restructuring.approved",
            "restructuring.rejected",
            "restructuring.referred",
            "installment.overdue",
            "loan.collectibility_changed",
        ),
        description="Notifications: outcome events of the loans context",
    ),
    ConsumerDecl(
        name="notifications-catalog",
        stream="KUMKM_CATALOG",
        service="notifications",
        filter_subjects=_catalog(
            "product.curated",
            "order.accepted",
            "order.rejected",
            "order.cancelled",
            "order.status_changed",  # the catalog's record of an applied step, never the integrator's claim
            "order.step_refused",
        ),
        description="Notifications: outcome events of the catalog context",
    ),
    ConsumerDecl(
        name="notifications-contacts",
        stream="KUMKM_NOTIFICATIONS",
        service="notifications",
        filter_subjects=("kumkm.notifications.contact.upserted.v1",),
        description="Notifications: the contact directory",
    ),
    ConsumerDecl(
        name="monitoring-registry",
        stream="KUMKM_REGISTRY",
        service="monitoring",
        filter_subjects=_registry(
            "cooperative.registered",
            "cooperative.updated",
            "umkm.registered",
            "umkm.updated",
            "activity.reported",
        ),
        description="Monitoring: the registry's parties and the activity survey",
    ),
    ConsumerDecl(
        name="monitoring-loans",
        stream="KUMKM_LOANS",
        service="monitoring",
        filter_subjects=_loans(
            "loan.disbursed",  # whose loan: repayments and requests name only the loan
            "repayment.received",
            "loan.collectibility_changed",
            "restructuring.requested",
            "restructuring.referred",
            "restructuring.approved",
            "restructuring.rejected",
        ),
        description="Monitoring: loan signals and restructuring progress",
    ),
    ConsumerDecl(
        name="monitoring-catalog",
        stream="KUMKM_CATALOG",
        service="monitoring",
        filter_subjects=_catalog(
            "order.accepted",  # the order's seller, buyer and region
            "order.status_changed",  # the catalog's record of an applied delivery or payment
        ),
        description="Monitoring: e-catalog sales and the UMKM share of procurement",
    ),
)


def consumer(name: str) -> ConsumerDecl:
    for decl in CONSUMER_DECLS:
        if decl.name == name:
            return decl
    raise KeyError(f"no durable consumer named {name!r} is declared")


def consumers_of(service: str) -> tuple[ConsumerDecl, ...]:
    return tuple(d for d in CONSUMER_DECLS if d.service == service)
