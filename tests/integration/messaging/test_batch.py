"""Batch durables (``ConsumerDecl.batch``): one transaction per pull batch, a savepoint per message.

Rules: ``docs/rules/messaging.md``, "Batch durables". The toy service runs its durable as a batch durable on
real NATS JetStream and Postgres. The guarantees every durable keeps run against batch durables too
(``tests/integration/guarantees``: every declared durable is a batch durable); what is here is what only a
batch can show: a poison message in the middle of a batch, a failure retried alone, two failures side by
side, acks after the commit, and a failed commit. Kills at each point of a batch: ``test_batch_crash.py``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import ServiceHarness, publish_event, record_outcomes
from tests.support.events import loan_disbursed, repayment_received, to_bytes
from tests.support.toy import Toy, toy_service

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from kumkm_shared import ServiceRuntime

pytestmark = pytest.mark.integration

DISBURSED = "kumkm.loans.loan.disbursed.v1"


@contextlib.asynccontextmanager
async def batch_toy(toy: Toy, nats_url: str, database_url: str) -> AsyncIterator[ServiceHarness]:
    definition = toy_service(toy, batch=True)
    async with ServiceHarness.start(
        definition, nats_url, database_url, batch_size=100, batch_max_wait=0.3, drain_timeout=2.0
    ) as harness:
        assert harness.decl("toy").batch, "the toy runs as a batch durable"
        yield harness


@contextlib.contextmanager
def record_batches(runtime: ServiceRuntime) -> Iterator[list[int]]:
    """The size of each batch the toy's durable handled while the block runs."""
    processor = runtime.processors["toy"]
    process_batch = processor.process_batch
    sizes: list[int] = []

    async def recording(msgs: Sequence[Msg]) -> list[str]:
        sizes.append(len(msgs))
        return await process_batch(msgs)

    processor.process_batch = recording  # type: ignore[method-assign]  # a test's probe, removed on exit
    try:
        yield sizes
    finally:
        del processor.process_batch


async def _effects(runtime: ServiceRuntime) -> dict[str, int]:
    rows = await runtime.pool.fetch("SELECT event_id::text AS id, count(*) AS n FROM toy.effects GROUP BY 1")
    return {r["id"]: r["n"] for r in rows}


async def _hold_a_batch(harness: ServiceHarness, toy: Toy) -> None:
    """A batch of one that waits for ``toy.gate``: what is published meanwhile makes up the next batch."""
    await harness.publish(repayment_received("LN-GATE", reference="block"))
    await wait_for(toy.entered.is_set, timeout=10, message="the blocking batch started")


async def _publish_all(nc: Client, events: list[dict[str, Any]]) -> None:
    for event in events:
        await publish_event(nc, event)


async def test_a_poison_message_in_the_middle_of_a_batch_is_dead_lettered_alone(
    nats_url: str, database_url: str
) -> None:
    toy = Toy()
    before = [loan_disbursed() for _ in range(5)]
    refused = repayment_received("LN-POISON", reference="refuse-after-write")
    between = [loan_disbursed() for _ in range(5)]
    bad_schema = loan_disbursed(principal="-5")
    after = [loan_disbursed() for _ in range(5)]
    async with batch_toy(toy, nats_url, database_url) as harness:
        with record_batches(harness.runtime) as sizes, record_outcomes(harness.runtime, "toy") as outcomes:
            await _hold_a_batch(harness, toy)
            await _publish_all(harness.nc, [*before, refused])
            await _publish_all(harness.nc, between)
            await harness.publish_raw(DISBURSED, to_bytes(bad_schema))
            await _publish_all(harness.nc, after)
            toy.gate.set()
            await harness.settle()
        assert sizes == [1, 17], "the 17 messages published while the first batch waited made one batch"
        valid = [*before, *between, *after]
        for event in valid:
            assert outcomes[event["id"]] == ["applied"], outcomes
        assert outcomes[refused["id"]] == ["refused"]
        assert outcomes[bad_schema["id"]] == ["invalid"]
        effects = await _effects(harness.runtime)
        assert {e["id"]: effects.get(e["id"]) for e in valid} == {e["id"]: 1 for e in valid}
        assert refused["id"] not in effects, "the refused message's own write rolled back to its savepoint"
        letters = await harness.dead_letters()
        assert sorted((x.reason_code, x.delivery_count) for x in letters) == [
            ("illegal_transition", 1),
            ("schema_violation", 1),
        ]
        assert not await harness.runtime.pool.fetchval(
            "SELECT count(*) FROM toy.inbox WHERE event_id = $1::uuid", refused["id"]
        ), "a refused event stays unclaimed"


