"""Crash safety of batches: kill -9 at each point of a batch, and every effect still happens exactly once.

Rules: ``docs/rules/messaging.md``, sections "Batch durables" and "Failpoints". The toy batch durable runs in
a process of its own (``tests/support/crash_toy.py``) on real NATS JetStream and Postgres, armed with a
failpoint that sends it SIGKILL at an exact point of its first batch:

- before the commit (inside the transaction, every handler done): nothing committed, all redelivered;
- after the commit, before any ack: all redelivered, and the inbox takes each copy for a duplicate;
- during the acks (the first ack confirmed by the server, the others never sent);
- in the relay, after the broker acknowledged the outbox rows and before they were marked published: the
  rows are published again, and the stream's de-duplication (``Nats-Msg-Id``) keeps one copy of each.

The process is then started again without failpoints. Afterwards each of the 40 disbursements has one effect
row and one follow-up event on the stream, and nothing is in the DLQ.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest

from kumkm_shared import failpoints
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import (
    consumer_idle,
    dead_letters,
    identity,
    provision_service,
    publish_event,
    stream_events,
)
from tests.support.crash_toy import READY
from tests.support.events import loan_disbursed
from tests.support.toy import OVERDUE, Toy, toy_service

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg
    from nats.aio.client import Client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]
EVENTS = 40


class ToyProcess:
    """``python -m tests.support.crash_toy`` with its output kept for the failure message."""

    def __init__(self, nats_url: str, database_url: str, log: Path) -> None:
        self.args = [
            sys.executable,
            "-m",
            "tests.support.crash_toy",
            nats_url,
            database_url,
            identity().issuer,
        ]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, armed: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != failpoints.ENV}
        if armed is not None:
            env[failpoints.ENV] = armed
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def ready(self) -> None:
        await wait_for(
            lambda: READY in self.output(), timeout=30, message=f"the toy started:\n{self.output()}"
        )

    async def died(self, timeout: float = 30.0) -> int:
        process = self.process
        assert process is not None
        await wait_for(lambda: process.poll() is not None, timeout=timeout, message=f"died:\n{self.output()}")
        code = process.returncode
        assert code is not None
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.asynccontextmanager
async def toy_process(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[ToyProcess]:
    process = ToyProcess(nats_url, database_url, tmp_path / "toy.log")
    try:
        yield process
    finally:
        process.stop()


async def _quiet(nc: Client, pool: asyncpg.Pool) -> bool:
    unpublished = await pool.fetchval("SELECT count(*) FROM toy.outbox WHERE published_at IS NULL")
    return unpublished == 0 and await consumer_idle(nc, "KUMKM_LOANS", "toy")


@pytest.mark.parametrize(
    "point",
    [
        failpoints.CONSUMER_BEFORE_COMMIT,
        failpoints.CONSUMER_AFTER_COMMIT,
        failpoints.CONSUMER_DURING_ACKS,
        failpoints.RELAY_BEFORE_MARK,
    ],
)
async def test_a_kill_in_a_batch_leaves_every_effect_exactly_once(
    point: str, nats_url: str, database_url: str, tmp_path: Path
) -> None:
    import asyncpg

    nc = await nats.connect(nats_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await provision_service(nc.jetstream(), toy_service(Toy(), batch=True))
        events = [loan_disbursed() for _ in range(EVENTS)]
        for event in events:  # all on the stream before the process starts: its first batch takes them all
            await publish_event(nc, event)
        async with toy_process(nats_url, database_url, tmp_path) as toy:
            toy.start(armed=f"{point}=kill")
            code = await toy.died()
            assert code == -signal.SIGKILL, f"the failpoint killed the process:\n{toy.output()}"
            toy.start()
            await toy.ready()

            async def quiet() -> bool:
                return await _quiet(nc, pool)

            await wait_for(quiet, timeout=60, message="every message settled and every outbox row published")
            rows = await pool.fetch("SELECT event_id::text AS id, count(*) AS n FROM toy.effects GROUP BY 1")
            effects = {r["id"]: r["n"] for r in rows}
            assert effects == {e["id"]: 1 for e in events}, "each disbursement applied exactly once"
            follow_ups = await stream_events(nc, OVERDUE)
            causes = sorted(e["causationid"] for e in follow_ups)
            assert causes == sorted(e["id"] for e in events), (
                "one follow-up event per disbursement on the stream"
            )
            assert await dead_letters(nc) == []
            inbox = await pool.fetchval("SELECT count(*) FROM toy.inbox WHERE consumer = 'toy'")
            assert inbox == EVENTS
    finally:
        await pool.close()
        await nc.drain()


async def test_the_failpoint_fires_where_the_batch_is_and_not_before(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    """A kill before the commit really happens inside the batch: the first start applied nothing."""
    import asyncpg

    nc = await nats.connect(nats_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await provision_service(nc.jetstream(), toy_service(Toy(), batch=True))
        for _ in range(5):
            await publish_event(nc, loan_disbursed())
        async with toy_process(nats_url, database_url, tmp_path) as toy:
            toy.start(armed=f"{failpoints.CONSUMER_BEFORE_COMMIT}=kill")
            assert await toy.died() == -signal.SIGKILL
            assert await pool.fetchval("SELECT count(*) FROM toy.effects") == 0, "nothing committed"
            assert await pool.fetchval("SELECT count(*) FROM toy.outbox") == 0
            info = await nc.jetstream().consumer_info("KUMKM_LOANS", "toy")
            assert info.num_ack_pending == 5, "delivered to the dead process, none acknowledged"
    finally:
        await pool.close()
        await nc.drain()
