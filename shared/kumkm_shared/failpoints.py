"""Failpoints: named places in the plumbing where a test can make the process die or fail on purpose.

The crash-safety tests and the fault suite use them to kill a service at an exact point of a batch (before
its commit, after it, between two acks), which a kill from outside can only hit by chance. Unset, a
failpoint is one dict lookup. Rules: ``docs/rules/messaging.md``, section "Failpoints".

Armed by the environment of the process, read once at import::

    KUMKM_FAILPOINTS="consumer.batch.after_commit=kill@3,relay.before_mark=raise"

``kill`` sends SIGKILL to the process itself (no cleanup, no flush: what a power cut does); ``raise`` raises
``FailpointError``. ``@n`` fires on the n-th hit of that point only (default: the first). Only an operator
can set a process's environment, so a failpoint is no way in for anyone else; production never sets it.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

ENV = "KUMKM_FAILPOINTS"
ACTIONS = ("kill", "raise")

CONSUMER_BEFORE_COMMIT = "consumer.batch.before_commit"
CONSUMER_AFTER_COMMIT = "consumer.batch.after_commit"
CONSUMER_DURING_ACKS = "consumer.batch.during_acks"
RELAY_BEFORE_MARK = "relay.before_mark"
DISPATCHER_AFTER_SEND = "dispatcher.after_send"
NAMES = (
    CONSUMER_BEFORE_COMMIT,
    CONSUMER_AFTER_COMMIT,
    CONSUMER_DURING_ACKS,
    RELAY_BEFORE_MARK,
    DISPATCHER_AFTER_SEND,
)


class FailpointError(RuntimeError):
    """Raised by a failpoint armed with ``raise``."""


@dataclass
class _Armed:
    action: str
    on_hit: int
    hits: int = 0


def parse(spec: str) -> dict[str, _Armed]:
    """``name=action[@n],...`` into armed failpoints; a ValueError names the bad part."""
    armed: dict[str, _Armed] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, rest = part.partition("=")
        if not sep or name not in NAMES:
            raise ValueError(f"{ENV}: {part!r} must be <name>=<action>[@n] with a name of {', '.join(NAMES)}")
        action, _, nth = rest.partition("@")
        if action not in ACTIONS:
            raise ValueError(f"{ENV}: {part!r}: the action must be one of {', '.join(ACTIONS)}")
        if nth and (not nth.isdigit() or int(nth) < 1):
            raise ValueError(f"{ENV}: {part!r}: @n must be a positive whole number")
        armed[name] = _Armed(action, int(nth or 1))
    return armed


_ARMED: dict[str, _Armed] = parse(os.environ.get(ENV, ""))


def arm(name: str, action: str, on_hit: int = 1) -> None:
    """Arm a failpoint in this process (in-process tests; subprocesses use the environment)."""
    _ARMED.update(parse(f"{name}={action}@{on_hit}"))


def disarm() -> None:
    _ARMED.clear()


def armed(name: str) -> bool:
    """Whether ``name`` is armed (to prepare what its firing must observe, such as a flushed ack)."""
    return name in _ARMED


def hit(name: str) -> None:
    """Pass the failpoint ``name``: nothing unless it is armed and this is the hit it waits for."""
    point = _ARMED.get(name)
    if point is None:
        return
    point.hits += 1
    if point.hits != point.on_hit:
        return
    if point.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointError(f"failpoint {name} fired (hit {point.hits})")