async def test_a_failing_message_is_retried_alone_and_its_neighbours_applied_once(
    nats_url: str, database_url: str
) -> None:
    toy = Toy()
    neighbours = [loan_disbursed() for _ in range(6)]
    failing = repayment_received("LN-FLAKY", reference="fail-1")
    async with batch_toy(toy, nats_url, database_url) as harness:
        with record_batches(harness.runtime) as sizes, record_outcomes(harness.runtime, "toy") as outcomes:
            await _hold_a_batch(harness, toy)
            await _publish_all(harness.nc, [*neighbours[:3], failing, *neighbours[3:]])
            toy.gate.set()
            await wait_for(lambda: len(toy.calls[failing["id"]]) >= 2, timeout=20)
            await harness.settle()
        assert sizes == [1, 7, 1], "the failed message came back on its own"
        assert outcomes[failing["id"]] == ["retry", "applied"]
        assert all(outcomes[e["id"]] == ["applied"] for e in neighbours), outcomes
        effects = await _effects(harness.runtime)
        assert all(effects[e["id"]] == 1 for e in [*neighbours, failing])
        assert await harness.dead_letters() == []


async def test_two_failures_side_by_side_each_come_back_and_apply_once(
    nats_url: str, database_url: str
) -> None:
    """The second failure's rollback must not undo the withdrawal of the first one's inbox claim.

    Found with every durable batch: a parked step followed in its batch by a refused one came back as a
    "duplicate" of itself and was acked with no effect.
    """
    toy = Toy()
    first = repayment_received("LN-FLAKY-1", reference="fail-1")
    refused = repayment_received("LN-REFUSED", reference="refuse")
    second = repayment_received("LN-FLAKY-2", reference="fail-1")
    neighbour = loan_disbursed()
    async with batch_toy(toy, nats_url, database_url) as harness:
        with record_batches(harness.runtime) as sizes, record_outcomes(harness.runtime, "toy") as outcomes:
            await _hold_a_batch(harness, toy)
            await _publish_all(harness.nc, [first, refused, second, neighbour])
            toy.gate.set()
            await wait_for(
                lambda: len(toy.calls[first["id"]]) >= 2 and len(toy.calls[second["id"]]) >= 2, timeout=20
            )
            await harness.settle()
        assert sizes[:2] == [1, 4], sizes
        assert outcomes[first["id"]] == ["retry", "applied"], outcomes
        assert outcomes[second["id"]] == ["retry", "applied"], outcomes
        assert outcomes[refused["id"]] == ["refused"]
        assert outcomes[neighbour["id"]] == ["applied"]
        effects = await _effects(harness.runtime)
        assert {e["id"]: effects.get(e["id"]) for e in (first, second, neighbour)} == {
            e["id"]: 1 for e in (first, second, neighbour)
        }


async def test_a_batch_is_acked_only_after_its_commit(
    provisioned: Client, nats_url: str, database_url: str
) -> None:
    toy = Toy()
    head = [loan_disbursed() for _ in range(3)]
    blocking = repayment_received("LN-GATE", reference="block")
    tail = [loan_disbursed() for _ in range(3)]
    # Published before the service starts: its first pull gets all seven.
    await _publish_all(provisioned, [*head, blocking, *tail])
    async with batch_toy(toy, nats_url, database_url) as harness:
        js = provisioned.jetstream()
        await wait_for(toy.entered.is_set, timeout=10, message="the batch reached its blocking message")
        info = await js.consumer_info("KUMKM_LOANS", "toy")
        assert info.num_ack_pending == 7, "the whole batch is delivered and unacknowledged"
        assert info.ack_floor.stream_seq == 0, "nothing is acked while the batch's transaction is open"
        assert await _effects(harness.runtime) == {}, "the first three are applied, but not committed"
        toy.gate.set()
        await harness.settle()
        info = await js.consumer_info("KUMKM_LOANS", "toy")
        assert info.num_ack_pending == 0
        assert info.ack_floor.stream_seq == info.delivered.stream_seq
        effects = await _effects(harness.runtime)
        assert sorted(effects) == sorted(e["id"] for e in [*head, blocking, *tail])
        assert set(effects.values()) == {1}


async def test_a_failed_commit_redelivers_the_whole_batch_and_each_applies_once(
    nats_url: str, database_url: str
) -> None:
    toy = Toy()
    events = [loan_disbursed() for _ in range(6)]
    breaking = repayment_received("LN-BREAK", reference="break-commit-1")
    batch = [*events[:3], breaking, *events[3:]]
    async with batch_toy(toy, nats_url, database_url) as harness:
        with record_batches(harness.runtime) as sizes, record_outcomes(harness.runtime, "toy") as outcomes:
            await _hold_a_batch(harness, toy)
            await _publish_all(harness.nc, batch)
            toy.gate.set()
            await wait_for(lambda: len(toy.calls[breaking["id"]]) >= 2, timeout=20)
            await harness.settle()
        assert sizes[:2] == [1, 7], sizes
        assert sum(sizes[2:]) == 7, "every message of the failed batch came back"
        for event in batch:
            assert outcomes[event["id"]] == ["retry", "applied"], outcomes
        effects = await _effects(harness.runtime)
        assert {e["id"]: effects.get(e["id"]) for e in batch} == {e["id"]: 1 for e in batch}
        assert await harness.dead_letters() == []
