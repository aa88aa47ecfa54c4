"""The broker factory: reconnects forever, optional credentials and inbox prefix, uvloop where available."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import structlog
from faststream.nats import NatsBroker
from faststream.security import SASLPlaintext

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from faststream._internal.middlewares import BaseMiddleware

log = structlog.get_logger(__name__)


def install_uvloop() -> bool:
    """Use uvloop for the current process when it is installed (it is, except on Windows)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _is_supervisor_chatter(record: logging.LogRecord) -> bool:
    """False for FastStream's INFO line as each subscriber task ends ("callback for Task-8 is being
    executed..."): printed once per durable at every shutdown, it says nothing an operator can act on."""
    return not (record.levelno == logging.INFO and record.getMessage().endswith("is being executed..."))


logging.getLogger("faststream.access.nats").addFilter(_is_supervisor_chatter)


async def _on_error(exc: Exception) -> None:
    log.warning("nats error", error=repr(exc))


async def _on_disconnect() -> None:
    log.warning("nats disconnected; reconnecting")


async def _on_reconnect() -> None:
    log.info("nats reconnected")


def make_broker(
    servers: Sequence[str],
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
    inbox_prefix: str | None = None,
    middlewares: Sequence[type[BaseMiddleware] | Any] = (),
    publish_window: int = 256,
    on_error: Callable[[Exception], Awaitable[None]] | None = None,
) -> NatsBroker:
    """A FastStream NATS broker that never gives up reconnecting.

    FastStream's pull loop spins at 100% CPU once a connection is closed for good, so
    ``max_reconnect_attempts=-1`` is not optional here.
    """
    extra: dict[str, Any] = {}
    if inbox_prefix:
        extra["inbox_prefix"] = inbox_prefix.encode()
    security = SASLPlaintext(username=user, password=password or "") if user else None
    return NatsBroker(
        list(servers),
        name=name,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        error_cb=on_error or _on_error,
        disconnected_cb=_on_disconnect,
        reconnected_cb=_on_reconnect,
        security=security,
        middlewares=tuple(middlewares),
        js_options={"publish_async_max_pending": publish_window},
        graceful_timeout=10.0,
        # FastStream's two access-log lines per message cost real CPU under load: keep them at DEBUG.
        log_level=logging.DEBUG,
        **extra,
    )
