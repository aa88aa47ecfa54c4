"""The consumer wrapper and the outbox relay, proved with the toy service on real NATS JetStream and Postgres.

Rules: ``docs/rules/messaging.md`` ("Retry and DLQ policy", "Refusals", "Outbox and inbox"). The guarantees
every durable keeps (one effect per duplicate, invalid input and unknown types dead-lettered, a refusal
announced once, a Retry dead-lettered after max_deliver) run for the toy as the reusable suite, in
``tests/integration/guarantees/test_toy.py``; what is here goes further with the toy's own behaviours.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import TYPE_CHECKING

import nats.errors
import pytest

from kumkm_shared import ConsumerDecl, Outbox, OutboxRelay
from kumkm_shared.contracts import DLQ_STREAM, validate_event_payload
from kumkm_shared.messaging.consumer import AdvisoryWatcher
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import dead_letters
from tests.support.events import loan_disbursed, repayment_received, to_bytes

if TYPE_CHECKING:
    import uuid

    import asyncpg
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from kumkm_shared import ServiceRuntime
    from kumkm_shared.testing.harness import ServiceHarness
    from tests.support.toy import Toy

pytestmark = pytest.mark.integration

DISBURSED = "kumkm.loans.loan.disbursed.v1"


async def _effects(rt: ServiceRuntime, kind: str | None = None) -> list[asyncpg.Record]:
    sql = "SELECT event_id, loan_id, kind FROM toy.effects"
    if kind:
        return await rt.pool.fetch(sql + " WHERE kind = $1", kind)
    return await rt.pool.fetch(sql)


async def test_valid_and_invalid_mix_every_valid_processed_every_invalid_dead_lettered(
    toy_harness: ServiceHarness,
) -> None:
    valid = [loan_disbursed() for _ in range(20)]
    bad_schema = loan_disbursed()
    bad_schema["data"]["principal"] = "-5"
    unknown_type = loan_disbursed()
    unknown_type["type"] = "kumkm.loans.loan.exploded.v1"
    invalid: list[tuple[bytes, str]] = [
        (b"{not json", "undecodable"),
        (b"\xff\xfe\x00garbage", "undecodable"),
        (to_bytes(bad_schema), "schema_violation"),
        (to_bytes(unknown_type), "unknown_type"),
        (json.dumps({"hello": "world"}).encode(), "invalid_envelope"),
    ]
    for i, event in enumerate(valid):
        await toy_harness.publish(event)
        if i % 4 == 0 and invalid:
            payload, _ = invalid[i // 4]
            await toy_harness.publish_raw(DISBURSED, payload)
    await toy_harness.settle()
    effects = await _effects(toy_harness.runtime, "disbursed")
    assert sorted(str(e["event_id"]) for e in effects) == sorted(e["id"] for e in valid)
    letters = await toy_harness.dead_letters()
    assert sorted(letter.reason_code for letter in letters) == sorted(code for _, code in invalid)
    for letter in letters:
        assert letter.reason, "every dead letter carries a human-readable reason"
        assert letter.consumer == "toy"
        assert letter.original in {payload for payload, _ in invalid}
    schema_letter = next(x for x in letters if x.reason_code == "schema_violation")
    assert any(e["field"] == "data.principal" for e in schema_letter.errors), schema_letter.errors


async def test_transient_failures_are_retried_with_growing_delay_and_succeed_once(
    toy_harness: ServiceHarness, toy: Toy
) -> None:
    loan = await toy_harness.publish(loan_disbursed())
    repayment = await toy_harness.publish(repayment_received(loan["data"]["loan_id"], reference="fail-3"))
    await wait_for(lambda: len(toy.calls[repayment["id"]]) >= 4, timeout=20)
    await toy_harness.settle()
    calls = toy.calls[repayment["id"]]
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] < gaps[1] < gaps[2], f"delays should grow: {gaps}"
    assert len(await _effects(toy_harness.runtime, "repaid")) == 1
    assert await toy_harness.dead_letters() == []


async def test_handler_failing_forever_ends_in_dlq_after_max_deliver(
    toy_harness: ServiceHarness, toy: Toy
) -> None:
    repayment = await toy_harness.publish(repayment_received("LN-X", reference="fail-forever"))
    await wait_for(toy_harness.dead_letters, timeout=30)
    await toy_harness.settle()
    letters = await toy_harness.dead_letters()
    assert len(letters) == 1
    assert letters[0].reason_code == "handler_error"
    assert letters[0].delivery_count == 4
    assert "always failing" in letters[0].reason
    assert json.loads(letters[0].original)["id"] == repayment["id"]
    assert len(toy.calls[repayment["id"]]) == 4
    assert await _effects(toy_harness.runtime, "repaid") == []


async def test_refused_event_goes_to_dlq_and_the_rest_keep_flowing(toy_harness: ServiceHarness) -> None:
    await toy_harness.publish(repayment_received("LN-1", reference="refuse"))
    await toy_harness.publish(loan_disbursed())
    await toy_harness.settle()
    letters = await toy_harness.dead_letters()
    assert [x.reason_code for x in letters] == ["illegal_transition"]
    assert len(await _effects(toy_harness.runtime, "disbursed")) == 1


async def _fetch_or_nothing(sub: JetStreamContext.PullSubscription, timeout: float) -> list[Msg]:
    """One message, or [] when none comes within ``timeout`` (a timeout IS the empty answer)."""
    try:
        return await sub.fetch(1, timeout=timeout)
    except nats.errors.TimeoutError:
        return []


async def test_max_deliveries_advisory_dead_letters_a_message_nobody_settled(provisioned) -> None:
    # A process that dies on a message never acks or nacks it. Simulate it with a raw pull consumer
    # that fetches and drops the message until max_deliver; the advisory watcher must dead-letter it,
    # fetching the original by its stream sequence.
    decl = ConsumerDecl(
        name="toy-dies",
        stream="KUMKM_LOANS",
        service="toy",
        filter_subjects=(DISBURSED,),
        description="a consumer whose process dies on every message",
        ack_wait_seconds=1.0,
        max_deliver=2,
    )
    js = provisioned.jetstream()
    await js.add_consumer("KUMKM_LOANS", config=decl.config())
    watcher = AdvisoryWatcher(service="toy", decls=[decl], jetstream=provisioned.jetstream)
    await watcher.start(provisioned)
    event = loan_disbursed()
    await js.publish(event["type"], to_bytes(event))
    sub = await js.pull_subscribe_bind(durable="toy-dies", stream="KUMKM_LOANS")
    # Each fetch waits for the message to come back: the first delivery at once, the second once the
    # first one's ack_wait has run out without a settlement.
    deliveries = []
    for _ in range(2):
        [msg] = await sub.fetch(1, timeout=5)
        assert msg.data == to_bytes(event)
        deliveries.append(msg.metadata.num_delivered)
    assert deliveries == [1, 2]
    # The server notices the exhausted message when it next tries to deliver: a pending pull does that,
    # and gets nothing, since max_deliver is used up.
    assert await _fetch_or_nothing(sub, timeout=2) == []
    await wait_for(lambda: dead_letters(provisioned), timeout=15)
    await watcher.stop()
    await sub.unsubscribe()
    letters = await dead_letters(provisioned)
    assert len(letters) == 1
    assert letters[0].reason_code == "max_deliveries"
    assert letters[0].consumer == "toy-dies"
    assert letters[0].original == to_bytes(event)
    info = await js.consumer_info("KUMKM_LOANS", "toy-dies")
    assert info.num_ack_pending == 0, "the server gave up on the message after max_deliver"
    assert info.num_redelivered == 1, "redelivered once (max_deliver is 2), then given up on"


async def test_reading_a_missing_dlq_is_an_error_not_an_empty_list(toy_harness: ServiceHarness) -> None:
    assert await toy_harness.dead_letters() == []
    await toy_harness.nc.jetstream().delete_stream(DLQ_STREAM)
    with pytest.raises(LookupError, match=DLQ_STREAM):
        await toy_harness.dead_letters()


async def test_crash_after_commit_before_publish_publishes_exactly_once_after_restart(
    toy_harness: ServiceHarness,
) -> None:
    runtime = toy_harness.runtime
    # "Crash": the event is committed to the outbox but the relay is stopped before publishing.
    await toy_harness.stop_relay()
    assert not toy_harness.relay_running
    envelope = validate_event_payload(loan_disbursed()).envelope
    async with runtime.pool.acquire() as conn, conn.transaction():
        await runtime.outbox.add(conn, envelope)
    assert not await _published(runtime, envelope.id), "the stopped relay published nothing"
    # The relay also crashed once *after* publishing but before marking the row: publish it by hand.
    await toy_harness.publish(envelope)
    # Restart: a fresh relay picks the row up, the broker de-duplicates, the row is marked published.
    relay = OutboxRelay(runtime.pool, runtime.jetstream, "toy", poll_interval=0.1)
    task = asyncio.create_task(relay.run())
    await wait_for(lambda: _published(runtime, envelope.id), timeout=10)
    relay.stop()
    await task
    copies = [e for e in await toy_harness.events(envelope.type) if e["id"] == str(envelope.id)]
    assert len(copies) == 1


async def _published(rt: ServiceRuntime, event_id: uuid.UUID) -> bool:
    return bool(
        await rt.pool.fetchval("SELECT published_at IS NOT NULL FROM toy.outbox WHERE event_id=$1", event_id)
    )


async def test_outbox_relay_keeps_the_order_of_each_aggregate(toy_harness: ServiceHarness) -> None:
    runtime = toy_harness.runtime
    loans = [f"LN-ORDER-{i}" for i in range(5)]
    expected: dict[str, list[str]] = {loan: [] for loan in loans}

    async def writer(worker: int) -> None:
        for i in range(40):
            loan = loans[(i + worker) % len(loans)]
            envelope = validate_event_payload(loan_disbursed(loan)).envelope
            async with runtime.pool.acquire() as conn, conn.transaction():
                await Outbox("toy").add(conn, envelope)
                expected[loan].append(str(envelope.id))

    # Writers commit one event per transaction; the expected order is commit order per aggregate.
    for worker in range(3):
        await writer(worker)
    await wait_for(lambda: _all_published(runtime), timeout=20)
    seen: dict[str, list[str]] = {loan: [] for loan in loans}
    events = await toy_harness.events(DISBURSED)
    assert len(events) == 120
    for body in events:
        seen[body["data"]["loan_id"]].append(body["id"])
    assert seen == expected


async def _all_published(rt: ServiceRuntime) -> bool:
    return await rt.pool.fetchval("SELECT count(*) FROM toy.outbox WHERE published_at IS NULL") == 0


async def test_cleanup_removes_only_old_published_rows(toy_harness: ServiceHarness) -> None:
    runtime = toy_harness.runtime
    await toy_harness.stop_relay()
    assert not toy_harness.relay_running
    old, recent, pending = (validate_event_payload(loan_disbursed()).envelope for _ in range(3))
    async with runtime.pool.acquire() as conn, conn.transaction():
        for envelope in (old, recent, pending):
            await runtime.outbox.add(conn, envelope)
        await conn.execute(
            "UPDATE toy.outbox SET published_at = now() - interval '8 days' WHERE event_id = $1", old.id
        )
        await conn.execute("UPDATE toy.outbox SET published_at = now() WHERE event_id = $1", recent.id)
    relay = OutboxRelay(runtime.pool, runtime.jetstream, "toy", retention_seconds=7 * 86400.0)
    assert await relay.cleanup() == 1
    left = {r["event_id"] for r in await runtime.pool.fetch("SELECT event_id FROM toy.outbox")}
    assert left == {recent.id, pending.id}


async def test_a_refusal_is_announced_once_per_event_and_a_replay_after_the_fix_still_applies(
    toy_harness: ServiceHarness, toy: Toy
) -> None:
    refused = repayment_received("LN-ANN", reference="refuse-announced")
    # The same event twice, past the broker's de-duplication: two dead letters, one announcement.
    await toy_harness.publish(refused, msg_id="one")
    await toy_harness.publish(refused, msg_id="two")
    await toy_harness.settle()
    assert [x.reason_code for x in await toy_harness.dead_letters()] == ["illegal_transition"] * 2
    announced = await toy_harness.events("kumkm.loans.installment.overdue.v1")
    assert len(announced) == 1
    assert announced[0]["causationid"] == refused["id"]

    # The refusal did not claim the event in the inbox: after the fix, a replay is applied.
    toy.accept_refused = True
    await toy_harness.publish(refused, msg_id="replay")
    await toy_harness.settle()
    assert [str(r["event_id"]) for r in await _effects(toy_harness.runtime, "repaid")] == [refused["id"]]
