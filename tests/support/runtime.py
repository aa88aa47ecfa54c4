"""Running a real service in-process for integration tests, and reading what it put on the streams."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import httpx
import nats

from kumkm_shared import InfraSettings, ServiceRuntime
from kumkm_shared.cli.follow import subjects_overlap
from kumkm_shared.contracts import DLQ_STREAM
from kumkm_shared.messaging.dlq import DeadLetter
from kumkm_shared.messaging.provision import provision
from kumkm_shared.testing import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from nats.aio.client import Client

    from kumkm_shared import ServiceDefinition


@contextlib.asynccontextmanager
async def running_service(
    definition: ServiceDefinition, nats_url: str, database_url: str, **infra: Any
) -> AsyncIterator[tuple[ServiceRuntime, httpx.AsyncClient]]:
    """Provision every stream and durable, start the service, and give an HTTP client bound to it."""
    nc = await nats.connect(nats_url)
    try:
        await provision(nc.jetstream())
    finally:
        await nc.drain()
    settings = InfraSettings(nats_url=nats_url, database_url=database_url, http_port=free_port(), **infra)
    runtime = ServiceRuntime(definition, settings)
    await runtime.start()
    transport = httpx.ASGITransport(app=runtime.http)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield runtime, client
    finally:
        await runtime.stop()


async def stream_events(
    nc: Client, subjects: str = "kumkm.>", *, timeout: float = 0.5
) -> list[dict[str, Any]]:
    """Every event currently on the streams matching ``subjects`` (envelopes as dicts).

    An ordered consumer reads one stream, and a filter such as ``kumkm.>`` spans several: read each stream
    the filter overlaps, in stream order within each stream.
    """
    js = nc.jetstream()
    names = await js.streams_info()
    events: list[dict[str, Any]] = []
    for info in names:
        if info.config.name == DLQ_STREAM or not any(
            subjects_overlap(subjects, s) for s in info.config.subjects or []
        ):
            continue
        sub = await js.subscribe(subjects, stream=info.config.name, ordered_consumer=True)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=timeout)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                with contextlib.suppress(ValueError):
                    events.append(json.loads(msg.data))
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
    return events


async def dead_letters(nc: Client) -> list[DeadLetter]:
    js = nc.jetstream()
    sub = await js.subscribe("kumkm.dlq.>", ordered_consumer=True)
    letters: list[DeadLetter] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            letters.append(DeadLetter.from_json_bytes(msg.data))
    finally:
        await sub.unsubscribe()
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
    delivered = info.delivered.stream_seq if info.delivered else 0
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
