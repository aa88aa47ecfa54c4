"""The monitoring HTTP API: the recovery figures, the trend, the outreach list (JSON and CSV), restructuring
progress, the UMKM share of procurement, and one party's facts. Read only.

Every route declares one permission (``domain/permissions.py``) and is region-scoped by the caller's token:
a filter naming a region outside the scope is refused (403 ``outside_region``), lists and sums are filtered
by the scope in SQL (``kumkm_monitoring.domain.regions``). Figures come from the pre-aggregated counts,
never a scan of the parties. Shares are strings of Decimals with four places, money with two.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from kumkm_monitoring import repository as repo
from kumkm_monitoring.domain import (
    Months,
    check_in_scope,
    month_label,
    month_of,
    parse_month,
    permissions,
    ratio,
    region_filter,
    share_text,
)
from kumkm_monitoring.handlers import MonitoringService
from kumkm_shared import NotFound
from kumkm_shared.contracts.types import Text  # noqa: TC001 - FastAPI reads the route signatures
from kumkm_shared.service.deps import ActorDep, Require, RuntimeDep, service_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg

    from kumkm_shared.auth.scope import RegionScope

router = APIRouter()

Kind = Literal["cooperative", "umkm"]
Level = Literal["province", "city", "district"]
MonthText = Annotated[
    str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (default: this month)")
]
CSV_HEADER = (
    "kind",
    "party_id",
    "name",
    "province",
    "city",
    "district",
    "lacks",
    "last_repayment",
    "last_sale",
    "last_activity_as_of",
    "last_activity_operating",
)
CSV_PAGE = 1000


def _service(request: Request) -> MonitoringService:
    return cast("MonitoringService", service_of(request))


ServiceDep = Annotated[MonitoringService, Depends(_service)]


def _invalid(field: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}]
    )


def _month(service: MonitoringService, text: str | None, field: str = "month") -> int:
    if text is None:
        return month_of(service.today())
    try:
        return parse_month(text)
    except ValueError as exc:
        raise _invalid(field, str(exc), text) from None


def _needs_city(district: str | None, city: str | None) -> None:
    if district is not None and city is None:
        raise _invalid("district", "a district (kecamatan) is asked for with its city", district)


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _region(scope: RegionScope, province: str | None, city: str | None) -> tuple[str | None, str | None]:
    return region_filter(scope, permissions.READ, province, city)


@router.get("/recovery", tags=["recovery"], dependencies=[Require(permissions.READ)])
async def recovery(
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
    month: MonthText = None,
    level: Level | None = None,
    province: Text | None = None,
    city: Text | None = None,
    kind: Kind | None = None,
) -> dict[str, Any]:
    """Registered and productive parties and the share productive in a month, by province, city or district
    (kecamatan) and by kind, against the target. The level defaults to the one below the region asked."""
    m = _month(service, month)
    province, city = _region(actor.scope, province, city)
    level = level or ("district" if city else "city" if province else "province")
    async with runtime.pool.acquire() as conn:
        rows = await repo.recovery_rows(
            conn, actor.scope, month=m, level=level, province=province, city=city, kind=kind
        )
    return {"month": month_label(m), "level": level, "rows": [_recovery_row(service, r, level) for r in rows]}


def _recovery_row(service: MonitoringService, row: asyncpg.Record, level: str) -> dict[str, Any]:
    province = row["province"]
    city = row["city"] if level != "province" else None
    district = (row["district"] or None) if level == "district" else None
    kind = row["kind"]
    registered, productive = int(row["registered"]), int(row["productive"])
    target = service.targets.find(province, city, kind) if level != "district" else None
    share = target.share if target is not None else service.targets.share_for(province, city, kind)
    return {
        "province": province,
        "city": city,
        "district": district,
        "kind": kind,
        "registered": registered,
        "productive": productive,
        "share": share_text(ratio(productive, registered)),
        "target_share": share_text(share),
        "target_population": target.population if target is not None else None,
        "target_count": target.count if target is not None else None,
    }


@router.get("/recovery/trend", tags=["recovery"], dependencies=[Require(permissions.READ)])
async def recovery_trend(  # noqa: PLR0917 - one query parameter per filter
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
    province: Text | None = None,
    city: Text | None = None,
    district: Text | None = None,
    kind: Kind | None = None,
    months: Annotated[int, Query(ge=1, le=120)] = 12,
    until: MonthText = None,
) -> dict[str, Any]:
    """The share productive month by month, the last ``months`` months up to ``until`` (this month)."""
    _needs_city(district, city)
    last = _month(service, until, "until")
    province, city = _region(actor.scope, province, city)
    async with runtime.pool.acquire() as conn:
        rows = await repo.trend(
            conn, actor.scope, until=last, province=province, city=city, district=district, kind=kind
        )
        province, city = await repo.display_region(conn, province, city)
    first = last - months + 1
    registered = productive = 0
    by_month = {r["month"]: r for r in rows}
    for r in rows:
        if r["month"] < first:
            registered += r["d_registered"]
            productive += r["d_productive"]
    points = []
    for m in range(first, last + 1):
        if m in by_month:
            registered += by_month[m]["d_registered"]
            productive += by_month[m]["d_productive"]
        points.append(
            {
                "month": month_label(m),
                "registered": registered,
                "productive": productive,
                "share": share_text(ratio(productive, registered)),
            }
        )
    target = service.targets.share_for(province, city, kind)
    return {
        "province": province,
        "city": city,
        "district": district,
        "kind": kind,
        "points": points,
        "target_share": share_text(target),
    }


def _last_signal(row: asyncpg.Record) -> dict[str, Any]:
    activity = (
        None
        if row["last_activity_on"] is None
        else {"as_of": row["last_activity_on"].isoformat(), "operating": row["last_activity_operating"]}
    )
    return {
        "loan": row["last_repayment"].isoformat() if row["last_repayment"] else None,
        "sale": row["last_sale"].isoformat() if row["last_sale"] else None,
        "activity": activity,
    }


def _outreach_item(service: MonitoringService, row: asyncpg.Record) -> dict[str, Any]:
    return {
        "kind": row["kind"],
        "party_id": row["party_id"],
        "name": row["name"],
        "region": row["region"],
        "lacks": [s.value for s in service.rules.enabled],
        "last_signal": _last_signal(row),
    }


@router.get("/outreach", tags=["outreach"], dependencies=[Require(permissions.OUTREACH)])
async def outreach(  # noqa: PLR0917 - one query parameter per filter
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
    province: Text | None = None,
    city: Text | None = None,
    district: Text | None = None,
    kind: Kind | None = None,
    month: MonthText = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(pattern=r"^(\d{13}|\d{16})$")] = None,
) -> dict[str, Any]:
    """The parties of the month's population not productive in it, with the signals each lacks and its
    latest ones; by party id, ``next`` is the ``after`` of the next page."""
    _needs_city(district, city)
    m = _month(service, month)
    province, city = region_filter(actor.scope, permissions.OUTREACH, province, city)
    async with runtime.pool.acquire() as conn:
        rows = await repo.outreach(
            conn,
            actor.scope,
            month=m,
            province=province,
            city=city,
            district=district,
            kind=kind,
            after=after,
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "month": month_label(m),
        "items": [_outreach_item(service, r) for r in rows],
        "next": rows[-1]["party_id"] if more else None,
    }


class CsvResponse(StreamingResponse):
    """A streamed CSV answer; as the response class of a route, it documents ``text/csv``."""

    media_type = "text/csv"


@router.get(
    "/outreach.csv",
    tags=["outreach"],
    dependencies=[Require(permissions.OUTREACH)],
    response_class=CsvResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the CSV"}},
)
async def outreach_csv(
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
    province: Text | None = None,
    city: Text | None = None,
    district: Text | None = None,
    kind: Kind | None = None,
    month: MonthText = None,
) -> CsvResponse:
    """The whole outreach list as CSV (header ``kind,party_id,name,province,city,district,lacks,
    last_repayment,last_sale,last_activity_as_of,last_activity_operating``; ``lacks`` joined by ``;``),
    streamed page by page."""
    _needs_city(district, city)
    m = _month(service, month)
    province, city = region_filter(actor.scope, permissions.OUTREACH, province, city)
    scope = actor.scope
    lacks = ";".join(s.value for s in service.rules.enabled)

    def line(values: tuple[Any, ...]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(values)
        return buffer.getvalue()

    async def rows() -> AsyncIterator[str]:
        yield line(CSV_HEADER)
        after: str | None = None
        while True:
            async with runtime.pool.acquire() as conn:
                page = await repo.outreach(
                    conn,
                    scope,
                    month=m,
                    province=province,
                    city=city,
                    district=district,
                    kind=kind,
                    after=after,
                    limit=CSV_PAGE,
                )
            chunk = [line(_csv_values(r, lacks)) for r in page]
            if chunk:
                yield "".join(chunk)
            if len(page) < CSV_PAGE:
                return
            after = page[-1]["party_id"]

    filename = f"outreach-{month_label(m)}.csv"
    return CsvResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_values(r: asyncpg.Record, lacks: str) -> tuple[Any, ...]:
    operating = r["last_activity_operating"]
    return (
        r["kind"],
        r["party_id"],
        r["name"],
        r["province"],
        r["city"],
        r["district"],
        lacks,
        r["last_repayment"].isoformat() if r["last_repayment"] else "",
        r["last_sale"].isoformat() if r["last_sale"] else "",
        r["last_activity_on"].isoformat() if r["last_activity_on"] else "",
        "" if operating is None else str(operating).lower(),
    )


@router.get("/restructuring", tags=["restructuring"], dependencies=[Require(permissions.READ)])
async def restructuring(
    runtime: RuntimeDep, actor: ActorDep, province: Text | None = None, city: Text | None = None
) -> dict[str, Any]:
    """Restructuring progress from the loans context's events: requests, referrals, decisions, the median
    days from request to decision, the principal restructured and the share of restructured loans
    performing now (collectibility 1-2)."""
    province, city = _region(actor.scope, province, city)
    async with runtime.pool.acquire() as conn:
        row = await repo.restructuring(conn, actor.scope, province, city)
        province, city = await repo.display_region(conn, province, city)
    median = row["median_days"]
    return {
        "province": province,
        "city": city,
        "requested": row["requested"],
        "referred": row["referred"],
        "approved": row["approved"],
        "rejected": row["rejected"],
        "pending": row["pending"],
        "median_days_to_decision": None if median is None else float(median),
        "principal_restructured": _money(Decimal(row["principal"])),
        "restructured_loans": row["loans"],
        "performing_loans": row["performing"],
        "performing_share": share_text(ratio(row["performing"], row["loans"])),
    }


@router.get("/procurement", tags=["procurement"], dependencies=[Require(permissions.READ)])
async def procurement(
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
    province: Text | None = None,
    city: Text | None = None,
) -> dict[str, Any]:
    """The value of paid e-catalog orders, the part sold by registered UMKM (micro, small or medium), and
    its share against the target (40%)."""
    province, city = _region(actor.scope, province, city)
    async with runtime.pool.acquire() as conn:
        row = await repo.procurement(conn, actor.scope, province, city)
        province, city = await repo.display_region(conn, province, city)
    total, umkm = Decimal(row["total_paid"]), Decimal(row["umkm_paid"])
    return {
        "province": province,
        "city": city,
        "total_paid": _money(total),
        "umkm_paid": _money(umkm),
        "umkm_share": share_text(ratio(umkm, total)),
        "target_share": share_text(service.settings.procurement_target_share),
    }


@router.get("/parties/{party_id}", tags=["parties"], dependencies=[Require(permissions.READ)])
async def party(
    party_id: Annotated[str, Path(pattern=r"^(\d{13}|\d{16})$", description="cooperative number or NIB")],
    runtime: RuntimeDep,
    service: ServiceDep,
    actor: ActorDep,
) -> dict[str, Any]:
    """A party's registry record, its months in the population and productive, and its signals."""
    async with runtime.pool.acquire() as conn:
        row = await repo.load_party(conn, party_id)
        if row is None:
            raise NotFound("party", party_id)
        check_in_scope(actor.scope, permissions.READ, f"party {party_id!r}", row["province"], row["city"])
        detail = await repo.party_detail(conn, party_id)
    this_month = month_of(service.today())
    productive = Months.from_sql(row["productive_text"])
    return {
        "kind": row["kind"],
        "party_id": party_id,
        "name": row["name"],
        "region": row["region"],
        "status": row["status"],
        "scale": row["scale"],
        "kbli": row["kbli"],
        "cooperative_type": row["cooperative_type"],
        "member_count": row["member_count"],
        "first_as_of": row["first_as_of"].isoformat(),
        "as_of": row["as_of"].isoformat(),
        "population": Months.from_sql(row["population_text"]).labels(),
        "productive": productive.labels(),
        "productive_this_month": this_month in productive,
        "last_signal": _last_signal(row),
        "signals": {
            "loans": [
                {
                    "loan_id": r["loan_id"],
                    "lender": r["lender"],
                    "disbursed_on": r["disbursed_on"].isoformat(),
                    "collectibility": r["grade"] or 1,
                    "last_repayment": r["last_repayment"].isoformat() if r["last_repayment"] else None,
                }
                for r in detail["loans"]
            ],
            "sales": [
                {
                    "order_id": r["order_id"],
                    "delivered_on": r["delivered_on"].isoformat() if r["delivered_on"] else None,
                    "paid_on": r["paid_on"].isoformat() if r["paid_on"] else None,
                    "paid_amount": _money(r["paid_amount"]) if r["paid_amount"] is not None else None,
                }
                for r in detail["orders"]
            ],
            "activity": [
                {
                    "as_of": r["as_of"].isoformat(),
                    "operating": r["operating"],
                    "revenue_band": r["revenue_band"],
                    "survey": r["survey"],
                }
                for r in detail["activity"]
            ],
        },
    }
