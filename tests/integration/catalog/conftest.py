"""The catalog service on real NATS and Postgres, with a clock that stands still on Thursday 12 Sep 2024."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import nats
import pytest
import pytest_asyncio

from kumkm_catalog.app import build
from kumkm_catalog.clock import FixedClock
from kumkm_catalog.settings import Band, CatalogSettings
from kumkm_shared.messaging.topology import consumer
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import consumer_idle, running_service

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
async def service(
    nats_url: str, database_url: str, settings: CatalogSettings, clock: FixedClock
) -> AsyncIterator[tuple[ServiceRuntime, httpx.AsyncClient]]:
    definition = build(settings, clock)
    # Parked events are given up on after 3 deliveries here (8 in production), to keep the tests short.
    definition.consumer_decls = {"catalog": replace(consumer("catalog"), max_deliver=3)}
    async with running_service(definition, nats_url, database_url, consumer_batch=64) as (runtime, client):
        yield runtime, client


@pytest_asyncio.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.drain()


async def publish(nc: Client, event: dict[str, Any], msg_id: str | None = None) -> None:
    """Publish as an integrator does (``msg_id`` other than the event id defeats broker de-duplication)."""
    await nc.jetstream().publish(
        event["type"], json.dumps(event).encode(), headers={"Nats-Msg-Id": msg_id or event["id"]}
    )


async def settled(runtime: ServiceRuntime, nc: Client, timeout: float = 15) -> None:
    """Every published event handled, and every outbox row on the stream."""
    assert runtime.relay is not None
    relay = runtime.relay

    async def quiet() -> bool:
        return await consumer_idle(nc, "KUMKM_CATALOG", "catalog") and await relay.pending() == 0

    await wait_for(quiet, timeout=timeout, message="catalog consumer idle and outbox empty")
    await wait_for(quiet, timeout=timeout, message="still quiet")
