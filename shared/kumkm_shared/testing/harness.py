"""One test harness: a real service in-process on real NATS JetStream and Postgres, driven like an integrator.

``ServiceHarness.start(definition, nats_url, database_url)`` provisions every stream and the service's
durables (with the definition's overrides, so the server and the consumer wrapper agree on ``max_deliver``
and ``ack_wait``), starts ``ServiceRuntime``, and gives an HTTP client bound to the app and an integrator's
own NATS connection. The HTTP client signs in through the session's real OpenID provider
(``kumkm_shared.testing.identity``) as ``it-all``, a test user with every role; ``client(username)`` acts
as any other user, ``service_client(client_id)`` as a service account, ``anonymous()`` with no token. It
publishes the way integrators do, waits until the service has settled (every durable idle, the outbox on
the stream), and reads what the service put on the streams and in the DLQ.

The module-level functions are the same readers for a test that holds only a NATS connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, Self, overload

import httpx
import nats
import nats.errors
import nats.js.errors

from kumkm_shared.cli.follow import subjects_overlap
from kumkm_shared.contracts import DLQ_STREAM, Envelope, EventData, make_event
from kumkm_shared.integrators import IntegratorRole, roles_for, sender_subject
from kumkm_shared.mandates import ALL_PARTIES, Grant, Mandate, MandateBook
from kumkm_shared.mandates import BUCKET as MANDATES_BUCKET
from kumkm_shared.messaging.dlq import DeadLetter
from kumkm_shared.messaging.provision import provision
from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS, ConsumerDecl
from kumkm_shared.messaging.topology import consumer as declared_consumer
from kumkm_shared.service.runtime import ServiceDefinition, ServiceRuntime
from kumkm_shared.service.settings import InfraSettings
from kumkm_shared.testing import free_port, wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

__all__ = [
    "PUBLISHER_SOURCE",
    "ServiceHarness",
    "consumer_idle",
    "dead_letters",
    "outbox_flushed",
    "provision_service",
    "publish_bytes",
    "publish_event",
    "record_outcomes",
    "running_service",
    "service_quiet",
    "settle",
    "stream_events",
]

TEST_USER = "it-all"  # every role, national scope (tests/support/realm-test.json)
PUBLISHER_SOURCE = "tests/publisher"  # the envelope ``source`` of contract events the harness wraps


UNDECODABLE_KEY = "<undecodable>"  # the key of outcomes of messages without a readable event id


# A test's integrator organisation per role, holding a mandate for every party of its role ("*"), so a test
# about something else publishes as an organisation would. Tests of mandates name their own organisations.
TEST_SENDERS: dict[IntegratorRole, str] = {
    role: "it-" + role.value.replace("_", "-") for role in IntegratorRole
}


class _Default:
    pass


DEFAULT_SENDER: Any = _Default()

# The organisations of the realms' service accounts the tests sign in as (integrator-demo, it-integrator-sby)
# and of the test realm's people ("it": it-all holds the integrator role too): mandated for every role and
# party, so HTTP tests about other rules are not refused for their mandate.
TEST_SERVICE_ACCOUNT_ORGS = ("integrator-demo", "it-integrator-sby", "it")


@contextlib.contextmanager
def record_outcomes(runtime: ServiceRuntime, durable: str) -> Iterator[dict[str, list[str]]]:
    """Each outcome of ``durable``'s consumer wrapper (applied, duplicate, retry, exhausted, refused,
    invalid), by event id, in the order they happened, while the block runs.

    What the wrapper decided, not what it left behind: a second application that writes the same row under a
    primary key shows here as a second ``applied``.
    """
    processor = runtime.processors[durable]
    seen: dict[str, list[str]] = {}

    def recording(msg: Msg, outcome: str) -> None:
        try:
            key = str(json.loads(msg.data)["id"])
        except (ValueError, TypeError, KeyError):
            key = UNDECODABLE_KEY
        seen.setdefault(key, []).append(outcome)

    stop = processor.observe(recording)  # every settled message, one at a time or in a batch
    try:
        yield seen
    finally:
        stop()


def service_decls(definition: ServiceDefinition) -> list[ConsumerDecl]:
    """The durables a service binds to, as it will run them (its ``consumer_decls`` overrides applied)."""
    return [definition.consumer_decls.get(d) or declared_consumer(d) for d in definition.consumers]


async def provision_service(js: JetStreamContext, definition: ServiceDefinition) -> None:
    """Every stream; the service's own durables as it runs them; every other declared durable if missing.

    The service's durables are created or updated to its overrides (a test's short ``max_deliver``), so the
    server gives up exactly when the consumer wrapper does. Other services' durables are only created, never
    updated: a second service started in the same test does not undo the first one's overrides.
    """
    own = service_decls(definition)
    await provision(js, streams=STREAM_DECLS, consumers=own)
    book = MandateBook(js)
    for organisation in TEST_SERVICE_ACCOUNT_ORGS:
        await book.put(mandate_for(organisation, *IntegratorRole))
    names = {decl.name for decl in own}
    for decl in CONSUMER_DECLS:
        if decl.name in names:
            continue
        try:
            await js.consumer_info(decl.stream, decl.name)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(decl.stream, config=decl.config())


def identity() -> Any:
    """The session's OpenID provider (imported late: it starts a Node.js process on first use)."""
    from kumkm_shared.testing.identity import identity as session_identity

    return session_identity()


