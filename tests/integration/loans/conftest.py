"""The loans service on real NATS JetStream and Postgres, with helpers to drive it like an integrator."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest_asyncio

from kumkm_loans.app import build
from kumkm_loans.settings import LoansSettings
from kumkm_shared.testing.harness import ServiceHarness
from tests.support.events import envelope

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

REQUESTED = "kumkm.loans.restructuring.requested.v1"


class Loans(ServiceHarness):
    """The running service (``runtime``), its HTTP client (``http``) and an integrator's connection (``nc``).

    ``publish``, ``settle`` and the rest come from ``ServiceHarness``; ``events`` reads the loans stream.
    """

    async def events(self, suffix: str = "", *, timeout: float = 0.3) -> list[dict[str, Any]]:
        """The loans context's events, those whose type ends with ``suffix`` when given."""
        events = await super().events("kumkm.loans.>", timeout=timeout)
        return [e for e in events if e["type"].endswith(suffix)] if suffix else events

    async def tick(self, day: str) -> dict[str, Any]:
        response = await self.http.post("/tick", json={"date": day})
        assert response.status_code == 200, response.text
        await self.settle()
        result: dict[str, Any] = response.json()
        return result


@pytest_asyncio.fixture
async def loans(nats_url: str, database_url: str) -> AsyncIterator[Loans]:
    definition = build(settings=LoansSettings(daily_tick=False))
    async with Loans.start(definition, nats_url, database_url, consumer_batch=16) as harness:
        yield harness


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
