"""Writing and reading the audit trail (table ``audit_trail`` in each service's schema)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from kumkm_shared.contracts.types import UtcDateTime

if TYPE_CHECKING:
    from kumkm_shared.audit.draft import AuditDraft
    from kumkm_shared.db import Conn

__all__ = ["AuditFilter", "insert", "query"]

COLUMNS = (
    "id, at, subject, actor_kind, actor_name, roles, organisation, method, route, command, target, status, "
    "outcome, reason, request_id, client"
)


LIMIT = 1000  # characters kept of any text a caller chose (a path, a reason naming its fields)


def _text(value: str | None) -> str | None:
    """Text as Postgres stores it: no NUL (``text`` refuses it, which would lose the record), no lone
    surrogate, and at most ``LIMIT`` characters."""
    if value is None:
        return None
    cleaned = value.replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")
    return cleaned if len(cleaned) <= LIMIT else cleaned[: LIMIT - 1] + "…"


async def insert(conn: Conn, draft: AuditDraft, *, status: int | None, outcome: str) -> None:
    actor = draft.actor
    await conn.execute(
        """INSERT INTO audit_trail (subject, actor_kind, actor_name, roles, organisation, method, route,
                                    command, target, status, outcome, reason, request_id, client)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
        _text(actor.subject) if actor is not None else None,
        actor.kind if actor is not None else "anonymous",
        _text(actor.name) if actor is not None else None,
        [_text(r) for r in sorted(actor.roles)] if actor is not None else [],
        _text(actor.organisation) if actor is not None else None,
        _text(draft.method),
        _text(draft.route or draft.path),
        _text(draft.command),
        _text(draft.target),
        status,
        _text(outcome),
        _text(draft.reason),
        draft.request_id,
        _text(draft.client),
    )


class AuditFilter(BaseModel):
    """Filters of ``GET /audit`` and ``kumkm audit``; all optional, combined with AND."""

    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(default=None, max_length=200)
    outcome: str | None = Field(default=None, max_length=100)
    command: str | None = Field(default=None, max_length=200)
    target: str | None = Field(default=None, max_length=500, description="exact, e.g. request_id=RR-1")
    status: int | None = Field(default=None, ge=100, le=599)
    refused: bool | None = Field(default=None, description="only refused attempts (status 4xx)")
    # RFC 3339 with a zone only: a plain datetime would take "0.5" as a Unix time the document forbids.
    since: UtcDateTime | None = None
    until: UtcDateTime | None = None
    after_id: int = Field(default=0, ge=0, le=2**63 - 1, description="keyset paging: records after this id")
    limit: int = Field(default=100, ge=1, le=1000)


@dataclass(frozen=True)
class _Clause:
    sql: str
    value: Any


def _clauses(f: AuditFilter) -> list[_Clause]:
    clauses = [_Clause("id > {}", f.after_id)]
    for column in ("subject", "outcome", "command", "target", "status"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(_Clause(f"{column} = {{}}", value))
    if f.since is not None:
        clauses.append(_Clause("at >= {}", f.since))
    if f.until is not None:
        clauses.append(_Clause("at < {}", f.until))
    if f.refused is not None:
        clauses.append(_Clause("(coalesce(status, 200) >= 400) = {}", f.refused))
    return clauses


async def query(conn: Conn, f: AuditFilter) -> list[dict[str, Any]]:
    clauses = _clauses(f)
    where = " AND ".join(c.sql.format(f"${i}") for i, c in enumerate(clauses, start=1))
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM audit_trail WHERE {where} ORDER BY id LIMIT ${len(clauses) + 1}",
        *[c.value for c in clauses],
        f.limit,
    )
    return [{**dict(r), "at": r["at"].isoformat(), "roles": list(r["roles"])} for r in rows]
