"""Wiring: the loans service's consumers, HTTP routes, daily tick and published events."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import structlog

from kumkm_loans.api import CONSUMER, make_router
from kumkm_loans.handlers import LoansService
from kumkm_loans.settings import LoansSettings
from kumkm_shared import ServiceDefinition
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

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kumkm_shared import ServiceRuntime

log = structlog.get_logger(__name__)

DESCRIPTION = (
    "Loans of LPDB-KUMKM and other lenders to cooperatives and UMKM: repayment schedules (annuity, flat, "
    "declining), repayments, days past due and OJK collectibility, and COVID-19 restructuring under "
    "KepMenKopUKM 15/2020 and POJK 11/2020 and 48/2020, with the progress read model the ministry monitors."
)


def daily_tick(service: LoansService) -> Callable[[ServiceRuntime], Awaitable[None]]:
    async def worker(runtime: ServiceRuntime) -> None:
        settings = service.settings
        if not settings.daily_tick:
            return
        tz = ZoneInfo(settings.business_timezone)
        while True:
            now = datetime.now(tz)
            due = now.replace(hour=settings.daily_tick_hour, minute=0, second=0, microsecond=0)
            if due <= now:
                due += timedelta(days=1)
            await asyncio.sleep((due - now).total_seconds())
            await service.tick(runtime.pool, datetime.now(tz).date(), runtime.emit)

    return worker


def build(settings: LoansSettings | None = None) -> ServiceDefinition:
    service = LoansService(settings or LoansSettings())
    return ServiceDefinition(
        name="loans",
        title="KUMKM loans service",
        description=DESCRIPTION,
        migrations=Path(__file__).parent / "migrations",
        consumers={
            CONSUMER: {
                LoanDisbursed.event_type: service.on_disbursed,
                RepaymentReceived.event_type: service.on_repayment,
                RestructuringRequested.event_type: service.on_restructuring_requested,
            }
        },
        routes=lambda runtime: make_router(runtime, service),
        workers=[daily_tick(service)],
        publishes=[
            InstallmentOverdue,
            LoanCollectibilityChanged,
            RestructuringApproved,
            RestructuringRejected,
            RestructuringReferred,
            RestructuringRequested,
        ],
        state={"service": service},
    )
