"""The short CI version of ``make chaos``: every fault once or twice, a smaller poison mix, < 5 minutes.

Asserts the platform's guarantees under faults: after healing nothing is lost and nothing duplicated (the
people's HTTP commands and their audit records included), nothing unexpected happened, every poison message
is in the DLQ with an acceptable reason, and no consumer is stalled.
"""

from __future__ import annotations

import time

import pytest

from bench.chaos.run import ChaosConfig, run_chaos
from kumkm_shared import failpoints

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(290)]


async def test_short_fault_suite_loses_and_duplicates_nothing() -> None:
    lines: list[str] = []
    config = ChaosConfig(
        seed=11,
        loan_flows=12,
        decision_flows=6,
        catalog_flows=8,
        concurrency=10,
        poison=300,
        rejected_orders=3,
        kills_per_service=1,
        nats_kills=1,
        postgres_restarts=1,
        oidc_kills=1,
        pauses=1,
        # kill -9 at exact points of a batch (one per service, each point once), and after an email's send
        failpoints=(
            f"loans:{failpoints.CONSUMER_AFTER_COMMIT}",
            f"catalog:{failpoints.CONSUMER_DURING_ACKS}",
            f"notifications:{failpoints.CONSUMER_BEFORE_COMMIT}",
            f"catalog:{failpoints.RELAY_BEFORE_MARK}",
            f"notifications:{failpoints.DISPATCHER_AFTER_SEND}",
        ),
        ack_wait=5.0,
        fault_window=35.0,
        heal_timeout=150.0,
        log=lines.append,
    )
    started = time.monotonic()
    report = await run_chaos(config)
    elapsed = time.monotonic() - started
    text = "\n".join([*lines, report.render(max_details=20), f"elapsed {elapsed:.0f}s"])
    print(text)  # noqa: T201 - the Jepsen-style report, shown with -s or on failure

    assert config.failpoints_missed == [], f"every armed failpoint was reached and killed its service\n{text}"
    assert sorted(config.failpoints_fired) == sorted(config.failpoints)
    assert report.lost == 0, text
    assert report.duplicated == 0, text
    assert report.unexpected == 0, text
    # the poison mix: all of it dead-lettered, each with an acceptable reason, and nothing stalled
    assert report.poison_sent == 300
    assert report.poison_missing == 0, text
    assert report.poison_bad_reason == 0, text
    # impersonations among the poison: each refused with not_authorised_for_party (checked with the poison's
    # reasons), its denial audited once by the service that owns the type, and nothing changed by it
    assert report.impersonations > 0, text
    assert report.impersonations_audited == report.impersonations, text
    assert report.checked["impersonation"] == report.impersonations
    assert not report.stalled, text
    assert not report.unpublished_outbox, text
    # the valid traffic went through: every flow finished, every effect was checked
    # the loan flows' loans, the decision flows', and the loans impersonators aim at (each checked unchanged)
    # (and the extra flows that kept an armed service busy until it reached its failpoint)
    extra = config.extra_flows
    assert report.checked["loan"] == 12 + 6 + config.target_loans + extra["loan"]
    assert report.checked["order"] == 8 + extra["catalog"]
    # the people's commands: referred requests approved by one officer or by a maker and a different
    # checker, each applied once with one committed audit record (8 curations, 2 + 2 * 4 decisions)
    assert report.checked["decision"] == 6
    assert report.checked["audit"] == 8 + extra["catalog"] + 2 + 2 * 4
