"""A toy service on the real runtime: real NATS JetStream, real Postgres, FastStream subscribers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
import pytest
import pytest_asyncio

from kumkm_shared import ConsumerDecl, EventContext, Refusal, Retry, ServiceDefinition, ServiceRuntime
from kumkm_shared.contracts import spec_for
from kumkm_shared.messaging.provision import provision
from kumkm_shared.messaging.topology import STREAM_DECLS
from kumkm_shared.testing.harness import ServiceHarness
from tests.support import samples as contract_samples

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

DISBURSED = "kumkm.loans.loan.disbursed.v1"
REPAID = "kumkm.loans.repayment.received.v1"
OVERDUE = "kumkm.loans.installment.overdue.v1"

TOY_DECL = ConsumerDecl(
    name="toy",
    stream="KUMKM_LOANS",
    service="toy",
    filter_subjects=(DISBURSED, REPAID),
    description="toy consumer for the messaging guarantees",
    ack_wait_seconds=2.0,
    max_deliver=4,
    batch=False,  # one message per transaction: the path no declared durable takes, kept proven here
)


# The same durable as a batch durable (``EventProcessor.process_batch``).
TOY_BATCH_DECL = dataclasses.replace(TOY_DECL, batch=True)


class Toy:
    """Handlers whose behaviour is chosen by the repayment's ``reference`` field.

    ``fail-N`` fails N times (a crash, not a verdict), ``fail-forever`` always; ``retry`` answers
    ``Retry("toy_not_yet")`` every time; ``refuse`` refuses silently, ``refuse-announced`` with an outcome.
    """

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)
        self.accept_refused = False  # "the fix" for DLQ replay tests
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        # What a refusal announces (any contract event will do; the toy consumer does not consume this one).
        self.announcement = spec_for(OVERDUE).model.model_validate(contract_samples.SAMPLES[OVERDUE])
        self.announces = False  # ``disbursed`` also emits ``announcement`` (``tests/support/crash_toy.py``)

    async def disbursed(self, ctx: EventContext) -> None:
        data: Any = ctx.event.data
        await ctx.conn.execute(
            "INSERT INTO effects (event_id, loan_id, kind) VALUES ($1, $2, 'disbursed')",
            ctx.envelope.id,
            data.loan_id,
        )
        if self.announces:  # a follow-up event in the outbox, caused by this one (the crash tests count it)
            await ctx.emit(self.announcement)

    async def repaid(self, ctx: EventContext) -> None:
        data: Any = ctx.event.data
        key = str(ctx.envelope.id)
        self.calls[key].append(time.monotonic())
        ref: str = data.reference
        if (
            ref.startswith("fail-")
            and ref != "fail-forever"
            and len(self.calls[key]) <= int(ref.split("-")[1])
        ):
            raise ConnectionError(f"transient failure {len(self.calls[key])}")
        if ref == "block":
            self.entered.set()
            await self.gate.wait()
        if ref.startswith("break-commit-") and len(self.calls[key]) <= int(ref.rsplit("-", 1)[1]):
            await ctx.conn.execute("INSERT INTO deferred (key) VALUES ($1), ($1)", key)
        if ref == "refuse-after-write":
            await ctx.conn.execute(
                "INSERT INTO effects (event_id, loan_id, kind) VALUES ($1, $2, 'repaid')",
                ctx.envelope.id,
                data.loan_id,
            )
            raise Refusal("illegal_transition", "refused after writing: the write must be rolled back")
        if ref == "fail-forever":
            raise ConnectionError("always failing")
        if ref == "retry":
            raise Retry("toy_not_yet", "the toy waits for something that never comes")
        if ref == "refuse" and not self.accept_refused:
            raise Refusal("illegal_transition", "repayment refused by the toy rules")
        if ref == "refuse-announced" and not self.accept_refused:
            raise Refusal("illegal_transition", "refused; the parties are told", outcome=self.announcement)
        await ctx.conn.execute(
            "INSERT INTO effects (event_id, loan_id, kind) VALUES ($1, $2, 'repaid')",
            ctx.envelope.id,
            data.loan_id,
        )


def toy_service(toy: Toy, *, batch: bool = False) -> ServiceDefinition:
    return ServiceDefinition(
        name="toy",
        title="toy",
        description="toy service for the messaging guarantees",
        migrations=Path(__file__).parent / "toy_migrations",
        consumers={"toy": {DISBURSED: toy.disbursed, REPAID: toy.repaid}},
        consumer_decls={"toy": TOY_BATCH_DECL if batch else TOY_DECL},
    )


@pytest.fixture
def toy() -> Toy:
    return Toy()


@pytest.fixture
def toy_definition(toy: Toy) -> ServiceDefinition:
    return toy_service(toy)


@pytest_asyncio.fixture
async def provisioned(nats_url: str) -> AsyncIterator[nats.aio.client.Client]:
    """An integrator's connection, with every stream and the toy's durable provisioned (no service)."""
    nc = await nats.connect(nats_url)
    await provision(nc.jetstream(), streams=STREAM_DECLS, consumers=[TOY_DECL])
    yield nc
    await nc.drain()


@pytest_asyncio.fixture
async def toy_harness(
    toy_definition: ServiceDefinition, nats_url: str, database_url: str
) -> AsyncIterator[ServiceHarness]:
    async with ServiceHarness.start(toy_definition, nats_url, database_url, consumer_batch=16) as harness:
        yield harness


@pytest.fixture
def runtime(toy_harness: ServiceHarness) -> ServiceRuntime:
    return toy_harness.runtime
