"""The broker factory: reconnects forever, optional credentials (a .creds file, or user and password) and
inbox prefix, uvloop where available."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import nats.errors
import structlog
from faststream.nats import NatsBroker
from faststream.nats.security import NatsCredentials
from faststream.security import SASLPlaintext
from nats.js.client import JetStreamContext

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from pathlib import Path

    from faststream._internal.middlewares import BaseMiddleware
    from nats.aio.client import Client
    from nats.aio.msg import Msg

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


class EmptyPullSubscription(JetStreamContext.PullSubscription):
    """A pull subscription whose ``fetch`` reports "nothing to fetch" the one way nats-py documents.

    FastStream's pull loops treat ``nats.errors.TimeoutError`` from ``fetch`` as an empty pull and pull
    again. nats-py (2.16) also ends an empty multi-message pull with a bare ``asyncio.TimeoutError``, the
    builtin ``TimeoutError``, which is not a ``nats.errors.TimeoutError``: it does so when the server's
    "408 Request Timeout" for the pull is read before the client's own timer fires, which a busy event
    loop makes likely. That exception escapes FastStream's loop, the pull task dies and FastStream logs
    "Task raised an exception, retrying..." with a traceback for an idle durable. Every other exception
    passes through unchanged.
    """

    async def fetch(
        self,
        batch: int = 1,
        timeout: float | None = 5,  # noqa: ASYNC109 - the signature of nats-py's fetch, overridden
        heartbeat: float | None = None,
    ) -> list[Msg]:
        try:
            return await super().fetch(batch=batch, timeout=timeout, heartbeat=heartbeat)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:  # the builtin: the pull's deadline ran out with nothing fetched
            raise nats.errors.TimeoutError from exc


class PullSafeJetStream(JetStreamContext):
    """A JetStream context whose pull subscriptions are :class:`EmptyPullSubscription` s."""

    async def pull_subscribe_bind(self, *args: Any, **kwargs: Any) -> JetStreamContext.PullSubscription:
        subscription = await super().pull_subscribe_bind(*args, **kwargs)
        # pull_subscribe (FastStream's call) ends here too. The subclass adds no state: only ``fetch``.
        subscription.__class__ = EmptyPullSubscription
        return subscription


class KumkmNatsBroker(NatsBroker):
    """FastStream's NATS broker, with subscribers that pull through :class:`PullSafeJetStream`."""

    async def _connect(self) -> Client:
        connection = await super()._connect()
        # Subscribers create their pull subscriptions from the connection state's JetStream context;
        # publishers and key-value stores keep the one FastStream connected them to.
        state = self.config.connection_state
        state.connect(connection, PullSafeJetStream(connection, **self.config.js_options))
        return connection


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
    creds: Path | None = None,
    middlewares: Sequence[type[BaseMiddleware] | Any] = (),
    publish_window: int = 256,
    on_error: Callable[[Exception], Awaitable[None]] | None = None,
) -> NatsBroker:
    """A FastStream NATS broker that never gives up reconnecting, and whose idle pulls are quiet.

    FastStream's pull loop spins at 100% CPU once a connection is closed for good, so
    ``max_reconnect_attempts=-1`` is not optional here.
    """
    extra: dict[str, Any] = {}
    if inbox_prefix:
        extra["inbox_prefix"] = inbox_prefix.encode()
    security: NatsCredentials | SASLPlaintext | None = None
    if creds is not None:
        # Operator mode; the file is read at every (re)connect, so a replaced one applies without a restart.
        security = NatsCredentials(str(creds))
    elif user:
        security = SASLPlaintext(username=user, password=password or "")
    return KumkmNatsBroker(
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
