"""The loans service on real NATS JetStream and Postgres, with helpers to drive it like an integrator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats
import pytest_asyncio

from kumkm_loans.app import build
from kumkm_loans.settings import LoansSettings
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import consumer_idle, running_service, stream_events
from tests.support.events import envelope, to_bytes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx
    from nats.aio.client import Client

    from kumkm_shared import ServiceRuntime

REQUESTED = "kumkm.loans.restructuring.requested.v1"


@dataclass
class Loans:
    """The running service, its HTTP client, and an integrator's NATS connection."""

    runtime: ServiceRuntime
    http: httpx.AsyncClient
    nc: Client

    async def publish(self, event: dict[str, Any], *, msg_id: str | None = None) -> None:
        headers = {"Nats-Msg-Id": msg_id or event["id"]}
        await self.nc.jetstream().publish(event["type"], to_bytes(event), headers=headers)

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until the consumer has handled everything and the outbox is on the stream."""
        await wait_for(lambda: consumer_idle(self.nc, "KUMKM_LOANS", "loans"), timeout=timeout)

        async def outbox_flushed() -> bool:
            assert self.runtime.relay is not None
            return await self.runtime.relay.pending() == 0

        await wait_for(outbox_flushed, timeout=timeout)

    async def events(self, suffix: str = "") -> list[dict[str, Any]]:
        events = await stream_events(self.nc, "kumkm.loans.>", timeout=0.3)
        return [e for e in events if e["type"].endswith(suffix)] if suffix else events

    async def tick(self, day: str) -> dict[str, Any]:
        response = await self.http.post("/tick", json={"date": day})
        assert response.status_code == 200, response.text
        await self.settle()
        result: dict[str, Any] = response.json()
        return result


@pytest_asyncio.fixture
async def loans(nats_url: str, database_url: str) -> AsyncIterator[Loans]:
    settings = LoansSettings(daily_tick=False)
    async with running_service(build(settings), nats_url, database_url, consumer_batch=16) as (runtime, http):
        nc = await nats.connect(nats_url)
        try:
            yield Loans(runtime, http, nc)
        finally:
            await nc.drain()


def restructuring_requested(
    loan_id: str,
    *,
    request_id: str | None = None,
    requested_on: str = "2020-04-20",
    reschedule_from: str = "2020-05-15",
    reason: str = "covid19_direct",
    proposal: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    data = {
        "request_id": request_id or f"RR-{uuid.uuid4().hex[:10]}",
        "loan_id": loan_id,
        "requested_on": requested_on,
        "reason": reason,
        "impact": {"revenue_drop_pct": "60", "note": "Pasar sepi selama PSBB"},
        "proposal": proposal
        or [
            {"scheme": "grace_period", "months": 6, "on": "principal"},
            {"scheme": "tenor_extension", "extra_months": 12},
        ],
        "reschedule_from": reschedule_from,
    }
    return envelope(REQUESTED, data)
