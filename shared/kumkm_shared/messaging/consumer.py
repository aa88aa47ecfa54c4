"""The one consumer wrapper every service uses. It implements the error policy (``docs/rules/messaging.md``,
section "Retry and DLQ policy"):

- undecodable or invalid (``ContractError``), or an event type the consumer has no handler for:
  dead letter with the reason, then terminate; never retried;
- a ``Refusal`` from a handler: rolled back, dead letter with the handler's code, then the refusal's
  outcome event if it carries one (a business refusal the parties must hear of), terminate;
- ``Retry`` or any other exception: rolled back, nack with a delay that grows with the delivery count;
  on the last allowed delivery, dead letter with the last error and terminate;
- a duplicate (the inbox already holds the event id): ack only;
- success: the handler's writes, its outbox rows and the inbox row commit together, then ack.

The max-deliveries advisory covers what the wrapper cannot see (a process that dies on a message):
``AdvisoryWatcher`` fetches the original by stream sequence and dead-letters it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeAlias

import structlog
from prometheus_client import Counter, Histogram

from kumkm_shared import failpoints
from kumkm_shared.audit.draft import AuditDraft
from kumkm_shared.audit.store import insert as insert_audit
from kumkm_shared.auth.roles import INTEGRATOR
from kumkm_shared.backoff import Backoff
from kumkm_shared.contracts import (
    ContractError,
    DecodedEvent,
    EventData,
    caused_by,
    decode_event,
    make_event,
)
from kumkm_shared.errors import Forbidden, Refusal, Retry
from kumkm_shared.integrators import roles_for, split_subject
from kumkm_shared.messaging.dlq import DeadLetter, publish_dead_letter
from kumkm_shared.messaging.tracing import child_traceparent, new_traceparent, trace_id
from kumkm_shared.origin import Actor, Command, StreamDelivery

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager, AbstractContextManager
    from uuid import UUID

    import asyncpg
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from kumkm_shared.contracts import Envelope
    from kumkm_shared.contracts.envelope import Causation
    from kumkm_shared.db import Conn
    from kumkm_shared.mandates import Mandate, MandateLookup
    from kumkm_shared.messaging.inbox import Inbox
    from kumkm_shared.messaging.outbox import Outbox
    from kumkm_shared.messaging.topology import ConsumerDecl
    from kumkm_shared.origin import Origin

log = structlog.get_logger(__name__)

HANDLED = Counter("kumkm_events_handled", "Events handled by outcome", ["consumer", "outcome"])
HANDLE_SECONDS = Histogram("kumkm_event_handle_seconds", "Time to handle one event", ["consumer"])
BATCH_SECONDS = Histogram(
    "kumkm_event_batch_seconds", "Time of one batch transaction (batch durables)", ["consumer"]
)
BATCH_SIZE = Histogram(
    "kumkm_event_batch_size",
    "Messages applied in one batch transaction (batch durables)",
    ["consumer"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
NOT_AUTHORISED = Counter(
    "kumkm_not_authorised_for_party",
    "Events and commands refused because the sender's mandate does not cover the party they claim",
    ["service", "event_type", "via"],
)
NOT_AUTHORISED_FOR_PARTY = "not_authorised_for_party"


class Emit(Protocol):
    """Write a follow-up event to the outbox, in the current transaction."""

    async def __call__(self, data: EventData, /) -> Envelope: ...


class Work(Protocol):
    """What every handler and every command method gets: one transaction, its origin, and ``emit``.

    The runtime owns the transaction (the consumer wrapper for events, ``ServiceRuntime.command`` for
    commands); a service method never opens or commits one.
    """

    @property
    def conn(self) -> Conn: ...
    @property
    def origin(self) -> Origin: ...
    async def emit(self, data: EventData, /) -> Envelope: ...
    async def lock(self, key: str) -> None: ...


async def _lock(conn: Conn, key: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


@dataclass
class EventContext:
    """What an event handler gets: the event, the transaction's connection, its origin, and ``emit``."""

    conn: Conn
    event: DecodedEvent
    outbox: Outbox
    origin: Origin
    service_source: str  # the ``source`` of the events this service emits
    emitted: list[Envelope] = field(default_factory=list)
    mandates: MandateLookup | None = None  # integrator organisations' mandates (``require_mandate``)

    @property
    def envelope(self) -> Envelope:
        return self.event.envelope

    @property
    def sender(self) -> str | None:
        """The integrator organisation that sent the event: the subject's token on the bus, the service
        account's organisation over HTTP. ``None`` for a service's own event or a person's command."""
        if isinstance(self.origin, Command):
            actor = self.origin.actor
            acts_for_organisation = actor.kind == "service" or INTEGRATOR in actor.roles
            return actor.organisation if acts_for_organisation else None
        return self.origin.sender

    async def require_mandate(self, party: str | None) -> None:
        """Refuse (``not_authorised_for_party``) unless the sender may act for ``party`` with this event.

        On the bus the sender is the organisation the server vouches for (the subject's token); a bare
        subject names nobody and is refused. Over HTTP a service account acts for its token's organisation;
        a person's command is governed by roles and regions instead (``docs/rules/access.md``).
        ``party=None``: the party is not known yet (a repayment before its loan); everything else is checked.
        """
        if isinstance(self.origin, Command):
            actor = self.origin.actor
            if actor.kind != "service" and INTEGRATOR not in actor.roles:
                return  # an officer or an operator: roles and regions decide (a person never skips by role)
            if actor.organisation is None:
                self._deny(f"the service account {actor.subject!r} belongs to no organisation")
            organisation: str | None = actor.organisation
        else:
            organisation = self.origin.sender
        reason = await self.mandate_refusal(organisation, party)
        if reason is not None:
            self._deny(reason)

    async def mandate_refusal(
        self, organisation: str | None, party: str | None, event_type: str | None = None
    ) -> str | None:
        """Why ``organisation`` may not send this event (or one of ``event_type``) for ``party``, or ``None``
        when it may."""
        event_type = event_type or self.envelope.type
        if organisation is None:
            return "the subject names no sending organisation"
        mandate = await self.mandates.get(organisation) if self.mandates is not None else None
        if mandate is None:
            return f"organisation {organisation!r} holds no mandate"
        if not mandate.active:
            return f"the mandate of organisation {organisation!r} was revoked"
        allowed = roles_for(event_type)
        if mandate.roles.isdisjoint(allowed):
            played = ", ".join(sorted(mandate.roles)) or "no role"
            return f"organisation {organisation!r} plays {played}, which may not send {event_type}"
        if party is not None and not mandate.covers(allowed, party):
            return f"organisation {organisation!r} holds no mandate for party {party!r}"
        return None

    def count_denial(self, event_type: str | None = None) -> None:
        via = "http" if isinstance(self.origin, Command) else "bus"
        service = self.service_source.removeprefix("kumkm/")
        NOT_AUTHORISED.labels(service, event_type or self.envelope.type, via).inc()

    def _deny(self, reason: str) -> NoReturn:
        self.count_denial()
        raise Forbidden("mandate", reason, code=NOT_AUTHORISED_FOR_PARTY)

    @property
    def is_command(self) -> bool:
        """The event came with a command (HTTP), not from a stream: be strict, answer now."""
        return isinstance(self.origin, Command)

    @property
    def last_attempt(self) -> bool:
        """This stream delivery is the last one: a ``Retry`` now ends in the DLQ."""
        return isinstance(self.origin, StreamDelivery) and self.origin.last_attempt

    @property
    def actor(self) -> Actor | None:
        return self.origin.actor if isinstance(self.origin, Command) else None

    async def lock(self, key: str) -> None:
        """Serialise this transaction with every other one that locks ``key`` (until commit or rollback).

        Messages of one pull batch are handled concurrently; two events about one aggregate that are not
        ordered by a row lock (a repayment and the disbursement it may precede) must take this first.
        """
        await _lock(self.conn, key)

    async def emit(self, data: EventData) -> Envelope:
        """Write a follow-up event to the outbox, in this transaction, caused by the current event."""
        envelope = make_event(
            data,
            source=self.service_source,
            **caused_by(self.envelope.id, self.envelope.correlationid),
            traceparent=child_traceparent(self.envelope.traceparent),
        )
        await self.outbox.add(self.conn, envelope)
        self.emitted.append(envelope)
        return envelope