class ServiceHarness:
    """A running service (``runtime``), its HTTP client (``http``) and an integrator's connection (``nc``)."""

    def __init__(self, runtime: ServiceRuntime, http: httpx.AsyncClient, nc: Client) -> None:
        self.runtime = runtime
        self.http = http
        self.nc = nc
        self._clients: list[httpx.AsyncClient] = []
        # The started runtime's relay task, kept to tell when it has finished (``stop_relay``).
        name = f"{runtime.name}-outbox-relay"
        self._relay_tasks = [t for t in asyncio.all_tasks() if t.get_name() == name]

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        definition: ServiceDefinition,
        nats_url: str,
        database_url: str,
        *,
        connect_options: dict[str, Any] | None = None,
        **infra: Any,
    ) -> AsyncIterator[Self]:
        """Provision, start the service, yield the harness; stop the service and drain on exit.

        ``infra`` are ``InfraSettings`` fields (``consumer_batch=16``, ``drain_timeout=2.0``).
        ``connect_options`` are the harness's own connection's (``user_credentials`` of an operator, for a
        server that requires them).
        """
        nc = await nats.connect(nats_url, **(connect_options or {}))
        try:
            await provision_service(nc.jetstream(), definition)
            infra.setdefault("auth_issuer", identity().issuer)
            settings = InfraSettings(
                nats_url=nats_url, database_url=database_url, http_port=free_port(), **infra
            )
            runtime = ServiceRuntime(definition, settings)
            try:
                await runtime.start()
                transport = httpx.ASGITransport(app=runtime.http)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://service", headers=identity().headers(TEST_USER)
                ) as http:
                    harness = cls(runtime, http, nc)
                    try:
                        yield harness
                    finally:
                        for client in harness._clients:
                            await client.aclose()
            finally:
                await runtime.stop()
        finally:
            await nc.drain()

    # -- who calls it ---------------------------------------------------------------------------------
    def _client(self, headers: dict[str, str]) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.runtime.http), base_url="http://service", headers=headers
        )
        self._clients.append(client)
        return client

    def client(self, username: str) -> httpx.AsyncClient:
        """An HTTP client signed in as ``username`` (a demo or test user) through the real provider."""
        return self._client(identity().headers(username))

    def service_client(self, client_id: str) -> httpx.AsyncClient:
        """An HTTP client holding a service account's token (client credentials)."""
        return self._client({"Authorization": f"Bearer {identity().service_token(client_id)}"})

    def anonymous(self) -> httpx.AsyncClient:
        """An HTTP client with no token at all."""
        return self._client({})

    # -- what the service is --------------------------------------------------------------------------
    @property
    def durables(self) -> tuple[str, ...]:
        """The durable consumers the service binds to."""
        return tuple(self.runtime.definition.consumers)

    def decl(self, durable: str) -> ConsumerDecl:
        """A durable as the service runs it (overrides applied)."""
        return self.runtime.consumer_decl(durable)

    # -- driving it like an integrator ----------------------------------------------------------------
    @overload
    async def publish(
        self, event: dict[str, Any], *, msg_id: str | None = None, sender: str | None = DEFAULT_SENDER
    ) -> dict[str, Any]: ...
    @overload
    async def publish(
        self, event: EventData | Envelope, *, msg_id: str | None = None, sender: str | None = DEFAULT_SENDER
    ) -> Envelope: ...
    async def publish(
        self,
        event: dict[str, Any] | EventData | Envelope,
        *,
        msg_id: str | None = None,
        sender: str | None = DEFAULT_SENDER,
    ) -> dict[str, Any] | Envelope:
        """``publish_event`` on the harness's connection (see there)."""
        return await publish_event(self.nc, event, msg_id=msg_id, sender=sender)

    async def publish_raw(self, subject: str, data: bytes, msg_id: str | None = None) -> PubAck:
        """Publish bytes as they are (undecodable ones too); ``Nats-Msg-Id`` only when ``msg_id`` is given."""
        return await publish_bytes(self.nc, subject, data, msg_id)

    # -- waiting for it -------------------------------------------------------------------------------
    async def consumer_idle(self, durable: str) -> bool:
        """True when ``durable`` has settled every matching message already on its stream."""
        return await consumer_idle(self.nc, self.decl(durable).stream, durable)

    async def outbox_flushed(self) -> bool:
        """True when every committed outbox row is on the stream (acknowledged by the broker)."""
        return await outbox_flushed(self.runtime)

    async def quiet(self) -> bool:
        """The outbox flushed, every durable idle, and the outbox still flushed (handlers emit as they go)."""
        return await service_quiet(self.runtime, self.nc)

    async def settle(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109 - a polling deadline
        """Wait until the service has handled everything published and its outbox is on the stream."""
        await settle(self.runtime, self.nc, timeout)

    @property
    def relay_running(self) -> bool:
        """The service's outbox relay task has not finished."""
        return any(not t.done() for t in self._relay_tasks)

    async def stop_relay(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a deadline to finish
        """Stop the outbox relay (a crash before publishing) and wait until its task has finished.

        From then on nothing the service commits to its outbox reaches the stream, until a new relay runs.
        """
        relay = self.runtime.relay
        if relay is None or len(self._relay_tasks) != 1:
            raise RuntimeError(f"the service has no outbox relay running ({len(self._relay_tasks)} tasks)")
        relay.stop()
        await asyncio.wait_for(asyncio.shield(self._relay_tasks[0]), timeout)

    # -- reading what it did --------------------------------------------------------------------------
    async def events(self, subjects: str = "kumkm.>", *, timeout: float = 0.3) -> list[dict[str, Any]]:  # noqa: ASYNC109
        """Every event on the streams matching ``subjects``, as envelope dicts (the DLQ excluded)."""
        return await stream_events(self.nc, subjects, timeout=timeout)

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter in the DLQ stream; raises ``LookupError`` when the DLQ stream does not exist."""
        return await dead_letters(self.nc)


def mandate_for(
    organisation: str, *roles: IntegratorRole, parties: tuple[str, ...] = (ALL_PARTIES,)
) -> Mandate:
    grants = tuple(Grant(role=role, parties=parties) for role in roles)
    return Mandate(organisation=organisation, grants=grants, granted_by="test")


async def grant_mandate(
    nc: Client, organisation: str, *roles: IntegratorRole, parties: tuple[str, ...] = (ALL_PARTIES,)
) -> None:
    """Record ``organisation``'s mandate (each of ``roles`` for ``parties``) in the KV bucket (created when
    missing), as the operator's ``kumkm integrators add`` would."""
    data = mandate_for(organisation, *roles, parties=parties).to_bytes()
    js = nc.jetstream()
    try:
        await js.publish(f"$KV.{MANDATES_BUCKET}.{organisation}", data)
    except nats.errors.NoRespondersError:
        await MandateBook(js).ensure_bucket()
        await js.publish(f"$KV.{MANDATES_BUCKET}.{organisation}", data)


async def _subject_for(nc: Client, event_type: str, sender: str | _Default | None) -> str:
    if isinstance(sender, _Default):
        roles = [role for role in IntegratorRole if role in roles_for(event_type)]
        if not roles:
            return event_type
        sender = TEST_SENDERS[roles[0]]
        await grant_mandate(nc, sender, roles[0])
    return event_type if sender is None else sender_subject(event_type, sender)


@overload
async def publish_event(
    nc: Client, event: dict[str, Any], *, msg_id: str | None = None, sender: str | None = DEFAULT_SENDER
) -> dict[str, Any]: ...
@overload
async def publish_event(
    nc: Client, event: EventData | Envelope, *, msg_id: str | None = None, sender: str | None = DEFAULT_SENDER
) -> Envelope: ...
async def publish_event(
    nc: Client,
    event: dict[str, Any] | EventData | Envelope,
    *,
    msg_id: str | None = None,
    sender: str | None = DEFAULT_SENDER,
) -> dict[str, Any] | Envelope:
    """Publish on the event's type, with the envelope id as ``Nats-Msg-Id`` unless ``msg_id`` is given.

    A dict is an envelope as JSON, published as is (it may be invalid on purpose). Contract data is
    wrapped in a new envelope; an ``Envelope`` is published again as it is. Returns what was published.
    A ``msg_id`` other than the envelope id defeats the broker's de-duplication, as an integrator's
    re-publish after the duplicate window would.

    ``sender``: the organisation whose token the subject carries (``<type>.<org>``); ``None`` publishes on
    the bare type (as a service's own relay does). By default an event integrators publish is sent by the
    role's test organisation (``TEST_SENDERS``), whose mandate covers every party.
    """
    if isinstance(event, dict):
        ident = event.get("id")
        kind = event.get("type")
        subject = await _subject_for(nc, str(kind), sender) if isinstance(kind, str) else str(kind)
        await publish_bytes(
            nc, subject, json.dumps(event).encode(), msg_id or (str(ident) if ident else None)
        )
        return event
    envelope = event if isinstance(event, Envelope) else make_event(event, source=PUBLISHER_SOURCE)
    subject = await _subject_for(nc, envelope.type, sender)
    await publish_bytes(nc, subject, envelope.to_json_bytes(), msg_id or str(envelope.id))
    return envelope


async def publish_bytes(nc: Client, subject: str, data: bytes, msg_id: str | None = None) -> PubAck:
    """Publish bytes as they are (undecodable ones too); ``Nats-Msg-Id`` only when ``msg_id`` is given."""
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    return await nc.jetstream().publish(subject, data, headers=headers)


async def outbox_flushed(runtime: ServiceRuntime) -> bool:
    """True when every row the service committed to its outbox is on the stream (acknowledged)."""
    relay = runtime.relay
    if relay is None:
        raise RuntimeError("the service is not started: it has no outbox relay")
    return await relay.pending() == 0


async def service_quiet(runtime: ServiceRuntime, nc: Client) -> bool:
    """The outbox flushed, every durable of the service idle, and the outbox still flushed."""
    if not await outbox_flushed(runtime):
        return False
    for durable in runtime.definition.consumers:
        if not await consumer_idle(nc, runtime.consumer_decl(durable).stream, durable):
            return False
    return await outbox_flushed(runtime)


async def settle(runtime: ServiceRuntime, nc: Client, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    """Wait until the service has handled everything published and its outbox is on the stream.

    Quiet twice in a row: what the relay published last may be consumed by the service itself.
    """

    async def quiet() -> bool:
        return await service_quiet(runtime, nc)

    name = runtime.name
    await wait_for(quiet, timeout, message=f"{name}: every durable idle and the outbox flushed")
    await wait_for(quiet, timeout, message=f"{name}: still quiet")


@contextlib.asynccontextmanager
async def running_service(
    definition: ServiceDefinition, nats_url: str, database_url: str, **infra: Any
) -> AsyncIterator[tuple[ServiceRuntime, httpx.AsyncClient]]:
    """``ServiceHarness.start`` for a test that wants only the runtime and the HTTP client."""
    async with ServiceHarness.start(definition, nats_url, database_url, **infra) as harness:
        yield harness.runtime, harness.http


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` matches the NATS filter ``pattern`` (``*`` one token, ``>`` the rest)."""
    tp, ts = pattern.split("."), subject.split(".")
    for i, part in enumerate(tp):
        if part == ">":
            return len(ts) > i
        if i >= len(ts) or (part not in ("*", ts[i])):
            return False
    return len(ts) == len(tp)


async def stream_events(
    nc: Client,
    subjects: str = "kumkm.>",
    *,
    timeout: float = 0.5,  # noqa: ASYNC109 - how long to wait for a message that may not come
) -> list[dict[str, Any]]:
    """Every event currently on the streams matching ``subjects`` (envelopes as dicts).

    An ordered consumer reads one stream, and a filter such as ``kumkm.>`` spans several: read each stream
    the filter overlaps, in stream order within each stream. Messages that are not JSON are left out.
    A filter that names a type also matches that type sent by an organisation (``<type>.<org>``).
    """
    js = nc.jetstream()
    events: list[dict[str, Any]] = []
    sent_by = f"{subjects}.*"  # the same type with an organisation's token
    for info in await js.streams_info():
        if info.config.name == DLQ_STREAM or not any(
            subjects_overlap(subjects, s) for s in info.config.subjects or []
        ):
            continue
        # Read the whole stream when the filter is a type, and keep what matches either form.
        read = subjects if subjects.endswith(">") else (info.config.subjects or [subjects])[0]
        sub = await js.subscribe(read, stream=info.config.name, ordered_consumer=True)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=timeout)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                if (
                    read == subjects
                    or subject_matches(subjects, msg.subject)
                    or subject_matches(sent_by, msg.subject)
                ):
                    with contextlib.suppress(ValueError):
                        events.append(json.loads(msg.data))
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
    return events


async def dead_letters(nc: Client) -> list[DeadLetter]:
    """Every dead letter in the DLQ stream, oldest first (messages an operator removed are skipped).

    A missing DLQ stream is an error (``LookupError``), never an empty list: nothing could be dead-lettered.
    """
    js = nc.jetstream()
    try:
        state = (await js.stream_info(DLQ_STREAM)).state
    except nats.js.errors.NotFoundError as exc:
        raise LookupError(
            f"the DLQ stream {DLQ_STREAM} does not exist: were the streams provisioned?"
        ) from exc
    letters: list[DeadLetter] = []
    seq = state.first_seq
    while state.messages and seq <= state.last_seq:
        try:
            msg = await js.get_msg(DLQ_STREAM, seq=seq, subject="kumkm.dlq.>", next=True)
        except nats.js.errors.NotFoundError:
            break
        if msg.seq is None or msg.seq > state.last_seq:
            break
        letters.append(DeadLetter.from_json_bytes(msg.data or b""))
        seq = msg.seq + 1
    return letters


async def consumer_idle(nc: Client, stream: str, consumer: str) -> bool:
    """True when the consumer has handled and acknowledged every matching message already on the stream.

    The counters alone are not enough: the server adds a new message to a consumer's ``num_pending`` a
    moment after the publisher's PubAck (consumers are signalled from a separate loop), so right after a
    publish the consumer can report zero pending. The check also looks, by sequence, for any matching
    message past what the consumer has delivered and up to the stream's last sequence.
    """
    js = nc.jetstream()
    last_seq = (await js.stream_info(stream)).state.last_seq
    info = await js.consumer_info(stream, consumer)
    if info.num_pending or info.num_ack_pending:
        return False
    delivered = info.delivered.stream_seq if info.delivered and info.delivered.stream_seq else 0
    if delivered >= last_seq:
        return True
    config = info.config
    filters = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [">"])
    for subject in filters:
        try:
            undelivered = await js.get_msg(stream, seq=delivered + 1, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            continue
        if undelivered.seq is not None and undelivered.seq <= last_seq:
            return False
    return True
