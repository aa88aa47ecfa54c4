"""Leader-only work: one replica of a service at a time runs it, and a survivor takes over.

The rule (docs/architecture.md, "Leader-only work"): work that must run on one replica at a time (the daily
ticks) runs while its replica holds a Postgres session advisory lock named after the service, on a
connection of its own. The lock ends with the session: a replica that dies (kill -9, a lost host) or whose
database fails over loses it at once, and another replica's next try (``poll_interval``) takes it. The
holder stops its work the moment the lock's connection closes (asyncpg's termination listener), and pings
the session every ``check_interval`` for the cases a closed socket does not show; a ping that fails or
takes longer than ``check_timeout`` cancels the work, so two replicas overlap by at most about
``check_interval + check_timeout`` (the work must therefore still be idempotent, which the ticks are: each
effect is recorded with its business key).

The outbox relay holds its own lock of the same kind (``messaging/outbox.py``); the notification
dispatcher's sends and its reconciliation need no leader: they claim rows with ``FOR UPDATE SKIP LOCKED``,
so every replica runs them and each row is taken by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Gauge

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    import asyncpg

log = structlog.get_logger(__name__)

LEADER = Gauge(
    "kumkm_leader", "1 while this replica holds the lock of its service's leader-only work", ["name"]
)


def lock_key(name: str) -> int:
    """The 64-bit advisory lock key of a leadership name (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(f"kumkm-leader:{name}".encode()).digest()[:8], "big", signed=True)


class Leadership:
    """Runs ``work`` on this replica only while it holds the advisory lock ``name`` (see module doc)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        *,
        poll_interval: float = 1.0,
        check_interval: float = 1.0,
        check_timeout: float = 2.0,
    ) -> None:
        self._pool = pool
        self.name = name
        self.poll_interval = poll_interval
        self.check_interval = check_interval
        self.check_timeout = check_timeout
        self.is_leader = False
        self.terms = 0  # how many times this replica became leader
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Until ``stop()`` or until ``work`` returns: wait for the lock, run ``work`` while it is held.

        ``work`` that raises is logged and started again after ``poll_interval`` (the lock is released
        meanwhile, so another replica may take over); a lost lock cancels it.
        """
        while not self._stopping.is_set():
            try:
                if await self._term(work):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database restart or failover, work that failed: try again
                log.warning("leader-only work interrupted", name=self.name, error=repr(exc))
            await self._sleep(self.poll_interval)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _term(self, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """One attempt: acquire, lead, give up. True when ``work`` finished by itself."""
        conn: Any = await self._pool.acquire()
        healthy, locked = True, False
        try:
            key = lock_key(self.name)
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                if self._stopping.is_set():
                    return False
                await self._sleep(self.poll_interval)
            locked = True
            self._became_leader()
            task = asyncio.create_task(work(), name=f"leader:{self.name}")
            try:
                healthy = await self._hold(conn, task)
            finally:
                self.is_leader = False
                LEADER.labels(self.name).set(0)
                if not task.done():
                    task.cancel()
                await asyncio.wait({task})
            if healthy:
                # Released before the connection goes back to the pool, whatever ``work`` did.
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
                locked = False
            if task.cancelled():
                return False
            failure = task.exception()
            if failure is not None:
                raise failure
            return not self._stopping.is_set()
        finally:
            if locked or not healthy:  # a session in doubt (lost, or still holding the lock): never reuse it
                conn.terminate()
            await self._pool.release(conn)

    def _became_leader(self) -> None:
        self.is_leader = True
        self.terms += 1
        LEADER.labels(self.name).set(1)
        log.info("leader-only work taken", name=self.name, term=self.terms)

    async def _hold(self, conn: Any, task: asyncio.Task[None]) -> bool:
        """While ``task`` runs, ping the lock's session; False when the session was lost (a ping fails, or
        the connection closes: noticed at once through asyncpg's termination listener)."""
        closed = asyncio.Event()

        def on_close(*_: object) -> None:
            closed.set()

        conn.add_termination_listener(on_close)
        try:
            return await self._watch(conn, task, closed)
        finally:
            with contextlib.suppress(Exception):
                conn.remove_termination_listener(on_close)

    async def _watch(self, conn: Any, task: asyncio.Task[None], closed: asyncio.Event) -> bool:
        lost = asyncio.ensure_future(closed.wait())
        try:
            while not task.done() and not self._stopping.is_set():
                done, _ = await asyncio.wait(
                    {task, lost}, timeout=self.check_interval, return_when="FIRST_COMPLETED"
                )
                if lost in done:
                    log.warning("leader lock's session closed; work stopped", name=self.name)
                    return False
                if task in done:
                    break
                if not await self._ping(conn):
                    return False
            return True
        finally:
            lost.cancel()

    async def _ping(self, conn: Any) -> bool:
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), self.check_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("leader lock's session lost; work stopped", name=self.name, error=repr(exc))
            return False
        return True