@dataclass
class CommandContext:
    """What a command method gets: a transaction opened by the runtime for one command of ``actor``.

    Events emitted start a new trace, or follow ``cause`` (an operator's reroute of an earlier event).
    """

    conn: Conn
    outbox: Outbox
    origin: Command
    service_source: str
    cause: Envelope | None = None
    emitted: list[Envelope] = field(default_factory=list)

    @property
    def actor(self) -> Actor:
        return self.origin.actor

    async def lock(self, key: str) -> None:
        await _lock(self.conn, key)

    async def emit(self, data: EventData) -> Envelope:
        links: dict[str, Any] = {}
        if self.cause is not None:
            links = dict(caused_by(self.cause.id, self.cause.correlationid))
        envelope = make_event(data, source=self.service_source, traceparent=new_traceparent(), **links)
        await self.outbox.add(self.conn, envelope)
        self.emitted.append(envelope)
        return envelope

    async def emit_many(
        self, events: Sequence[EventData], *, causes: Sequence[Causation] | None = None
    ) -> list[Envelope]:
        """``emit`` for several events in one statement.

        ``causes``, one per event (``contracts.caused_by``), is for a batch whose events follow different
        earlier events (the delivery receipts of several notifications); without it every event follows
        ``cause``, like ``emit``.
        """
        default: dict[str, Any] = {}
        if self.cause is not None:
            default = dict(caused_by(self.cause.id, self.cause.correlationid))
        links: Sequence[Mapping[str, Any]] = [default] * len(events) if causes is None else causes
        envelopes = [
            make_event(data, source=self.service_source, traceparent=new_traceparent(), **link)
            for data, link in zip(events, links, strict=True)
        ]
        await self.outbox.add_many(self.conn, envelopes)
        self.emitted.extend(envelopes)
        return envelopes


