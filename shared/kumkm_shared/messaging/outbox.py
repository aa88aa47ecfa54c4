"""Transactional outbox: the writer used inside a service's own transaction, and the relay.

The relay is the only publisher of domain events. It wakes on LISTEN/NOTIFY, polls as a fallback,
claims rows with ``FOR UPDATE SKIP LOCKED``, publishes a window of them with ``publish_async`` and
``Nats-Msg-Id`` set to the event id, and marks rows published only after their PubAck. A crash between
the publish and the mark is absorbed by the stream's duplicate window. One relay per schema is active
at a time (a session advisory lock), so each aggregate's events reach the stream in commit order even
with several replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Gauge

from kumkm_shared import failpoints
from kumkm_shared.db.migrations import check_schema_name

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import asyncpg
    from nats.js import JetStreamContext, api

    from kumkm_shared.contracts import Envelope
    from kumkm_shared.db import Conn

log = structlog.get_logger(__name__)

OUTBOX_PUBLISHED = Counter("kumkm_outbox_published", "Events published by the outbox relay", ["schema"])
OUTBOX_LAG = Gauge("kumkm_outbox_pending", "Unpublished outbox rows at the last relay pass", ["schema"])
RELAY_LEADER = Gauge(
    "kumkm_outbox_relay_leader", "1 while this replica's relay holds its schema's lock", ["schema"]
)


def nats_headers(envelope: Envelope) -> dict[str, str]:
    headers = {"Nats-Msg-Id": str(envelope.id), "ce-type": envelope.type}
    if envelope.traceparent:
        headers["traceparent"] = envelope.traceparent
    if envelope.correlationid:
        headers["ce-correlationid"] = envelope.correlationid
    return headers


@dataclass(frozen=True, slots=True)
class Outbox:
    """The writer. ``add`` must be called inside the transaction that changes the service's state."""

    schema: str

    @property
    def channel(self) -> str:
        return f"{self.schema}_outbox"

    async def add(self, conn: Conn, envelope: Envelope) -> None:
        await self.add_many(conn, [envelope])

    async def add_many(self, conn: Conn, envelopes: Sequence[Envelope]) -> None:
        """Insert the rows and wake the relay in one statement (one round trip, whatever the count).

        The notification is delivered at commit, and only if the transaction commits; Postgres folds
        identical notifications of one transaction into one.
        """
        if not envelopes:
            return
        await conn.execute(
            f"INSERT INTO {self.schema}.outbox (event_id, subject, aggregate_id, payload, headers) "
            "SELECT u.event_id, u.subject, u.aggregate_id, u.payload, u.headers "
            "FROM pg_notify($6, ''), "
            "unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[]) "
            "WITH ORDINALITY AS u(event_id, subject, aggregate_id, payload, headers, n) ORDER BY u.n",
            [e.id for e in envelopes],
            [e.type for e in envelopes],
            [e.subject for e in envelopes],
            [e.to_json_bytes() for e in envelopes],
            [nats_headers(e) for e in envelopes],
            self.channel,
        )


class LeadershipLostError(RuntimeError):
    """The relay's leader lock went with its connection; it tries to lead again."""


