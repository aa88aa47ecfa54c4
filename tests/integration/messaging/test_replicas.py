"""Several replicas of one service: leader-only work runs on one of them, and moves to a survivor.

Real Postgres and NATS. The leader-only work is the daily tick (``leader_workers``, ``db/leader.py``) and
the outbox relay (its own lock, ``messaging/outbox.py``); a leader is removed the way a crash removes it
from the database's view: its session is terminated (``pg_terminate_backend``), or its replica stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import pytest

from kumkm_loans.app import build as build_loans
from kumkm_loans.settings import LoansSettings
from kumkm_shared.clock import FixedClock
from kumkm_shared.db.leader import Leadership, lock_key
from kumkm_shared.db.pool import create_pool
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import ServiceHarness
from tests.support.events import contract_event, loan_disbursed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration

# 10:00 in Jakarta: past the 01:00 tick hour, so a new leader that finds no tick for today runs it.
REQUESTED = "kumkm.loans.restructuring.requested.v1"
MORNING = datetime(2024, 9, 12, 3, 0, tzinfo=UTC)


async def terminate_lock_holder(database_url: str, key: int) -> int:
    """End the session holding the advisory lock ``key``, as a crash of its replica would; its pid."""
    conn = await asyncpg.connect(database_url)
    try:
        pid: int = await conn.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND ((classid::bigint << 32) | objid::bigint) = ($1::bigint & x'ffffffffffffffff'::bigint) "
            "LIMIT 1",
            key,
        )
        assert pid is not None, "nobody holds the lock"
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
        return pid
    finally:
        await conn.close()


class Replica:
    """A ``Leadership`` on its own pool, and a record of when its work ran."""

    def __init__(self, name: str, pool: asyncpg.Pool, running: set[str], overlaps: list[set[str]]) -> None:
        self.name = name
        self.leadership = Leadership(pool, "test-work", poll_interval=0.1, check_interval=0.2)
        self.running, self.overlaps = running, overlaps
        self.started = 0
        self.task: asyncio.Task[None] | None = None

    async def work(self) -> None:
        self.started += 1
        self.running.add(self.name)
        if len(self.running) > 1:
            self.overlaps.append(set(self.running))
        try:
            await asyncio.Event().wait()
        finally:
            self.running.discard(self.name)


@contextlib.asynccontextmanager
async def replicas(database_url: str, count: int) -> AsyncIterator[list[Replica]]:
    running: set[str] = set()
    overlaps: list[set[str]] = []
    pools = [await create_pool(database_url, "public", min_size=1, max_size=3) for _ in range(count)]
    group = [Replica(f"r{i}", pool, running, overlaps) for i, pool in enumerate(pools)]
    for r in group:
        r.task = asyncio.create_task(r.leadership.run(r.work))
    try:
        yield group
    finally:
        for r in group:
            r.leadership.stop()
        await asyncio.gather(*(r.task for r in group if r.task is not None), return_exceptions=True)
        for pool in pools:
            await pool.close()


def leaders(group: list[Replica]) -> list[str]:
    return [r.name for r in group if r.leadership.is_leader]


async def test_one_replica_leads_and_a_survivor_takes_over_when_its_session_dies(database_url: str) -> None:
    async with replicas(database_url, 3) as group:
        await wait_for(lambda: len(leaders(group)) == 1, timeout=10, message="no leader elected")
        first = next(r for r in group if r.leadership.is_leader)
        assert first.started == 1
        await asyncio.sleep(1.0)  # the others keep trying meanwhile
        assert leaders(group) == [first.name], "a second replica took the lock while the first held it"

        await terminate_lock_holder(database_url, lock_key("test-work"))
        await wait_for(
            lambda: len(leaders(group)) == 1 and not first.leadership.is_leader,
            timeout=10,
            message="no survivor took over after the leader's session was terminated",
        )
        # The old leader noticed its lost session and stopped its work; it may lead again later.
        await wait_for(lambda: first.name not in first.running, timeout=5, message="old leader kept working")
        assert sum(r.started for r in group) == 2  # the first term and the survivor's
        overlaps = group[0].overlaps
        # Between the termination and the old leader's failed ping, both may run (the documented window).
        assert all(len(o) <= 2 for o in overlaps), overlaps


async def test_a_leader_that_stops_hands_over_at_once(database_url: str) -> None:
    async with replicas(database_url, 2) as group:
        await wait_for(lambda: len(leaders(group)) == 1, timeout=10, message="no leader elected")
        first = next(r for r in group if r.leadership.is_leader)
        other = next(r for r in group if r is not first)
        first.leadership.stop()
        await wait_for(lambda: other.leadership.is_leader, timeout=5, message="the lock was not released")
        assert group[0].overlaps == [], "a clean hand-over never runs the work twice at once"


async def test_two_loans_replicas_tick_once_and_relay_from_one_then_the_survivor(
    nats_url: str, database_url: str
) -> None:
    settings = LoansSettings(daily_tick=True)
    async with contextlib.AsyncExitStack() as stack:
        harnesses = [
            await stack.enter_async_context(
                ServiceHarness.start(
                    build_loans(settings=settings, clock=FixedClock(MORNING)), nats_url, database_url
                )
            )
            for _ in range(2)
        ]
        runtimes = [h.runtime for h in harnesses]
        reader = await asyncpg.connect(database_url)
        stack.push_async_callback(reader.close)

        async def ticks() -> list[tuple[str, int]]:
            rows = await reader.fetch("SELECT as_of::text AS day, runs FROM loans.ticks")
            return [(r["day"], r["runs"]) for r in rows]

        await wait_for(ticks, timeout=20, message="the new day's tick never ran")
        await wait_for(
            lambda: sum(1 for r in runtimes if r.relay is not None and r.relay.is_leader) == 1,
            timeout=10,
            message="not exactly one relay leads",
        )
        assert [r.leadership is not None and r.leadership.is_leader for r in runtimes].count(True) == 1
        await asyncio.sleep(1.5)
        assert await ticks() == [("2024-09-12", 1)], "two replicas ran today's tick"

        # The replica that leads both is stopped; the survivor takes the relay and the ticks over.
        leader = next(r for r in runtimes if r.leadership is not None and r.leadership.is_leader)
        survivor = next(r for r in runtimes if r is not leader)
        await leader.stop()
        await wait_for(
            lambda: survivor.leadership is not None and survivor.leadership.is_leader,
            timeout=10,
            message="the survivor did not take the leader-only work",
        )
        await wait_for(
            lambda: survivor.relay is not None and survivor.relay.is_leader,
            timeout=10,
            message="the survivor's relay did not take over",
        )
        assert await ticks() == [("2024-09-12", 1)], "the survivor ran a tick that was already recorded"

        # The survivor applies and relays: what it commits to its outbox reaches the stream.
        survivor_harness = harnesses[runtimes.index(survivor)]
        before = await reader.fetchval("SELECT count(*) FROM loans.outbox")
        loan_id = f"LN-R-{uuid.uuid4().hex[:8]}"
        await survivor_harness.publish(loan_disbursed(loan_id))
        await survivor_harness.publish(
            contract_event(REQUESTED, request_id=f"RR-{uuid.uuid4().hex[:8]}", loan_id=loan_id)
        )
        await survivor_harness.settle(timeout=20)
        assert await reader.fetchval("SELECT count(*) FROM loans.outbox") > before
        assert await reader.fetchval("SELECT count(*) FROM loans.outbox WHERE published_at IS NULL") == 0
