"""The service skeleton: one runtime wires the database, broker, consumers, outbox relay and HTTP.

A service describes itself with a ``ServiceDefinition``; ``ServiceRuntime`` does the rest, the same way
for all three services.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from faststream import AckPolicy
from faststream.nats import JStream, PullSub
from faststream.nats.annotations import NatsMessage  # noqa: TC002 - FastStream injects by annotation
from faststream.nats.prometheus import NatsPrometheusMiddleware
from faststream.specification import AsyncAPI
from nats.js import api as nats_api
from prometheus_client import REGISTRY

from kumkm_shared.audit import store as audit_store
from kumkm_shared.auth.verify import ClaimNames, TokenVerifier
from kumkm_shared.contracts import make_event, validate_event_payload
from kumkm_shared.db.leader import Leadership
from kumkm_shared.db.migrations import load_migrations, migrate
from kumkm_shared.db.pool import create_pool
from kumkm_shared.db.transient import is_transient_db_error
from kumkm_shared.integrators import roles_for
from kumkm_shared.mandates import MandateBook
from kumkm_shared.messaging.broker import make_broker
from kumkm_shared.messaging.consumer import (
    AdvisoryWatcher,
    CommandContext,
    EventContext,
    EventProcessor,
    Handler,
)
from kumkm_shared.messaging.inbox import Inbox
from kumkm_shared.messaging.outbox import Outbox, OutboxRelay
from kumkm_shared.messaging.puller import BatchPuller
from kumkm_shared.messaging.topology import ConsumerDecl, with_senders
from kumkm_shared.messaging.topology import consumer as declared_consumer
from kumkm_shared.messaging.tracing import new_traceparent
from kumkm_shared.origin import SYSTEM, Actor, Command
from kumkm_shared.service.http import create_http_app
from kumkm_shared.service.logging import configure_logging
from kumkm_shared.service.signin import SignInMiddleware

# A batch durable's handler gets the pull batch (FastStream injects the context's message by annotation).

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence

    import asyncpg
    from fastapi import APIRouter, FastAPI
    from faststream.message import StreamMessage
    from faststream.nats import NatsBroker
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from kumkm_shared.contracts import Envelope, EventData
    from kumkm_shared.db import Conn
    from kumkm_shared.service.settings import InfraSettings

log = structlog.get_logger(__name__)

PLATFORM_MIGRATIONS = Path(__file__).parent.parent / "db" / "platform_migrations"


@dataclass
class ServiceDefinition:
    name: str  # also the Postgres schema and the DLQ subject suffix
    title: str
    description: str
    migrations: Path
    consumers: Mapping[str, Mapping[str, Handler]]  # durable name -> event type -> handler
    # A module-level router: routes get the runtime and the service by Depends (``service.deps``).
    routes: APIRouter | None = None
    service: Any = None  # the service object (``<Context>Service``), ``deps.service_of`` in routes
    workers: Sequence[Callable[[ServiceRuntime], Awaitable[None]]] = ()
    # Workers that run on one replica at a time, the leader (``db/leader.py``): the daily ticks.
    leader_workers: Sequence[Callable[[ServiceRuntime], Awaitable[None]]] = ()
    publishes: Sequence[type[EventData]] = ()
    # Overrides of the declared durables, by name (tests use short max_deliver and ack_wait).
    consumer_decls: Mapping[str, ConsumerDecl] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # service-owned objects (settings, clients)
    # permission -> the roles that grant it; every route declares one (``deps.Require``). The service keeps
    # its table in ``domain/permissions.py``.
    permissions: Mapping[str, frozenset[str]] = field(default_factory=dict)


async def _keep_raw(message: StreamMessage[Any]) -> bytes:
    # The consumer wrapper decodes and validates the envelope itself; FastStream's own JSON decoding of
    # every body would be wasted work on the hot path.
    return message.body


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime stops HTTP, consumers and relay in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _routes_of(routes: Sequence[Any], inherited: list[Any]) -> Iterator[tuple[Any, list[Any]]]:
    """Every route of a router, through the routers it includes, with the dependencies those add."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            extra = list(getattr(context, "dependencies", None) or [])
            yield from _routes_of(included.routes, [*inherited, *extra])
        else:
            yield route, inherited


