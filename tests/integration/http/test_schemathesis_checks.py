"""Every service's HTTP API against Schemathesis's own engine, with every check, over real HTTP.

``test_no_server_errors`` drives each operation with generated requests and judges only the answers' range
and shape. Here Schemathesis judges everything it can: each service runs on the harness (real NATS,
Postgres and OpenID provider), served by uvicorn, and the engine runs all its phases (examples, coverage,
fuzzing, stateful: the document's links and the ones it infers) with every check, signed in as the test
user with every role. What must hold, across every operation of every service:

- no server error, and no status code, content type, header or body the document does not declare;
- a request the document forbids is refused, and one it allows is not refused for its shape;
- a method a path does not have answers 405 with an ``Allow`` header naming exactly the ones it has;
- a signed-in operation refuses a request without a valid token, and what a command creates can be read.

The generation is fixed (``seed``, ``deterministic``): the same requests on every run. ``MAX_EXAMPLES`` per
operation and phase; ``make fuzz`` runs ten times as many (``KUMKM_FUZZ_EXAMPLES=300``).
"""

from __future__ import annotations

import logging
import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_catalog.app import build as build_catalog
from kumkm_catalog.settings import Band, CatalogSettings
from kumkm_loans.app import build as build_loans
from kumkm_loans.settings import LoansSettings
from kumkm_monitoring.app import build as build_monitoring
from kumkm_notifications.app import build as build_notifications
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared import FixedClock
from kumkm_shared.testing.harness import ServiceHarness
from tests.integration.http.test_no_server_errors import THURSDAY
from tests.support import schemathesis_run
from tests.support.events import loan_disbursed
from tests.support.notifications import KRANGGAN_ID
from tests.support.orders import accepted_order

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kumkm_shared import ServiceDefinition

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

MAX_EXAMPLES = int(os.environ.get("KUMKM_FUZZ_EXAMPLES", "30"))
SEED = 20261201

# Operations where one check cannot apply, each with the reason. Nothing else is excluded.
EXCLUDED: list[dict[str, Any]] = [
    {
        # The preview needs at least one scheme among its optional query parameters (422 naming them
        # otherwise). OpenAPI cannot say "at least one of these parameters" (it can for a body's members,
        # not for parameters), so a request naming none is schema-valid and rightly refused.
        "include-path": "/loans/{loan_id}/restructurings/preview",
        "include-method": "GET",
        "checks": {"positive_data_acceptance": {"enabled": False}},
    },
]


def _config() -> dict[str, Any]:
    return {
        "seed": SEED,
        "cache": {"enabled": False},  # nothing carried from one run to the next: every run the same
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
        "checks": {"enabled": True},  # every check Schemathesis has
        # Stateful: the documents' links (what a command answers, the next operations take). Schemathesis's
        # dependency analysis would guess more from field names, and sends some guesses with the path
        # template unfilled (``/contacts/%7Bparty_id%7D/reroute``, refused with 422 for its shape).
        "phases": {
            "stateful": {
                "max-steps": 20,
                "link-calibration": False,
                "inference": {"algorithms": ["location-headers"]},
            }
        },
        "operations": EXCLUDED,
    }


async def _seed_loans(harness: ServiceHarness) -> None:
    disbursed = loan_disbursed()
    await harness.publish(disbursed)
    await harness.settle()
    request = {
        "loan_id": disbursed["data"]["loan_id"],
        "requested_on": "2020-04-20",
        "reason": "covid19_direct",
        "impact": {"revenue_drop_pct": "60", "note": "Pasar sepi selama PSBB"},
        "proposal": [{"scheme": "tenor_extension", "extra_months": 12}],
        "reschedule_from": "2020-05-15",
    }
    response = await harness.http.post("/restructurings", json=request)
    assert response.status_code == 201, response.text


async def _seed_catalog(harness: ServiceHarness) -> None:
    await accepted_order(harness.http)


async def _seed_notifications(harness: ServiceHarness) -> None:
    contact = {"name": "Koperasi Pedagang Pasar Kranggan", "party_kind": "cooperative", "channels": ["inbox"]}
    response = await harness.http.put(f"/contacts/{KRANGGAN_ID}", json=contact)
    assert response.status_code == 200, response.text


async def _seed_nothing(harness: ServiceHarness) -> None:
    assert harness.runtime.name == "monitoring"


def _catalog() -> ServiceDefinition:
    settings = CatalogSettings(
        price_bands={"furniture": Band(low=Decimal(50_000), high=Decimal(25_000_000))},
        tick_interval_seconds=3600,
    )
    return build_catalog(settings=settings, clock=FixedClock(THURSDAY))


def _notifications() -> ServiceDefinition:
    definition = build_notifications(settings=NotificationsSettings())
    # No delivery worker: generated contacts name arbitrary webhook URLs and mail addresses, and nothing may
    # be sent to them. The routes only record deliveries; sending them is the worker's.
    definition.workers = []
    return definition


SERVICES: dict[str, tuple[Callable[[], ServiceDefinition], Callable[[ServiceHarness], Awaitable[None]]]] = {
    "loans": (lambda: build_loans(settings=LoansSettings(daily_tick=False)), _seed_loans),
    "catalog": (_catalog, _seed_catalog),
    "notifications": (_notifications, _seed_notifications),
    "monitoring": (build_monitoring, _seed_nothing),
}


def _operations(document: dict[str, Any]) -> set[str]:
    methods = {"get", "put", "post", "delete", "patch"}
    return {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item if m in methods}


@pytest.mark.parametrize("service_name", sorted(SERVICES))
async def test_every_check_holds(service_name: str, nats_url: str, database_url: str) -> None:
    build, seed = SERVICES[service_name]
    async with ServiceHarness.start(build(), nats_url, database_url, consumer_batch=16) as harness:
        await seed(harness)
        findings = await schemathesis_run.run(harness, _config())
        operations = _operations(harness.runtime.http.openapi())
    log.info("%s: %s", service_name, findings.summary())
    print(f"{service_name}: {findings.summary()}")  # noqa: T201 - the figures, shown with -s
    assert findings.errors == [], "\n".join(findings.errors)
    assert operations <= findings.operations, f"not driven: {sorted(operations - findings.operations)}"
    assert findings.requests > 10 * len(operations), findings.summary()
    assert not any(status >= 500 for status in findings.statuses), findings.summary()
    shown = "\n".join(findings.failures[:30])
    assert findings.failures == [], f"{len(findings.failures)} failures ({findings.summary()}):\n{shown}"
