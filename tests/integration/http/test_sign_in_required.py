"""Every route in every service's OpenAPI document answers 401 without a valid token: none, garbage, or an
``alg: none`` token carrying a real user's claims. Health is the exception (and metrics, not in the document).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from kumkm_catalog.app import build as build_catalog
from kumkm_loans.app import build as build_loans
from kumkm_notifications.app import build as build_notifications
from kumkm_shared.testing.harness import ServiceHarness
from kumkm_shared.testing.identity import identity

if TYPE_CHECKING:
    from collections.abc import Callable

    from kumkm_shared import ServiceDefinition

pytestmark = pytest.mark.integration

SERVICES: dict[str, Callable[[], ServiceDefinition]] = {
    "loans": build_loans,
    "catalog": build_catalog,
    "notifications": build_notifications,
}
PUBLIC = re.compile(r"^/health/")


def alg_none() -> str:
    claims = jwt.decode(identity().token("it-all"), options={"verify_signature": False})
    return jwt.encode(claims, key=None, algorithm="none")


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "X-1", path))
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    ]


@pytest.mark.parametrize("service_name", sorted(SERVICES))
async def test_every_route_needs_a_valid_token(service_name: str, nats_url: str, database_url: str) -> None:
    async with ServiceHarness.start(SERVICES[service_name](), nats_url, database_url) as service:
        document = (await service.anonymous().get("/openapi.json")).json()
        routes = operations(document)
        guarded = [(m, p) for m, p in routes if not PUBLIC.match(p)]
        assert len(guarded) >= 8, routes  # the document lists the service's routes, /audit among them
        assert ("GET", "/audit") in guarded
        credentials = {
            "no token": {},
            "garbage": {"Authorization": "Bearer garbage"},
            "not bearer": {"Authorization": "Basic b3BlcmF0b3I6a3Vta20tZGVtbw=="},
            "alg none": {"Authorization": f"Bearer {alg_none()}"},
        }
        served = []
        for method, path in guarded:
            for case, headers in credentials.items():
                response = await service.anonymous().request(method, path, headers=headers, json={})
                if response.status_code != 401 or "www-authenticate" not in response.headers:
                    served.append(f"{method} {path} with {case}: {response.status_code}")
        assert not served, "served without a valid token:\n" + "\n".join(served)
        for method, path in routes:
            if PUBLIC.match(path):
                assert (await service.anonymous().request(method, path)).status_code == 200
