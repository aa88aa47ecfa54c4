"""Operations: the day's seller-confirmation timeouts, and the UMKM share statistics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from kumkm_catalog import repository as repo
from kumkm_catalog.api.bodies import TickRequest  # noqa: TC001 - FastAPI reads the annotation at runtime
from kumkm_catalog.api.deps import ServiceDep  # noqa: TC001 - FastAPI reads it at runtime
from kumkm_catalog.domain import permissions
from kumkm_catalog.domain.access import stats_region
from kumkm_catalog.domain.stats import PurchaseFact, summarize
from kumkm_shared import business_date
from kumkm_shared.contracts.types import Name  # noqa: TC001 - FastAPI reads it at runtime
from kumkm_shared.service.deps import ActorDep, CommandDep, Require, RuntimeDep

router = APIRouter()


@router.post("/tick", tags=["operations"], dependencies=[Require(permissions.TICK)])
async def tick(
    runtime: RuntimeDep, service: ServiceDep, command: CommandDep, body: TickRequest | None = None
) -> dict[str, Any]:
    """Run the day's seller-confirmation timeouts as of ``date`` (idempotent)."""
    day = (body.date if body else None) or business_date(service.clock)
    cancelled = await service.tick(lambda: runtime.command(command), day)
    return {"date": day.isoformat(), "cancelled": cancelled}


@router.get("/stats", tags=["statistics"], dependencies=[Require(permissions.STATS)])
async def stats(
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
    province: Annotated[Name | None, Query(description="only this province (case-insensitive)")] = None,
    city: Annotated[Name | None, Query(description="only this city of the province")] = None,
) -> dict[str, Any]:
    """UMKM share of committed e-catalog purchase value, overall, by region and by category; for the whole
    country or one region inside the reader's regions (a regional reader asking for none gets their own
    region when they have exactly one)."""
    if city is not None and province is None:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("query", "province"), "msg": "city needs the province it is in"}]
        )
    region = stats_region(actor.scope, permissions.STATS, province, city)
    async with runtime.pool.acquire() as conn:
        rows = await repo.purchase_facts(
            conn, province=region.province if region else None, city=region.city if region else None
        )
    facts = [
        PurchaseFact(
            province=r["province"] or "unknown",
            city=r["city"] or "unknown",
            category=r["category"],
            scale=r["scale"] or "unknown",
            paid=r["paid"],
            value=r["value"],
        )
        for r in rows
    ]
    answer = summarize(facts, service.settings.umkm_target_pct)
    answer["region"] = None if region is None else {"province": region.province, "city": region.city}
    return answer
