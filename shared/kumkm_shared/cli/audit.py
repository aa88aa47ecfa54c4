"""``kumkm audit``: the audit trail of one service or of all of them (``GET /audit``, the auditor's), merged
oldest first, as a table or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from kumkm_shared.cli.service_api import call_service

if TYPE_CHECKING:
    from pathlib import Path

AUDITED_SERVICES = ("loans", "catalog", "notifications")
COLUMNS = ("at", "service", "subject", "request", "command", "target", "status", "outcome", "reason")


def read_trail(
    services: list[str],
    params: dict[str, Any],
    *,
    url: str | None,
    data_dir: Path | None,
) -> list[dict[str, Any]]:
    """Each service's records matching `params` (``AuditFilter``'s fields), tagged with the service and
    merged by time (oldest first)."""
    records: list[dict[str, Any]] = []
    query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
    for service in services:
        body = call_service(service, "GET", "/audit", url=url, data_dir=data_dir, params=query)
        records.extend({"service": service, **item} for item in body.get("items", []))
    records.sort(key=lambda record: (str(record.get("at", "")), int(record.get("id", 0))))
    return records


def _cell(record: dict[str, Any], column: str) -> str:
    if column == "request":
        return f"{record.get('method') or ''} {record.get('route') or ''}".strip()
    if column == "at":
        return str(record.get("at") or "")[:19].replace("T", " ")
    if column == "subject":
        subject = record.get("subject") or "-"
        kind = record.get("actor_kind")
        return f"{subject} ({kind})" if kind and kind != "person" else subject
    value = record.get(column)
    return "" if value is None else str(value)


def trail_table(records: list[dict[str, Any]]) -> Table:
    table = Table(title=f"audit trail ({len(records)} records)")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for record in records:
        refused = int(record.get("status") or 200) >= 400  # noqa: PLR2004 - HTTP 4xx and 5xx
        table.add_row(*(_cell(record, c) for c in COLUMNS), style="red" if refused else None)
    return table
