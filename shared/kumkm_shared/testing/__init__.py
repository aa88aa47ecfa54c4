# Helpers for tests; the fixtures live in `kumkm_shared.testing.plugin` (loaded by pytest automatically).
from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING

from kumkm_shared.servers import free_port

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["free_port", "wait_for"]


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 5.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    *,
    interval: float = 0.02,
    message: str = "",
) -> None:
    """Poll `predicate` (plain or async) until it returns true; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise TimeoutError(f"condition not met within {timeout}s: {what}")
        await asyncio.sleep(interval)
