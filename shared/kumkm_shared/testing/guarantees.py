"""The consumer guarantees as a reusable suite: every durable of every service runs the same tests.

Rules: ``docs/rules/messaging.md`` ("Retry and DLQ policy", "Refusals", "Outbox and inbox"). A concrete
test class subclasses ``ConsumerGuarantees`` and fills in the hooks::

    class TestLoansGuarantees(ConsumerGuarantees):
        durable = "loans"
        refusal = NotApplicable("loans has no business refusal on the bus: ...")
        retry = RetryCase(event=restructuring_for_an_unknown_loan, code="loan_unknown")

        def definition(self) -> ServiceDefinition: ...  # build(settings=...)
        async def valid(self, harness: ServiceHarness) -> Sample: ...
        def poison(self) -> dict[str, Any]: ...  # a schema violation
        async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int: ...

The suite gives the durable a short ``max_deliver`` and ``ack_wait`` (``ServiceDefinition.consumer_decls``)
and starts the service on real NATS and Postgres for each test. Its tests:

- a duplicate (one event under two ``Nats-Msg-Id``) has one effect;
- invalid input (a schema violation, undecodable bytes, an invalid envelope, an unknown type) is
  dead-lettered at once with its reason code and a human reason, and a valid event after it is applied;
- a refusal is dead-lettered with the handler's code and announced exactly once, even when the refused
  event comes twice, and leaves the event unclaimed so a replay after a fix applies;
- a ``Retry`` is dead-lettered after ``max_deliver`` deliveries with its code, and has no effect.

A durable without a refusal or a Retry path declares it, with the reason (``NotApplicable``): the test then
checks that the declaration says why. Nothing is skipped and nothing is left out silently; a class that
declares neither fails at collection.
"""

# ruff: noqa: S101, PLR2004 - a test suite: plain asserts (rewritten by pytest, see the plugin) and counts

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from kumkm_shared.contracts import EventData, make_event
from kumkm_shared.messaging.topology import consumer as declared_consumer
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import PUBLISHER_SOURCE, UNDECODABLE_KEY, ServiceHarness, record_outcomes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    import pytest

    from kumkm_shared.messaging.dlq import DeadLetter
    from kumkm_shared.service.runtime import ServiceDefinition

__all__ = [
    "ConsumerGuarantees",
    "NotApplicable",
    "RefusalCase",
    "RetryCase",
    "Sample",
    "as_envelope",
]

Sample = dict[str, Any] | EventData  # an envelope as JSON (dict), or contract data to wrap in a new one

UNDECODABLE: tuple[bytes, ...] = (b"{not json", b"\xff\xfe\x00garbage")
NOT_AN_ENVELOPE = json.dumps({"hello": "world"}).encode()
UNKNOWN_TYPE_CODES = frozenset({"unknown_type", "unhandled_type"})


@dataclass(frozen=True, slots=True)
class NotApplicable:
    """A path the durable does not have, and why (a sentence a reviewer can check against the handlers)."""

    reason: str


@dataclass(frozen=True, slots=True)
class RefusalCase:
    """A business refusal on the bus: ``event`` does the setup and returns the event refused for good.

    ``announces`` is the event type the refusal announces once per refused event (``Refusal.outcome``),
    or None for a refusal that announces nothing.
    """

    event: Callable[[ServiceHarness], Awaitable[Sample]]
    code: str
    announces: str | None


@dataclass(frozen=True, slots=True)
class RetryCase:
    """An event the handler answers with ``kumkm_shared.Retry(code, ...)`` on every delivery."""

    event: Callable[[ServiceHarness], Awaitable[Sample]]
    code: str


def as_envelope(sample: Sample) -> dict[str, Any]:
    """The sample as the envelope dict that is published (contract data gets a new envelope)."""
    if isinstance(sample, dict):
        return sample
    envelope = make_event(sample, source=PUBLISHER_SOURCE)
    return envelope.model_dump(mode="json", exclude_none=True)


def _event_id(raw: bytes) -> str | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    ident = body.get("id") if isinstance(body, dict) else None
    return str(ident) if ident is not None else None


def _declared(value: object, kinds: tuple[type, ...], name: str) -> None:
    if not isinstance(value, kinds):
        allowed = " or ".join(k.__name__ for k in kinds)
        raise TypeError(f"{name} must be declared as {allowed}, got {value!r}")


