"""Creates and updates streams and durable consumers from the one declaration, idempotently.

FastStream only creates what is missing and never applies a changed consumer config; this does both.

``replicas`` applies to every stream, the DLQ stream among them, and to the mandate bucket, also when they
exist with another count (a stream update: the server adds or drops replicas in place, keeping every
message). Durables set no replica count of their own, so each has its stream's, and follows it when the
stream's count changes. Rules: ``docs/rules/messaging.md``, "A NATS cluster".
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
import structlog

from kumkm_shared.mandates import BUCKET, MandateBook
from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS, ConsumerDecl, StreamDecl

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from nats.js import JetStreamContext, api

log = structlog.get_logger(__name__)

# Fields the server fills in or reports differently from what we send; they never count as a change.
_STREAM_KEYS = (
    "subjects",
    "retention",
    "storage",
    "discard",
    "num_replicas",
    "duplicate_window",
    "max_age",
    "max_bytes",
    "description",
    "allow_direct",
)
_CONSUMER_KEYS = (
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "filter_subjects",
    "description",
    "deliver_policy",
    "ack_policy",
)


# What a cluster answers while it elects a leader or has not yet enabled JetStream for an account on every
# server (a fresh cluster in operator mode registers an account on each server at its first use): worth
# another try. Anything else (a refused config, no permission) is not.
_TRANSIENT = (
    nats.js.errors.ServiceUnavailableError,  # 503: no leader yet, "JetStream not enabled for account"
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    TimeoutError,
)
RETRY_FOR = 30.0


async def _retrying(what: str, step: Callable[[], Awaitable[None]], deadline: float) -> None:
    """Run ``step``, again after a pause while the cluster answers with a transient error, until ``deadline``.

    Each step reads before it writes, so a write that took effect without its answer is seen as done.
    """
    attempt = 0
    while True:
        try:
            await step()
        except _TRANSIENT as exc:
            attempt += 1
            if time.monotonic() >= deadline:
                raise
            log.warning("provision step failed; retrying", step=what, attempt=attempt, error=repr(exc)[:200])
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        else:
            return


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"created={sorted(self.created)} updated={sorted(self.updated)} unchanged={len(self.unchanged)}"
        )


def _comparable(cfg: Any, keys: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        value = getattr(cfg, key, None)
        if isinstance(value, list):
            value = sorted(value)
        if isinstance(value, float):
            value = round(value, 3)
        if key == "filter_subjects" and not value:
            subject = getattr(cfg, "filter_subject", None)
            value = [subject] if subject else []
        out[key] = value
    return out


async def _ensure_stream(
    js: JetStreamContext, decl: StreamDecl, replicas: int, report: ProvisionReport
) -> None:
    wanted: api.StreamConfig = decl.config(replicas)
    try:
        info = await js.stream_info(decl.name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(config=wanted)
        report.created.append(f"stream {decl.name}")
        log.info("stream created", stream=decl.name)
        return
    if _comparable(info.config, _STREAM_KEYS) == _comparable(wanted, _STREAM_KEYS):
        report.unchanged.append(f"stream {decl.name}")
        return
    await js.update_stream(config=wanted)
    report.updated.append(f"stream {decl.name}")
    log.info("stream updated", stream=decl.name)


async def _ensure_consumer(js: JetStreamContext, decl: ConsumerDecl, report: ProvisionReport) -> None:
    wanted = decl.config()
    try:
        info = await js.consumer_info(decl.stream, decl.name)
    except nats.js.errors.NotFoundError:
        await js.add_consumer(decl.stream, config=wanted)
        report.created.append(f"consumer {decl.stream}/{decl.name}")
        log.info("consumer created", stream=decl.stream, consumer=decl.name)
        return
    if _comparable(info.config, _CONSUMER_KEYS) == _comparable(wanted, _CONSUMER_KEYS):
        report.unchanged.append(f"consumer {decl.stream}/{decl.name}")
        return
    # Consumer create on an existing durable is an update of its mutable fields (NATS 2.10+).
    await js.add_consumer(decl.stream, config=wanted)
    report.updated.append(f"consumer {decl.stream}/{decl.name}")
    log.info("consumer updated", stream=decl.stream, consumer=decl.name)


async def provision(
    js: JetStreamContext,
    *,
    replicas: int = 1,
    streams: Iterable[StreamDecl] = STREAM_DECLS,
    consumers: Iterable[ConsumerDecl] = CONSUMER_DECLS,
    mandates: bool = True,
    retry_for: float = RETRY_FOR,
) -> ProvisionReport:
    """Every stream and durable, and (``mandates``) the integrators' mandate bucket.

    A step the cluster answers with a transient error (no leader yet, JetStream not yet enabled for the
    account on the server that answers, a timeout) is tried again, for ``retry_for`` seconds in all.
    """
    report = ProvisionReport()
    deadline = time.monotonic() + retry_for
    for stream in streams:
        step = functools.partial(_ensure_stream, js, stream, replicas, report)
        await _retrying(f"stream {stream.name}", step, deadline)
    for decl in consumers:
        step = functools.partial(_ensure_consumer, js, decl, report)
        await _retrying(f"consumer {decl.stream}/{decl.name}", step, deadline)
    if mandates:
        await _retrying(f"bucket {BUCKET}", functools.partial(_ensure_bucket, js, replicas, report), deadline)
    return report


async def _ensure_bucket(js: JetStreamContext, replicas: int, report: ProvisionReport) -> None:
    book = MandateBook(js)
    if await book.ensure_bucket(replicas=replicas):
        report.created.append(f"bucket {BUCKET}")
    elif await book.ensure_replicas(replicas):
        report.updated.append(f"bucket {BUCKET}")
        log.info("bucket updated", bucket=BUCKET, replicas=replicas)
    else:
        report.unchanged.append(f"bucket {BUCKET}")
