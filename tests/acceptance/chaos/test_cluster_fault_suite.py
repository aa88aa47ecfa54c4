"""The short CI version of ``make chaos-cluster``: the fault suite on the cluster topology.

Three NATS nodes with R3 streams, a Postgres primary with a synchronous streaming standby (multi-host DSN,
``target_session_attrs=read-write``), two replicas of each service. Injected while the mixed workload and
the poison run: kill -9 of a replica of each service; kill -9 of the replica whose outbox relay leads, for
each service (a survivor must take the relay, and with it the leader-only work, over); kill -9 of the NATS
node leading a stream, restarted later on its store; one NATS node cut off from its peers, then healed;
kill -9 of the Postgres primary, promotion of the standby, and later the old primary back as a synchronous
standby; kill -9 at failpoints of a batch.

Asserts the same guarantees as the single-node suite (nothing lost, nothing duplicated, nothing unexpected,
every poison message dead-lettered with an acceptable reason, nothing stalled), and that every fault was
recovered from: a new stream leader, writes committing on the promoted primary, the old primary streaming
again, each relay moved to a survivor. The recovery times are printed (never asserted: shared machines).
"""

from __future__ import annotations

import time

import pytest

from bench.chaos.run import cluster_config, run_chaos
from bench.chaos.services import SERVICES
from kumkm_shared import failpoints

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(600)]

POISON = 200


async def test_cluster_fault_suite_loses_and_duplicates_nothing() -> None:
    lines: list[str] = []
    config = cluster_config(
        seed=23,
        loan_flows=10,
        decision_flows=4,
        catalog_flows=6,
        concurrency=8,
        poison=POISON,
        rejected_orders=2,
        kills_per_service=1,
        nats_kills=1,
        postgres_restarts=1,
        leader_kills=1,
        oidc_kills=0,
        pauses=0,
        failpoints=(
            f"loans:{failpoints.CONSUMER_DURING_ACKS}",
            f"notifications:{failpoints.CONSUMER_AFTER_COMMIT}",
        ),
        ack_wait=5.0,
        fault_window=50.0,
        heal_timeout=240.0,
        log=lines.append,
    )
    started = time.monotonic()
    report = await run_chaos(config)
    elapsed = time.monotonic() - started
    text = "\n".join([*lines, report.render(max_details=20), f"elapsed {elapsed:.0f}s"])
    print(text)  # noqa: T201 - the Jepsen-style report with the recovery times, shown with -s or on failure

    assert report.lost == 0, text
    assert report.duplicated == 0, text
    assert report.unexpected == 0, text
    assert report.poison_sent == POISON
    assert report.poison_missing == 0, text
    assert report.poison_bad_reason == 0, text
    assert not report.stalled, text
    assert not report.unpublished_outbox, text
    assert sorted(config.failpoints_fired) == sorted(config.failpoints), text
    # Leader-only work moved: for each service, the relay leader was killed and a survivor took over.
    assert config.leader_moves_missed == [], text
    assert sorted(move.split(":")[0] for move in config.leader_moves) == sorted(SERVICES), text
    recovered = [fault for fault, _ in config.recoveries]
    assert any("new leader elected" in f for f in recovered), text
    assert any("writes commit again" in f for f in recovered), text
    assert any(f.startswith("old primary back as a synchronous standby") for f in recovered), text
    assert any("healed: routes back, caught up" in f for f in recovered), text
    # The valid traffic went through.
    extra = config.extra_flows
    assert report.checked["loan"] == 10 + 4 + config.target_loans + extra["loan"], text
    assert report.checked["order"] == 6 + extra["catalog"], text
    assert report.checked["decision"] == 4, text
