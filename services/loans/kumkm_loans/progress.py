"""The progress read model the ministry monitors, by region and by cooperative (queried, never stored)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

    from kumkm_loans.repository import Conn

_FILTER = (
    "($1::text IS NULL OR lower(province) = lower($1)) AND ($2::text IS NULL OR lower(city) = lower($2))"
)

_REQUESTS = f"""
SELECT grouping(province, city) AS all_regions, grouping(borrower_id) AS all_borrowers,
       province, city, borrower_id, max(borrower_name) AS borrower_name,
       count(*) FILTER (WHERE status = 'approved') AS approved,
       count(*) FILTER (WHERE status = 'rejected') AS rejected,
       count(*) FILTER (WHERE status = 'referred') AS referred,
       coalesce(sum(outstanding_principal) FILTER (WHERE status = 'approved'), 0) AS restructured_principal,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY decided_on - requested_on)
           FILTER (WHERE status IN ('approved', 'rejected')) AS median_days
FROM restructuring_requests
WHERE status <> 'received' AND {_FILTER}
GROUP BY GROUPING SETS ((), (province, city), (province, city, borrower_id))
"""

_PERFORMING = f"""
WITH borrowers AS (
    SELECT borrower_id, max(borrower_name) AS borrower_name, province, city,
           bool_and(collectibility = 1) AS performing
    FROM loans WHERE restructure_count > 0 AND {_FILTER}
    GROUP BY borrower_id, province, city
)
SELECT grouping(province, city) AS all_regions, grouping(borrower_id) AS all_borrowers,
       province, city, borrower_id, max(borrower_name) AS borrower_name,
       count(*) AS restructured_borrowers, count(*) FILTER (WHERE performing) AS performing_borrowers
FROM borrowers
GROUP BY GROUPING SETS ((), (province, city), (province, city, borrower_id))
"""

Key = tuple[str | None, str | None, str | None]


def _key(row: asyncpg.Record) -> Key:
    region = (None, None) if row["all_regions"] else (row["province"], row["city"])
    return (*region, None if row["all_borrowers"] else row["borrower_id"])


def _empty() -> dict[str, Any]:
    return {
        "requests": {"approved": 0, "rejected": 0, "referred": 0, "total": 0},
        "outstanding_principal_restructured": "0.00",
        "approval_rate": None,
        "median_days_to_decision": None,
        "restructured_borrowers": 0,
        "performing_borrowers": 0,
        "performing_share": None,
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def progress(conn: Conn, province: str | None, city: str | None) -> dict[str, Any]:
    metrics: dict[Key, dict[str, Any]] = {}
    names: dict[Key, str] = {}
    for row in await conn.fetch(_REQUESTS, province, city):
        key = _key(row)
        m = metrics.setdefault(key, _empty())
        approved, rejected, referred = row["approved"], row["rejected"], row["referred"]
        m["requests"] = {
            "approved": approved,
            "rejected": rejected,
            "referred": referred,
            "total": approved + rejected + referred,
        }
        m["outstanding_principal_restructured"] = f"{Decimal(row['restructured_principal']):.2f}"
        m["approval_rate"] = _ratio(approved, approved + rejected)
        m["median_days_to_decision"] = row["median_days"]
        if row["borrower_name"]:
            names[key] = row["borrower_name"]
    for row in await conn.fetch(_PERFORMING, province, city):
        key = _key(row)
        m = metrics.setdefault(key, _empty())
        m["restructured_borrowers"] = row["restructured_borrowers"]
        m["performing_borrowers"] = row["performing_borrowers"]
        m["performing_share"] = _ratio(row["performing_borrowers"], row["restructured_borrowers"])
        if row["borrower_name"]:
            names[key] = row["borrower_name"]
    totals = metrics.pop((None, None, None), _empty())
    regions = [
        {"province": k[0], "city": k[1], **m} for k, m in sorted(metrics.items(), key=_sort) if k[2] is None
    ]
    cooperatives = [
        {"borrower_id": k[2], "name": names.get(k), "province": k[0], "city": k[1], **m}
        for k, m in sorted(metrics.items(), key=_sort)
        if k[2] is not None
    ]
    return {
        "filter": {"province": province, "city": city},
        **totals,
        "by_region": regions,
        "by_cooperative": cooperatives,
    }


def _sort(item: tuple[Key, dict[str, Any]]) -> tuple[str, str, str]:
    key = item[0]
    return (key[0] or "", key[1] or "", key[2] or "")