# Opens one command's transaction (``ServiceRuntime.command`` with its origin bound): what a command that
# runs in several transactions (a tick over many rows, the dispatcher's claims and outcomes) is given.
Begin: TypeAlias = "Callable[[], AbstractAsyncContextManager[CommandContext]]"


class Handler(Protocol):
    def __call__(self, ctx: EventContext, /) -> Awaitable[None]: ...


def denial_key(stream: str, sequence: int) -> uuid.UUID:
    """The ``<durable>/denied`` inbox key of a refused organisation's event: its stream message, never the
    envelope id (the sender's choice: forged events may share one), so every refused message is audited."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"nats:{stream}:{sequence}")


async def audit_denial(
    conn: Conn,
    *,
    subject: str,
    request_id: str,
    sender: str | None,
    event_type: str,
    target: str | None,
    reason: str,
) -> None:
    """The audit record of an organisation's event refused for its mandate (``not_authorised_for_party``)."""
    actor = Actor(f"organisation:{sender}" if sender else "nats:unnamed", kind="service", organisation=sender)
    draft = AuditDraft(
        method="PUBLISH",
        path=subject,
        request_id=request_id,
        client=None,
        actor=actor,
        route=subject,
        command=event_type,
        target=target,
        reason=reason,
    )
    await insert_audit(conn, draft, status=403, outcome=NOT_AUTHORISED_FOR_PARTY)


# Called with every message the wrapper settled and its outcome (a test's probe: ``record_outcomes``).
Observer: TypeAlias = "Callable[[Msg, str], None]"


@dataclass(frozen=True, slots=True)
class _Checked:
    """A message that decoded, fits its subject and has a handler."""

    event: DecodedEvent
    handler: Handler
    sender: str | None


@dataclass(frozen=True, slots=True)
class _Work:
    """A checked message of a batch, at its position in the batch."""

    index: int
    msg: Msg
    checked: _Checked
    delivered: int


