"""Operating the DLQ: read, filter, replay and purge dead letters (``kumkm dlq``).

A dead letter's id is its sequence number in the ``KUMKM_DLQ`` stream. Replay re-publishes the original
bytes and headers to the original subject with a new ``Nats-Msg-Id`` (``replay:<id>``): the broker
de-duplicates a repeated replay of the same dead letter, and each consumer's inbox makes a replay of an
event that was already applied a no-op.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors

from kumkm_shared.contracts import DLQ_STREAM
from kumkm_shared.messaging.dlq import DeadLetter

if TYPE_CHECKING:
    from collections.abc import Iterable

    from nats.js import JetStreamContext
    from nats.js.api import PubAck


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    seq: int
    letter: DeadLetter

    @property
    def failed_at(self) -> datetime:
        return datetime.fromisoformat(self.letter.failed_at)


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    context: str | None = None  # the service that dead-lettered it (kumkm.dlq.<context>)
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, item: StoredDeadLetter) -> bool:
        letter = item.letter
        if self.context and letter.service != self.context:
            return False
        if self.reason and letter.reason_code != self.reason:
            return False
        if self.since and item.failed_at < self.since:
            return False
        return not (self.until and item.failed_at > self.until)


async def read_dead_letters(
    js: JetStreamContext, flt: DeadLetterFilter | None = None
) -> list[StoredDeadLetter]:
    flt = flt or DeadLetterFilter()
    subject = f"kumkm.dlq.{flt.context}" if flt.context else "kumkm.dlq.>"
    try:
        info = await js.stream_info(DLQ_STREAM)
    except nats.js.errors.NotFoundError:
        return []
    if not info.state.messages:
        return []
    sub = await js.subscribe(subject, ordered_consumer=True)
    found: list[StoredDeadLetter] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                break
            item = StoredDeadLetter(msg.metadata.sequence.stream, DeadLetter.from_json_bytes(msg.data))
            if flt.matches(item):
                found.append(item)
            if msg.metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return found


async def get_dead_letter(js: JetStreamContext, seq: int) -> StoredDeadLetter:
    msg = await js.get_msg(DLQ_STREAM, seq)
    return StoredDeadLetter(seq, DeadLetter.from_json_bytes(msg.data or b""))


async def replay(js: JetStreamContext, item: StoredDeadLetter) -> PubAck:
    letter = item.letter
    headers = {k: v for k, v in letter.headers.items() if not k.startswith("Nats-")}
    headers["Nats-Msg-Id"] = f"replay:{item.seq}"
    headers["Kumkm-Replay-Of"] = str(item.seq)
    return await js.publish(letter.subject, letter.original, headers=headers)


async def purge(js: JetStreamContext, items: Iterable[StoredDeadLetter]) -> int:
    count = 0
    for item in items:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_msg(DLQ_STREAM, item.seq)
            count += 1
    return count
