"""Which database errors a retry cures (docs/rules/database.md): a lost or refused connection, a server
starting or stopping, a node that does not accept writes; and that retry_transient retries only those."""

from __future__ import annotations

import errno

import asyncpg
import pytest

from kumkm_shared.db.transient import is_transient_db_error, retry_transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.TargetServerAttributeNotMatched("None of the hosts match"),
        asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        OSError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
        TimeoutError(),
    ],
)
def test_failover_errors_are_transient(exc: BaseException) -> None:
    assert is_transient_db_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.UndefinedTableError("relation does not exist"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        FileNotFoundError(errno.ENOENT, "no such file"),
        ValueError("bad"),
    ],
)
def test_other_errors_are_not(exc: BaseException) -> None:
    assert not is_transient_db_error(exc)


def test_a_wrapped_connection_loss_is_transient() -> None:
    wrapped = RuntimeError("outbox publish failed")
    wrapped.__cause__ = ConnectionResetError(errno.ECONNRESET, "reset")
    assert is_transient_db_error(wrapped)


def test_a_server_answer_decides_even_when_raised_during_a_connection_loss() -> None:
    answer = asyncpg.UniqueViolationError("duplicate key")
    answer.__context__ = ConnectionResetError(errno.ECONNRESET, "reset")
    assert not is_transient_db_error(answer)


async def test_retry_transient_retries_until_success_and_raises_the_rest() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise asyncpg.ConnectionDoesNotExistError("gone")
        return "done"

    assert await retry_transient(flaky, first_delay=0.001) == "done"
    assert calls == 3

    async def broken() -> None:
        raise asyncpg.UniqueViolationError("duplicate key")

    with pytest.raises(asyncpg.UniqueViolationError):
        await retry_transient(broken, first_delay=0.001)

    async def down() -> None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    with pytest.raises(ConnectionRefusedError):
        await retry_transient(down, deadline=0.05, first_delay=0.01)
