"""Wiring: consumers, the delivery worker, HTTP routes. ``build()`` fails loudly on a missing template."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kumkm_notifications import api
from kumkm_notifications.dispatcher import Dispatcher
from kumkm_notifications.domain import permissions
from kumkm_notifications.domain.subscriptions import CONSUMED, SUBSCRIPTIONS
from kumkm_notifications.handlers import NotificationsService
from kumkm_notifications.rendering import TemplateCatalog
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared import ServiceDefinition, SystemClock
from kumkm_shared.contracts import ContactUpserted, LoanDisbursed, NotificationDelivered, NotificationFailed

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kumkm_shared import Clock, ConsumerDecl, Handler, ServiceRuntime

NAME = "notifications"


def build(
    settings: NotificationsSettings | None = None,
    *,
    clock: Clock | None = None,
    templates: TemplateCatalog | None = None,
    consumer_decls: Mapping[str, ConsumerDecl] | None = None,
) -> ServiceDefinition:
    settings = settings or NotificationsSettings()
    clock = clock or SystemClock()
    templates = templates or TemplateCatalog()
    templates.check(SUBSCRIPTIONS)  # a missing template stops the service here, not at the first event
    service = NotificationsService(settings, templates, clock)
    dispatcher = Dispatcher(settings, clock)

    def by_context(prefix: str) -> dict[str, Handler]:
        return {t: service.on_event for t in sorted(CONSUMED) if t.startswith(prefix)}

    async def delivery_worker(runtime: ServiceRuntime) -> None:
        await dispatcher.run(runtime)

    return ServiceDefinition(
        name=NAME,
        title="KUMKM notifications",
        description=(
            "Contact directory, Jinja2 templates in Indonesian and English, and delivery by email, signed "
            "webhook, SMS/WhatsApp gateway and in-app inbox, with retries and delivery receipts."
        ),
        migrations=Path(__file__).parent / "migrations",
        consumers={
            "notifications-loans": {
                **by_context("kumkm.loans."),
                LoanDisbursed.event_type: service.on_loan_disbursed,
            },
            "notifications-catalog": by_context("kumkm.catalog."),
            "notifications-contacts": {ContactUpserted.event_type: service.on_contact_upserted},
        },
        routes=api.router,
        permissions=permissions.PERMISSIONS,
        service=service,
        workers=[delivery_worker],
        publishes=[NotificationDelivered, NotificationFailed],
        consumer_decls=dict(consumer_decls or {}),
        state={"dispatcher": dispatcher},  # the delivery worker, for tests that swap a channel's sender
    )
