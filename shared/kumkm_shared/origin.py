"""Where a unit of work came from, set by the runtime and never read from a payload.

A handler may behave differently for a command (strict: answer 409 now) and for a stream delivery
(tolerant: park what is ahead, ignore what is stale). It decides by ``origin``, never by the envelope's
``source``, which is free text any integrator can set. Rules: ``docs/rules/messaging.md``, section "Origin and
actor".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from kumkm_shared.auth.scope import NATIONAL_SCOPE, NO_REGION, RegionScope

if TYPE_CHECKING:
    from kumkm_shared.audit.draft import AuditDraft

__all__ = ["ANONYMOUS", "SYSTEM", "Actor", "Command", "Origin", "StreamDelivery"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a command: a signed-in person, an integrator's service account, or the system.

    Built from a verified access token (``kumkm_shared.auth.verify``) or by the service itself, never from a
    payload.
    """

    subject: str
    kind: Literal["person", "service", "system", "anonymous"] = "person"
    roles: frozenset[str] = field(default_factory=frozenset)
    name: str | None = None
    organisation: str | None = None
    scope: RegionScope = NO_REGION  # the regions this actor sees and decides

    def has_any(self, roles: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles)


SYSTEM = Actor("system", kind="system", scope=NATIONAL_SCOPE)  # timers and ticks the service runs itself
ANONYMOUS = Actor("anonymous", kind="anonymous")  # no valid token: never reaches a route


@dataclass(frozen=True, slots=True)
class StreamDelivery:
    """The event came from a durable consumer on a stream."""

    consumer: str
    stream: str = ""
    stream_seq: int = 0
    delivered: int = 1
    last_attempt: bool = False  # this delivery is the last: a Retry now ends in the DLQ
    # The integrator organisation that published it: the subject's last token, which the NATS server lets
    # only that organisation's users write (``kumkm_shared.integrators``). None: a bare type, a service's own.
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """A command: an HTTP request, a CLI call or a timer, on behalf of ``actor``."""

    actor: Actor
    via: Literal["http", "cli", "timer"] = "http"
    # The HTTP request's audit record: written inside the command's transaction (``ServiceRuntime.command``).
    trail: AuditDraft | None = field(default=None, compare=False)


Origin = StreamDelivery | Command
