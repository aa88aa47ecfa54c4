"""The catalog service on real NATS and Postgres, with a clock that stands still on Thursday 12 Sep 2024."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from kumkm_catalog.app import build
from kumkm_catalog.settings import Band, CatalogSettings
from kumkm_shared import FixedClock
from kumkm_shared.messaging.topology import consumer
from kumkm_shared.testing.harness import ServiceHarness, publish_event, settle

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx
    from nats.aio.client import Client

    from kumkm_shared import ServiceRuntime

# Thursday 12 September 2024, 10:00 in Jakarta. Monday 16 September is a public holiday (Maulid Nabi).
THURSDAY = datetime(2024, 9, 12, 3, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(THURSDAY)


@pytest.fixture
def settings() -> CatalogSettings:
    return CatalogSettings(
        price_bands={"furniture": Band(low=Decimal(50_000), high=Decimal(25_000_000))},
        tick_interval_seconds=3600,
    )


@pytest_asyncio.fixture
async def catalog(
    nats_url: str, database_url: str, settings: CatalogSettings, clock: FixedClock
) -> AsyncIterator[ServiceHarness]:
    """The catalog on its harness: ``runtime``, ``http``, an integrator's ``nc``, ``publish``, ``settle``."""
    definition = build(settings=settings, clock=clock)
    # Parked events are given up on after 3 deliveries here (8 in production), to keep the tests short.
    definition.consumer_decls = {"catalog": replace(consumer("catalog"), max_deliver=3)}
    async with ServiceHarness.start(definition, nats_url, database_url, consumer_batch=64) as harness:
        yield harness


@pytest.fixture
def service(catalog: ServiceHarness) -> tuple[ServiceRuntime, httpx.AsyncClient]:
    return catalog.runtime, catalog.http


@pytest.fixture
def nc(catalog: ServiceHarness) -> Client:
    """The harness's integrator connection."""
    return catalog.nc


async def publish(nc: Client, event: dict[str, Any], msg_id: str | None = None) -> None:
    """Publish as an integrator does (``msg_id`` other than the event id defeats broker de-duplication)."""
    await publish_event(nc, event, msg_id=msg_id)


async def settled(runtime: ServiceRuntime, nc: Client, timeout: float = 15) -> None:
    """Every published event handled, and every outbox row on the stream."""
    await settle(runtime, nc, timeout)
