"""Database errors that a retry cures: the server went away, is starting or stopping, or (during a failover)
the node reached does not accept writes yet. See docs/rules/database.md.

A connection to the primary dies with the primary; the pool replaces it on the next acquire, and the
multi-host DSN (``target_session_attrs=read-write``) makes the new connection land on the node that now
accepts writes. What the caller sees in between is one of these errors, never a reason to stop a worker.
"""

from __future__ import annotations

import asyncio
import errno
import time
from typing import TYPE_CHECKING, TypeVar

import asyncpg

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")

# SQLSTATE classes and codes: 08 connection exception; 57P01 admin_shutdown, 57P02 crash_shutdown,
# 57P03 cannot_connect_now (starting up, in recovery); 25006 read_only_sql_transaction (a connection that
# reached a standby, or a primary being demoted); 53300 too_many_connections (a node just promoted, every
# client reconnecting at once).
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "25006", "53300"})
# What a connect to a node that is down or unreachable fails with.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


def is_transient_db_error(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the database was unreachable or not writable for now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, asyncpg.PostgresError):
            return _transient(current)  # the server's own answer decides, whatever it was raised from
        if _transient(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    message = str(exc)
    return (
        isinstance(exc, asyncpg.TargetServerAttributeNotMatched | ConnectionError | TimeoutError)
        or (isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS)  # "Connect call failed"
        or (isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in message)
        # How asyncpg reports a connection the server ended in the middle of a statement (a backend
        # terminated as its postmaster died): seen on kill -9 of a primary under load.
        or (isinstance(exc, asyncpg.InternalClientError) and "cannot switch to state" in message)
    )


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    deadline: float = 30.0,
    first_delay: float = 0.05,
    max_delay: float = 1.0,
) -> T:
    """Run `operation` until it succeeds, retrying transient database errors for `deadline` seconds.

    `operation` must be safe to run again: one whole transaction, not a statement inside one. Any other
    error, and a transient one past the deadline, is raised.
    """
    give_up = time.monotonic() + deadline
    delay = first_delay
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient_db_error(exc) or time.monotonic() + delay > give_up:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