class ConsumerGuarantees:
    """Base of a durable's guarantee tests (named ``Test...`` in the subclass, so pytest collects it)."""

    # -- hooks ----------------------------------------------------------------------------------------
    durable: ClassVar[str]
    refusal: ClassVar[RefusalCase | NotApplicable]
    retry: ClassVar[RetryCase | NotApplicable]
    max_deliver: ClassVar[int] = 3
    # None: the durable as declared; True/False: run it as a batch durable or not (``ConsumerDecl.batch``),
    # so one suite proves both ways of consuming (``class TestXBatch(TestX): batch = True``).
    batch: ClassVar[bool | None] = None
    ack_wait_seconds: ClassVar[float] = 5.0
    infra: ClassVar[Mapping[str, Any]] = {"consumer_batch": 16, "drain_timeout": 2.0}
    settle_timeout: ClassVar[float] = 20.0

    def definition(self) -> ServiceDefinition:
        """The service as ``build(...)`` makes it (keyword arguments only)."""
        raise NotImplementedError

    async def valid(self, harness: ServiceHarness) -> Sample:
        """A valid event the durable applies, after any setup it needs (a product to order, a contact)."""
        raise NotImplementedError

    def poison(self) -> dict[str, Any]:
        """An envelope whose data violates the schema of a type the durable consumes."""
        raise NotImplementedError

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        """How many times ``event`` took effect (rows it wrote); for the valid sample and the Retry case."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("Test"):
            return  # an intermediate base: the concrete class is checked
        for name in ("durable", "refusal", "retry"):
            if not hasattr(cls, name):
                raise TypeError(
                    f"{cls.__name__} must declare {name!r} (NotApplicable with a reason if absent)"
                )
        _declared(cls.durable, (str,), "durable")
        _declared(cls.refusal, (RefusalCase, NotApplicable), "refusal")
        _declared(cls.retry, (RetryCase, NotApplicable), "retry")

    # -- running the service --------------------------------------------------------------------------
    def guarded_definition(self) -> ServiceDefinition:
        """``definition()`` with the durable's short ``max_deliver`` and ``ack_wait`` (and ``batch``)."""
        definition = self.definition()
        assert self.durable in definition.consumers, f"{definition.name} has no durable {self.durable!r}"
        base = definition.consumer_decls.get(self.durable) or declared_consumer(self.durable)
        batch = base.batch if self.batch is None else self.batch
        short = replace(
            base, max_deliver=self.max_deliver, ack_wait_seconds=self.ack_wait_seconds, batch=batch
        )
        definition.consumer_decls = {**definition.consumer_decls, self.durable: short}
        return definition

    @contextlib.asynccontextmanager
    async def started(self, request: pytest.FixtureRequest) -> AsyncIterator[ServiceHarness]:
        """The service on the test's own streams and database (fixtures ``nats_url``, ``database_url``)."""
        nats_url: str = request.getfixturevalue("nats_url")
        database_url: str = request.getfixturevalue("database_url")
        definition = self.guarded_definition()
        async with ServiceHarness.start(definition, nats_url, database_url, **self.infra) as harness:
            assert harness.decl(self.durable).batch == definition.consumer_decls[self.durable].batch
            yield harness

    # -- reading ----------------------------------------------------------------------------------------
    async def letters(self, harness: ServiceHarness) -> list[DeadLetter]:
        """The durable's dead letters (other durables of the service may dead-letter too)."""
        return [x for x in await harness.dead_letters() if x.consumer == self.durable]

    async def letters_about(self, harness: ServiceHarness, event_id: str) -> list[DeadLetter]:
        return [x for x in await self.letters(harness) if _event_id(x.original) == event_id]

    async def caused_by(self, harness: ServiceHarness, event_id: str) -> list[dict[str, Any]]:
        """Every event on the streams that ``event_id`` caused (emitted by a handler or a refusal)."""
        return [e for e in await harness.events() if e.get("causationid") == event_id]

    async def claimed(self, harness: ServiceHarness, event_id: str) -> bool:
        """The durable's inbox holds the event: it was applied (a refusal or a Retry claims nothing)."""
        schema = harness.runtime.name
        count: int = await harness.runtime.pool.fetchval(
            f"SELECT count(*) FROM {schema}.inbox WHERE consumer = $1 AND event_id = $2",
            self.durable,
            uuid.UUID(event_id),
        )
        return count > 0

    async def copies_on_stream(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        return sum(1 for e in await harness.events(str(event["type"])) if e.get("id") == event["id"])

    def consumed(self, harness: ServiceHarness, event: dict[str, Any]) -> None:
        subjects = harness.decl(self.durable).filter_subjects
        assert event["type"] in subjects, f"{event['type']} is not consumed by {self.durable}: {subjects}"

    # -- the guarantees ---------------------------------------------------------------------------------
    async def test_a_duplicate_has_one_effect(self, request: pytest.FixtureRequest) -> None:
        async with self.started(request) as harness:
            event = as_envelope(await self.valid(harness))
            self.consumed(harness, event)
            # Two message ids defeat the broker's de-duplication, as a re-publish after its window would.
            with record_outcomes(harness.runtime, self.durable) as outcomes:
                await harness.publish(event, msg_id=f"{event['id']}/first")
                await harness.publish(event, msg_id=f"{event['id']}/second")
                await harness.settle(self.settle_timeout)
            assert await self.copies_on_stream(harness, event) == 2, "both copies reached the stream"
            # What the wrapper decided (an effect counted by primary key could hide a second application).
            assert sorted(outcomes[str(event["id"])]) == ["applied", "duplicate"], outcomes
            assert await self.effects(harness, event) == 1
            assert await self.claimed(harness, str(event["id"]))
            assert await self.letters(harness) == []

    async def test_invalid_input_is_dead_lettered_and_a_valid_event_after_it_applied(
        self, request: pytest.FixtureRequest
    ) -> None:
        async with self.started(request) as harness:
            poison = self.poison()
            self.consumed(harness, poison)
            subject = str(poison["type"])
            context = subject.split(".")[1]
            valid = as_envelope(await self.valid(harness))
            self.consumed(harness, valid)
            unknown = {**valid, "id": str(uuid.uuid4()), "type": f"kumkm.{context}.guarantee.unknown.v1"}
            unknown.pop("dataschema", None)
            published: dict[bytes, set[str]] = {
                json.dumps(poison).encode(): {"schema_violation"},
                **{raw: {"undecodable"} for raw in UNDECODABLE},
                NOT_AN_ENVELOPE: {"invalid_envelope"},
                json.dumps(unknown).encode(): set(UNKNOWN_TYPE_CODES),
            }
            with record_outcomes(harness.runtime, self.durable) as outcomes:
                for raw in published:
                    await harness.publish_raw(subject, raw)
                await harness.publish(valid)
                await harness.settle(self.settle_timeout)
            assert outcomes[str(valid["id"])] == ["applied"], outcomes
            assert outcomes[UNDECODABLE_KEY] == ["invalid"] * (len(UNDECODABLE) + 1), outcomes
            assert outcomes[str(poison["id"])] == ["invalid"], outcomes
            assert outcomes[str(unknown["id"])] == ["invalid"], outcomes

            assert await self.effects(harness, valid) == 1, "the valid event after the invalid ones applied"
            letters = await self.letters(harness)
            assert sorted(x.original for x in letters) == sorted(published), "one dead letter per message"
            for letter in letters:
                codes = published[letter.original]
                assert letter.reason_code in codes, (letter.reason_code, codes, letter.reason)
                assert letter.reason.strip(), f"{letter.reason_code} carries a human reason"
                assert letter.delivery_count == 1, "invalid input is never retried"
                assert letter.subject == subject
            schema = next(x for x in letters if x.reason_code == "schema_violation")
            assert schema.errors, "a schema violation names the fields"
            assert all(e["field"].startswith("data") for e in schema.errors), schema.errors

    async def test_a_refusal_is_dead_lettered_with_its_code_and_announced_once(
        self, request: pytest.FixtureRequest
    ) -> None:
        case = self.refusal
        if isinstance(case, NotApplicable):
            self.assert_declared(case)
            return
        async with self.started(request) as harness:
            refused = as_envelope(await case.event(harness))
            self.consumed(harness, refused)
            ident = str(refused["id"])
            with record_outcomes(harness.runtime, self.durable) as outcomes:
                await harness.publish(refused)
                await harness.settle(self.settle_timeout)
            assert outcomes[ident] == ["refused"], outcomes
            letters = await self.letters_about(harness, ident)
            assert [x.reason_code for x in letters] == [case.code]
            assert letters[0].reason.strip(), "a refusal carries the handler's reason"
            assert letters[0].delivery_count == 1, "a refusal is never retried"
            announced = [e["type"] for e in await self.caused_by(harness, ident)]
            assert announced == ([case.announces] if case.announces else [])

            # The same event again, past the broker's de-duplication: dead-lettered again, not re-announced.
            await harness.publish(refused, msg_id=f"{ident}/again")
            await harness.settle(self.settle_timeout)
            assert [x.reason_code for x in await self.letters_about(harness, ident)] == [case.code] * 2
            assert [e["type"] for e in await self.caused_by(harness, ident)] == announced
            assert not await self.claimed(harness, ident), "a refused event stays unclaimed for a replay"

    async def test_a_retry_is_dead_lettered_after_max_deliver_with_no_effect(
        self, request: pytest.FixtureRequest
    ) -> None:
        case = self.retry
        if isinstance(case, NotApplicable):
            self.assert_declared(case)
            return
        async with self.started(request) as harness:
            event = as_envelope(await case.event(harness))
            self.consumed(harness, event)
            ident = str(event["id"])

            async def dead_lettered() -> bool:
                return bool(await self.letters_about(harness, ident))

            with record_outcomes(harness.runtime, self.durable) as outcomes:
                await harness.publish(event)
                # Each delivery waits for its backoff (or the Retry's own delay): allow max_deliver of them.
                await wait_for(
                    dead_lettered, timeout=15.0 * self.max_deliver, message=f"{ident} dead-lettered"
                )
                await harness.settle(self.settle_timeout)
            assert outcomes[ident] == ["retry"] * (self.max_deliver - 1) + ["exhausted"], outcomes
            letters = await self.letters_about(harness, ident)
            assert [x.reason_code for x in letters] == [case.code]
            assert letters[0].delivery_count == self.max_deliver
            assert letters[0].reason.strip(), "a Retry carries the handler's reason"
            assert await self.effects(harness, event) == 0
            assert not await self.claimed(harness, ident)
            assert await self.caused_by(harness, ident) == []

    @staticmethod
    def assert_declared(case: NotApplicable) -> None:
        """A path declared absent says why, in a sentence (a test that passes only on a real reason)."""
        words = case.reason.split()
        assert len(words) >= 4, f"NotApplicable needs a reason a reviewer can check, got {case.reason!r}"
