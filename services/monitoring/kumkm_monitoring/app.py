"""Wiring: the monitoring service's consumers and HTTP routes (a read side: it publishes nothing).

The shape of every service (``docs/architecture.md``): ``build()`` makes the ``MonitoringService`` with its
settings and its clock, and hands it and the module-level router to the runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kumkm_monitoring import api
from kumkm_monitoring.domain import permissions
from kumkm_monitoring.handlers import MonitoringService
from kumkm_monitoring.settings import MonitoringSettings
from kumkm_shared import ServiceDefinition
from kumkm_shared.clock import SystemClock

if TYPE_CHECKING:
    from kumkm_shared.clock import Clock

DESCRIPTION = (
    "The recovery monitor: which cooperatives and UMKM of the registry are productive again, month by month, "
    "by province, city and kecamatan against the region's target (65% for Kota Bekasi), from measured "
    "signals (a performing loan repaid, an e-catalog sale, the activity survey); the outreach list of those "
    "not yet productive; restructuring progress from the loans context's events; and the UMKM share of "
    "e-catalog procurement against 40%. A pure read side, rebuilt from the streams."
)


def build(settings: MonitoringSettings | None = None, *, clock: Clock | None = None) -> ServiceDefinition:
    service = MonitoringService(settings or MonitoringSettings(), clock or SystemClock())
    return ServiceDefinition(
        name="monitoring",
        title="KUMKM monitoring service",
        description=DESCRIPTION,
        migrations=Path(__file__).parent / "migrations",
        consumers=service.handlers(),
        routes=api.router,
        permissions=permissions.PERMISSIONS,
        service=service,
        publishes=[],
    )
