"""The one consumer wrapper every service uses. It implements the error policy of DESIGN.md section 5.

- undecodable or invalid (``ContractError``), or an event type the consumer has no handler for:
  dead letter with the reason, then terminate; never retried;
- ``Refused`` from a handler: rolled back, dead letter with the handler's code, then the refusal's
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
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from prometheus_client import Counter, Histogram

from kumkm_shared.contracts import (
    ContractError,
    DecodedEvent,
    EventData,
    caused_by,
    decode_event,
    make_event,
)
from kumkm_shared.messaging.dlq import DeadLetter, publish_dead_letter
from kumkm_shared.messaging.errors import Refused, Retry
from kumkm_shared.messaging.tracing import child_traceparent, trace_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    import asyncpg
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from kumkm_shared.contracts import Envelope
    from kumkm_shared.db import Conn
    from kumkm_shared.messaging.inbox import Inbox
    from kumkm_shared.messaging.outbox import Outbox
    from kumkm_shared.messaging.topology import ConsumerDecl

log = structlog.get_logger(__name__)

HANDLED = Counter("kumkm_events_handled", "Events handled by outcome", ["consumer", "outcome"])
HANDLE_SECONDS = Histogram("kumkm_event_handle_seconds", "Time to handle one event", ["consumer"])


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.5
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.2

    def delay(self, delivery_count: int) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, delivery_count - 1))
        return raw * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 - jitter, not crypto


@dataclass
class EventContext:
    """What a handler gets: the event, the transaction's connection, and a way to emit follow-ups."""

    conn: Conn
    event: DecodedEvent
    outbox: Outbox
    source: str
    emitted: list[Envelope] = field(default_factory=list)
    last_attempt: bool = False  # this delivery is the last: a Retry now ends in the DLQ

    @property
    def envelope(self) -> Envelope:
        return self.event.envelope

    async def lock(self, key: str) -> None:
        """Serialise this transaction with every other one that locks ``key`` (until commit or rollback).

        Messages of one pull batch are handled concurrently; two events about one aggregate that are not
        ordered by a row lock (a repayment and the disbursement it may precede) must take this first.
        """
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)

    async def emit(self, data: EventData) -> Envelope:
        """Write a follow-up event to the outbox, in this transaction, caused by the current event."""
        envelope = make_event(
            data,
            source=self.source,
            **caused_by(self.envelope.id, self.envelope.correlationid),
            traceparent=child_traceparent(self.envelope.traceparent),
        )
        await self.outbox.add(self.conn, envelope)
        self.emitted.append(envelope)
        return envelope


class Handler(Protocol):
    def __call__(self, ctx: EventContext, /) -> Awaitable[None]: ...


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
    ) -> None:
        self.service = service
        self.decl = decl
        self.handlers = dict(handlers)
        self._pool = pool
        self._inbox = inbox
        self._outbox = outbox
        self._jetstream = jetstream
        self.backoff = backoff or Backoff()
        self._source = f"kumkm/{service}"

    async def process(self, msg: Msg) -> str:
        """Handle one message and settle it (ack, nack or term). Returns the outcome's name."""
        meta = msg.metadata
        delivered = meta.num_delivered or 1
        with structlog.contextvars.bound_contextvars(
            consumer=self.decl.name, stream_seq=meta.sequence.stream, delivered=delivered
        ):
            outcome = await self._process(msg, delivered)
        HANDLED.labels(self.decl.name, outcome).inc()
        return outcome

    async def _process(self, msg: Msg, delivered: int) -> str:
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
        if envelope.type != msg.subject:
            await self._dead_letter(
                msg,
                "subject_mismatch",
                f"type {envelope.type!r} published on subject {msg.subject!r}",
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
        with structlog.contextvars.bound_contextvars(
            event_id=str(envelope.id),
            event_type=envelope.type,
            correlationid=envelope.correlationid,
            trace_id=trace_id(envelope.traceparent),
        ):
            return await self._apply(msg, event, handler, delivered)

    async def _apply(self, msg: Msg, event: DecodedEvent, handler: Handler, delivered: int) -> str:
        envelope = event.envelope
        try:
            with HANDLE_SECONDS.labels(self.decl.name).time():
                async with self._pool.acquire() as conn, conn.transaction():
                    if not await self._inbox.claim(conn, self.decl.name, envelope.id, envelope.type):
                        outcome = "duplicate"
                    else:
                        ctx = EventContext(
                            conn,
                            event,
                            self._outbox,
                            source=self._source,
                            last_attempt=delivered >= self.decl.max_deliver,
                        )
                        await handler(ctx)
                        outcome = "applied"
        except Refused as exc:
            announce = None
            if exc.outcome is not None:
                announce = functools.partial(self._announce_refusal, event, exc.outcome)
            await self._dead_letter(msg, exc.code, exc.reason, delivered, then=announce)
            return "refused"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            code, reason, delay = "handler_error", f"{type(exc).__name__}: {exc}", None
            if isinstance(exc, Retry):
                code, reason, delay = exc.code, exc.reason, exc.delay
            if delivered >= self.decl.max_deliver:
                await self._dead_letter(
                    msg, code, f"gave up after {delivered} deliveries; last error: {reason}", delivered
                )
                return "exhausted"
            wait = delay if delay is not None else self.backoff.delay(delivered)
            log.warning("event will be retried", code=code, reason=reason[:500], retry_in=round(wait, 2))
            await msg.nak(delay=wait)
            return "retry"
        await msg.ack()
        return outcome

    async def _announce_refusal(self, event: DecodedEvent, outcome: EventData) -> None:
        """Commit the refusal's outcome event, once per refused event id (its own inbox key)."""
        envelope = event.envelope
        async with self._pool.acquire() as conn, conn.transaction():
            if await self._inbox.claim(conn, f"{self.decl.name}/refused", envelope.id, envelope.type):
                await EventContext(conn, event, self._outbox, source=self._source).emit(outcome)

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
