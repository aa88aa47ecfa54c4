"""The pull loop of a batch durable: wait for the first message, take what is there, apply it as one batch.

FastStream's batch subscriber keeps fetching until the batch is full or its timeout ends, so at a low rate
every message waits the whole timeout: a latency per hop that a batch of one does not need. This loop asks
for one message with a long wait (returns the moment one is there), then for the rest of a batch with a
short one (``fill_wait``): under load the second fetch comes back full at once, and when idle nothing spins.
Rules: ``docs/rules/messaging.md``, section "Batch durables".
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import nats.errors
import structlog

from kumkm_shared.backoff import Backoff

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from kumkm_shared.messaging.topology import ConsumerDecl

log = structlog.get_logger(__name__)


class BatchPuller:
    """Pulls ``decl``'s durable (bound, never created) and hands each batch to ``apply``, one at a time."""

    def __init__(
        self,
        *,
        decl: ConsumerDecl,
        jetstream: Callable[[], JetStreamContext],
        apply: Callable[[Sequence[Msg]], Awaitable[object]],
        size: int,
        fill_wait: float,
        idle_wait: float = 5.0,
        inbox_prefix: bytes | None = None,
    ) -> None:
        self.decl = decl
        self._jetstream = jetstream
        self._apply = apply
        self.size = max(1, min(size, decl.max_ack_pending))
        self.fill_wait = fill_wait
        self.idle_wait = idle_wait
        self._inbox_prefix = inbox_prefix
        self._stopping = asyncio.Event()
        self._applying = False
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(base=0.2, cap=2.0)
        self._failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"pull-{self.decl.name}")

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - a deadline for the batch in hand
        """Stop pulling; a batch being applied finishes (within ``timeout``), a pull waiting is cancelled."""
        self._stopping.set()
        task = self._task
        if task is None:
            return
        if not self._applying:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout)
        self._task = None

    async def run(self) -> None:
        """Pull until ``stop``. A failed subscribe or fetch is retried after a pause that grows with the
        failures in a row (up to 2 s), with a fresh subscription: while a cluster elects a new leader for the
        durable (a few seconds after a node dies), fetches fail at once with 503 "no responders" or time
        out; the first fetch that succeeds resets the count. One warning per interruption, one line when
        pulling resumes; the failures in between are logged at debug."""
        self._failures = 0
        while not self._stopping.is_set():
            try:
                sub = await self._subscribe()
                await self._pull(sub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken connection, no stream leader: try again after a pause
                self._failures += 1
                say = log.warning if self._failures == 1 else log.debug
                say("pull loop interrupted", consumer=self.decl.name, error=repr(exc)[:300])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._backoff.delay(self._failures))

    def _pulled(self) -> None:
        """A fetch came back (with messages or empty): the durable answers again."""
        if self._failures:
            log.info("pull loop resumed", consumer=self.decl.name, failures=self._failures)
            self._failures = 0

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        js = self._jetstream()
        if self._inbox_prefix is None:
            return await js.pull_subscribe_bind(durable=self.decl.name, stream=self.decl.stream)
        return await js.pull_subscribe_bind(
            durable=self.decl.name, stream=self.decl.stream, inbox_prefix=self._inbox_prefix
        )

    async def _pull(self, sub: JetStreamContext.PullSubscription) -> None:
        try:
            while not self._stopping.is_set():
                msgs = await self._fetch(sub, 1, self.idle_wait)
                self._pulled()
                if not msgs:
                    continue
                if self.size > 1:
                    msgs += await self._fetch(sub, self.size - 1, self.fill_wait)
                self._applying = True
                try:
                    await self._apply(msgs)
                finally:
                    self._applying = False
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    @staticmethod
    async def _fetch(sub: JetStreamContext.PullSubscription, batch: int, wait: float) -> list[Msg]:
        """Up to ``batch`` messages within ``wait``; none is not an error (an idle durable is quiet).

        nats-py ends an empty pull with its own timeout error or, when the server's 408 is read first, the
        builtin one (``tests/integration/messaging/test_idle_logging.py``): both are "nothing yet".
        """
        try:
            return await sub.fetch(batch, timeout=wait)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
