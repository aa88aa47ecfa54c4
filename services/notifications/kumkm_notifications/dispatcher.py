"""The delivery worker: sends due deliveries, records every attempt, retries, and reconciles orphans.

Per delivery:
1. claim (``FOR UPDATE SKIP LOCKED``): status 'sending', attempt row written, lease set, COMMIT (one
   statement for the whole batch claimed);
2. send through the channel;
3. record the outcome and, when final, emit ``notification.delivered`` or ``notification.failed`` to the
   outbox, in one transaction (group commit: outcomes that finish together share it, two statements).
   A receipt's provider response has every address in it masked (``domain.privacy.scrub``).

A process that dies between 2 and 3 leaves the row in 'sending'. When its lease runs out, ``reconcile``
repeats the send only on channels whose receiver de-duplicates on the delivery id (webhooks, and the
gateway when configured so); other rows become 'unknown' for an operator to resolve. Rules:
``docs/rules/notifications.md``, section "Delivery and retries".

Each transaction is a command of the system the runtime opens (``begin``). Times: the receipts'
``delivered_at`` and ``failed_at`` come from the injected ``Clock``. Leases, retry times and the attempts'
timestamps are the database's (``clock_timestamp()`` in ``repository``): a lease is written and checked
against the same clock, whichever replica checks it, and a settable clock in tests must not stall it.
The worker's own intervals (time between reconciles, the time of one send) are monotonic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import TYPE_CHECKING

import structlog
from prometheus_client import Counter, Histogram

from kumkm_notifications import repository as repo
from kumkm_notifications.channels import OutgoingMessage
from kumkm_notifications.channels.email import EmailSender
from kumkm_notifications.channels.gateway import GatewaySender
from kumkm_notifications.channels.webhook import WebhookSender
from kumkm_notifications.domain.delivery import Outcome, RetryPolicy, Status, after_lost_outcome
from kumkm_notifications.domain.privacy import scrub
from kumkm_shared import SYSTEM, Backoff, failpoints
from kumkm_shared.contracts import Channel, NotificationDelivered, NotificationFailed, caused_by

if TYPE_CHECKING:
    from uuid import UUID

    from kumkm_notifications.channels import Sender
    from kumkm_notifications.settings import NotificationsSettings
    from kumkm_shared import Begin, Clock, ServiceRuntime
    from kumkm_shared.contracts import EventData
    from kumkm_shared.contracts.envelope import Causation


log = structlog.get_logger(__name__)

ATTEMPTS = Counter(
    "kumkm_notification_attempts", "Send attempts by channel and verdict", ["channel", "verdict"]
)
SEND_SECONDS = Histogram("kumkm_notification_send_seconds", "Time of one send attempt", ["channel"])
RECORD_BATCH = 200  # outcomes per recording transaction
RECORD_TRIES = 3
RESPONSE_LIMIT = 4000  # characters of a provider's response in a receipt

RECONCILED = Counter(
    "kumkm_notification_reconciled", "Orphaned sends settled after a crash", ["channel", "status"]
)


def _public(response: str) -> str | None:
    """A provider's response as a receipt carries it: addresses masked, within the contract's length."""
    return (scrub(response[:RESPONSE_LIMIT]) or "")[:RESPONSE_LIMIT] or None


class Dispatcher:
    def __init__(self, settings: NotificationsSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            backoff=Backoff(
                base=settings.backoff_base, cap=settings.backoff_cap, jitter=settings.backoff_jitter
            ),
        )
        self.senders: dict[Channel, Sender] = {}
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._outcomes: asyncio.Queue[tuple[repo.Claimed, Outcome, asyncio.Future[None]]] = asyncio.Queue()

    def default_senders(self) -> dict[Channel, Sender]:
        gateway = GatewaySender(self.settings)
        return {
            Channel.EMAIL: EmailSender(self.settings),
            Channel.WEBHOOK: WebhookSender(self.settings.webhook_timeout),
            Channel.SMS: gateway,
            Channel.WHATSAPP: gateway,
        }

    def wake(self, *_: object) -> None:
        self._wake.set()

    # -- the worker loop ------------------------------------------------------------------------------
    async def run(self, runtime: ServiceRuntime) -> None:
        """The ``workers`` entry of the service: runs until cancelled, then lets sends in flight finish."""
        for channel, sender in self.default_senders().items():
            self.senders.setdefault(channel, sender)
        begin: Begin = functools.partial(runtime.command, SYSTEM)
        pool = runtime.pool
        listener = await pool.acquire()  # a connection of its own, for LISTEN
        await listener.add_listener(repo.WAKE_CHANNEL, self.wake)
        recorder = asyncio.create_task(self._recorder(begin), name="notifications-recorder")
        try:
            await self.reconcile(begin)
            last_reconcile = time.monotonic()
            while True:
                if listener.is_closed():
                    # Died with its server (a failover): wake-ups would no longer arrive. The worker is
                    # restarted and listens again on a connection to the node that accepts writes.
                    raise ConnectionError("the dispatcher's LISTEN connection closed")
                self._wake.clear()
                claimed = await self.dispatch_once(begin)
                if time.monotonic() - last_reconcile > min(self.settings.send_lease / 2, 30.0):
                    await self.reconcile(begin)
                    last_reconcile = time.monotonic()
                if claimed == 0 or len(self._inflight) >= self.settings.worker_concurrency:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_interval)
        finally:
            await self._drain(runtime.infra.drain_timeout)  # the recorder still records their outcomes
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            with contextlib.suppress(Exception):
                await listener.remove_listener(repo.WAKE_CHANNEL, self.wake)
            await pool.release(listener)
            for sender in {id(s): s for s in self.senders.values()}.values():
                with contextlib.suppress(Exception):
                    await sender.close()
            self.senders.clear()

    async def _drain(self, timeout: float) -> None:  # noqa: ASYNC109 - a deadline for tasks in flight
        if not self._inflight:
            return
        _, still_running = await asyncio.wait(self._inflight, timeout=timeout)
        for task in still_running:  # left in 'sending': reconciled after the lease, like a crash
            task.cancel()
        self._inflight.clear()

    async def dispatch_once(self, begin: Begin) -> int:
        free = self.settings.worker_concurrency - len(self._inflight)
        if free <= 0:
            return 0
        async with begin() as work:  # one statement, committed before any send starts
            claimed = await repo.claim_due(
                work.conn, min(free, self.settings.worker_batch), self.settings.send_lease
            )
        for item in claimed:
            task = asyncio.create_task(self._deliver(item), name=f"notify-{item.id}")
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", error=scrub(repr(task.exception())))

    async def _deliver(self, item: repo.Claimed) -> None:
        sender = self.senders.get(item.channel)
        started = time.monotonic()
        if sender is None:
            outcome = Outcome.permanent("channel_unavailable", f"no sender for channel {item.channel}")
        else:
            message = OutgoingMessage(
                id=item.id,
                channel=item.channel,
                party_id=item.party_id,
                name=item.name,
                address=item.address,
                event_type=item.event_type,
                subject=item.subject,
                text=item.body_text,
                html=item.body_html,
                payload=item.payload,
                attempt=item.attempt,
                secret=item.secret,
            )
            try:
                outcome = await sender.send(message)
            except asyncio.CancelledError:
                raise  # a dying process records nothing; reconcile settles the row later
            except Exception as exc:  # a bug in a channel must not lose the delivery
                outcome = Outcome.transient("channel_error", f"{type(exc).__name__}: {exc}")
        failpoints.hit(failpoints.DISPATCHER_AFTER_SEND)
        SEND_SECONDS.labels(item.channel.value).observe(time.monotonic() - started)
        ATTEMPTS.labels(item.channel.value, outcome.verdict.value).inc()
        await self.record(item, outcome)

    async def record(self, item: repo.Claimed, outcome: Outcome) -> None:
        """Hand the outcome to the recorder and wait until it is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._outcomes.put((item, outcome, done))
        await done

    async def _recorder(self, begin: Begin) -> None:
        """Group commit: outcomes that finish together are recorded in one transaction."""
        while True:
            batch = [await self._outcomes.get()]
            while len(batch) < RECORD_BATCH and not self._outcomes.empty():
                batch.append(self._outcomes.get_nowait())
            for attempt in range(1, RECORD_TRIES + 1):
                try:
                    await self._record_batch(begin, [(item, outcome) for item, outcome, _ in batch])
                    break
                except Exception as exc:
                    if attempt == RECORD_TRIES:  # the rows stay 'sending' and are reconciled after the lease
                        for _, _, done in batch:
                            done.set_exception(exc)
                        batch = []
                        break
                    log.warning("recording outcomes failed; trying again", error=scrub(repr(exc)))
                    await asyncio.sleep(0.5 * attempt)
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _record_batch(self, begin: Begin, batch: list[tuple[repo.Claimed, Outcome]]) -> None:
        notes: list[tuple[repo.Claimed, Outcome, Status, float | None, str | None]] = []
        finished: list[repo.Finished] = []
        for item, outcome in batch:
            status, wait, reason_code = self.policy.next_step(outcome, item.attempt)
            notes.append((item, outcome, status, wait, reason_code))
            finished.append(
                repo.Finished(
                    delivery_id=item.id,
                    attempt=item.attempt,
                    status=status,
                    outcome=outcome.verdict.value,
                    code=outcome.code,
                    response=outcome.response,
                    retry_in=wait,
                )
            )
        # Two statements per batch, whatever its size: the outcomes, then the receipts for the outbox.
        # Each receipt is caused by the event its notification is about.
        async with begin() as work:
            recorded = await repo.finish_attempts(work.conn, finished)
            receipts: list[EventData] = []
            causes: list[Causation] = []
            for item, outcome, status, _, reason_code in notes:
                if item.id not in recorded or status not in {Status.DELIVERED, Status.FAILED}:
                    continue
                receipts.append(
                    self._delivered(item, outcome)
                    if status is Status.DELIVERED
                    else self._failed(item, outcome, reason_code or outcome.code)
                )
                causes.append(caused_by(item.event_id, item.correlation_id))
            await work.emit_many(receipts, causes=causes)
        self._log_outcomes(notes, recorded)

    @staticmethod
    def _log_outcomes(
        notes: list[tuple[repo.Claimed, Outcome, Status, float | None, str | None]], recorded: set[UUID]
    ) -> None:
        for item, outcome, status, wait, reason_code in notes:
            if item.id not in recorded:
                log.warning("attempt outcome arrived after reconciliation", delivery=str(item.id))
            elif status is Status.PENDING:
                log.info(
                    "delivery will be retried",
                    delivery=str(item.id),
                    code=outcome.code,
                    retry_in=round(wait or 0, 2),
                )
            elif status is Status.FAILED:
                log.warning(
                    "delivery failed",
                    delivery=str(item.id),
                    code=reason_code,
                    response=scrub(outcome.response[:200]),
                )

    def _delivered(self, item: repo.Claimed, outcome: Outcome) -> NotificationDelivered:
        return NotificationDelivered(
            notification_id=str(item.id),
            event_id=item.event_id,
            source_event_type=item.event_type,
            party_id=item.party_id,
            channel=item.channel,
            category=item.category,
            attempts=item.attempt,
            delivered_at=self.clock.now(),
            provider_response=_public(outcome.response),
        )

    def _failed(self, item: repo.Claimed, outcome: Outcome, reason_code: str) -> NotificationFailed:
        exhausted = reason_code == "retries_exhausted"
        reason = (
            f"gave up after {item.attempt} attempts; last: {outcome.code}"
            if exhausted
            else f"permanent failure on attempt {item.attempt}: {outcome.code}"
        )
        return NotificationFailed(
            notification_id=str(item.id),
            event_id=item.event_id,
            source_event_type=item.event_type,
            party_id=item.party_id,
            channel=item.channel,
            category=item.category,
            attempts=item.attempt,
            failed_at=self.clock.now(),
            reason_code=reason_code,
            reason=reason,
            provider_response=_public(outcome.response),
        )

    # -- after a crash ----------------------------------------------------------------------------------
    async def reconcile(self, begin: Begin) -> int:
        """Settle deliveries whose sender died mid-send (lease expired). Never resends blindly."""
        settled = 0
        async with begin() as work:
            conn = work.conn
            for orphan in await repo.claim_orphans(conn):
                status = after_lost_outcome(
                    orphan.channel, gateway_idempotent=self.settings.gateway_idempotent
                )
                note = (
                    "the sender stopped before recording the outcome; sent again (the receiver de-duplicates)"
                    if status is Status.PENDING
                    else "the sender stopped before recording the outcome; it may or may not have been sent. "
                    "Not resent automatically: POST /notifications/{id}/resend after checking."
                )
                await repo.settle_orphan(conn, orphan, status, note)
                RECONCILED.labels(orphan.channel.value, status.value).inc()
                log.warning(
                    "orphaned send reconciled", delivery=str(orphan.id), channel=orphan.channel, status=status
                )
                settled += 1
        if settled:
            self._wake.set()
        return settled
