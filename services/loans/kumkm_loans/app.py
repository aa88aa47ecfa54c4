"""Wiring: the loans service's consumers, HTTP routes, daily tick and published events.

The shape of every service (``docs/architecture.md``, "The shape of a service"): ``build()`` makes the
``LoansService`` with its settings and its clock, and hands it and the module-level router to the runtime.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from kumkm_loans import api
from kumkm_loans.domain import permissions
from kumkm_loans.handlers import LoansService
from kumkm_loans.settings import LoansSettings
from kumkm_shared import ServiceDefinition
from kumkm_shared.clock import SystemClock
from kumkm_shared.contracts.loans import (
    InstallmentOverdue,
    LoanCollectibilityChanged,
    LoanDisbursed,
    RepaymentReceived,
    RestructuringApproved,
    RestructuringReferred,
    RestructuringRejected,
    RestructuringRequested,
)
from kumkm_shared.origin import SYSTEM, Command

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kumkm_shared import ServiceRuntime
    from kumkm_shared.clock import Clock

DESCRIPTION = (
    "Loans of LPDB-KUMKM and other lenders to cooperatives and UMKM: repayment schedules (annuity, flat, "
    "declining), repayments, days past due and OJK collectibility, and COVID-19 restructuring under "
    "KepMenKopUKM 15/2020 and POJK 11/2020 and 48/2020, with the progress read model the ministry monitors."
)

DAILY_TICK = Command(SYSTEM, via="timer")


def seconds_until(service: LoansService, hour: int) -> float:
    """Seconds from the service clock's now to the next ``hour`` o'clock in the business time zone."""
    now = service.clock.now().astimezone(service.timezone)
    due = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if due <= now:
        due += timedelta(days=1)
    return (due - now).total_seconds()


def daily_tick(service: LoansService) -> Callable[[ServiceRuntime], Awaitable[None]]:
    """The collectibility tick, on the leader replica only (``leader_workers``).

    A replica that becomes leader after today's tick hour and finds no tick recorded for today runs it at
    once: the leader may have died before or during it, and the tick is idempotent (each overdue
    installment and grade change is recorded, and told, once).
    """

    async def worker(runtime: ServiceRuntime) -> None:
        settings = service.settings
        if not settings.daily_tick:
            return
        begin = partial(runtime.command, DAILY_TICK)
        while True:
            today = service.today()
            if service.past_hour(settings.daily_tick_hour) and not await service.ticked(begin, today):
                await service.tick(begin, today)
            await asyncio.sleep(seconds_until(service, settings.daily_tick_hour))

    return worker


def build(settings: LoansSettings | None = None, *, clock: Clock | None = None) -> ServiceDefinition:
    service = LoansService(settings or LoansSettings(), clock or SystemClock())
    return ServiceDefinition(
        name="loans",
        title="KUMKM loans service",
        description=DESCRIPTION,
        migrations=Path(__file__).parent / "migrations",
        consumers={
            api.CONSUMER: {
                LoanDisbursed.event_type: service.on_disbursed,
                RepaymentReceived.event_type: service.on_repayment,
                RestructuringRequested.event_type: service.on_restructuring_requested,
            }
        },
        routes=api.router,
        permissions=permissions.PERMISSIONS,
        service=service,
        leader_workers=[daily_tick(service)],
        publishes=[
            InstallmentOverdue,
            LoanCollectibilityChanged,
            RestructuringApproved,
            RestructuringRejected,
            RestructuringReferred,
            RestructuringRequested,
        ],
    )