def _leader_key(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(f"kumkm-outbox:{schema}".encode()).digest()[:8], "big", signed=True)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        jetstream: Callable[[], JetStreamContext],
        schema: str,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        publish_timeout: float = 10.0,
        retention_seconds: float = 7 * 86400.0,
        cleanup_interval: float = 600.0,
    ) -> None:
        self._pool = pool
        self._jetstream = jetstream
        self.schema = check_schema_name(schema)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.publish_timeout = publish_timeout
        self.retention_seconds = retention_seconds
        self.cleanup_interval = cleanup_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.is_leader = False
        # While leading: the connection whose session holds the leader lock.
        self._listener: Any = None

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Relay until ``stop()``; survives database and broker outages by retrying."""
        while not self._stopping.is_set():
            try:
                await self._run_as_leader()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database restart, broker outage: retry after a pause
                log.warning("outbox relay interrupted", schema=self.schema, error=repr(exc))
                self.is_leader = False
                await self._sleep(self.poll_interval)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run_as_leader(self) -> None:
        async with self._pool.acquire() as listener:
            while not await listener.fetchval("SELECT pg_try_advisory_lock($1)", _leader_key(self.schema)):
                if self._stopping.is_set():
                    return
                await self._sleep(self.poll_interval)
            self.is_leader = True
            RELAY_LEADER.labels(self.schema).set(1)
            await listener.add_listener(f"{self.schema}_outbox", self._on_notify)
            self._listener = listener
            listener.add_termination_listener(self._on_lock_lost)
            try:
                last_cleanup = 0.0
                while not self._stopping.is_set():
                    self._check_leadership()
                    self._wake.clear()
                    published = await self.publish_batch()
                    if time.monotonic() - last_cleanup > self.cleanup_interval:
                        await self.cleanup()
                        last_cleanup = time.monotonic()
                    if published < self.batch_size:
                        try:
                            await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                        except TimeoutError:
                            # Idle: make sure the lock's session is still ours (a lost session lets
                            # another replica relay; this one must stop before its next pass).
                            await asyncio.wait_for(listener.fetchval("SELECT 1"), self.publish_timeout)
                # Flush what is committed before stopping, so a clean shutdown leaves nothing behind.
                while await self.publish_batch() == self.batch_size:
                    pass
            finally:
                self.is_leader = False
                RELAY_LEADER.labels(self.schema).set(0)
                with contextlib.suppress(Exception):
                    listener.remove_termination_listener(self._on_lock_lost)
                    await listener.remove_listener(f"{self.schema}_outbox", self._on_notify)
                    await listener.execute("SELECT pg_advisory_unlock($1)", _leader_key(self.schema))
                self._listener = None

    def _on_lock_lost(self, *_: Any) -> None:
        """The connection holding the lock closed: not the leader from this moment (see below)."""
        self.is_leader = False
        RELAY_LEADER.labels(self.schema).set(0)
        self._wake.set()

    def _check_leadership(self) -> None:
        """Stop leading once the session holding the lock is gone (its primary died, a failover): the
        lock went with it, another relay may hold it now, and two publishers would break commit order.
        The pool's other connections may already reach the new primary, so this must be checked."""
        if self._listener is not None and self._listener.is_closed():
            self.is_leader = False
            raise LeadershipLostError(
                f"outbox relay {self.schema}: the connection holding the leader lock closed"
            )

    async def publish_batch(self) -> int:
        """Publish one window of unpublished rows; return how many were marked published."""
        js = self._jetstream()
        async with self._pool.acquire() as conn, conn.transaction():
            rows: Sequence[asyncpg.Record] = await conn.fetch(
                f"SELECT id, subject, payload, headers FROM {self.schema}.outbox "
                "WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch_size,
            )
            if not rows:
                OUTBOX_LAG.labels(self.schema).set(0)
                return 0
            self._check_leadership()
            acks = await self._publish_all(js, rows)
            # Mark only the prefix that was acknowledged, so the next pass retries from the first
            # failure in order; rows after it that did land are de-duplicated by Nats-Msg-Id.
            ok_ids: list[int] = []
            seqs: list[int] = []
            failure: BaseException | None = None
            for row, ack in zip(rows, acks, strict=True):
                if isinstance(ack, BaseException):
                    failure = ack
                    break
                ok_ids.append(row["id"])
                seqs.append(ack.seq)
            if ok_ids:
                failpoints.hit(failpoints.RELAY_BEFORE_MARK)
                await conn.execute(
                    f"UPDATE {self.schema}.outbox AS o SET published_at = now(), stream_seq = u.seq "
                    "FROM unnest($1::bigint[], $2::bigint[]) AS u(id, seq) WHERE o.id = u.id",
                    ok_ids,
                    seqs,
                )
            OUTBOX_PUBLISHED.labels(self.schema).inc(len(ok_ids))
        if failure is not None:
            done = f"{len(ok_ids)} of {len(rows)}"
            raise RuntimeError(f"outbox publish failed after {done}: {failure!r}") from failure
        return len(ok_ids)

    async def _publish_all(
        self, js: JetStreamContext, rows: Sequence[asyncpg.Record]
    ) -> list[api.PubAck | BaseException]:
        """Every row's PubAck or the error in its place, within ``publish_timeout``, in row order.

        Both waits are bounded: the PubAck's (a stream leader lost in a cluster never answers, and nats-py
        puts no deadline on a ``publish_async`` future) and the wait for a free slot in the publish window
        (``wait_stall``: a window full of unanswered publishes frees nothing). A publish that could not be
        sent is an error in its row's place, as are the rows after it; a future left unawaited is cancelled,
        which gives its window slot back.
        """
        futures: list[asyncio.Future[api.PubAck]] = []
        failure: BaseException | None = None
        for row in rows:
            try:
                futures.append(
                    await js.publish_async(
                        row["subject"],
                        bytes(row["payload"]),
                        headers=dict(row["headers"]),
                        wait_stall=self.publish_timeout,
                    )
                )
            except Exception as exc:  # window stalled, connection closed
                failure = exc
                break
        acks: list[api.PubAck | BaseException] = list(
            await asyncio.gather(
                *(asyncio.wait_for(f, self.publish_timeout) for f in futures), return_exceptions=True
            )
        )
        if failure is not None:
            acks += [failure] * (len(rows) - len(futures))
        return acks

    async def cleanup(self) -> int:
        result: str = await self._pool.execute(
            f"DELETE FROM {self.schema}.outbox WHERE published_at < now() - make_interval(secs => $1)",
            self.retention_seconds,
        )
        deleted = int(result.rsplit(maxsplit=1)[-1])
        if deleted:
            log.info("outbox cleaned", schema=self.schema, deleted=deleted)
        return deleted

    async def pending(self) -> int:
        count: int = await self._pool.fetchval(
            f"SELECT count(*) FROM {self.schema}.outbox WHERE published_at IS NULL"
        )
        return count
