"""The audit trail: what is recorded, that it commits with the command, and that nobody can rewrite it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from kumkm_loans.app import build
from kumkm_shared.testing.harness import ServiceHarness

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration


async def trail(service: ServiceHarness, **filters: Any) -> list[dict[str, Any]]:
    response = await service.client("auditor").get("/audit", params={"limit": 1000, **filters})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_command_is_recorded_with_who_what_and_the_request_id(service: ServiceHarness) -> None:
    response = await service.client("operator").post(
        "/tick", json={"date": "2026-12-01"}, headers={"X-Request-Id": "req-tick-1"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-tick-1"
    [record] = await trail(service, command="tick")
    assert record["subject"] == "operator"
    assert record["roles"] == ["operator"]
    assert record["organisation"] == "kumkm-ops"
    assert record["method"] == "POST"
    assert record["route"] == "/tick"
    assert record["outcome"] == "committed"  # written in the tick's own transaction
    assert record["status"] is None
    assert record["request_id"] == "req-tick-1"
    assert record["client"]


async def test_refused_attempts_are_recorded_401_403_and_409(service: ServiceHarness) -> None:
    assert (await service.anonymous().post("/tick", json={"date": "2026-12-01"})).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await service.anonymous().get("/restructurings", headers=bad)).status_code == 401
    curator = service.client("curator.bekasi")
    assert (await curator.post("/tick", json={"date": "2026-12-01"})).status_code == 403
    decision = {"decision": "approve", "reason": "no such request"}
    missing = await service.client("officer.bekasi").post("/restructurings/RR-NONE/decision", json=decision)
    assert missing.status_code == 404
    records = await trail(service, refused=True)
    by_status = {(r["status"], r["outcome"]) for r in records}
    assert (401, "unauthenticated") in by_status
    assert (403, "forbidden") in by_status
    assert (404, "not_found") in by_status
    unauthenticated = [r for r in records if r["status"] == 401]
    assert all(r["subject"] is None for r in unauthenticated)
    assert {r["reason"] for r in unauthenticated} >= {"no bearer token", "the token is not a signed JWT"}
    forbidden = next(r for r in records if r["status"] == 403)
    assert forbidden["subject"] == "curator.bekasi"
    assert forbidden["route"] == "/tick"
    assert "loans.tick" in forbidden["reason"]
    assert any(r["target"] == "request_id=RR-NONE" for r in records)


async def test_a_successful_read_is_not_recorded(service: ServiceHarness) -> None:
    assert (await service.client("officer.bekasi").get("/restructurings")).status_code == 200
    assert await trail(service, subject="officer.bekasi") == []


async def test_only_auditors_read_the_trail(service: ServiceHarness) -> None:
    response = await service.client("supervisor.national").get("/audit")
    assert response.status_code == 403
    assert response.json()["permission"] == "audit.read"
    assert any(r["route"] == "/audit" for r in await trail(service, status=403))


async def test_the_trail_cannot_be_rewritten_even_by_a_superuser(service: ServiceHarness) -> None:
    await service.client("operator").post("/tick", json={"date": "2026-12-01"})
    async with service.runtime.pool.acquire() as conn:
        for statement in (
            "UPDATE audit_trail SET outcome = 'nothing happened'",
            "DELETE FROM audit_trail",
            "TRUNCATE audit_trail",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_trail") >= 1


@pytest.fixture
async def own_role_service(nats_url: str, database_url: str) -> AsyncIterator[tuple[ServiceHarness, str]]:
    """The loans service connected as a role of its own (not a superuser), which owns its schema."""
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("CREATE ROLE loans_audit_test LOGIN PASSWORD 'loans-audit-test'")
        await admin.execute("CREATE SCHEMA loans AUTHORIZATION loans_audit_test")
    finally:
        await admin.close()
    parts = urlsplit(database_url)
    netloc = f"loans_audit_test:loans-audit-test@{parts.hostname}:{parts.port}"
    dsn = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    async with ServiceHarness.start(build(), nats_url, dsn) as harness:
        yield harness, dsn


async def test_the_services_own_role_may_insert_and_read_but_not_update_or_delete(
    own_role_service: tuple[ServiceHarness, str],
) -> None:
    service, dsn = own_role_service
    await service.client("operator").post("/tick", json={"date": "2026-12-01"})
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM loans.audit_trail") >= 1
        for statement in ("UPDATE loans.audit_trail SET outcome = 'x'", "DELETE FROM loans.audit_trail"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_an_attempt_with_a_nul_in_its_path_is_still_recorded(service: ServiceHarness) -> None:
    """Postgres text refuses NUL: a path (or a path parameter) carrying one must not keep a refusal out.

    A NUL in a path parameter is invalid input, refused at the door (422, recorded for a command) before
    the route's permission is looked at; a path without a token is 401 before anything else."""
    decision = {"decision": "reject", "reason": "tidak memenuhi syarat"}
    response = await service.client("curator.bekasi").post("/restructurings/RR%00X/decision", json=decision)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "request_id", "message": "must not contain a NUL character"}
    ]
    assert (await service.anonymous().get("/x%00y")).status_code == 401
    records = await trail(service, refused=True)
    assert any(r["status"] == 422 and "\\0" in r["route"] and r["outcome"] == "invalid" for r in records), (
        records
    )
    assert any(r["status"] == 401 and "\\0" in r["route"] for r in records), records
