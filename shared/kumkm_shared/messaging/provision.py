"""Creates and updates streams and durable consumers from the one declaration, idempotently.

FastStream only creates what is missing and never applies a changed consumer config; this does both.

``replicas`` applies to every stream, the DLQ stream among them, and to the mandate bucket, also when they
exist with another count (a stream update: the server adds or drops replicas in place, keeping every
message). Durables set no replica count of their own, so each has its stream's, and follows it when the
stream's count changes. Rules: ``docs/rules/messaging.md``, "A NATS cluster".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nats.js.errors
import structlog

from kumkm_shared.mandates import MandateBook
from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS, ConsumerDecl, StreamDecl

if TYPE_CHECKING:
    from collections.abc import Iterable

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
) -> ProvisionReport:
    """Every stream and durable, and (``mandates``) the integrators' mandate bucket."""
    report = ProvisionReport()
    for stream in streams:
        await _ensure_stream(js, stream, replicas, report)
    for decl in consumers:
        await _ensure_consumer(js, decl, report)
    if mandates:
        book = MandateBook(js)
        if await book.ensure_bucket(replicas=replicas):
            report.created.append("bucket KUMKM_MANDATES")
        elif await book.ensure_replicas(replicas):
            report.updated.append("bucket KUMKM_MANDATES")
            log.info("bucket updated", bucket="KUMKM_MANDATES", replicas=replicas)
        else:
            report.unchanged.append("bucket KUMKM_MANDATES")
    return report
