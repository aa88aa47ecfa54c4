"""An idle service is quiet: a pull fetch that finds nothing is not an error. A real failure still is.

Each durable's FastStream task pulls in a loop; a pull that times out empty must end that iteration
quietly (no ERROR record, no traceback, no task restart), while an exception that is not an empty-fetch
timeout must still reach the log through FastStream's task supervisor.

How an empty pull ends depends on timing. The server answers an expired pull with "408 Request Timeout"
about a millisecond after the client's own deadline, so usually nats-py's timer fires first and ``fetch``
raises ``nats.errors.TimeoutError``, which FastStream's pull loop suppresses. But when the event loop is
busy for a few milliseconds right after the pull request went out (another handler's CPU work, a GC
pause, a shared core), the client's timer starts late, the 408 is read first, and nats-py's ``fetch``
(``_fetch_n``, any batch above 1) raises a bare builtin ``TimeoutError`` instead, which FastStream does not
suppress: the pull task dies with a logged traceback and is restarted. The idle test holds the loop that
way after every pull, so every empty pull takes the second path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from faststream._internal.endpoint.subscriber.supervisor import TaskCallbackSupervisor
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext

from kumkm_shared.testing import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from nats.aio.msg import Msg

    from kumkm_shared import ServiceRuntime

pytestmark = pytest.mark.integration

PULL_TIMEOUT = 2.0  # the runtime's PullSub timeout: one empty fetch lasts about this long
EMPTY_FETCHES = 3
BUSY_SECONDS = 0.05


class Records(logging.Handler):
    """Every stdlib record, from the root and from the loggers that do not propagate (FastStream's)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_logs() -> Iterator[tuple[Records, list[dict[str, Any]]]]:
    handler = Records()
    loggers = [logging.getLogger()] + [
        lg
        for lg in logging.root.manager.loggerDict.values()
        if isinstance(lg, logging.Logger) and not lg.propagate
    ]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with structlog.testing.capture_logs() as events:
            yield handler, events
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


def problems(handler: Records, events: list[dict[str, Any]]) -> list[str]:
    found = [
        f"{r.name} {r.levelname}: {r.getMessage()[:120]}"
        for r in handler.records
        if r.levelno >= logging.ERROR or r.exc_info
    ]
    found += [
        f"structlog {e.get('log_level')}: {e.get('event')}"
        for e in events
        if e.get("log_level") in {"error", "critical", "exception"} or e.get("exc_info")
    ]
    return found


@dataclass
class FetchSpy:
    """Counts the nats-py pull fetches of one subscription and how each one ended."""

    subscription: object | None = None
    outcomes: list[str] = field(default_factory=list)
    raw_errors: list[str] = field(default_factory=list)
    fail_next: BaseException | None = None
    busy_loop: bool = False
    hold_loop_after_request: bool = False

    @property
    def inbox(self) -> object:
        """The core subscription the pulled messages (and the server's status replies) arrive on."""
        return getattr(self.subscription, "_sub", None)

    def empty(self) -> int:
        return sum(1 for o in self.outcomes if o in {"empty", "timeout"})


@pytest.fixture
def fetch_spy(monkeypatch: pytest.MonkeyPatch) -> FetchSpy:
    spy = FetchSpy()
    real_fetch = JetStreamContext.PullSubscription.fetch

    async def fetch(self: JetStreamContext.PullSubscription, *args: Any, **kwargs: Any) -> list[Msg]:
        if self is not spy.subscription:
            return await real_fetch(self, *args, **kwargs)
        if spy.fail_next is not None:
            exc, spy.fail_next = spy.fail_next, None
            spy.outcomes.append("failed")
            raise exc
        spy.hold_loop_after_request = spy.busy_loop
        try:
            messages = await real_fetch(self, *args, **kwargs)
        except TimeoutError as exc:  # builtin or nats.errors.TimeoutError: nothing arrived in time
            spy.outcomes.append("timeout")
            spy.raw_errors.append(f"{type(exc).__module__}.{type(exc).__qualname__}")
            raise
        spy.outcomes.append("messages" if messages else "empty")
        return messages

    real_next_msg = Subscription.next_msg

    async def next_msg(self: Subscription, timeout: float | None = 1.0) -> Msg:
        # The first wait of a pull starts right after its request was sent: hold the loop there, the
        # way other work on a busy service does, so the client's timer starts late.
        if spy.hold_loop_after_request and self is spy.inbox:
            spy.hold_loop_after_request = False
            time.sleep(BUSY_SECONDS)  # noqa: ASYNC251 - blocking the loop is the point
        return await real_next_msg(self, timeout=timeout)

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch)
    monkeypatch.setattr(Subscription, "next_msg", next_msg)
    return spy


@pytest.fixture(autouse=True)
def _supervisor_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    # FastStream prints each distinct task failure once per process (an hour-long cache): forget what
    # earlier tests printed, so a failure here is reported here. Its kill switch must be off.
    monkeypatch.delenv("FASTSTREAM_SUPERVISOR_DISABLED", raising=False)
    TaskCallbackSupervisor._TaskCallbackSupervisor__cache.clear()  # type: ignore[attr-defined]


def toy_subscriber(runtime: ServiceRuntime) -> Any:
    (subscriber,) = [s for s in runtime.broker.subscribers if getattr(s, "pull_sub", None) is not None]
    assert subscriber.subscription is not None
    return subscriber


async def test_idle_subscriber_logs_no_error(runtime: ServiceRuntime, fetch_spy: FetchSpy) -> None:
    assert os.environ.get("FASTSTREAM_SUPERVISOR_DISABLED") is None
    subscriber = toy_subscriber(runtime)
    fetch_spy.subscription = subscriber.subscription
    fetch_spy.busy_loop = True
    tasks_before = list(subscriber.tasks)
    with captured_logs() as (handler, events):
        await wait_for(
            lambda: fetch_spy.empty() >= EMPTY_FETCHES,
            timeout=PULL_TIMEOUT * (EMPTY_FETCHES + 3),
            interval=0.1,
            message=f"{EMPTY_FETCHES} empty pull fetches",
        )
    assert "messages" not in fetch_spy.outcomes, fetch_spy.outcomes
    assert problems(handler, events) == [], f"raw fetch errors: {fetch_spy.raw_errors}"
    # The pull loop itself never died: the same task, still running, and nothing was restarted.
    assert subscriber.tasks == tasks_before
    assert all(not task.done() for task in subscriber.tasks)


async def test_a_genuine_fetch_failure_is_still_logged(runtime: ServiceRuntime, fetch_spy: FetchSpy) -> None:
    subscriber = toy_subscriber(runtime)
    fetch_spy.subscription = subscriber.subscription
    failure = RuntimeError("the pull request was refused for a real reason")
    with captured_logs() as (handler, events):
        fetch_spy.fail_next = failure
        await wait_for(
            lambda: any(r.exc_info and r.exc_info[1] is failure for r in handler.records),
            timeout=PULL_TIMEOUT * 3,
            interval=0.05,
            message="the failure reaches the log",
        )
        # FastStream restarts the pull task, which goes back to pulling.
        pulled = len(fetch_spy.outcomes)
        await wait_for(lambda: len(fetch_spy.outcomes) > pulled, timeout=PULL_TIMEOUT * 3, interval=0.05)
    logged = [r for r in handler.records if r.exc_info and r.exc_info[1] is failure]
    assert logged[0].levelno == logging.ERROR
    assert "raised an exception" in logged[0].getMessage()
    assert [p for p in problems(handler, events) if "raised an exception" not in p] == []