class ServiceRuntime:
    def __init__(self, definition: ServiceDefinition, infra: InfraSettings) -> None:
        self.definition = definition
        self.infra = infra
        self.name = definition.name
        self.outbox = Outbox(definition.name)
        self.inbox = Inbox(definition.name)
        self.broker: NatsBroker = self._make_broker()
        # The AsyncAPI document's broker: every durable and every published type, never connected. The
        # running broker carries only the per-message durables; batch durables have their own pull loop
        # (``BatchPuller``), so they are documented here and pulled there.
        self._spec_broker: NatsBroker = self._make_broker()
        self.pullers: dict[str, BatchPuller] = {}
        # A permissions violation is a configuration error the server only reports asynchronously (a
        # refused inbox subscription looks like silence): once seen, the service is not ready.
        self.permission_errors: list[str] = []
        self._pool: asyncpg.Pool | None = None
        self._js: JetStreamContext | None = None
        self.processors: dict[str, EventProcessor] = {}
        self.relay: OutboxRelay | None = None
        self.leadership: Leadership | None = None
        self.mandates: MandateBook | None = None  # integrators' mandates, once connected
        self._advisories: AdvisoryWatcher | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._bind_subscribers()
        self.http: FastAPI = create_http_app(
            title=definition.title,
            description=definition.description,
            readiness=self.readiness,
            max_body_bytes=infra.http_max_body_bytes,
        )
        self.http.state.runtime = self
        self._verifier: TokenVerifier | None = None
        self.permissions = self._routes()
        self.http.add_middleware(SignInMiddleware, runtime=self)

    def _make_broker(self) -> NatsBroker:
        infra = self.infra
        return make_broker(
            infra.nats_servers(),
            name=f"kumkm-{self.name}",
            user=infra.nats_user,
            password=infra.nats_password.get_secret_value() if infra.nats_password else None,
            inbox_prefix=infra.nats_inbox_prefix,
            creds=infra.nats_creds,
            middlewares=(NatsPrometheusMiddleware(registry=REGISTRY, app_name=f"kumkm-{self.name}"),),
            on_error=self._on_nats_error,
        )

    def _routes(self) -> dict[str, frozenset[str]]:
        """Include the service's router and the audit trail's; every route must declare a known permission."""
        from kumkm_shared.audit import api as audit_api
        from kumkm_shared.service import dlq_api
        from kumkm_shared.service.deps import permission_of

        permissions = {**self.definition.permissions}
        platform = {**audit_api.PERMISSIONS, **dlq_api.PERMISSIONS}
        clash = set(permissions) & set(platform)
        if clash:
            raise ValueError(f"{self.name}: permissions {sorted(clash)} belong to the platform")
        permissions.update(platform)
        for router in (self.definition.routes, audit_api.router, dlq_api.router):
            if router is None:
                continue
            for route, inherited in _routes_of(router.routes, []):
                dependencies = [*inherited, *getattr(route, "dependencies", [])]
                declared = [p for d in dependencies if (p := permission_of(d))]
                label = f"{sorted(getattr(route, 'methods', None) or [])} {getattr(route, 'path', route)}"
                if len(declared) != 1:
                    msg = f"{self.name}: route {label} must declare exactly one permission (Require)"
                    raise ValueError(msg)
                if declared[0] not in permissions:
                    msg = f"{self.name}: route {label} needs {declared[0]!r}, not in the permissions table"
                    raise ValueError(msg)
            self.http.include_router(router)
        return permissions

    @property
    def verifier(self) -> TokenVerifier:
        if self._verifier is None:
            self._verifier = self._make_verifier()
        return self._verifier

    def _make_verifier(self) -> TokenVerifier:
        infra = self.infra
        if not infra.auth_issuer:
            raise RuntimeError(
                "KUMKM_AUTH_ISSUER is not set: every route needs sign-in, and there is no way to turn it off"
            )
        return TokenVerifier(
            infra.auth_issuer,
            infra.auth_audience,
            jwks_url=infra.auth_jwks_url,
            claims=ClaimNames(
                roles=infra.auth_roles_claim,
                regions=infra.auth_regions_claim,
                organisation=infra.auth_org_claim,
                kind=infra.auth_kind_claim,
            ),
            leeway=infra.auth_leeway_seconds,
            algorithms=infra.auth_algorithms,
        )

    def consumer_decl(self, durable: str) -> ConsumerDecl:
        return self.definition.consumer_decls.get(durable) or declared_consumer(durable)

    # -- wiring ---------------------------------------------------------------------------------
    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the runtime is not started")
        return self._pool

    def jetstream(self) -> JetStreamContext:
        if self._js is None:
            self._js = self.broker.connection.jetstream(publish_async_max_pending=256)
        return self._js

    def _bind_subscribers(self) -> None:
        for durable in self.definition.consumers:
            decl = self.consumer_decl(durable)
            types = ", ".join(sorted(self.definition.consumers[durable]))
            filters = with_senders(decl.filter_subjects)
            subject = filters[0] if len(filters) == 1 else f"kumkm.{decl.stream.split('_')[1].lower()}.>"
            sent_by = [t for t in sorted(self.definition.consumers[durable]) if roles_for(t)]
            if sent_by:
                types += (
                    "; integrator organisations send "
                    + ", ".join(sent_by)
                    + " on `<type>.<organisation>` (docs/rules/access.md)"
                )

            if decl.batch:
                size = min(self.infra.batch_size, decl.max_ack_pending)
                types += f" (batch durable: up to {size} messages per transaction)"
                brokers = [self._spec_broker]
            else:
                brokers = [self._spec_broker, self.broker]
            for broker in brokers:
                broker.subscriber(
                    subject,
                    stream=JStream(decl.stream, declare=False),
                    durable=decl.name,
                    pull_sub=PullSub(batch_size=self.infra.consumer_batch, timeout=2.0),
                    max_workers=self.infra.consumer_workers,
                    # FastStream passes its own default (_INBOX.) to every pull subscription instead of the
                    # connection's prefix: a user allowed only its private inbox could not receive its pulls.
                    inbox_prefix=self._pull_inbox_prefix(),
                    ack_policy=AckPolicy.MANUAL,
                    decoder=_keep_raw,
                    title=f"{self.name}:{decl.name}",
                    description=f"Durable `{decl.name}` on {decl.stream}, handling: {types}",
                )(self._handler_for(durable))
        for model in self.definition.publishes:
            self._spec_broker.publisher(
                model.event_type,
                title=model.event_type,
                schema=model,
                description=(model.__doc__ or "").strip() or None,
            )

    def _pull_inbox_prefix(self) -> bytes:
        prefix = self.infra.nats_inbox_prefix
        return f"{prefix}.".encode() if prefix else nats_api.INBOX_PREFIX

    def _handler_for(self, durable: str) -> Callable[[NatsMessage], Awaitable[None]]:
        # FastStream injects every parameter of a handler, so the durable is closed over, not a parameter.
        async def handle(message: NatsMessage) -> None:
            await self.processors[durable].process(message.raw_message)

        return handle

    def _batch_applier(self, durable: str) -> Callable[[Sequence[Msg]], Awaitable[list[str]]]:
        """The processor is looked up per batch, so a test's probe on ``process_batch`` sees every batch."""

        async def apply(msgs: Sequence[Msg]) -> list[str]:
            return await self.processors[durable].process_batch(msgs)

        return apply

    def asyncapi(self) -> AsyncAPI:
        return AsyncAPI(
            self._spec_broker,
            title=self.definition.title,
            version="1.0.0",
            description=self.definition.description,
        )

    # -- lifecycle ------------------------------------------------------------------------------
    async def migrate(self) -> list[int]:
        async with self.pool.acquire() as conn:
            applied = await migrate(
                conn, self.name, load_migrations(PLATFORM_MIGRATIONS), table="platform_migrations"
            )
            applied += await migrate(conn, self.name, load_migrations(self.definition.migrations))
        return applied

    async def start(self) -> None:
        self._verifier = self._make_verifier()  # no issuer, no service
        self._pool = await create_pool(
            self.infra.database_url.get_secret_value(), self.name, max_size=self.infra.db_pool_max
        )
        await self.migrate()
        await self.broker.connect()
        self.mandates = MandateBook(self.jetstream())
        for durable, handlers in self.definition.consumers.items():
            self.processors[durable] = EventProcessor(
                service=self.name,
                decl=self.consumer_decl(durable),
                handlers=handlers,
                pool=self.pool,
                inbox=self.inbox,
                outbox=self.outbox,
                jetstream=self.jetstream,
                mandates=self.mandates,
            )
        await self.broker.start()
        for durable, processor in self.processors.items():
            if processor.decl.batch:
                puller = BatchPuller(
                    decl=processor.decl,
                    jetstream=self.jetstream,
                    apply=self._batch_applier(durable),
                    size=self.infra.batch_size,
                    fill_wait=self.infra.batch_max_wait,
                    inbox_prefix=self._pull_inbox_prefix(),
                )
                puller.start()
                self.pullers[durable] = puller
        self._advisories = AdvisoryWatcher(
            service=self.name,
            decls=[self.consumer_decl(d) for d in self.definition.consumers],
            jetstream=self.jetstream,
        )
        await self._advisories.start(self.broker.connection)
        self.relay = OutboxRelay(self.pool, self.jetstream, self.name)
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox-relay"))
        for worker in self.definition.workers:
            self._tasks.append(asyncio.create_task(self._supervise(worker), name=f"{self.name}-worker"))
        if self.definition.leader_workers:
            self.leadership = Leadership(self.pool, self.name)
            self._tasks.append(
                asyncio.create_task(self.leadership.run(self._lead), name=f"{self.name}-leader-workers")
            )
        log.info("service started", service=self.name)

    async def _lead(self) -> None:
        """The leader-only workers, while this replica leads; a lost lock cancels them together."""
        await asyncio.gather(*(self._supervise(w) for w in self.definition.leader_workers))

    async def _supervise(self, worker: Callable[[ServiceRuntime], Awaitable[None]]) -> None:
        while True:
            try:
                await worker(self)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient_db_error(exc):  # a database restart or failover: no stack trace
                    log.warning("worker lost its database connection; restarting in 1s", error=repr(exc))
                else:
                    log.exception("worker failed; restarting in 1s", error=repr(exc))
                await asyncio.sleep(1)
            else:
                return

    async def stop(self) -> None:
        """Graceful: stop taking messages, finish the ones in hand, flush the outbox, close."""
        if self._advisories is not None:
            await self._advisories.stop()
        # 1. stop fetching and let handlers in flight finish (their commits fill the outbox);
        for puller in self.pullers.values():
            await puller.stop(self.infra.drain_timeout)
        self.pullers.clear()
        for subscriber in self.broker.subscribers:
            with contextlib.suppress(Exception):
                await subscriber.stop()
        # 2. flush the outbox and stop the workers while the connection is still open;
        if self.relay is not None:
            self.relay.stop()
        if self.leadership is not None:
            self.leadership.stop()
        for task in self._tasks:
            if task.get_name().endswith("outbox-relay"):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, self.infra.drain_timeout)
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        # 3. then drain and close the connection.
        with contextlib.suppress(Exception):
            await self.broker.stop()
        self._js = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        log.info("service stopped", service=self.name)

    async def _on_nats_error(self, exc: Exception) -> None:
        log.warning("nats error", error=repr(exc))
        if "permissions violation" in str(exc).lower():
            self.permission_errors = [*self.permission_errors[-9:], str(exc)]

    async def readiness(self) -> dict[str, bool]:
        database = False
        if self._pool is not None:
            with contextlib.suppress(Exception):
                database = await asyncio.wait_for(self._pool.fetchval("SELECT true"), 2.0) is True
        broker = False
        with contextlib.suppress(Exception):
            broker = bool(self.broker.connection.is_connected)
        return {"database": database, "broker": broker, "permissions": not self.permission_errors}

    # -- commands, and the HTTP path into the same handlers -------------------------------------
    @contextlib.asynccontextmanager
    async def command(
        self, origin: Command | Actor = SYSTEM, *, cause: Envelope | None = None
    ) -> AsyncIterator[CommandContext]:
        """One transaction for one command (HTTP, CLI, a timer): the runtime owns it, the service uses it.

        Everything the command writes and emits commits together, or nothing does.
        """
        command = origin if isinstance(origin, Command) else Command(origin, via="timer")
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                yield CommandContext(conn, self.outbox, command, self._source, cause=cause)
                await self._audit(conn, command)
            self._audited(command)

    @staticmethod
    async def _audit(conn: Conn, command: Command) -> None:
        """A human command's audit record commits with the command itself, or neither does."""
        if command.trail is not None and not command.trail.written:  # one record per request
            await audit_store.insert(conn, command.trail, status=None, outcome="committed")

    @staticmethod
    def _audited(command: Command) -> None:
        if command.trail is not None:
            command.trail.written = True  # committed: the request needs no record of its own

    async def submit(
        self, data: EventData, *, consumer: str, origin: Command | Actor = SYSTEM
    ) -> EventContext:
        """Apply an event that arrived with a command exactly as if it came from the stream.

        The event is written to the outbox (so it is on the stream for every other subscriber) and
        handled now by the same handler, with the inbox row claimed, so the copy that comes back from
        the stream is recognised as a duplicate. The handler sees a ``Command`` origin: it answers now
        (refuses) where a stream delivery would park or ignore.
        """
        command = origin if isinstance(origin, Command) else Command(origin, via="http")
        envelope = make_event(data, source=f"{self._source}/{command.via}", traceparent=new_traceparent())
        event = validate_event_payload(envelope.model_dump(mode="json"))
        handler = self.definition.consumers[consumer][envelope.type]
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await self.inbox.claim(conn, consumer, envelope.id, envelope.type)
                await self.outbox.add(conn, envelope)
                ctx = EventContext(
                    conn,
                    event,
                    self.outbox,
                    origin=command,
                    service_source=self._source,
                    mandates=self.mandates,
                )
                await handler(ctx)
                await self._audit(conn, command)
            self._audited(command)
        return ctx

    @property
    def _source(self) -> str:
        return f"kumkm/{self.name}"

    # -- running as a process -------------------------------------------------------------------
    async def serve(self) -> None:
        configure_logging(self.infra.log_format, self.infra.log_level)
        await self.start()
        server = _QuietServer(
            uvicorn.Config(
                self.http,
                host=self.infra.http_host,
                port=self.infra.http_port,
                log_config=None,
                lifespan="off",
                access_log=False,
            )
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        http_task = asyncio.create_task(server.serve())
        log.info("http listening", host=self.infra.http_host, port=self.infra.http_port)
        try:
            await stop.wait()
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await http_task
            await self.stop()
