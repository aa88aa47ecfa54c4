"""Every service's HTTP skeleton: liveness, readiness (database and broker) and Prometheus metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from kumkm_shared import ServiceRuntime

pytestmark = pytest.mark.integration


async def test_health_and_metrics(runtime: ServiceRuntime) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=runtime.http), base_url="http://svc"
    ) as http:
        assert (await http.get("/health/live")).json() == {"status": "ok"}
        ready = await http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "broker": True, "permissions": True}
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert "kumkm_outbox_pending" in metrics.text or "kumkm_outbox_published" in metrics.text
        assert "faststream" in metrics.text or "kumkm_events_handled" in metrics.text


async def test_readiness_fails_when_the_database_is_gone(runtime: ServiceRuntime) -> None:
    pool = runtime.pool
    await pool.close()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=runtime.http), base_url="http://svc"
        ) as http:
            ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] is False
    finally:
        runtime._pool = None  # the fixture's stop() must not close it twice


async def test_a_permissions_violation_makes_the_service_unready(runtime: ServiceRuntime) -> None:
    import nats.errors

    await runtime._on_nats_error(
        nats.errors.Error('nats: permissions violation for subscription to "_INBOX.x"')
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=runtime.http), base_url="http://svc"
    ) as http:
        ready = await http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["permissions"] is False
