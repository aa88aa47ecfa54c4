"""The progress read model the ministry monitors, by region and by cooperative (queried, never stored).

The read side: ``repository.progress_of_requests`` and ``progress_of_borrowers`` query it (all SQL lives in
``repository.py``); ``report`` shapes their rows into the answer of ``GET /progress``. Pure, no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence


class Row(Protocol):
    """A row of the repository's progress queries, read by column name."""

    def __getitem__(self, column: str, /) -> Any: ...


Key = tuple[str | None, str | None, str | None]


def _key(row: Row) -> Key:
    region = (None, None) if row["all_regions"] else (row["province"], row["city"])
    return (*region, None if row["all_borrowers"] else row["borrower_id"])


def _empty() -> dict[str, Any]:
    return {
        "requests": {"approved": 0, "rejected": 0, "referred": 0, "awaiting_second_approval": 0, "total": 0},
        "outstanding_principal_restructured": "0.00",
        "approval_rate": None,
        "median_days_to_decision": None,
        "restructured_borrowers": 0,
        "performing_borrowers": 0,
        "performing_share": None,
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def report(
    requests: Sequence[Row],
    borrowers: Sequence[Row],
    *,
    province: str | None,
    city: str | None,
) -> dict[str, Any]:
    """The progress report from the rows of ``progress_of_requests`` and ``progress_of_borrowers``."""
    metrics: dict[Key, dict[str, Any]] = {}
    names: dict[Key, str] = {}
    for row in requests:
        key = _key(row)
        m = metrics.setdefault(key, _empty())
        approved, rejected, referred = row["approved"], row["rejected"], row["referred"]
        awaiting = row["awaiting_second_approval"]
        m["requests"] = {
            "approved": approved,
            "rejected": rejected,
            "referred": referred,
            "awaiting_second_approval": awaiting,
            "total": approved + rejected + referred + awaiting,
        }
        m["outstanding_principal_restructured"] = f"{Decimal(row['restructured_principal']):.2f}"
        m["approval_rate"] = _ratio(approved, approved + rejected)
        m["median_days_to_decision"] = row["median_days"]
        if row["borrower_name"]:
            names[key] = row["borrower_name"]
    for row in borrowers:
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
