"""``/dlq``: the service's own dead letters over HTTP, for operators (the console's "dead letters" page).
The runtime adds this router to every service, as it adds the audit trail's.

- ``GET /dlq``: the dead letters this service wrote (``kumkm.dlq.<service>``), oldest first, paged with
  ``after`` (the last ``id`` seen);
- ``GET /dlq/{id}``: one, with the original message and its headers;
- ``POST /dlq/{id}/replay``: re-publish it exactly as ``kumkm dlq replay`` does
  (``kumkm_shared.messaging.dlq_ops.replay``: ``Nats-Msg-Id`` ``replay:<id>``, so a repeated replay is
  de-duplicated by the broker, and the consumers' inboxes make an already applied event a no-op). Under
  operator-mode NATS a service may publish only its own context's subjects: the replay of another
  context's event is refused (409 ``replay_needs_operator``), naming ``kumkm dlq replay``.

A dead letter's id is its sequence in the ``KUMKM_DLQ`` stream. Listing reads message by message
(``next_by_subj``), so it needs no consumer on the DLQ stream.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import nats.errors
import nats.js.errors
from fastapi import APIRouter, Path, Query, Request

from kumkm_shared.auth.roles import OPERATOR
from kumkm_shared.contracts import DLQ_STREAM
from kumkm_shared.errors import NotFound, Refusal, Retry
from kumkm_shared.messaging.dlq import DeadLetter
from kumkm_shared.messaging.dlq_ops import StoredDeadLetter, replay
from kumkm_shared.service.deps import Require

DLQ_READ = "dlq.read"
DLQ_REPLAY = "dlq.replay"
PERMISSIONS = {DLQ_READ: frozenset({OPERATOR}), DLQ_REPLAY: frozenset({OPERATOR})}
MAX_LIMIT = 500
MAX_SEQ = 2**63 - 1  # a JetStream sequence is a uint64; beyond int64 nobody has written one
Seq = Annotated[int, Path(ge=1, le=MAX_SEQ, description="the dead letter's id: its DLQ sequence")]

router = APIRouter(tags=["dead letters"])


def _summary(item: StoredDeadLetter) -> dict[str, Any]:
    letter = item.letter
    return {
        "id": item.seq,
        "failed_at": letter.failed_at,
        "service": letter.service,
        "consumer": letter.consumer,
        "stream": letter.stream,
        "stream_seq": letter.stream_seq,
        "subject": letter.subject,
        "reason_code": letter.reason_code,
        "reason": letter.reason,
        "deliveries": letter.delivery_count,
    }


def _original(letter: DeadLetter) -> str:
    try:
        return letter.original.decode("utf-8")
    except (UnicodeDecodeError, binascii.Error):
        return base64.b64encode(letter.original).decode()


async def _load(request: Request, seq: int) -> StoredDeadLetter:
    runtime = request.app.state.runtime
    try:
        msg = await runtime.jetstream().get_msg(DLQ_STREAM, seq)
    except (nats.js.errors.NotFoundError, nats.errors.Error):
        raise NotFound("dead letter", str(seq)) from None
    if msg.subject != f"kumkm.dlq.{runtime.name}":
        raise NotFound("dead letter", str(seq))  # another service's: ask that service
    return StoredDeadLetter(seq, DeadLetter.from_json_bytes(msg.data or b""))


@router.get("/dlq", dependencies=[Require(DLQ_READ)])
async def list_dead_letters(
    request: Request,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """This service's dead letters after ``after``, oldest first."""
    runtime = request.app.state.runtime
    subject = f"kumkm.dlq.{runtime.name}"
    items: list[dict[str, Any]] = []
    seq = after + 1
    while len(items) < limit:
        try:
            msg = await runtime.jetstream().get_msg(DLQ_STREAM, seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            break
        except nats.errors.Error:
            raise Retry("dlq_unavailable", "the dead-letter stream cannot be read now") from None
        items.append(_summary(StoredDeadLetter(msg.seq, DeadLetter.from_json_bytes(msg.data or b""))))
        seq = msg.seq + 1
    return {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}


@router.get("/dlq/{seq}", dependencies=[Require(DLQ_READ)])
async def show_dead_letter(request: Request, seq: Seq) -> dict[str, Any]:
    item = await _load(request, seq)
    return {
        **_summary(item),
        "headers": item.letter.headers,
        "errors": item.letter.errors,
        "original": _original(item.letter),
    }


@router.post("/dlq/{seq}/replay", dependencies=[Require(DLQ_REPLAY)])
async def replay_dead_letter(request: Request, seq: Seq) -> dict[str, Any]:
    item = await _load(request, seq)
    try:
        ack = await replay(request.app.state.runtime.jetstream(), item)
    except nats.errors.Error:
        # Under operator-mode NATS a service publishes only its own context: another context's subject (and
        # an integrator's ``<type>.<org>``) is the operator's to replay.
        raise Refusal(
            "replay_needs_operator",
            f"this service may not publish {item.letter.subject!r}; replay it with `kumkm dlq replay {seq}`",
        ) from None
    return {"id": seq, "replayed_to": item.letter.subject, "stream": ack.stream, "seq": ack.seq}
