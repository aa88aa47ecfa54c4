"""The notifications service on real NATS and Postgres, with a real SMTP server and a real webhook server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import nats
import pytest
import pytest_asyncio

from kumkm_notifications.app import build
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared.testing.harness import publish_event, running_service
from tests.integration.notifications.sinks import SmtpSink, WebhookSink, smtp_sink, webhook_sink

if TYPE_CHECKING:
    import contextlib
    from collections.abc import AsyncIterator, Callable, Iterator

    import httpx

    from kumkm_shared import Clock, ServiceRuntime
    from kumkm_shared.contracts import Envelope, EventData

# Small waits so retries take milliseconds; a lease short enough for the crash tests.
FAST: dict[str, Any] = {
    "backoff_base": 0.05,
    "backoff_cap": 0.2,
    "worker_poll_interval": 0.05,
    "max_attempts": 4,
    "smtp_timeout": 0.9,
    "webhook_timeout": 0.9,
    "send_lease": 1.0,
}


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_sink() as sink:
        yield sink


@pytest_asyncio.fixture
async def webhook() -> AsyncIterator[WebhookSink]:
    async with webhook_sink() as sink:
        yield sink


def settings_for(smtp: SmtpSink, **overrides: Any) -> NotificationsSettings:
    fields: dict[str, Any] = {"smtp_host": smtp.host, "smtp_port": smtp.port, **FAST, **overrides}
    return NotificationsSettings(**fields)


@pytest.fixture
def start(nats_url: str, database_url: str, smtp: SmtpSink) -> Callable[..., Any]:
    """``async with start(clock=..., **settings) as (runtime, http)``: the service, migrated and consuming."""

    def factory(
        *, clock: Clock | None = None, **overrides: Any
    ) -> contextlib.AbstractAsyncContextManager[tuple[ServiceRuntime, httpx.AsyncClient]]:
        definition = build(settings=settings_for(smtp, **overrides), clock=clock)
        return running_service(definition, nats_url, database_url, consumer_batch=16, drain_timeout=2.0)

    return factory


@pytest_asyncio.fixture
async def service(start: Callable[..., Any]) -> AsyncIterator[tuple[ServiceRuntime, httpx.AsyncClient]]:
    async with start() as pair:
        yield pair


@pytest_asyncio.fixture
async def nc(nats_url: str) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.drain()


async def publish(nc: nats.aio.client.Client, data: EventData, *, msg_id: str | None = None) -> Envelope:
    """Publish a contract event as its owner would (the envelope id is the Nats-Msg-Id unless overridden)."""
    return await publish_event(nc, data, msg_id=msg_id)


async def republish(nc: nats.aio.client.Client, envelope: Envelope, msg_id: str) -> None:
    await publish_event(nc, envelope, msg_id=msg_id)
