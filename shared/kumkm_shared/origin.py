"""Where a unit of work came from, set by the runtime and never read from a payload.

A handler may behave differently for a command (strict: answer 409 now) and for a stream delivery
(tolerant: park what is ahead, ignore what is stale). It decides by ``origin``, never by the envelope's
``source``, which is free text any integrator can set. Rules: ``docs/rules/messaging.md``, section "Origin and
actor".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ANONYMOUS", "SYSTEM", "Actor", "Command", "Origin", "StreamDelivery"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a command: a signed-in person, an integrator's service account, or the system."""

    subject: str
    kind: Literal["person", "service", "system", "anonymous"] = "person"
    roles: frozenset[str] = field(default_factory=frozenset)
    name: str | None = None


SYSTEM = Actor("system", kind="system")  # timers and ticks the service runs itself
ANONYMOUS = Actor("anonymous", kind="anonymous")  # an HTTP caller before sign-in exists


@dataclass(frozen=True, slots=True)
class StreamDelivery:
    """The event came from a durable consumer on a stream."""

    consumer: str
    stream: str = ""
    stream_seq: int = 0
    delivered: int = 1
    last_attempt: bool = False  # this delivery is the last: a Retry now ends in the DLQ


@dataclass(frozen=True, slots=True)
class Command:
    """A command: an HTTP request, a CLI call or a timer, on behalf of ``actor``."""

    actor: Actor
    via: Literal["http", "cli", "timer"] = "http"


Origin = StreamDelivery | Command
