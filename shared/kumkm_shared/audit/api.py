"""``GET /audit``: the service's audit trail, for auditors. The runtime adds this router to every service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from kumkm_shared.audit import store
from kumkm_shared.audit.store import AuditFilter  # noqa: TC001 - FastAPI reads the signature at runtime
from kumkm_shared.auth.roles import AUDITOR
from kumkm_shared.service.deps import Require

AUDIT_READ = "audit.read"
PERMISSIONS = {AUDIT_READ: frozenset({AUDITOR})}

router = APIRouter(tags=["audit"])


@router.get("/audit", dependencies=[Require(AUDIT_READ)])
async def read_audit(request: Request, query: Annotated[AuditFilter, Query()]) -> dict[str, Any]:
    """Records oldest first; page with ``after_id`` (the last ``id`` seen). Filters combine with AND."""
    async with request.app.state.runtime.pool.acquire() as conn:
        items = await store.query(conn, query)
    return {"items": items, "next_after_id": items[-1]["id"] if len(items) == query.limit else None}
