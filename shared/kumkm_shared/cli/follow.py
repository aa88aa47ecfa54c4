"""Following events across streams: an ordered consumer reads one stream, and ``kumkm.>`` spans several."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from nats.js.api import DeliverPolicy

from kumkm_shared.contracts import DLQ_STREAM

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from nats.aio.msg import Msg
    from nats.js import JetStreamContext


def subjects_overlap(a: str, b: str) -> bool:
    """Whether two NATS subject filters can match a common subject."""
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if ">" in (x, y):
            return True
        if x is None or y is None:
            return False
        if x != y and "*" not in (x, y):
            return False
    return True


async def follow(
    js: JetStreamContext, subject: str, *, from_start: bool = False, include_dlq: bool | None = None
) -> AsyncGenerator[Msg, None]:
    """Yield messages on ``subject`` from every stream it overlaps, as they arrive (in order per stream)."""
    if include_dlq is None:
        include_dlq = subject.startswith("kumkm.dlq")
    queue: asyncio.Queue[Msg] = asyncio.Queue()
    subs: list[Any] = []
    policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
    for info in await js.streams_info():
        name = info.config.name or ""
        if (name == DLQ_STREAM and not include_dlq) or not any(
            subjects_overlap(subject, s) for s in info.config.subjects or []
        ):
            continue

        async def on_message(msg: Msg) -> None:
            await queue.put(msg)

        subs.append(
            await js.subscribe(
                subject, stream=name, ordered_consumer=True, deliver_policy=policy, cb=on_message
            )
        )
    try:
        while True:
            yield await queue.get()
    finally:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
