"""Every HTTP route of the three services, driven with generated requests: bad input is a 4xx, never a 5xx.

Schemathesis reads each service's own OpenAPI document (``runtime.http.openapi()``) and generates
requests for every operation: ones the schema allows (positive) and ones it does not (negative: a wrong
type, a missing field, a value out of range, a body that is not JSON). Each request goes through the ASGI
app of a service running on the harness (real NATS and Postgres), after a little valid data is seeded;
a second pass puts the seeded ids in the path and in the body (``loan_id``, ``product_id``, ...), so
requests reach existing loans, requests, products, orders, contacts and notifications too.

What must hold for every request: no status of 500 or above (nor an exception out of the app), and every
400 or 422 answers the project's error shape, naming at least one field.

Generation is bounded and deterministic: ``derandomize`` fixes the examples, ``MAX_EXAMPLES`` per
operation and mode, no shrinking and no example database.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from kumkm_catalog.app import build as build_catalog
from kumkm_catalog.settings import Band, CatalogSettings
from kumkm_loans.app import build as build_loans
from kumkm_loans.settings import LoansSettings
from kumkm_notifications.app import build as build_notifications
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared import FixedClock
from kumkm_shared.messaging.topology import consumer
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import ServiceHarness
from tests.support.events import loan_disbursed
from tests.support.notifications import KRANGGAN_ID, sample
from tests.support.orders import accepted_order

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hypothesis.strategies import SearchStrategy
    from schemathesis import Case

    from kumkm_shared import ServiceDefinition

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

# Per operation, mode and pass. KUMKM_FUZZ_EXAMPLES=300 digs deeper locally (about 4 minutes).
MAX_EXAMPLES = int(os.environ.get("KUMKM_FUZZ_EXAMPLES", "25"))
BASE_URL = "http://service"  # the harness's client base URL
# Thursday 12 September 2024, 10:00 in Jakarta: orders placed now are accepted with a deadline ahead.
THURSDAY = datetime(2024, 9, 12, 3, 0, tzinfo=UTC)

_GENERATION = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    # Schemathesis's strategies are large and filter; this collects examples, it judges nothing itself.
    suppress_health_check=(
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ),
)


@dataclass
class Report:
    """What the requests to one service gave: requests per operation, and every violation seen."""

    requests: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _cases(strategy: SearchStrategy[Case]) -> list[Case]:
    """The examples Hypothesis draws from ``strategy`` (none when the mode has nothing to generate, e.g.
    a negative request for an operation without parameters, or with all of them fixed)."""
    cases: list[Case] = []

    @_GENERATION
    @given(strategy)
    def collect(case: Case) -> None:
        cases.append(case)

    try:
        collect()
    except Unsatisfiable:
        return []
    return cases


async def _send(http: httpx.AsyncClient, case: Case) -> tuple[str, httpx.Response | BaseException | None]:
    """The case as Schemathesis's requests transport would send it, through the harness's ASGI client;
    ``None`` when no HTTP client could send it (a URL longer than httpx allows)."""
    prepared = requests.Request(**case.as_transport_kwargs(base_url=BASE_URL)).prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    shown = (
        f"{prepared.method} {prepared.url} {body[:300]!r}" if body else f"{prepared.method} {prepared.url}"
    )
    try:
        url = httpx.URL(str(prepared.url))
    except httpx.InvalidURL:
        return shown, None
    try:
        response = await http.request(str(prepared.method), url, headers=dict(prepared.headers), content=body)
    except Exception as exc:  # an exception out of the app: the server would have answered 500
        return shown, exc
    return shown, response


def _violations(answer: httpx.Response | BaseException) -> list[str]:
    if isinstance(answer, BaseException):
        return [f"raised {type(answer).__name__}: {answer}"]
    status = answer.status_code
    if status >= 500:  # the server error range
        return [f"answered {status}: {answer.text[:300]}"]
    if status not in {400, 422}:  # the answers to a request that cannot be read or is invalid
        return []
    try:
        body = answer.json()
    except ValueError:
        return [f"answered {status} without JSON: {answer.text[:300]}"]
    errors = body.get("errors") if isinstance(body, dict) else None
    shaped = (
        isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("message"), str)
        and isinstance(errors, list)
        and bool(errors)
        and all(
            isinstance(e, dict)
            and isinstance(e.get("field"), str)
            and e["field"]
            and isinstance(e.get("message"), str)
            for e in errors
        )
    )
    return [] if shaped else [f"answered {status} without naming a field: {answer.text[:300]}"]


def _with_known(value: Any, known: Mapping[str, str]) -> Any:
    """``value`` with every object member named like a seeded id (``loan_id``, ``product_id``) set to it."""
    if isinstance(value, dict):
        return {k: known[k] if k in known else _with_known(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_known(v, known) for v in value]
    return value


async def drive(harness: ServiceHarness, known: Mapping[str, str]) -> Report:
    """Every operation of the service's OpenAPI document, positive and negative, with generated ids and
    again with the ``known`` ids (seeded data) in the path and the body."""
    schema = schemathesis.openapi.from_dict(harness.runtime.http.openapi())
    report = Report()
    for result in schema.get_all_operations():
        operation = result.ok()
        in_path = {p.name for p in operation.path_parameters}
        fixed = {name: known[name] for name in in_path if name in known}
        # The first pass generates every id; the second names seeded ones, in the path and in the body.
        passes = [False, True] if fixed or len(operation.body) else [False]
        for seeded in passes:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(mode, path_parameters=fixed if seeded else None)
                for case in _cases(strategy):
                    if seeded and isinstance(case.body, dict | list):
                        case.body = _with_known(case.body, known)
                    shown, answer = await _send(harness.http, case)
                    if answer is None:
                        continue
                    report.requests[operation.label] += 1
                    report.failures.extend(f"{shown}: {v}" for v in _violations(answer))
        if in_path - set(known):
            report.failures.append(f"{operation.label}: no seeded id for {sorted(in_path - set(known))}")
    log.info(
        "%s: %d operations, %d requests, %d violations",
        harness.runtime.name,
        len(report.requests),
        sum(report.requests.values()),
        len(report.failures),
    )
    return report


def _assert_clean(report: Report, operations: set[str]) -> None:
    assert set(report.requests) == operations, "every operation of the document was driven"
    shown = "\n".join(report.failures[:40])
    assert report.failures == [], f"{len(report.failures)} violations:\n{shown}"


async def _dead_letter(harness: ServiceHarness, subject: str) -> str:
    """A message the service dead-letters at once (not an envelope); its id for ``/dlq/{seq}``."""
    await harness.publish_raw(subject, b'{"not": "an envelope"}')
    await harness.settle()
    letters: list[dict[str, Any]] = []

    async def listed() -> bool:
        nonlocal letters
        letters = (await harness.http.get("/dlq")).json()["items"]
        return bool(letters)

    await wait_for(listed, timeout=10, message="the dead letter in /dlq")
    return str(letters[0]["id"])


def _operations(harness: ServiceHarness) -> set[str]:
    paths: dict[str, dict[str, Any]] = harness.runtime.http.openapi()["paths"]
    return {f"{method.upper()} {path}" for path, item in paths.items() for method in item}


# -- loans ---------------------------------------------------------------------------------------------
async def test_loans_answers_no_server_error(nats_url: str, database_url: str) -> None:
    definition = build_loans(settings=LoansSettings(daily_tick=False))
    async with ServiceHarness.start(definition, nats_url, database_url, consumer_batch=16) as harness:
        disbursed = loan_disbursed()
        await harness.publish(disbursed)
        await harness.settle()
        loan_id = disbursed["data"]["loan_id"]
        request = {
            "loan_id": loan_id,
            "requested_on": "2020-04-20",
            "reason": "covid19_direct",
            "impact": {"revenue_drop_pct": "60", "note": "Pasar sepi selama PSBB"},
            "proposal": [{"scheme": "tenor_extension", "extra_months": 12}],
            "reschedule_from": "2020-05-15",
        }
        response = await harness.http.post("/restructurings", json=request)
        assert response.status_code == 201, response.text
        seq = await _dead_letter(harness, "kumkm.loans.loan.disbursed.v1")
        known = {"loan_id": loan_id, "request_id": response.json()["request_id"], "seq": seq}
        report = await drive(harness, known)
    _assert_clean(report, _operations(harness))


# -- catalog -------------------------------------------------------------------------------------------
def _catalog() -> ServiceDefinition:
    settings = CatalogSettings(
        price_bands={"furniture": Band(low=Decimal(50_000), high=Decimal(25_000_000))},
        tick_interval_seconds=3600,
    )
    definition = build_catalog(settings=settings, clock=FixedClock(THURSDAY))
    definition.consumer_decls = {"catalog": replace(consumer("catalog"), max_deliver=3)}
    return definition


async def test_catalog_answers_no_server_error(nats_url: str, database_url: str) -> None:
    async with ServiceHarness.start(_catalog(), nats_url, database_url, consumer_batch=64) as harness:
        product_id, order_id = await accepted_order(harness.http)
        seq = await _dead_letter(harness, "kumkm.catalog.product.submitted.v1")
        report = await drive(harness, {"product_id": product_id, "order_id": order_id, "seq": seq})
    _assert_clean(report, _operations(harness))


# -- notifications -------------------------------------------------------------------------------------
async def test_notifications_answers_no_server_error(nats_url: str, database_url: str) -> None:
    definition = build_notifications(settings=NotificationsSettings())
    # No delivery worker: generated contacts name arbitrary webhook URLs and mail addresses, and nothing
    # may be sent to them. The routes only record deliveries; sending them is the worker's.
    definition.workers = []
    async with ServiceHarness.start(definition, nats_url, database_url, consumer_batch=16) as harness:
        # A notification while the party has no contact (no_contact: resend and reroute route it), then
        # the contact, then one that reaches its inbox.
        await harness.publish(sample("kumkm.loans.installment.overdue.v1"))
        await harness.settle()
        contact = {
            "name": "Koperasi Pedagang Pasar Kranggan",
            "party_kind": "cooperative",
            "channels": ["inbox"],
        }
        response = await harness.http.put(f"/contacts/{KRANGGAN_ID}", json=contact)
        assert response.status_code == 200, response.text
        await harness.publish(sample("kumkm.loans.restructuring.approved.v1"))
        await harness.settle()
        inbox: list[dict[str, Any]] = []

        async def delivered() -> bool:
            nonlocal inbox
            inbox = (await harness.http.get(f"/inbox/{KRANGGAN_ID}")).json()["messages"]
            return bool(inbox)

        await wait_for(delivered, timeout=10, message="the approval in the inbox")
        feed = (await harness.http.get("/notifications", params={"status": "no_contact"})).json()
        assert feed, "the overdue installment, recorded before the contact"
        seq = await _dead_letter(harness, "kumkm.loans.installment.overdue.v1")
        known = {
            "party_id": KRANGGAN_ID,
            "message_id": inbox[0]["id"],
            "notification_id": feed[0]["id"],
            "seq": seq,
        }
        report = await drive(harness, known)
    _assert_clean(report, _operations(harness))
