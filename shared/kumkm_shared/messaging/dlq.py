"""Dead letters: what a service could not accept, with the original bytes, headers and the reason.

A dead letter's ``Nats-Msg-Id`` is derived from the original stream, sequence and consumer, so the
consumer's own DLQ write and the max-deliveries advisory path never produce two entries for one message.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter

from kumkm_shared.contracts import DLQ_STREAM

if TYPE_CHECKING:
    from nats.js import JetStreamContext

log = structlog.get_logger(__name__)

DEAD_LETTERS = Counter(
    "kumkm_dead_letters", "Messages put in the DLQ", ["service", "consumer", "reason_code"]
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    service: str
    consumer: str
    stream: str
    stream_seq: int
    subject: str
    reason_code: str
    reason: str
    delivery_count: int
    data_b64: str
    headers: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    failed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def dlq_id(self) -> str:
        return f"{self.stream}:{self.stream_seq}:{self.consumer}"

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.data_b64)

    def to_json_bytes(self) -> bytes:
        return json.dumps({"dlq_id": self.dlq_id, **asdict(self)}, sort_keys=True).encode()

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> DeadLetter:
        obj: dict[str, Any] = json.loads(raw)
        obj.pop("dlq_id", None)
        return cls(**obj)

    @classmethod
    def of(
        cls,
        *,
        service: str,
        consumer: str,
        stream: str,
        stream_seq: int,
        subject: str,
        data: bytes,
        headers: dict[str, str] | None,
        reason_code: str,
        reason: str,
        delivery_count: int,
        errors: list[dict[str, str]] | None = None,
    ) -> DeadLetter:
        return cls(
            service=service,
            consumer=consumer,
            stream=stream,
            stream_seq=stream_seq,
            subject=subject,
            reason_code=reason_code,
            reason=reason,
            delivery_count=delivery_count,
            data_b64=base64.b64encode(data).decode(),
            headers=dict(headers or {}),
            errors=list(errors or []),
        )


async def publish_dead_letter(js: JetStreamContext, letter: DeadLetter) -> None:
    await js.publish(
        f"kumkm.dlq.{letter.service}",
        letter.to_json_bytes(),
        stream=DLQ_STREAM,
        headers={
            "Nats-Msg-Id": f"dlq:{letter.dlq_id}",
            "Kumkm-Dlq-Reason": letter.reason_code,
            "Kumkm-Original-Subject": letter.subject,
        },
    )
    DEAD_LETTERS.labels(letter.service, letter.consumer, letter.reason_code).inc()
    log.warning(
        "dead letter",
        consumer=letter.consumer,
        stream=letter.stream,
        seq=letter.stream_seq,
        subject=letter.subject,
        reason_code=letter.reason_code,
        reason=letter.reason[:500],
    )