_SAVEPOINT = "kumkm_batch_message"


class _BatchMandates:
    """A batch durable reads each organisation's mandate once per batch (``docs/rules/messaging.md``,
    "Batch durables"): a revocation applies from the next batch on."""

    def __init__(self, lookup: MandateLookup) -> None:
        self._lookup = lookup
        self._seen: dict[str, Mandate | None] = {}

    async def get(self, organisation: str, /) -> Mandate | None:
        if organisation not in self._seen:
            self._seen[organisation] = await self._lookup.get(organisation)
        return self._seen[organisation]


class EventProcessor:
    """Applies the error policy for one durable consumer. Independent of FastStream, so it is testable."""

    def __init__(
        self,
        *,
        service: str,
        decl: ConsumerDecl,
        handlers: Mapping[str, Handler],
        pool: asyncpg.Pool,
        inbox: Inbox,
        outbox: Outbox,
        jetstream: Callable[[], JetStreamContext],
        backoff: Backoff | None = None,
        mandates: MandateLookup | None = None,
    ) -> None:
        self.service = service
        self.mandates = mandates
        self.decl = decl
        self.handlers = dict(handlers)
        self._pool = pool
        self._inbox = inbox
        self._outbox = outbox
        self._jetstream = jetstream
        self.backoff = backoff or Backoff()
        self._source = f"kumkm/{service}"
        self._observers: list[Observer] = []

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer(msg, outcome)`` for every message settled from now on; returns its removal."""
        self._observers.append(observer)
        return functools.partial(self._observers.remove, observer)

    def _settled(self, msg: Msg, outcome: str) -> str:
        HANDLED.labels(self.decl.name, outcome).inc()
        for observer in tuple(self._observers):
            observer(msg, outcome)
        return outcome

    async def process(self, msg: Msg) -> str:
        """Handle one message and settle it (ack, nack or term). Returns the outcome's name."""
        delivered = msg.metadata.num_delivered or 1
        with self._message_vars(msg, delivered):
            checked = await self._check(msg, delivered)
            if isinstance(checked, str):
                outcome = checked
            else:
                with self._event_vars(checked.event):
                    outcome = await self._apply(msg, checked, delivered)
        return self._settled(msg, outcome)

    async def process_batch(self, msgs: Sequence[Msg]) -> list[str]:
        """Handle a pull batch in ONE transaction, a savepoint per message; settle each message.

        Undecodable, invalid and unhandled messages are dead-lettered one by one, as ``process`` does. The
        others are applied in order, each inside its own savepoint (inbox claim + handler): a message that
        raises rolls back to its savepoint only, and once the batch has committed follows the usual policy
        (``Retry`` or another exception: nack with a delay, dead letter on the last delivery; ``Refusal``:
        dead letter, then its announcement or denial record). The applied and duplicate messages are acked
        only after the commit; if the commit fails they are all handled as a failed delivery (nack with a
        delay, dead letter on the last one): the inbox makes their redelivery harmless.
        """
        outcomes: dict[int, str] = {}
        work: list[_Work] = []
        for i, msg in enumerate(msgs):
            delivered = msg.metadata.num_delivered or 1
            with self._message_vars(msg, delivered):
                checked = await self._check(msg, delivered)
            if isinstance(checked, str):
                outcomes[i] = self._settled(msg, checked)
            else:
                work.append(_Work(i, msg, checked, delivered))
        if work:
            done, failed, commit_error = await self._apply_batch(work)
            if commit_error is None:
                failpoints.hit(failpoints.CONSUMER_AFTER_COMMIT)
            acked = 0
            for item in work:
                if commit_error is None and item.index in done:
                    acked += 1
                    if acked == 1 and len(work) > 1 and failpoints.armed(failpoints.CONSUMER_DURING_ACKS):
                        await item.msg.ack_sync()  # the server holds the first ack, not the others
                        failpoints.hit(failpoints.CONSUMER_DURING_ACKS)
                    else:
                        await item.msg.ack()  # the common case, with nothing to log
                    outcome = done[item.index]
                else:
                    with self._message_vars(item.msg, item.delivered), self._event_vars(item.checked.event):
                        outcome = await self._settle_one(item, done, failed, commit_error)
                outcomes[item.index] = self._settled(item.msg, outcome)
        return [outcomes[i] for i in range(len(msgs))]

    async def _apply_batch(
        self, work: Sequence[_Work]
    ) -> tuple[dict[int, str], dict[int, Exception], Exception | None]:
        """Run the batch's transaction: what each message did (applied, duplicate), the exception of each
        one rolled back to its savepoint, and the error of the transaction itself (nothing committed).

        The first copy of each event id is claimed in the inbox for the whole batch in one statement; a
        message that fails is rolled back to its savepoint and its claim withdrawn. A later copy of an id
        in the same batch claims for itself, inside its savepoint, as ``process`` does. One savepoint name
        is reused: released and set again in one round trip after each message.
        """
        done: dict[int, str] = {}
        failed: dict[int, Exception] = {}
        started = time.perf_counter()
        mandates = _BatchMandates(self.mandates) if self.mandates is not None else None
        first: dict[UUID, _Work] = {}
        for item in work:
            first.setdefault(item.checked.event.envelope.id, item)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                claims = [
                    (i.checked.event.envelope.id, i.checked.event.envelope.type) for i in first.values()
                ]
                claimed = await self._inbox.claim_many(conn, self.decl.name, claims)
                await conn.execute(f"SAVEPOINT {_SAVEPOINT}")
                for item in work:
                    event_id = item.checked.event.envelope.id
                    is_first = first[event_id] is item
                    if is_first and event_id not in claimed:
                        done[item.index] = "duplicate"
                        continue
                    with self._event_vars(item.checked.event), HANDLE_SECONDS.labels(self.decl.name).time():
                        try:
                            done[item.index] = await self._handle(
                                conn,
                                item.msg,
                                item.checked,
                                item.delivered,
                                claim=not is_first,
                                mandates=mandates,
                            )
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:
                            failed[item.index] = exc
                            await conn.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                            if is_first:  # the batch's claim is outside the savepoint: withdraw it
                                await self._inbox.release(conn, self.decl.name, event_id)
                    # Released after a failure too: the withdrawal of a failed message's claim must not be
                    # rolled back with the next message that fails (its redelivery would look a duplicate).
                    await conn.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}; SAVEPOINT {_SAVEPOINT}")
                failpoints.hit(failpoints.CONSUMER_BEFORE_COMMIT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "batch transaction failed; its messages will be redelivered",
                consumer=self.decl.name,
                batch=len(work),
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            return {}, failed, exc
        finally:
            BATCH_SECONDS.labels(self.decl.name).observe(time.perf_counter() - started)
            BATCH_SIZE.labels(self.decl.name).observe(len(work))
        return done, failed, None

    async def _settle_one(
        self, item: _Work, done: dict[int, str], failed: dict[int, Exception], commit_error: Exception | None
    ) -> str:
        """After the batch's commit (or its failure): ack, or apply the policy to the message's failure."""
        if item.index in failed:
            return await self._fail(item.msg, item.checked, failed[item.index], item.delivered)
        if commit_error is not None or item.index not in done:
            reason = f"the batch did not commit: {type(commit_error).__name__}: {commit_error}"
            return await self._retry(item.msg, "batch_not_committed", reason, None, item.delivered)
        await item.msg.ack()
        return done[item.index]

    def _message_vars(self, msg: Msg, delivered: int) -> AbstractContextManager[None]:
        return structlog.contextvars.bound_contextvars(
            consumer=self.decl.name, stream_seq=msg.metadata.sequence.stream, delivered=delivered
        )

    async def _check(self, msg: Msg, delivered: int) -> _Checked | str:
        """The decoded event and its handler, or the outcome of a message dead-lettered here and now."""
        try:
            event = decode_event(msg.data)
        except ContractError as exc:
            await self._dead_letter(
                msg,
                exc.code,
                str(exc),
                delivered,
                [{"field": e.field, "message": e.message} for e in exc.errors],
            )
            return "invalid"
        envelope = event.envelope
        fits, sender = split_subject(msg.subject, envelope.type)
        if not fits:
            await self._dead_letter(
                msg,
                "subject_mismatch",
                f"type {envelope.type!r} published on subject {msg.subject!r}: the subject must be the"
                " type, or the type followed by the sending organisation",
                delivered,
            )
            return "invalid"
        handler = self.handlers.get(envelope.type)
        if handler is None:
            await self._dead_letter(
                msg,
                "unhandled_type",
                f"consumer {self.decl.name!r} has no handler for {envelope.type}",
                delivered,
            )
            return "invalid"
        return _Checked(event, handler, sender)

    @staticmethod
    def _event_vars(event: DecodedEvent) -> AbstractContextManager[None]:
        envelope = event.envelope
        return structlog.contextvars.bound_contextvars(
            event_id=str(envelope.id),
            event_type=envelope.type,
            correlationid=envelope.correlationid,
            trace_id=trace_id(envelope.traceparent),
        )

    async def _handle(
        self,
        conn: Conn,
        msg: Msg,
        checked: _Checked,
        delivered: int,
        *,
        claim: bool = True,
        mandates: MandateLookup | None = None,
    ) -> str:
        """Inbox claim (unless claimed already) and handler, in the caller's transaction (or savepoint)."""
        envelope = checked.event.envelope
        if claim and not await self._inbox.claim(conn, self.decl.name, envelope.id, envelope.type):
            return "duplicate"
        ctx = EventContext(
            conn,
            checked.event,
            self._outbox,
            origin=self._origin(msg, delivered, checked.sender),
            service_source=self._source,
            mandates=mandates or self.mandates,
        )
        await checked.handler(ctx)
        return "applied"

    async def _apply(self, msg: Msg, checked: _Checked, delivered: int) -> str:
        try:
            with HANDLE_SECONDS.labels(self.decl.name).time():
                async with self._pool.acquire() as conn, conn.transaction():
                    outcome = await self._handle(conn, msg, checked, delivered)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._fail(msg, checked, exc, delivered)
        await msg.ack()
        return outcome

    async def _fail(self, msg: Msg, checked: _Checked, exc: BaseException, delivered: int) -> str:
        """The policy for a handler's exception, once its transaction (or savepoint) is rolled back."""
        if isinstance(exc, Retry):
            return await self._retry(msg, exc.code, exc.reason, exc.delay, delivered)
        if isinstance(exc, Refusal):
            announce = None
            if exc.outcome is not None:
                announce = functools.partial(self._announce_refusal, checked.event, exc.outcome)
            elif exc.code == NOT_AUTHORISED_FOR_PARTY:
                announce = functools.partial(
                    self._record_denial, msg, checked.event, checked.sender, exc.reason
                )
            await self._dead_letter(msg, exc.code, exc.reason, delivered, then=announce)
            return "refused"
        return await self._retry(msg, "handler_error", f"{type(exc).__name__}: {exc}", None, delivered)

    def _origin(self, msg: Msg, delivered: int, sender: str | None) -> StreamDelivery:
        meta = msg.metadata
        return StreamDelivery(
            consumer=self.decl.name,
            stream=meta.stream,
            stream_seq=meta.sequence.stream,
            delivered=delivered,
            last_attempt=delivered >= self.decl.max_deliver,
            sender=sender,
        )

    async def _record_denial(self, msg: Msg, event: DecodedEvent, sender: str | None, reason: str) -> None:
        """An organisation's event refused for its mandate: one audit record per stream message (the
        envelope id is the sender's choice: forged events may share one)."""
        envelope = event.envelope
        meta = msg.metadata
        key = denial_key(meta.stream, meta.sequence.stream)
        async with self._pool.acquire() as conn, conn.transaction():
            if await self._inbox.claim(conn, f"{self.decl.name}/denied", key, envelope.type):
                await audit_denial(
                    conn,
                    subject=msg.subject,
                    request_id=f"{meta.stream}:{meta.sequence.stream}",
                    sender=sender,
                    event_type=envelope.type,
                    target=envelope.subject,
                    reason=reason,
                )

    async def _retry(self, msg: Msg, code: str, reason: str, delay: float | None, delivered: int) -> str:
        if delivered >= self.decl.max_deliver:
            await self._dead_letter(
                msg, code, f"gave up after {delivered} deliveries; last error: {reason}", delivered
            )
            return "exhausted"
        wait = delay if delay is not None else self.backoff.delay(delivered)
        log.warning("event will be retried", code=code, reason=reason[:500], retry_in=round(wait, 2))
        await msg.nak(delay=wait)
        return "retry"

    async def _announce_refusal(self, event: DecodedEvent, outcome: EventData) -> None:
        """Commit the refusal's outcome event, once per refused event id (its own inbox key)."""
        envelope = event.envelope
        async with self._pool.acquire() as conn, conn.transaction():
            if await self._inbox.claim(conn, f"{self.decl.name}/refused", envelope.id, envelope.type):
                origin = StreamDelivery(consumer=self.decl.name)
                await EventContext(conn, event, self._outbox, origin, self._source).emit(outcome)

    async def _dead_letter(
        self,
        msg: Msg,
        code: str,
        reason: str,
        delivered: int,
        errors: list[dict[str, str]] | None = None,
        *,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Write the dead letter, run ``then`` (committing what must follow it), and terminate.

        A failure of either step naks the message: it comes back and both are tried again (the dead letter's
        id is derived from the stream sequence, so a second copy is de-duplicated by the DLQ stream).
        """
        meta = msg.metadata
        letter = DeadLetter.of(
            service=self.service,
            consumer=self.decl.name,
            stream=meta.stream,
            stream_seq=meta.sequence.stream,
            subject=msg.subject,
            data=msg.data,
            headers=dict(msg.headers or {}),
            reason_code=code,
            reason=reason,
            delivery_count=delivered,
            errors=errors,
        )
        try:
            await publish_dead_letter(self._jetstream(), letter)
            if then is not None:
                await then()
        except Exception as exc:
            # Nothing is lost: without a DLQ entry (or the refusal's outcome) the message comes back.
            log.exception("dead letter could not be completed; message will be redelivered", error=repr(exc))
            await msg.nak(delay=self.backoff.delay(delivered))
            return
        await msg.term()


class AdvisoryWatcher:
    """Dead-letters messages that hit ``max_deliver`` without the wrapper seeing the last failure."""

    def __init__(
        self, *, service: str, decls: list[ConsumerDecl], jetstream: Callable[[], JetStreamContext]
    ) -> None:
        self.service = service
        self.decls = {(d.stream, d.name): d for d in decls}
        self._jetstream = jetstream
        self._subs: list[Any] = []

    async def start(self, nc: Client) -> None:
        for stream, name in self.decls:
            subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{name}"
            self._subs.append(await nc.subscribe(subject, cb=self._on_advisory))

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    async def _on_advisory(self, msg: Msg) -> None:
        try:
            advisory = json.loads(msg.data)
            await self.handle(advisory)
        except Exception as exc:
            log.exception("max-deliveries advisory not handled", error=repr(exc), advisory=msg.data[:500])

    async def handle(self, advisory: dict[str, Any]) -> None:
        stream, consumer, seq = advisory["stream"], advisory["consumer"], int(advisory["stream_seq"])
        js = self._jetstream()
        original = await js.get_msg(stream, seq)
        letter = DeadLetter.of(
            service=self.service,
            consumer=consumer,
            stream=stream,
            stream_seq=seq,
            subject=original.subject or "",
            data=original.data or b"",
            headers=dict(original.headers or {}),
            reason_code="max_deliveries",
            reason=f"not acknowledged after {advisory.get('deliveries')} deliveries (server advisory)",
            delivery_count=int(advisory.get("deliveries", 0)),
        )
        await publish_dead_letter(js, letter)
