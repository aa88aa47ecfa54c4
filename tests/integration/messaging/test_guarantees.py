"""The reliability guarantees of DESIGN.md section 5, against real NATS JetStream and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import TYPE_CHECKING

import nats
import pytest

from kumkm_shared import Outbox, OutboxRelay, ServiceRuntime
from kumkm_shared.contracts import validate_event_payload
from kumkm_shared.messaging.dlq import DeadLetter
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import consumer_idle, stream_events
from tests.support.events import loan_disbursed, repayment_received, to_bytes

if TYPE_CHECKING:
    import uuid

    import asyncpg

    from tests.support.toy import Toy

pytestmark = pytest.mark.integration


async def _effects(rt: ServiceRuntime, kind: str | None = None) -> list[asyncpg.Record]:
    sql = "SELECT event_id, loan_id, kind FROM toy.effects"
    if kind:
        return await rt.pool.fetch(sql + " WHERE kind = $1", kind)
    return await rt.pool.fetch(sql)


async def _dead_letters(nc: nats.aio.client.Client) -> list[DeadLetter]:
    js = nc.jetstream()
    try:
        info = await js.stream_info("KUMKM_DLQ")
    except Exception:
        return []
    letters = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        msg = await js.get_msg("KUMKM_DLQ", seq)
        letters.append(DeadLetter.from_json_bytes(msg.data or b""))
    return letters


async def _publish(
    nc: nats.aio.client.Client, subject: str, payload: bytes, msg_id: str | None = None
) -> None:
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await nc.jetstream().publish(subject, payload, headers=headers)


async def test_same_event_delivered_twice_makes_one_effect(runtime: ServiceRuntime, provisioned) -> None:
    event = loan_disbursed()
    # Two different message ids defeat the broker's de-duplication, as a re-publish after the window would.
    await _publish(provisioned, event["type"], to_bytes(event), msg_id="first")
    await _publish(provisioned, event["type"], to_bytes(event), msg_id="second")
    await wait_for(lambda: _consumer_idle(provisioned), timeout=10)
    effects = await _effects(runtime)
    assert len(effects) == 1
    assert str(effects[0]["event_id"]) == event["id"]


async def _consumer_idle(nc: nats.aio.client.Client, consumer: str = "toy") -> bool:
    return await consumer_idle(nc, "KUMKM_LOANS", consumer)


async def test_valid_and_invalid_mix_every_valid_processed_every_invalid_dead_lettered(
    runtime: ServiceRuntime, provisioned
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
        await _publish(provisioned, event["type"], to_bytes(event))
        if i % 4 == 0 and invalid:
            payload, _ = invalid[i // 4]
            await _publish(provisioned, "kumkm.loans.loan.disbursed.v1", payload)
    await wait_for(lambda: _consumer_idle(provisioned), timeout=15)
    effects = await _effects(runtime, "disbursed")
    assert sorted(str(e["event_id"]) for e in effects) == sorted(e["id"] for e in valid)
    letters = await _dead_letters(provisioned)
    assert sorted(letter.reason_code for letter in letters) == sorted(code for _, code in invalid)
    for letter in letters:
        assert letter.reason, "every dead letter carries a human-readable reason"
        assert letter.consumer == "toy"
        assert letter.original in {payload for payload, _ in invalid}
    schema_letter = next(x for x in letters if x.reason_code == "schema_violation")
    assert any(e["field"] == "data.principal" for e in schema_letter.errors), schema_letter.errors


async def test_transient_failures_are_retried_with_growing_delay_and_succeed_once(
    runtime: ServiceRuntime, provisioned, toy: Toy
) -> None:
    loan = loan_disbursed()
    await _publish(provisioned, loan["type"], to_bytes(loan))
    repayment = repayment_received(loan["data"]["loan_id"], reference="fail-3")
    await _publish(provisioned, repayment["type"], to_bytes(repayment))
    await wait_for(lambda: len(toy.calls[repayment["id"]]) >= 4, timeout=20)
    await wait_for(lambda: _consumer_idle(provisioned), timeout=10)
    calls = toy.calls[repayment["id"]]
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] < gaps[1] < gaps[2], f"delays should grow: {gaps}"
    assert len(await _effects(runtime, "repaid")) == 1
    assert await _dead_letters(provisioned) == []


async def test_handler_failing_forever_ends_in_dlq_after_max_deliver(
    runtime: ServiceRuntime, provisioned, toy: Toy
) -> None:
    repayment = repayment_received("LN-X", reference="fail-forever")
    await _publish(provisioned, repayment["type"], to_bytes(repayment))
    await wait_for(lambda: _dead_letters(provisioned), timeout=30)
    letters = await _dead_letters(provisioned)
    assert len(letters) == 1
    assert letters[0].delivery_count == 4
    assert "always failing" in letters[0].reason
    assert json.loads(letters[0].original)["id"] == repayment["id"]
    assert len(toy.calls[repayment["id"]]) == 4
    assert await _effects(runtime, "repaid") == []


async def test_refused_event_goes_to_dlq_and_the_rest_keep_flowing(
    runtime: ServiceRuntime, provisioned
) -> None:
    refused = repayment_received("LN-1", reference="refuse")
    fine = loan_disbursed()
    await _publish(provisioned, refused["type"], to_bytes(refused))
    await _publish(provisioned, fine["type"], to_bytes(fine))
    await wait_for(lambda: _consumer_idle(provisioned), timeout=10)
    letters = await _dead_letters(provisioned)
    assert [x.reason_code for x in letters] == ["illegal_transition"]
    assert len(await _effects(runtime, "disbursed")) == 1


async def test_max_deliveries_advisory_dead_letters_a_message_nobody_settled(provisioned) -> None:
    # A process that dies on a message never acks or nacks it. Simulate it with a raw pull consumer
    # that fetches and drops the message until max_deliver; the advisory watcher must dead-letter it,
    # fetching the original by its stream sequence.
    from kumkm_shared import ConsumerDecl
    from kumkm_shared.messaging.consumer import AdvisoryWatcher

    decl = ConsumerDecl(
        name="toy-dies",
        stream="KUMKM_LOANS",
        service="toy",
        filter_subjects=("kumkm.loans.loan.disbursed.v1",),
        description="a consumer whose process dies on every message",
        ack_wait_seconds=1.0,
        max_deliver=2,
    )
    js = provisioned.jetstream()
    await js.add_consumer("KUMKM_LOANS", config=decl.config())
    watcher = AdvisoryWatcher(service="toy", decls=[decl], jetstream=provisioned.jetstream)
    await watcher.start(provisioned)
    event = loan_disbursed()
    await _publish(provisioned, event["type"], to_bytes(event))
    sub = await js.pull_subscribe_bind(durable="toy-dies", stream="KUMKM_LOANS")
    for _ in range(2):
        msgs = await sub.fetch(1, timeout=5)
        assert msgs[0].data == to_bytes(event)
        assert isinstance(msgs[0].metadata.num_delivered, int)
        await asyncio.sleep(1.3)  # ack_wait expires without a settlement
    # The server notices the exhausted message when it next tries to deliver: a pending pull does that.
    with contextlib.suppress(nats.errors.TimeoutError):
        assert await sub.fetch(1, timeout=2) == []
    await wait_for(lambda: _dead_letters(provisioned), timeout=15)
    await watcher.stop()
    await sub.unsubscribe()
    letters = await _dead_letters(provisioned)
    assert len(letters) == 1
    assert letters[0].reason_code == "max_deliveries"
    assert letters[0].consumer == "toy-dies"
    assert letters[0].original == to_bytes(event)
    info = await js.consumer_info("KUMKM_LOANS", "toy-dies")
    assert info.num_ack_pending == 0, "the server gave up on the message after max_deliver"


async def test_crash_after_commit_before_publish_publishes_exactly_once_after_restart(
    database_url: str, provisioned, runtime: ServiceRuntime
) -> None:
    # "Crash": the event is committed to the outbox but the relay is stopped before publishing.
    assert runtime.relay is not None
    runtime.relay.stop()
    await asyncio.sleep(0.2)
    envelope = validate_event_payload(loan_disbursed()).envelope
    async with runtime.pool.acquire() as conn, conn.transaction():
        await runtime.outbox.add(conn, envelope)
    # The relay also crashed once *after* publishing but before marking the row: publish it by hand.
    await provisioned.jetstream().publish(
        envelope.type, envelope.to_json_bytes(), headers={"Nats-Msg-Id": str(envelope.id)}
    )
    # Restart: a fresh relay picks the row up, the broker de-duplicates, the row is marked published.
    relay = OutboxRelay(runtime.pool, runtime.jetstream, "toy", poll_interval=0.1)
    task = asyncio.create_task(relay.run())
    await wait_for(lambda: _published(runtime, envelope.id), timeout=10)
    relay.stop()
    await task
    copies = await _stream_copies(provisioned, envelope.type, str(envelope.id))
    assert copies == 1


async def _published(rt: ServiceRuntime, event_id: uuid.UUID) -> bool:
    return bool(
        await rt.pool.fetchval("SELECT published_at IS NOT NULL FROM toy.outbox WHERE event_id=$1", event_id)
    )


async def _stream_copies(nc: nats.aio.client.Client, subject: str, event_id: str) -> int:
    js = nc.jetstream()
    sub = await js.subscribe(subject, ordered_consumer=True)
    count = 0
    while True:
        try:
            msg = await sub.next_msg(timeout=1)
        except Exception:
            break
        if json.loads(msg.data)["id"] == event_id:
            count += 1
    await sub.unsubscribe()
    return count


async def test_outbox_relay_keeps_the_order_of_each_aggregate(provisioned, runtime: ServiceRuntime) -> None:
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
    js = provisioned.jetstream()
    sub = await js.subscribe("kumkm.loans.loan.disbursed.v1", ordered_consumer=True)
    seen: dict[str, list[str]] = {loan: [] for loan in loans}
    for _ in range(120):
        msg = await sub.next_msg(timeout=5)
        body = json.loads(msg.data)
        seen[body["data"]["loan_id"]].append(body["id"])
    await sub.unsubscribe()
    assert seen == expected


async def _all_published(rt: ServiceRuntime) -> bool:
    return await rt.pool.fetchval("SELECT count(*) FROM toy.outbox WHERE published_at IS NULL") == 0


async def test_cleanup_removes_only_old_published_rows(runtime: ServiceRuntime) -> None:
    assert runtime.relay is not None
    runtime.relay.stop()
    await asyncio.sleep(0.2)
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
    runtime: ServiceRuntime, provisioned: nats.aio.client.Client, toy: Toy
) -> None:
    refused = repayment_received("LN-ANN", reference="refuse-announced")
    # The same event twice, past the broker's de-duplication: two dead letters, one announcement.
    await _publish(provisioned, refused["type"], to_bytes(refused), msg_id="one")
    await _publish(provisioned, refused["type"], to_bytes(refused), msg_id="two")

    async def two_letters() -> bool:
        return len(await _dead_letters(provisioned)) == 2

    await wait_for(two_letters, timeout=10)
    await wait_for(lambda: _consumer_idle(provisioned), timeout=10)
    assert runtime.relay is not None
    await wait_for(lambda: _no_pending(runtime), timeout=10)
    announced = await stream_events(provisioned, "kumkm.loans.installment.overdue.v1")
    assert len(announced) == 1
    assert announced[0]["causationid"] == refused["id"]
    assert {x.reason_code for x in await _dead_letters(provisioned)} == {"illegal_transition"}

    # The refusal did not claim the event in the inbox: after the fix, a replay is applied.
    toy.accept_refused = True
    await _publish(provisioned, refused["type"], to_bytes(refused), msg_id="replay")
    await wait_for(lambda: _consumer_idle(provisioned), timeout=10)
    assert [str(r["event_id"]) for r in await _effects(runtime, "repaid")] == [refused["id"]]


async def _no_pending(rt: ServiceRuntime) -> bool:
    assert rt.relay is not None
    return await rt.relay.pending() == 0
